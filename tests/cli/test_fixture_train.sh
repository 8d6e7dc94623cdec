#!/bin/sh
# test_fixture_train.sh: each data set's standard layout, written here as a small
# fixture (CIFAR-10 and CIFAR-100 binary records, a Tiny ImageNet tree of real JPEGs),
# trains its matching model for one step on the CPU target and evaluates it; then the
# damaged forms a loader must refuse or report (a FIFO where the Tiny ImageNet cache
# goes, an archive holding a file twice, splits short of the published sizes).
# Env: BPC. Needs /usr/bin/python3 with PIL (Debian python3-pil) to encode the JPEGs.
set -u
TEST=fix
. "$(dirname "$0")/lib.sh"
/usr/bin/python3 - "$T" <<'PY' || exit 1
import os, random, struct, sys
from PIL import Image
root = sys.argv[1]
rnd = random.Random(1)
def records(n, labels):          # one label byte per label field, then 3072 channel-planar pixels
    out = bytearray()
    for _ in range(n):
        for k in labels: out.append(rnd.randrange(k))
        out += bytes(rnd.randrange(256) for _ in range(3072))
    return bytes(out)
c10 = os.path.join(root, "c10", "cifar-10-batches-bin"); os.makedirs(c10)
for i in range(1, 6): open(os.path.join(c10, "data_batch_%d.bin" % i), "wb").write(records(30, [10]))
open(os.path.join(c10, "test_batch.bin"), "wb").write(records(20, [10]))
c100 = os.path.join(root, "c100", "cifar-100-binary"); os.makedirs(c100)
open(os.path.join(c100, "train.bin"), "wb").write(records(150, [20, 100]))
open(os.path.join(c100, "test.bin"), "wb").write(records(20, [20, 100]))
tin = os.path.join(root, "tin", "tiny-imagenet-200"); os.makedirs(os.path.join(tin, "val", "images"))
wnids = ["n%08d" % (1000 + k) for k in range(200)]
open(os.path.join(tin, "wnids.txt"), "w").write("\n".join(wnids) + "\n")
for k, w in enumerate(wnids):
    d = os.path.join(tin, "train", w, "images"); os.makedirs(d)
    mode = "L" if k % 50 == 0 else "RGB"   # a few grayscale images, as in the real set
    Image.new(mode, (64, 64), color=(k % 256) if mode == "L" else (k % 256, 40, 200 - k % 200)).save(os.path.join(d, "%s_0.JPEG" % w))
ann = []
for v in range(20):
    Image.new("RGB", (64, 64), color=(v * 10, 0, 0)).save(os.path.join(tin, "val", "images", "val_%d.JPEG" % v))
    ann.append("val_%d.JPEG\t%s\t0\t0\t63\t63" % (v, wnids[v * 7 % 200]))
open(os.path.join(tin, "val", "val_annotations.txt"), "w").write("\n".join(ann) + "\n")
PY
# CIFAR-100's 20 coarse labels, named in the model's data line
sed -e 's/output    100 brainprop/output    20 brainprop/' -e 's/data        cifar100;/data        cifar100-coarse;/' \
    models/cifar100_conv.bp > "$T/cifar100_coarse_conv.bp"
for spec in cifar10_conv:c10 cifar100_conv:c100 cifar10_loccon:c10 tinyimagenet_deep:tin "$T/cifar100_coarse_conv":c100; do
    m=${spec%%:*}; d=${spec#*:}
    case $m in /*) mp=$m.bp; m=$(basename "$m") ;; *) mp=models/$m.bp ;; esac
    if "$BPC" train "$mp" --data "$T/$d" --target cpu --epochs 1 > "$T/log" 2>&1 &&
       grep -q "^test accuracy" "$T/log"; then
        cp "$T/log" "$T/log.$m"
        echo "ok   $m on the $d fixture"
    else
        echo "FAIL $m on the $d fixture:"; tail -n 15 "$T/log" | sed 's/^/  /'; fails=$((fails + 1))
    fi
done
# Tiny ImageNet: a FIFO where the cache goes is rebuilt over (opening it must not wait
# for a writer); a zip that holds one image twice is refused by name
printf 'model tins {\n input 64x64x3; maxpool size 16; output 200 brainprop;\n}\ntrain { data tinyimagenet; batch 4; epochs 1; }\n' > "$T/tins.bp"
rm -f "$T/tin/tiny-imagenet-200/tinyimagenet.bpc-cache"
mkfifo "$T/tin/tiny-imagenet-200/tinyimagenet.bpc-cache"
if timeout 120 "$BPC" train "$T/tins.bp" --data "$T/tin" --target cpu > "$T/log" 2>&1 &&
   grep -q "not a regular file, so not a Tiny ImageNet cache; rebuilding it" "$T/log" &&
   [ -f "$T/tin/tiny-imagenet-200/tinyimagenet.bpc-cache" ]; then
    echo "ok   a FIFO at the Tiny ImageNet cache is replaced, not waited on"
else
    echo "FAIL a FIFO at the Tiny ImageNet cache:"; tail -n 5 "$T/log" | sed 's/^/  /'; fails=$((fails + 1))
fi
/usr/bin/python3 - "$T/tin" "$T/dup/tiny-imagenet-200.zip" <<'PY'
import os, sys, warnings, zipfile
src, out = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(out))
names = sorted(os.path.relpath(os.path.join(d, f), src) for d, _, fs in os.walk(src) for f in fs
               if not f.endswith("bpc-cache"))
warnings.simplefilter("ignore")   # zipfile warns about the duplicate: that is the point
with zipfile.ZipFile(out, "w") as z:
    for n in names: z.write(os.path.join(src, n), n)
    first = next(n for n in names if "/train/" in n)
    z.write(os.path.join(src, first), first)
PY
expect "a zip that holds an image twice is refused, naming it" 2 \
    "tiny-imagenet-200.zip: holds tiny-imagenet-200/train/" "$BPC" train "$T/tins.bp" --data "$T/dup" --target cpu

# a CIFAR archive that holds a batch file twice: which one is meant is not guessed
/usr/bin/python3 - "$T/c10" "$T/c10dup/cifar-10-binary.tar.gz" <<'PY'
import os, sys, tarfile
src, out = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(out))
with tarfile.open(out, "w:gz") as t:
    t.add(os.path.join(src, "cifar-10-batches-bin", "test_batch.bin"), "junk/old/test_batch.bin")
    t.add(os.path.join(src, "cifar-10-batches-bin"), "cifar-10-batches-bin")
PY
expect "a CIFAR archive with a batch file twice is refused" 2 \
    "holds test_batch.bin twice (junk/old/test_batch.bin, then cifar-10-batches-bin/test_batch.bin)" \
    "$BPC" train models/cifar10_conv.bp --data "$T/c10dup" --target cpu --epochs 1

# a file cut at a record boundary still parses, so training says how far the splits are
# from the published sizes (the fixture holds 150 of CIFAR-10's 50,000 training images)
if grep -q "warning: cifar10 from $T/c10/cifar-10-batches-bin has 150 training and 20 test images, but the published set has 50000 and 10000" "$T/log.cifar10_conv"; then
    echo "ok   a short CIFAR-10 is reported"
else
    echo "FAIL no warning for a short CIFAR-10:"; sed 's/^/  /' "$T/log.cifar10_conv"; fails=$((fails + 1))
fi
[ "$fails" -eq 0 ]

#!/bin/sh
# test_nvrtc.sh: how bpc finds and asks NVRTC (no GPU needed):
#  - the toolkit found only through CUDA_HOME: libnvrtc's builtins are loaded from the
#    same folder (libnvrtc itself would look for them on the loader's path only and
#    fail with "failed to open libnvrtc-builtins.so");
#  - an architecture the loaded NVRTC lacks is a command-line mistake (exit 1) that
#    lists the ones it has (nvrtcGetSupportedArchs);
#  - the architecture-specific variants sm_90a / compute_90a are accepted.
# Env: BPC, CUDA_HOME (default /usr/local/cuda).
set -u
TEST=nvrtc
. tests/cli/lib.sh
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export XDG_CACHE_HOME="$T/cache" # every ptx below really compiles
if ! ls "$CUDA_HOME"/lib64/libnvrtc.so.* > /dev/null 2>&1; then
    echo "skip test_nvrtc: no NVRTC in $CUDA_HOME/lib64 (install NVIDIA's CUDA toolkit, or set CUDA_HOME)"
    exit 0
fi

# a toolkit of links in a folder the loader does not search
mkdir -p "$T/cuda/lib64"
for f in "$CUDA_HOME"/lib64/libnvrtc.so.* "$CUDA_HOME"/lib64/libnvrtc-builtins.so.*; do
    ln -s "$(readlink -f "$f")" "$T/cuda/lib64/${f##*/}"
done
if env CUDA_HOME="$T/cuda" LD_DEBUG=libs "$BPC" ptx models/mnist_dense.bp -o "$T/a.ptx" > "$T/log" 2>&1 &&
    grep -q "init: $T/cuda/lib64/libnvrtc-builtins.so" "$T/log" && grep -q '^\.target sm_90' "$T/a.ptx"; then
    ok "CUDA_HOME only: the builtins come from its lib64"
else
    bad "CUDA_HOME only: the builtins come from its lib64" "$T/log"
fi

expect "ptx --arch compute_200: exit 1 with NVRTC's list" 1 "--arch compute_200: NVRTC" \
    "$BPC" ptx models/mnist_dense.bp -o "$T/x.ptx" --arch compute_200
grep -q "compiles for .*, 90, .*(as compute_XY or sm_XY)" "$T/err" && ok "the list names compute_90" ||
    bad "the list names compute_90" "$T/err"
[ ! -e "$T/x.ptx" ] && ok "no PTX written for it" || bad "a PTX was written for compute_200"
expect "build --arch sm_999: exit 1 with the list" 1 "--arch sm_999: NVRTC" \
    "$BPC" build models/mnist_dense.bp -o "$T/tr" --target cuda --arch sm_90,sm_999

if "$BPC" ptx models/mnist_dense.bp -o "$T/a.ptx" --arch compute_90a > "$T/log" 2>&1 &&
    grep -q '^\.target sm_90a' "$T/a.ptx"; then ok "ptx --arch compute_90a"
else bad "ptx --arch compute_90a" "$T/log"; fi
expect "ptx --arch sm_90a: a real architecture, refused for PTX" 1 \
    "--arch for ptx is one virtual architecture" "$BPC" ptx models/mnist_dense.bp -o "$T/x.ptx" --arch sm_90a

[ "$fails" -eq 0 ]

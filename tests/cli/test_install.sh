#!/bin/sh
# test_install.sh: `make install` into a staging DESTDIR puts every file in place under
# PREFIX; the installed bpc finds its libbprt.a (PREFIX/lib/bpc) and builds a trainer
# that trains, finds the shipped models by name, and its man page reads; `make
# uninstall` removes every file again. Env: BUILD (the build folder).
set -u
TEST=install
. tests/cli/lib.sh
BUILD=${BUILD:-build}
D="$T/stage"
P=/opt/bpc
if make -s BUILD="$BUILD" DESTDIR="$D" PREFIX="$P" install > "$T/log" 2>&1; then ok "make install DESTDIR PREFIX"
else bad "make install DESTDIR PREFIX" "$T/log"; fi
for f in bin/bpc lib/bpc/libbprt.a share/man/man1/bpc.1 share/bpc/models/mnist_conv.bp \
         share/bpc/templates/kernel_cu.in share/bpc/editors/bp.tmLanguage.json \
         share/vim/vimfiles/syntax/bp.vim share/vim/vimfiles/ftdetect/bp.vim; do
    [ -f "$D$P/$f" ] || bad "not installed: PREFIX/$f"
done
[ -x "$D$P/bin/bpc" ] && ok "the files are in place" || bad "bin/bpc is not executable"
n=$(ls models/*.bp | wc -l); m=$(ls "$D$P"/share/bpc/models/*.bp | wc -l)
[ "$n" -eq "$m" ] && ok "all $n models" || bad "$m of $n models installed"

# the staged tree works where it lies: bpc build links PREFIX/lib/bpc/libbprt.a
BIN="$D$P/bin/bpc"
(cd "$T" && "$BIN" build "$D$P/share/bpc/models/mnist_dense.bp" -o "$T/trainer") > "$T/log" 2>&1 &&
    (cd "$T" && ./trainer --data synthetic --epochs 1 --limit 512 --test-limit 128 --no-progress) >> "$T/log" 2>&1 &&
    grep -q "^test accuracy" "$T/log" && ok "installed bpc builds a trainer that trains" ||
    bad "installed bpc builds a trainer that trains" "$T/log"
(cd "$T" && "$BIN" repro --models mnist_dense --out "$T/grid" --data synthetic --epochs 1 --limit 256 \
    --test-limit 64 --rules ebp --no-progress) > "$T/log" 2>&1 && [ -f "$T/grid/mnist_dense-ebp-seed1/summary.json" ] &&
    ok "installed bpc repro finds a shipped model by name" || bad "installed bpc repro finds a shipped model by name" "$T/log"
if command -v man > /dev/null 2>&1; then
    MANWIDTH=80 man -l "$D$P/share/man/man1/bpc.1" 2> "$T/log" | grep -q "bpc help" && ok "the installed man page" ||
        bad "the installed man page" "$T/log"
else
    echo "skip the installed man page: no man (install man-db)"
fi

if make -s BUILD="$BUILD" DESTDIR="$D" PREFIX="$P" uninstall > "$T/log" 2>&1; then ok "make uninstall"
else bad "make uninstall" "$T/log"; fi
left=$(find "$D" -type f | sed "s|^$D||")
[ -z "$left" ] && ok "uninstall leaves no file" || bad "uninstall left: $(echo $left)"
[ ! -d "$D$P/share/bpc" ] && [ ! -d "$D$P/lib/bpc" ] && ok "and removes bpc's own folders" || bad "bpc's folders remain"
[ "$fails" -eq 0 ]

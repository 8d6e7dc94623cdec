#!/bin/sh
# valgrind.sh: the unit tests (tests/unit, the plain build) under valgrind's memcheck:
# no invalid read or write, no use of an uninitialised value, no definitely or
# indirectly lost block. The sanitizer build already runs them in `make test`; memcheck
# also sees what ASan cannot (uninitialised reads) and runs the optimised objects.
#
# Env: BUILD (default build); TESTS (names, default every tests/unit/test_*.c).
# The JIT's kernels are compiled without AVX-512 here (BPC_CFLAGS), which valgrind does
# not emulate; their cache is a fresh folder, so that every kernel is built that way.
# Prints one line per program and "N passed, N failed"; exit status 1 on any failure.
set -u
BUILD=${BUILD:-build}
command -v valgrind > /dev/null 2>&1 || { echo "valgrind.sh: no valgrind (install valgrind)" >&2; exit 1; }
TESTS=${TESTS:-$(ls tests/unit/test_*.c | sed 's|.*/||; s|\.c$||')}
T=$(mktemp -d "${TMPDIR:-/tmp}/bpc-valgrind.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
export XDG_CACHE_HOME="$T/cache" BPC_CFLAGS="${BPC_CFLAGS:-} -mno-avx512f"
pass=0 fail=0
for t in $TESTS; do
    s=$(date +%s)
    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect "$BUILD/tests/$t" > "$T/log" 2>&1
    rc=$?
    n=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$T/log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        pass=$((pass + 1)); echo "ok    $t (${n:-0} cases, $(( $(date +%s) - s )) s)"
    else
        fail=$((fail + 1)); echo "FAIL  $t (exit $rc)"
        grep -E '^==[0-9]+==|FAILED|ERROR' "$T/log" | head -n 40 | sed 's/^/      /'
    fi
done
echo "valgrind: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

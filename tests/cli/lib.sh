# lib.sh: what the shell tests share. Source it after `set -u` with TEST set to the
# test's name; it makes the scratch folder $T (removed on exit) and defines
#   ok NAME / bad NAME [LOG]   count a check (fails counts the failures)
#   expect NAME STATUS TEXT CMD...   CMD exits STATUS and its stderr holds TEXT (fixed)
#   lines FILE / wait_lines FILE N   complete lines of FILE (0: none) / wait for N (300 s)
T=$(mktemp -d "${TMPDIR:-/tmp}/bpc-$TEST.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0

ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); [ -n "${2:-}" ] && [ -f "$2" ] && sed 's/^/  /' "$2" | tail -n 30; }

expect() {
    name=$1 want=$2 pat=$3; shift 3
    "$@" > "$T/out" 2> "$T/err"
    rc=$?
    if [ "$rc" -ne "$want" ] || ! grep -q -F -e "$pat" "$T/err"; then
        bad "$name: exit $rc (want $want), wanted: $pat" "$T/err"
    else
        ok "$name"
    fi
}

lines() { if [ -f "$1" ]; then wc -l < "$1" | tr -d ' '; else echo 0; fi; }

wait_lines() {
    i=0
    while [ "$(lines "$1")" -lt "$2" ] && [ $i -lt 6000 ]; do sleep 0.05; i=$((i + 1)); done
}

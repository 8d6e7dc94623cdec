#!/bin/sh
# test_help.sh: `bpc help VERB` and the man page docs/bpc.1 describe every option that
# each verb accepts, and name no option that it does not. The accepted options are
# taken from where the command line is parsed (compiler/main.c's APPLY table and
# BP_CLI_TRAIN_OPTIONS, repro.c's and plot.c's own parsers), so a new option without
# documentation fails here. Env: BPC.
set -u
TEST=help
. tests/cli/lib.sh

# accepted VERB: the options the parser takes for VERB, one per line
train_opts=$(sed -n '/define BP_CLI_TRAIN_OPTIONS/,/^$/p' compiler/cli.h | grep -o -- '--[a-z-]*')
accepted() {
    case $1 in
    train) echo "$train_opts" ;;
    repro) sed -n '/strs\[\] = /,/};/p; /nums\[\] = /,/};/p' compiler/repro.c | grep -o -- '"--[a-z-]*"' | tr -d '"'
           echo --lr; echo --progress; echo --no-progress ;;
    plot) grep -o -- 'strcmp(a, "-[-a-z]*")' compiler/plot.c | grep -o -- '"[^"]*"' | tr -d '"' | grep -v -e --help -e '^-h$' ;;
    *) grep -o -- "{\"$1\", \"[^\"]*\"}" compiler/main.c | sed 's/.*", "//; s/"}//' | tr ' ' '\n' | grep . ;;
    esac
}

MAN=$(sed 's/\\-/-/g' docs/bpc.1)
for verb in emit check ptx train eval data build plot repro; do
    "$BPC" help "$verb" > "$T/page" 2> "$T/err" || { bad "bpc help $verb: exit $?" "$T/err"; continue; }
    want=$(accepted "$verb" | sort -u)
    [ "$verb" = check ] || [ -n "$want" ] || { bad "no options found for $verb in the sources"; continue; }
    have=$(grep -o -- '-[-a-z]*[a-z]' "$T/page" | grep -e '^--[a-z]' -e '^-o$' | sort -u)
    missing=$(printf '%s\n' "$want" | grep . | while read -r o; do printf '%s\n' "$have" | grep -qx -- "$o" || echo "$o"; done)
    extra=$(printf '%s\n' "$have" | grep . | while read -r o; do printf '%s\n' "$want" | grep -qx -- "$o" || echo "$o"; done)
    [ -z "$missing$extra" ] && ok "help $verb: every option it takes, and only those" ||
        bad "help $verb: undocumented: $(echo $missing); not accepted: $(echo $extra)"
    # the verb's own section of the man page (emit's is headed by `bpc MODEL.bp -o`),
    # and in it each option as a whole word (--rule is not --rules)
    head="bpc $verb"; [ "$verb" = emit ] && head="bpc MODEL.bp"
    printf '%s\n' "$MAN" | awk -v h=".SS \"$head" 'index($0, ".SS ") == 1 { on = index($0, h) == 1 } on' > "$T/section"
    if [ -s "$T/section" ]; then
        inman=$(printf '%s\n' "$want" | grep . | while read -r o; do grep -q -e "$o\([^-a-z0-9]\|\$\)" "$T/section" || echo "$o"; done)
        [ -z "$inman" ] && ok "man page: the options of $verb, in its section" || bad "man page: the section of $verb lacks $(echo $inman)"
    else
        bad "man page has no section headed '$head'"
    fi
done
expect "help of an unknown verb" 1 "no verb 'frob'; the verbs are emit, check, ptx" "$BPC" help frob
"$BPC" help > "$T/out" && grep -q "bpc help VERB" "$T/out" && ok "bpc help alone: the usage" || bad "bpc help alone"

# the man page renders without warnings
if command -v man > /dev/null 2>&1; then
    MANWIDTH=80 man --warnings -l docs/bpc.1 > "$T/man.txt" 2> "$T/man.err"
    if [ -s "$T/man.txt" ] && [ ! -s "$T/man.err" ] && grep -q "EXIT STATUS" "$T/man.txt"; then ok "man --warnings -l docs/bpc.1"
    else bad "man --warnings -l docs/bpc.1" "$T/man.err"; fi
else
    echo "skip man page rendering: no man (install man-db)"
fi
[ "$fails" -eq 0 ]

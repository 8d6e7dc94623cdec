#!/bin/sh
# test_editors.sh: the Vim syntax file and the TextMate grammar (editors/) know every
# word of the language and highlight every word of every model shipped in models/ and
# of the accepted golden files (tests/cli/editors_check.py); vim itself loads the
# syntax file (through ftdetect) and reports each word's syntax group. Env: PYTHON.
set -u
TEST=editors
. tests/cli/lib.sh
PY=${PYTHON:-/usr/bin/python3}
FILES=$(ls models/*.bp docs/results/feedback/*.bp tests/golden/ok_*.bp)
if ! command -v vim > /dev/null 2>&1; then
    echo "skip vim highlighting: no vim (install vim)"
    DUMPED=-
else
    DUMPED=$T/dump
    # for each file: ftdetect sets the type, then every word and number's group
    cat > "$T/dump.vim" <<'VIM'
syntax on
filetype on
let out = []
for f in argv()
  execute 'edit ' . fnameescape(f)
  if &filetype !=# 'bp' | call add(out, f . "\t0\t0\tfiletype\t") | continue | endif
  for n in range(1, line('$'))
    let text = getline(n)
    let stop = stridx(text, '#') >= 0 ? stridx(text, '#') : len(text)
    let c = 0
    let num = 0
    while 1
      " as the lexer: after a number, an x before a number is the dimensions' x
      let m = matchstrpos(text, '-\?[0-9.]\+\%([eE][+-]\?\d\+\)\?\|\h[[:alnum:]_-]*', c)
      let x = matchstrpos(text, '^\s*\zsx\ze\s*[-.0-9]', c)
      if num && x[1] >= 0 | let m = x | endif
      if m[1] < 0 || m[1] >= stop | break | endif
      let num = m[0] =~ '^-\?[0-9.]'
      let g = synIDattr(synIDtrans(synID(n, m[1] + 1, 1)), 'name')
      call add(out, f . "\t" . n . "\t" . (m[1] + 1) . "\t" . m[0] . "\t" . g)
      let c = m[2]
    endwhile
  endfor
endfor
call writefile(out, $DUMP)
qall!
VIM
    # shellcheck disable=SC2086
    DUMP="$T/dump" vim -u NONE -i NONE -N -es --noplugin \
        --cmd "set rtp^=$PWD/editors/vim" -S "$T/dump.vim" $FILES < /dev/null > "$T/vim.log" 2>&1
    [ -s "$T/dump" ] || bad "vim wrote no dump" "$T/vim.log"
fi
# shellcheck disable=SC2086
"$PY" tests/cli/editors_check.py "$DUMPED" $FILES || fails=$((fails + 1))
[ "$fails" -eq 0 ]

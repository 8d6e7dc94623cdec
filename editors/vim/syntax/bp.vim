" Vim syntax file for bpc's model language (.bp): see docs/language.md.
" Install: `make install` puts it in PREFIX/share/vim/vimfiles/syntax/, or copy
" editors/vim/syntax/bp.vim and editors/vim/ftdetect/bp.vim under ~/.vim/.
" The word lists are checked against the compiler's by tests/cli/test_editors.sh.
if exists("b:current_syntax")
  finish
endif

syn case match
syn iskeyword @,48-57,_,-

syn keyword bpBlock      model train
syn keyword bpLayer      input dense conv loccon maxpool batchnorm dropout output
syn keyword bpSetting    data batch sgd lr_step epochs early_stop init l2 seed val precision
syn keyword bpOption     size stride pad relu feedback decay epsilon lr every factor patience min_delta normal
syn keyword bpRule       brainprop softmax
syn keyword bpConstant   same valid tied random sign kolen_pollack direct test ieee tf32 3xtf32
syn keyword bpDataset    mnist fashion-mnist cifar10 cifar100 cifar100-coarse tinyimagenet
" numbers, also inside dimensions written without blanks (32x32x3)
syn match   bpNumber     "\%([A-Za-wyz0-9_.-]\)\@<!-\?\%(\d\+\%(\.\d*\)\?\|\.\d\+\)\%([eE][+-]\?\d\+\)\?"
syn match   bpDims       "\%([0-9. \t]\)\@<=x\ze\s*[-.0-9]"
syn match   bpModelName  "\%(\<model\s\+\)\@<=\h\k*"
syn match   bpComment    "#.*$" contains=bpTodo
syn keyword bpTodo       contained TODO FIXME XXX NOTE
syn match   bpDelimiter  "[{};]"

hi def link bpBlock      Structure
hi def link bpLayer      Type
hi def link bpSetting    Statement
hi def link bpOption     Identifier
hi def link bpRule       Special
hi def link bpConstant   Constant
hi def link bpDataset    Constant
hi def link bpNumber     Number
hi def link bpDims       Operator
hi def link bpModelName  Function
hi def link bpComment    Comment
hi def link bpTodo       Todo
hi def link bpDelimiter  Delimiter

let b:current_syntax = "bp"

" bpc model files: *.bp
autocmd BufRead,BufNewFile *.bp setfiletype bp

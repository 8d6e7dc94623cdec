/* parse.h: the state that the reentrant lexer (grammar/bp.l) and the pure parser
 * (grammar/bp.y) share for one parse; it is the lexer's "extra" data and the parser's
 * parameter, so there are no globals. The lexer keeps the position and the last
 * tokens here so that the parser's error messages can quote them and point at them.
 */
#ifndef BPC_PARSE_H
#define BPC_PARSE_H

#include "ast.h"
#include "diag.h"

typedef struct bp_parse {
    bp_diag *diag;           /* where errors go (also counts them) */
    bp_ast ast;              /* the blocks parsed so far */
    int syntax_errors;       /* errors the parser reported (the tree is incomplete) */
    /* lexer position and history */
    int line, col;           /* the next character to read, 1-based */
    bp_span last, prev;      /* the latest token returned, and the one before it */
    char last_text[BP_CLIP]; /* the latest token as written, clipped */
    int depth;               /* braces open (as the lexer counts them) */
    bp_span open_brace;      /* the '{' that opened the outermost open block */
} bp_parse;

#endif

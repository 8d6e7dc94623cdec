/* frontend.c: .bp source -> checked IR (frontend.h), the glue of the front end:
 * read the file, run the reentrant lexer and pure parser over it, and hand the syntax
 * tree to the checker. When the parser had to recover from a syntax error, the tree
 * has holes, so the checker looks only at each statement on its own (names, options,
 * values): the order and shapes of the layers would be judged on the holes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "frontend.h"
#include "parse.h"
#include "parser.h"
#include "lexer.h"

/* Larger sources are refused: no model needs a fraction of this (the paper's deepest
 * net is 1 KiB), and it bounds the syntax tree (about 64 bytes per source byte at
 * worst, for `1x1x1...`) and keeps line and column numbers far from int overflow. */
#define MAX_SOURCE (1u << 20)

/* Parses src into ps->ast (empty on failure). */
static void parse(bp_parse *ps, const char *src, size_t len) {
    yyscan_t scanner;
    if (yylex_init_extra(ps, &scanner)) {
        fputs("bpc: out of memory\n", stderr);
        exit(1);
    }
    ps->line = ps->col = 1;
    YY_BUFFER_STATE buf = yy_scan_bytes(src, (int)len, scanner);
    if (yyparse(scanner, ps) != 0 && ps->syntax_errors == 0)
        ps->syntax_errors = 1; /* stopped after too many errors */
    yy_delete_buffer(buf, scanner);
    yylex_destroy(scanner);
}

bp_ir *bp_frontend_string(const char *name, const char *src, size_t len, FILE *diag,
                          int *nerrors) {
    bp_diag d;
    /* A UTF-8 byte-order mark (as some Windows editors write) is not part of the text:
     * GCC and Python skip it too. Lines and columns count from after it. */
    if (src && len >= 3 && !memcmp(src, "\xef\xbb\xbf", 3)) src += 3, len -= 3;
    bp_diag_init(&d, diag, name, src, len);
    bp_ir *ir = NULL;
    if (len > MAX_SOURCE) {
        bp_diag_file_error(&d, "the file is too large (the limit is %u bytes)", MAX_SOURCE);
    } else {
        bp_parse ps;
        memset(&ps, 0, sizeof ps);
        ps.diag = &d;
        parse(&ps, src ? src : "", src ? len : 0);
        ir = bp_check(&ps.ast, &d, name, ps.syntax_errors > 0);
        bp_ast_free(&ps.ast);
    }
    bp_diag_flush(&d);
    if (nerrors) *nerrors = d.errors;
    return ir;
}

/* Reads a whole file into memory; NULL with errno set on failure. */
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap > MAX_SOURCE) break; /* enough to say it is too large */
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                errno = ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (ferror(f)) {
            int e = errno;
            free(buf);
            buf = NULL;
            errno = e ? e : EIO;
            break;
        }
        if (feof(f)) break;
    }
    fclose(f);
    *len = n;
    return buf;
}

bp_ir *bp_frontend_file(const char *path, FILE *diag, int *nerrors, int *io_error) {
    size_t len = 0;
    if (nerrors) *nerrors = 0;
    if (io_error) *io_error = 0;
    char *src = read_file(path, &len);
    if (!src) {
        fprintf(diag, "%s: error: cannot read the file: %s\n", path, strerror(errno));
        if (io_error) *io_error = 1;
        return NULL;
    }
    bp_ir *ir = bp_frontend_string(path, src, len, diag, nerrors);
    free(src);
    return ir;
}

/* frontend.h: .bp source -> checked IR.
 *
 * Parses with the reentrant flex/bison front end (grammar/), then runs the semantic
 * checks (compiler/check.c): shapes, layer order, value ranges, unknown names.
 * Every problem is printed to `diag` as (at column 0; diag.h)
 *   file.bp:LINE:COL: error: message
 *   the source line
 *        ^~~~
 *   hint: ...            (where one helps)
 * and parsing goes on so that several errors are reported in one run.
 */
#ifndef BPC_FRONTEND_H
#define BPC_FRONTEND_H

#include <stddef.h>
#include <stdio.h>
#include "ir.h"

/* Returns the IR, or NULL when the input had errors (*nerrors > 0) or the file could
 * not be read (*nerrors == 0, *io_error set, message printed to diag). A source over
 * 1 MiB is an error. nerrors and io_error may be NULL. Caller frees the IR with
 * bp_ir_free. */
bp_ir *bp_frontend_file(const char *path, FILE *diag, int *nerrors, int *io_error);

/* Same, from memory. `name` is used in messages as the file name. `src` need not be
 * NUL-terminated. Used by the tests and the fuzzer. */
bp_ir *bp_frontend_string(const char *name, const char *src, size_t len, FILE *diag,
                          int *nerrors);

#endif

/* args.h: reading the arguments of one statement (`WORD arg... ;`) as typed values,
 * with a located message for every way they can be wrong.
 *
 * The checker describes each statement's options as a small table (bp_optspec), and
 * bp_read_opts matches the words against it: unknown options get a "did you mean"
 * hint, an option given twice is an error, a value of the wrong kind is an error.
 * The bp_get_* functions then read one value and check its range (an integer that
 * overflowed 64 bits in the lexer is reported here, as out of range). All report
 * through a bp_diag and return 0 on success, -1 after reporting.
 */
#ifndef BPC_ARGS_H
#define BPC_ARGS_H

#include <stdint.h>
#include "ast.h"
#include "diag.h"

typedef enum {
    BP_OPT_FLAG,  /* a bare word: `relu` */
    BP_OPT_INT,   /* word and integer: `stride 2` */
    BP_OPT_NUM,   /* word and number: `epsilon 0.02` */
    BP_OPT_WORD   /* word and word: `pad same` */
} bp_opt_kind;

typedef struct {
    const char *name;
    bp_opt_kind kind;
    int required;        /* missing -> error */
    const char *example; /* as in messages: "stride 2" */
} bp_optspec;

/* What bp_read_opts found for one spec: the option word and its value (NULL: absent;
 * val is NULL for flags, and for an option whose value was missing). */
typedef struct {
    const bp_arg *key, *val;
} bp_optseen;

/* Matches the args from `a` (an arg of s, or NULL) on against specs[0..n); fills
 * seen[0..n) (n <= 16; n == 0: the statement takes no options). `usage` is the
 * statement's synopsis for hints.
 * `heads` (NULL-terminated, may be NULL) are the words that start a statement in this
 * block: meeting one here means a missing ';' before it, and is reported as such.
 * Returns 0 when everything matched, -1 after reporting at least one error. */
int bp_read_opts(bp_diag *d, const bp_stmt *s, const bp_arg *a, const char *usage,
                 const bp_optspec *specs, int n, bp_optseen *seen,
                 const char *const *heads);

/* An integer in [lo, hi]; `what` names it in messages ("dense units"). */
int bp_get_int(bp_diag *d, const bp_arg *a, const char *what, int64_t lo, int64_t hi,
               int64_t *out);

/* Any integer in [0, 2^64 - 1]. */
int bp_get_u64(bp_diag *d, const bp_arg *a, const char *what, uint64_t *out);

/* A number, stored as float: it must be finite as a float, and within the interval
 * from lo to hi, each end open (excluded) or closed; hi = INFINITY means no upper
 * bound. The range test is done on the float value. */
int bp_get_float(bp_diag *d, const bp_arg *a, const char *what, double lo, int lo_open,
                 double hi, int hi_open, float *out);

/* Reports "stray ..." for an argument left over where none is expected. */
void bp_report_stray(bp_diag *d, const bp_arg *a, const char *what, const char *usage);

#endif

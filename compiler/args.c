/* args.c: typed reading of statement arguments, with located errors (see args.h). */
#include "args.h"
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "suggest.h"

static int is_head(const char *w, const char *const *heads) {
    for (; heads && *heads; heads++)
        if (!strcmp(w, *heads)) return 1;
    return 0;
}

void bp_report_stray(bp_diag *d, const bp_arg *a, const char *what, const char *usage) {
    char c[BP_CLIP];
    if (a->kind == BP_ARG_NUM)
        bp_diag_error(d, a->loc, "unexpected number '%s' in %s", bp_clip(a->text, c), what);
    else if (a->kind == BP_ARG_DIMS)
        bp_diag_error(d, a->loc, "unexpected dimensions in %s", what);
    else
        bp_diag_error(d, a->loc, "unexpected word '%s' in %s", bp_clip(a->text, c), what);
    bp_diag_hint(d, "usage: %s", usage);
}

int bp_read_opts(bp_diag *d, const bp_stmt *s, const bp_arg *a, const char *usage,
                 const bp_optspec *specs, int n, bp_optseen *seen,
                 const char *const *heads) {
    char c[BP_CLIP];
    int rc = 0;
    const char *names[16];
    for (int i = 0; i < n && i < 16; i++) names[i] = specs[i].name;
    if (n) memset(seen, 0, sizeof *seen * (size_t)n);
    bp_span prev = s->loc; /* what stands before p, for a missing ';' */
    for (const bp_arg *q = s->args; q && q != a; q = q->next) prev = q->loc;
    int told[16] = { 0 }; /* a missing option already reported */
    int unknown = 0;      /* an unknown option word was reported */
    for (const bp_arg *p = a; p; prev = p->loc, p = p->next) {
        if (p->kind != BP_ARG_WORD) {
            rc = -1;
            /* A value without its option word: `sgd 0.1` for `sgd lr 0.1`. `decay`
             * belongs to a `feedback` word: before one, a number is just stray. */
            int i = 0, fb = 0;
            for (int j = 0; j < n; j++)
                if (!strcmp(specs[j].name, "feedback") && seen[j].key) fb = 1;
            while (i < n && (specs[i].kind == BP_OPT_FLAG || specs[i].kind == BP_OPT_WORD ||
                             seen[i].key || told[i] || (!fb && !strcmp(specs[i].name, "decay"))))
                i++;
            if (i < n && i < 16 && p->kind == BP_ARG_NUM) {
                told[i] = 1;
                bp_diag_error(d, p->loc, "expected '%s' before '%s'", specs[i].name,
                              bp_clip(p->text, c));
                bp_diag_hint(d, "usage: %s", usage);
            } else {
                bp_report_stray(d, p, s->head, usage);
            }
            continue;
        }
        int i = 0;
        while (i < n && strcmp(specs[i].name, p->text)) i++;
        if (i == n) {
            rc = -1;
            if (is_head(p->text, heads)) {
                bp_diag_error(d, bp_span_at(prev.last_line, prev.last_column + 1),
                              "expected ';' before '%s'", bp_clip(p->text, c));
                bp_diag_hint(d, "every layer and setting ends with ';'");
                return rc; /* the rest is the next statement */
            }
            bp_diag_error(d, p->loc, "unknown option '%s' for %s", bp_clip(p->text, c),
                          s->head);
            const char *near = bp_suggest(p->text, names, n < 16 ? n : 16);
            int fb = !strcmp(p->text, "feedback"); /* on a layer without weights */
            if (fb) bp_diag_hint(d, "%s has no weights for feedback to cross; 'feedback' is "
                                    "chosen on dense, conv, loccon and output layers", s->head);
            else if (near) bp_diag_hint(d, "did you mean '%s'?", near);
            else if (n == 0) bp_diag_hint(d, "%s takes no options", s->head);
            else bp_diag_hint(d, "usage: %s", usage);
            /* A number after it is its value (a word after 'feedback'): one mistake,
             * one message. The unknown word may also be a misspelt required option: no
             * "missing" message. */
            unknown = 1;
            if (fb && p->next && p->next->kind == BP_ARG_WORD && !is_head(p->next->text, heads)) {
                prev = p->loc;
                p = p->next;
            } else if (n > 0 && p->next && p->next->kind == BP_ARG_NUM) {
                prev = p->loc;
                p = p->next;
            }
            continue;
        }
        int dup = seen[i].key != NULL;
        if (dup) {
            rc = -1;
            bp_diag_error(d, p->loc, "option '%s' given twice", specs[i].name);
            bp_diag_hint(d, "it was first given at %d:%d", seen[i].key->loc.first_line,
                         seen[i].key->loc.first_column);
        } else {
            seen[i].key = p;
        }
        if (specs[i].kind == BP_OPT_FLAG) continue;
        const bp_arg *v = p->next;
        int fits = v && (specs[i].kind == BP_OPT_WORD ? v->kind == BP_ARG_WORD
                                                      : v->kind == BP_ARG_NUM);
        if (!fits) {
            rc = -1;
            bp_diag_error(d, p->loc, "option '%s' needs a value, as in '%s'", specs[i].name,
                          specs[i].example);
            continue;
        }
        if (!dup) seen[i].val = v;
        p = v;
    }
    for (int i = 0; i < n; i++) {
        if (specs[i].required && !seen[i].key && !(i < 16 && told[i]) && !unknown) {
            rc = -1;
            bp_diag_error(d, s->loc, "%s is missing '%s'", s->head, specs[i].name);
            bp_diag_hint(d, "usage: %s", usage);
        }
    }
    return rc;
}

/* Reports an argument that is not a plain number. */
static int not_number(bp_diag *d, const bp_arg *a, const char *what) {
    char c[BP_CLIP];
    if (a->kind == BP_ARG_WORD)
        bp_diag_error(d, a->loc, "%s must be a number, got '%s'", what, bp_clip(a->text, c));
    else
        bp_diag_error(d, a->loc, "%s must be a single number, not dimensions", what);
    return -1;
}

int bp_get_int(bp_diag *d, const bp_arg *a, const char *what, int64_t lo, int64_t hi,
               int64_t *out) {
    char c[BP_CLIP];
    if (a->kind != BP_ARG_NUM) return not_number(d, a, what);
    if (!a->is_int) {
        bp_diag_error(d, a->loc, "%s must be an integer, got %s", what, bp_clip(a->text, c));
        return -1;
    }
    int below, above;
    int64_t v = 0;
    if (a->neg) {
        below = a->mag > (uint64_t)INT64_MAX || -(int64_t)a->mag < lo;
        above = 0;
        if (!below) v = -(int64_t)a->mag;
    } else {
        above = a->mag > (uint64_t)INT64_MAX || (int64_t)a->mag > hi;
        below = !above && (int64_t)a->mag < lo;
        if (!above) v = (int64_t)a->mag;
    }
    if (below) {
        bp_diag_error(d, a->loc, "%s must be at least %" PRId64 ", got %s", what, lo,
                      bp_clip(a->text, c));
        return -1;
    }
    if (above) {
        bp_diag_error(d, a->loc, "%s must be at most %" PRId64 ", got %s", what, hi,
                      bp_clip(a->text, c));
        return -1;
    }
    *out = v;
    return 0;
}

int bp_get_u64(bp_diag *d, const bp_arg *a, const char *what, uint64_t *out) {
    char c[BP_CLIP];
    if (a->kind != BP_ARG_NUM) return not_number(d, a, what);
    if (!a->is_int || a->overflow || (a->neg && a->mag)) {
        bp_diag_error(d, a->loc, "%s must be an integer from 0 to 2^64-1, got %s", what,
                      bp_clip(a->text, c));
        return -1;
    }
    *out = a->mag;
    return 0;
}

/* Writes the interval as it reads in a message: "> 0", ">= 0", "in [0, 1)". */
static void interval(char *buf, size_t n, double lo, int lo_open, double hi, int hi_open) {
    if (isinf(hi))
        snprintf(buf, n, "%s %g", lo_open ? ">" : ">=", lo);
    else
        snprintf(buf, n, "in %c%g, %g%c", lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']');
}

int bp_get_float(bp_diag *d, const bp_arg *a, const char *what, double lo, int lo_open,
                 double hi, int hi_open, float *out) {
    char c[BP_CLIP], range[64];
    if (a->kind != BP_ARG_NUM) return not_number(d, a, what);
    if (!(fabs(a->val) <= FLT_MAX)) {
        bp_diag_error(d, a->loc, "%s %s is too large for a float", what, bp_clip(a->text, c));
        return -1;
    }
    float f = (float)a->val;
    if (f == 0 && a->val != 0) {
        bp_diag_error(d, a->loc, "%s %s is too small for a float (it would be 0)", what, bp_clip(a->text, c));
        return -1;
    }
    double v = f;
    int ok = (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
    if (!ok) {
        interval(range, sizeof range, lo, lo_open, hi, hi_open);
        bp_diag_error(d, a->loc, "%s must be %s, got %s", what, range, bp_clip(a->text, c));
        return -1;
    }
    *out = f;
    return 0;
}

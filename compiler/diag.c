/* diag.c: GCC-style errors with the offending source line and a caret underline (see
 * diag.h). Messages are kept, then printed sorted by position; long lines are cut so
 * that a huge one-line input cannot make each message huge. */
#include "diag.h"
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Source lines longer than this are not quoted beyond it. */
#define LINE_SHOWN 400

void bp_diag_init(bp_diag *d, FILE *out, const char *file, const char *src, size_t len) {
    memset(d, 0, sizeof *d);
    d->out = out;
    d->file = file ? file : "<input>";
    d->src = src;
    d->len = src ? len : 0;
}

bp_span bp_span_at(int line, int col) {
    bp_span s = { line, col, line, col };
    return s;
}

const char *bp_clip(const char *s, char buf[BP_CLIP]) {
    size_t n = strlen(s);
    if (n < BP_CLIP) {
        memcpy(buf, s, n + 1);
    } else {
        memcpy(buf, s, BP_CLIP - 4);
        memcpy(buf + BP_CLIP - 4, "...", 4);
    }
    return buf;
}

/* Finds line `line` (1-based): sets *start and *n (without the newline). */
static int find_line(const bp_diag *d, int line, const char **start, size_t *n) {
    if (line < 1 || !d->src) return 0;
    const char *p = d->src, *end = d->src + d->len;
    for (int l = 1; l < line; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return 0;
        p = nl + 1;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *start = p;
    *n = (size_t)((nl ? nl : end) - p);
    if (*n > 0 && p[*n - 1] == '\r') (*n)--;
    return 1;
}

static int is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

/* Writes the source line and the caret line under columns first..last (inclusive). */
static void show_source(const bp_diag *d, FILE *f, bp_span at) {
    const char *p;
    size_t n;
    if (!find_line(d, at.first_line, &p, &n)) return;
    int first = at.first_column < 1 ? 1 : at.first_column;
    int last = at.last_line == at.first_line ? at.last_column : (int)n;
    if (last < first) last = first;
    if (n > LINE_SHOWN) n = LINE_SHOWN;
    if ((size_t)first > n + 1) return; /* the spot was cut off: show no line */
    if ((size_t)last > n + 1) last = (int)n + 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        fputc((c < 0x20 && c != '\t') || c == 0x7f ? ' ' : c, f);
    }
    fputc('\n', f);
    for (int col = 1; col <= last; col++) {
        unsigned char c = (size_t)col <= n ? (unsigned char)p[col - 1] : ' ';
        if (is_continuation(c)) continue;
        if (col < first) fputc(c == '\t' ? '\t' : ' ', f);
        else fputc(col == first ? '^' : '~', f);
    }
    fputc('\n', f);
}

/* Counts an error and opens a stream for its text; NULL when it is not kept. */
static FILE *start(bp_diag *d, int line, int col) {
    d->errors++;
    if (d->nmsgs == BP_DIAG_MAX_ERRORS) d->stopped = 1;
    if (d->stopped) return NULL;
    bp_diag_msg *m = &d->msgs[d->nmsgs];
    memset(m, 0, sizeof *m);
    FILE *f = open_memstream(&m->text, &m->len);
    if (!f) {
        fputs("bpc: out of memory\n", stderr);
        exit(1);
    }
    m->line = line;
    m->col = col;
    d->nmsgs++;
    return f;
}

void bp_diag_error(bp_diag *d, bp_span at, const char *fmt, ...) {
    FILE *f = start(d, at.first_line, at.first_column);
    if (!f) return;
    fprintf(f, "%s:%d:%d: error: ", d->file, at.first_line, at.first_column);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    show_source(d, f, at);
    fclose(f);
}

void bp_diag_file_error(bp_diag *d, const char *fmt, ...) {
    FILE *f = start(d, INT_MAX, INT_MAX);
    if (!f) return;
    fprintf(f, "%s: error: ", d->file);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

void bp_diag_hint(bp_diag *d, const char *fmt, ...) {
    if (d->stopped || d->nmsgs == 0) return;
    bp_diag_msg *m = &d->msgs[d->nmsgs - 1];
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        fputs("bpc: out of memory\n", stderr);
        exit(1);
    }
    fwrite(m->text, 1, m->len, f);
    fputs("hint: ", f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
    free(m->text);
    m->text = text;
    m->len = len;
}

void bp_diag_flush(bp_diag *d) {
    /* insertion sort: stable, and there are at most BP_DIAG_MAX_ERRORS */
    for (int i = 1; i < d->nmsgs; i++) {
        bp_diag_msg m = d->msgs[i];
        int j = i;
        while (j > 0 && (d->msgs[j - 1].line > m.line ||
                         (d->msgs[j - 1].line == m.line && d->msgs[j - 1].col > m.col))) {
            d->msgs[j] = d->msgs[j - 1];
            j--;
        }
        d->msgs[j] = m;
    }
    for (int i = 0; i < d->nmsgs; i++) {
        fwrite(d->msgs[i].text, 1, d->msgs[i].len, d->out);
        free(d->msgs[i].text);
    }
    d->nmsgs = 0;
    if (d->stopped)
        fprintf(d->out, "%s: too many errors; stopped after the first %d\n", d->file,
                BP_DIAG_MAX_ERRORS);
    fflush(d->out);
}

int bp_is_invisible(unsigned cp) {
    /* Unicode 15's White_Space and Default_Ignorable_Code_Point ranges, merged */
    static const unsigned R[][2] = {
        { 0x00, 0x1f },     { 0x7f, 0xa0 },       { 0xad, 0xad },       { 0x34f, 0x34f },
        { 0x61c, 0x61c },   { 0x115f, 0x1160 },   { 0x1680, 0x1680 },   { 0x17b4, 0x17b5 },
        { 0x180b, 0x180f }, { 0x2000, 0x200f },   { 0x2028, 0x202f },   { 0x205f, 0x206f },
        { 0x3000, 0x3000 }, { 0x3164, 0x3164 },   { 0xfe00, 0xfe0f },   { 0xfeff, 0xfeff },
        { 0xffa0, 0xffa0 }, { 0xfff0, 0xfff8 },   { 0x1bca0, 0x1bca3 }, { 0x1d173, 0x1d17a },
        { 0xe0000, 0xe0fff },
    };
    for (size_t i = 0; i < sizeof R / sizeof R[0]; i++)
        if (cp >= R[i][0] && cp <= R[i][1]) return 1;
    return 0;
}

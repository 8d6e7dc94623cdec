/* diag.h: error messages about a .bp source, in the format that GCC and editors use.
 *
 *     file.bp:LINE:COL: error: message
 *     the source line
 *         ^~~~
 *     hint: what to do about it          (optional)
 *
 * Parser and checker both report through one bp_diag, which counts the errors and
 * keeps the messages until bp_diag_flush prints them sorted by line and column: the
 * parser runs before the checker, but the user reads the file from the top. After
 * BP_DIAG_MAX_ERRORS it keeps no more messages, so that no input, however broken,
 * makes the front end print without end. Columns are 1-based byte offsets; the caret
 * line copies tabs and skips UTF-8 continuation bytes so that it lines up on screen.
 */
#ifndef BPC_DIAG_H
#define BPC_DIAG_H

#include <stddef.h>
#include <stdio.h>

/* A span of source text: first and last character, both inclusive, 1-based. It is
 * also the parser's location type (YYLTYPE), hence bison's field names. */
typedef struct {
    int first_line, first_column, last_line, last_column;
} bp_span;

#define BP_DIAG_MAX_ERRORS 20

/* One message, kept until it is printed. */
typedef struct {
    int line, col;      /* sort key; a message about the whole file sorts last */
    char *text;         /* the message, source line, caret line and hint */
    size_t len;
} bp_diag_msg;

typedef struct {
    FILE *out;          /* where messages go */
    const char *file;   /* the name printed before ':LINE:COL' */
    const char *src;    /* the source text, for quoting lines; need not end in NUL */
    size_t len;
    int errors;         /* errors reported so far, kept or not */
    int stopped;        /* the error limit was reached; later errors are not kept */
    bp_diag_msg msgs[BP_DIAG_MAX_ERRORS];
    int nmsgs;
} bp_diag;

/* Sets up `d` to report on src[0..len) under the name `file` (NULL: "<input>").
 * Keeps the pointers; they must outlive `d`. */
void bp_diag_init(bp_diag *d, FILE *out, const char *file, const char *src, size_t len);

/* Prints the kept messages to d->out, sorted by line and column (stable), then a
 * "too many errors" line if some were dropped, and frees them. Call once, at the end;
 * the caller must call it (or lose the messages and leak them). */
void bp_diag_flush(bp_diag *d);

/* Reports an error at `at`: the message line, the source line and a caret line under
 * the span (a span past the end of its line gets a caret just after the text).
 * Counts it; keeps nothing once the limit was reached. */
void bp_diag_error(bp_diag *d, bp_span at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reports an error about the whole file (no line), as `file: error: message`. */
void bp_diag_file_error(bp_diag *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Adds `hint: message` under the latest error, if that error was kept. */
void bp_diag_hint(bp_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A span of one character at line:col. */
bp_span bp_span_at(int line, int col);

/* Copies s into buf (size BP_CLIP), cut to fit with "..." at the end, for quoting
 * user-written words in messages. Returns buf. */
#define BP_CLIP 48
const char *bp_clip(const char *s, char buf[BP_CLIP]);

/* 1 when code point cp shows nothing on screen, or only blank: the C0 and C1
 * controls, the spaces other than ' ' (U+00A0, U+2000-U+200A, ...) and Unicode's
 * default-ignorable code points (U+200B-U+200F, U+2060-U+206F, U+FEFF, variation
 * selectors, tags). Messages name such a character by its code point (U+FEFF),
 * since quoting it would show '' or ' '. */
int bp_is_invisible(unsigned cp);

#endif

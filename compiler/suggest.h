/* suggest.h: "did you mean" for misspelt words, and word lists for hints.
 *
 * Closeness is the optimal-string-alignment edit distance (insert, delete, replace,
 * swap two neighbours), so 'relux', 'reul' and 'stide' all find their word.
 */
#ifndef BPC_SUGGEST_H
#define BPC_SUGGEST_H

#include <stddef.h>

/* The candidate closest to `word`, or NULL when none is close: the distance must be at
 * most 1 for words of up to 4 letters, 2 up to 8, 3 beyond, and less than the word's
 * length. Words longer than 64 bytes get no suggestion. Ties go to the first. */
const char *bp_suggest(const char *word, const char *const *cands, int n);

/* Writes "a, b, c or d" (with `last_sep` between the last two, e.g. " or ", " and ")
 * into buf, truncating to fit. Returns buf. */
const char *bp_join(char *buf, size_t size, const char *const *words, int n,
                    const char *last_sep);

#endif

/* suggest.c: edit distance for "did you mean" hints, and joined word lists. */
#include "suggest.h"
#include <stdio.h>
#include <string.h>

#define MAXW 64

/* Optimal string alignment distance between a[0..n) and b[0..m), n, m <= MAXW. */
static int osa(const char *a, int n, const char *b, int m) {
    int d[MAXW + 1][MAXW + 1];
    for (int i = 0; i <= n; i++) d[i][0] = i;
    for (int j = 0; j <= m; j++) d[0][j] = j;
    for (int i = 1; i <= n; i++) {
        for (int j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[n][m];
}

const char *bp_suggest(const char *word, const char *const *cands, int n) {
    size_t wl = strlen(word);
    if (wl == 0 || wl > MAXW) return NULL;
    int limit = wl <= 4 ? 1 : wl <= 8 ? 2 : 3;
    if (limit >= (int)wl) limit = (int)wl - 1;
    const char *best = NULL;
    int bestd = limit + 1;
    for (int i = 0; i < n; i++) {
        size_t cl = strlen(cands[i]);
        if (cl > MAXW) continue;
        int dist = osa(word, (int)wl, cands[i], (int)cl);
        if (dist < bestd) {
            bestd = dist;
            best = cands[i];
        }
    }
    return best;
}

const char *bp_join(char *buf, size_t size, const char *const *words, int n,
                    const char *last_sep) {
    size_t len = 0;
    if (size) buf[0] = 0;
    for (int i = 0; i < n && len < size; i++) {
        const char *sep = i == 0 ? "" : i == n - 1 ? last_sep : ", ";
        int k = snprintf(buf + len, size - len, "%s%s", sep, words[i]);
        if (k < 0) break;
        len += (size_t)k;
    }
    return buf;
}

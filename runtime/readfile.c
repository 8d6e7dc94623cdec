/* readfile.c: see readfile.h. */
#include "readfile.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int bp_read_file(const char *path, char **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char *b = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            char *nb = realloc(b, cap * 2 + 65536 + 1);
            if (!nb) { free(b); fclose(f); errno = ENOMEM; return -1; }
            b = nb;
            cap = cap * 2 + 65536;
        }
        size_t k = fread(b + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(b); errno = EIO; return -1; }
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}

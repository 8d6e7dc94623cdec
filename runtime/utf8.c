/* utf8.c: see utf8.h. The table of well-formed byte sequences is RFC 3629's. */
#include "utf8.h"
#include <stdlib.h>
#include <string.h>

static int cont(unsigned char c, unsigned char lo, unsigned char hi) { return c >= lo && c <= hi; }

int bp_utf8_seq(const unsigned char *s) {
    unsigned char c = s[0];
    if (c >= 0x01 && c <= 0x7f) return 1;
    if (c >= 0xc2 && c <= 0xdf) return cont(s[1], 0x80, 0xbf) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return cont(s[1], lo, hi) && cont(s[2], 0x80, 0xbf) ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return cont(s[1], lo, hi) && cont(s[2], 0x80, 0xbf) && cont(s[3], 0x80, 0xbf) ? 4 : 0;
    }
    return 0;
}

char *bp_utf8_fix(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out; /* each bad byte becomes 3 bytes at most */
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int k = bp_utf8_seq(p);
        if (k) {
            memcpy(o, p, (size_t)k);
            o += k;
            p += k;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
        }
    }
    *o = 0;
    return out;
}

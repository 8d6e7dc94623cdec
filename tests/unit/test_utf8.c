/* test_utf8.c: runtime/utf8.c against RFC 3629's well-formed sequences and against
 * glibc's iconv as an outside judge: whatever bp_utf8_fix returns, iconv accepts as
 * UTF-8, and text that iconv accepts comes back unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include "utf8.h"

/* 1 when iconv reads all of s as UTF-8. */
static int iconv_valid(const char *s) {
    iconv_t cd = iconv_open("UTF-32LE", "UTF-8");
    assert_true(cd != (iconv_t)-1);
    size_t in = strlen(s), outn = 4 * in + 8;
    char *buf = malloc(outn), *o = buf, *i = (char *)s;
    size_t r = iconv(cd, &i, &in, &o, &outn);
    iconv_close(cd);
    free(buf);
    return r != (size_t)-1 && in == 0;
}

static void test_sequences(void **state) {
    (void)state;
    static const struct { const char *s; int len; } cases[] = {
        {"a", 1}, {"\x7f", 1}, {"\xc3\xa9", 2}, {"\xe2\x82\xac", 3}, {"\xf0\x9f\x98\x80", 4},
        {"\xf4\x8f\xbf\xbf", 4},                   /* U+10FFFF, the last code point */
        {"\xc0\x80", 0}, {"\xc1\xbf", 0},          /* overlong two-byte forms */
        {"\xe0\x80\x80", 0}, {"\xf0\x80\x80\x80", 0}, /* overlong three and four */
        {"\xed\xa0\x80", 0},                       /* U+D800, a surrogate */
        {"\xf4\x90\x80\x80", 0}, {"\xf5\x80\x80\x80", 0}, /* above U+10FFFF */
        {"\x80", 0}, {"\xbf", 0},                  /* a continuation byte alone */
        {"\xc3", 0}, {"\xe2\x82", 0}, {"\xc3(", 0}, /* cut short */
        {"\xff", 0}, {"\xfe", 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        assert_int_equal(bp_utf8_seq((const unsigned char *)cases[k].s), cases[k].len);
}

static void test_fix(void **state) {
    (void)state;
    char *f = bp_utf8_fix("m\xc3(.bp");
    assert_string_equal(f, "m\xef\xbf\xbd(.bp");
    free(f);
    f = bp_utf8_fix("caf\xc3\xa9 \xe2\x82\xac");
    assert_string_equal(f, "caf\xc3\xa9 \xe2\x82\xac");
    free(f);
}

/* Random byte strings, biased towards the bytes that start and continue sequences. */
static void test_against_iconv(void **state) {
    (void)state;
    static const unsigned char pool[] = {'a', '(', 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
                                         0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff};
    uint64_t x = 88172645463325252ull;
    char s[9];
    int valid = 0;
    for (int t = 0; t < 200000; t++) {
        int n = 1 + t % 8;
        for (int i = 0; i < n; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            s[i] = (char)pool[x % sizeof pool];
        }
        s[n] = 0;
        char *f = bp_utf8_fix(s);
        assert_non_null(f);
        assert_true(iconv_valid(f));
        if (iconv_valid(s)) { assert_string_equal(f, s); valid++; }
        free(f);
    }
    assert_true(valid > 1000); /* the comparison saw plenty of valid text too */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_fix),
        cmocka_unit_test(test_against_iconv),
    };
    return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}

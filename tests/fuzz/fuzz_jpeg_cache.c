/* fuzz_jpeg_cache.c: libFuzzer harness for Tiny ImageNet's binary inputs
 * (runtime/tinyimagenet.c), `make fuzz`: the JPEG decoder wrapper and the cache reader.
 *
 * The first byte picks the mode. Even: the rest is a JPEG decoded by bp_jpeg_decode_rgb
 * into 64x64 RGB (the buffer is exactly that size, so ASan sees any overrun). Odd: the
 * rest is a cache file, read from a memfd by bp_tin_cache_read with no expected key.
 * The fuzz build defines FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, which skips the
 * CRC-32 checks so that mutations reach the code behind them. The contract checked: a
 * read cache has 64x64x3 splits and labels below its class count; a failure leaves
 * nothing allocated and a message.
 * Build with -fsanitize=fuzzer,address,undefined: any crash, leak or UB is a finding.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data.h"
#include "fuzz_input.h"

static void check_split(const bp_split *s, int classes) {
    if (s->h != 64 || s->w != 64 || s->c != 3 || s->n < 0) abort();
    for (int i = 0; i < s->n; i++)
        if (s->y[i] < 0 || s->y[i] >= classes) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    bp_err e = {{0}};
    if (data[0] % 2 == 0) {
        uint8_t *out = malloc(64 * 64 * 3);
        if (!out) abort();
        if (bp_jpeg_decode_rgb(data + 1, size - 1, "fuzz.JPEG", 64, 64, out, &e) != 0 && !e.msg[0])
            abort();
        free(out);
        return 0;
    }
    put_input(data + 1, size - 1);
    bp_dataset d;
    memset(&d, 0, sizeof d);
    int rc = bp_tin_cache_read(g_path, NULL, &d, &e);
    if (rc == 0) {
        check_split(&d.train, d.classes);
        check_split(&d.test, d.classes);
    } else if (rc != -1 || d.train.x || d.test.x || !e.msg[0]) {
        abort();
    }
    bp_dataset_free(&d);
    return 0;
}

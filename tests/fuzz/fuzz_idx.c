/* fuzz_idx.c: libFuzzer harness for the IDX reader (runtime/idx.c), `make fuzz`.
 *
 * bp_idx_read takes a path (it reads through zlib, raw or gzip alike), so each input is
 * written to a memfd and read back through /proc/self/fd/N: no disk, no temp names.
 * The first byte picks the number of dimensions asked for (1, 2 or 3); the rest is the
 * file. The contract checked: success gives a buffer and dims whose product is at most
 * 2^31-1 and every dim >= 1; failure gives no buffer, zeroed dims and a message.
 * Build with -fsanitize=fuzzer,address,undefined: any crash, leak or UB is a finding.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "data.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int nd = 1 + data[0] % 3;
    put_input(data + 1, size - 1);
    uint8_t *buf = NULL;
    int dims[3];
    bp_err e = {{0}};
    if (bp_idx_read(g_path, nd, &buf, dims, &e) == 0) {
        unsigned long long total = 1;
        for (int i = 0; i < nd; i++) {
            if (dims[i] < 1) abort();
            total *= (unsigned long long)dims[i];
        }
        if (!buf || total > 2147483647ull) abort();
        volatile uint8_t sink = buf[total - 1];  /* the whole payload is there */
        (void)sink;
        free(buf);
    } else {
        if (buf || dims[0] || dims[1] || dims[2] || !e.msg[0]) abort();
    }
    return 0;
}

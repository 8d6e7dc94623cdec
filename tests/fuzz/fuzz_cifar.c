/* fuzz_cifar.c: libFuzzer harness for the CIFAR readers (runtime/cifar.c), `make fuzz`.
 *
 * The first byte picks what the rest is: the bytes of one .bin file parsed as CIFAR-10,
 * CIFAR-100 (fine) or CIFAR-100 (coarse) by bp_cifar_parse, or a whole distributed
 * archive (.tar.gz or plain tar) read by bp_cifar_load through libarchive from a memfd.
 * The contract checked: success means a whole number of records, a 32x32x3 split, and
 * every label below the class count; failure means nothing allocated and a message.
 * Build with -fsanitize=fuzzer,address,undefined: any crash, leak or UB is a finding.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "data.h"
#include "fuzz_input.h"

static void check_split(const bp_split *s, int classes) {
    if (s->h != 32 || s->w != 32 || s->c != 3 || s->n < 1 || !s->x || !s->y) abort();
    for (int i = 0; i < s->n; i++)
        if (s->y[i] < 0 || s->y[i] >= classes) abort();
    volatile uint8_t sink = s->x[(size_t)s->n * 3072 - 1];
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 6;
    bp_cifar_kind kind = (bp_cifar_kind)(mode % 3);
    int classes = kind == BP_CIFAR10 ? 10 : kind == BP_CIFAR100 ? 100 : 20;
    bp_err e = {{0}};
    if (mode < 3) {
        bp_split s;
        if (bp_cifar_parse(data + 1, size - 1, kind, "fuzz.bin", &s, &e) == 0) {
            size_t rec = kind == BP_CIFAR10 ? 3073 : 3074;
            if ((size - 1) % rec || (size_t)s.n != (size - 1) / rec) abort();
            check_split(&s, classes);
            bp_split_free(&s);
        } else if (s.x || s.y || !e.msg[0]) {
            abort();
        }
        return 0;
    }
    put_input(data + 1, size - 1);
    bp_dataset d;
    if (bp_cifar_load(g_path, kind, &d, &e) == 0) {
        if (d.classes != classes) abort();
        check_split(&d.train, classes);
        check_split(&d.test, classes);
        bp_dataset_free(&d);
    } else if (d.train.x || d.test.x || d.class_names || !e.msg[0]) {
        abort();
    }
    return 0;
}

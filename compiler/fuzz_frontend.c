/* fuzz_frontend.c: libFuzzer harness for the .bp front end (`make fuzz`).
 *
 * Feeds arbitrary bytes to bp_frontend_string with the diagnostics going to
 * /dev/null, and checks the contract that callers rely on: an IR comes back exactly
 * when no error was counted, and a returned IR is well formed (input first, output
 * last, positive shapes that chain, counts that add up). The `bpc check` table is
 * printed for every IR, so that the report code is fuzzed too. Build with
 * -fsanitize=fuzzer,address,undefined: any crash, leak or UB is a finding.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "frontend.h"
#include "report.h"

static void check_ir(const bp_ir *ir) {
    if (ir->n < 2 || ir->layers[0].kind != BP_INPUT || ir->layers[ir->n - 1].kind != BP_OUTPUT)
        abort();
    long params = 0, macs = 0;
    for (int i = 0; i < ir->n; i++) {
        const bp_layer *l = &ir->layers[i];
        if (l->out.h < 1 || l->out.w < 1 || l->out.c < 1 || l->params < 0 || l->macs < 0)
            abort();
        if (i > 0) {
            const bp_shape *p = &ir->layers[i - 1].out;
            if (l->in.h != p->h || l->in.w != p->w || l->in.c != p->c) abort();
        }
        params += l->params;
        macs += l->macs;
    }
    if (params != ir->params || macs != ir->macs) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *devnull; /* opened once: the harness's only state */
    if (!devnull && !(devnull = fopen("/dev/null", "w"))) abort();
    int nerrors = -1;
    bp_ir *ir = bp_frontend_string("fuzz.bp", (const char *)data, size, devnull, &nerrors);
    if ((ir != NULL) != (nerrors == 0)) abort();
    if (ir) {
        check_ir(ir);
        bp_print_check(devnull, ir);
    }
    bp_ir_free(ir);
    return 0;
}

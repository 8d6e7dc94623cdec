/* tune.c: see tune.h. Re-executing is the only way to hand libgomp and OpenBLAS
 * settings that they read once, from the environment, as they load. */
#include "tune.h"
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void bp_tune_process(char **argv) {
    if (getenv("BPC_NO_TUNE") || getenv("BPC_TUNED")) return;
    int again = 0;
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        again = 1;
    }
    const char *core = openblas_get_corename();
    if (!getenv("OPENBLAS_CORETYPE") && core && !strcmp(core, "Prescott")) {
        __builtin_cpu_init();
        const char *better = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                           : __builtin_cpu_supports("avx2") ? "Haswell" : NULL;
        if (better) {
            setenv("OPENBLAS_CORETYPE", better, 1);
            again = 1;
        }
    }
    if (!again) return;
    setenv("BPC_TUNED", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc?): go on with the settings as they are */
}

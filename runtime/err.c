/* err.c: the runtime's single error-reporting helper. */
#include "err.h"
#include <stdarg.h>
#include <stdio.h>

int bp_fail(bp_err *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

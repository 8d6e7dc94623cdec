/* report.h: the table that `bpc check MODEL.bp` prints. */
#ifndef BPC_REPORT_H
#define BPC_REPORT_H

#include <stdio.h>
#include "ir.h"

/* Prints to `out`: a header line, one row per layer (index, kind with its key options,
 * output shape HxWxC, parameters, multiply-adds per sample, numbers with thousands
 * separators), the totals, and the train settings. `ir` must be a checked IR. */
void bp_print_check(FILE *out, const bp_ir *ir);

/* Writes n with a ',' every three digits ("1,234,567") into buf (>= 32 bytes).
 * Returns buf. */
const char *bp_thousands(long n, char *buf);

#endif

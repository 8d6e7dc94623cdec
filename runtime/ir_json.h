/* ir_json.h: the IR's layer list as JSON, for the tools that rebuild a model outside
 * bpc (the PyTorch oracle and the bench's PyTorch twin). */
#ifndef BPC_IR_JSON_H
#define BPC_IR_JSON_H

#include <cJSON.h>
#include "ir.h"

/* A JSON array with one object per layer: index, kind, in and out ([H, W, C]), units,
 * ksize, stride, pad_same, pad_top, pad_left, relu, rate, epsilon. NULL when out of
 * memory. The caller owns it (cJSON_Delete, or add it to an object). */
cJSON *bp_ir_layers_json(const bp_ir *ir);

/* Writes a JSON value to path (formatted, with a final newline). 0, or -1 with e set. */
#include "err.h"
int bp_json_write(const char *path, const cJSON *v, bp_err *e);

#endif

/* check.h: the semantic checks, syntax tree -> IR.
 *
 * check.c reads the model block (layer kinds, options, order, shapes, sizes);
 * check_train.c reads the train block (settings, ranges, defaults). Both report every
 * problem they find through the bp_diag, with its location and, where one helps, a
 * hint, and go on so that one run shows as many problems as possible.
 */
#ifndef BPC_CHECK_H
#define BPC_CHECK_H

#include "ast.h"
#include "diag.h"
#include "ir.h"

/* Each dimension (height, width, channels, units, filters, kernel, stride) is at most
 * this, and activations per sample, parameters and multiply-adds (per layer and in
 * total) at most BP_MAX_COUNT, so that one buffer of them, even times a batch of
 * BP_MAX_DIM, counts its floats in a signed 64-bit integer (2^60), and its bytes too
 * (2^62). (A whole plan is many buffers: such a model is refused later, when its arena
 * is more memory than the machine has.) */
#define BP_MAX_DIM (1L << 20)
#define BP_MAX_COUNT (1L << 40)

/* Checks the whole tree and builds the IR, with `path` stored as ir->path.
 * `partial`: the parser dropped statements while recovering from syntax errors, so
 * only what each statement says on its own is checked, not the order of layers, the
 * shapes or what is missing. Returns NULL when d has counted any error (also errors
 * reported before the call, by the parser); the caller frees the IR with bp_ir_free. */
bp_ir *bp_check(const bp_ast *ast, bp_diag *d, const char *path, int partial);

/* Fills in the train defaults of docs/language.md. */
void bp_train_defaults(bp_train_cfg *t);

/* Reads one train block into *t, which holds the defaults (or earlier values).
 * Sets *data_loc to where `data` was given, and leaves it alone if it was not (the
 * caller zeroes it first). Reports each problem; returns 0 if there was none. */
int bp_check_train(const bp_block *b, bp_diag *d, bp_train_cfg *t, bp_span *data_loc);

/* Whether `w` names a train setting / a layer kind (for "wrong block" messages). */
int bp_is_train_setting(const char *w);
int bp_is_layer_name(const char *w);

/* The data set's image shape (HWC) and class count (either pointer may be NULL).
 * Returns 1, or 0 if the name is unknown. */
int bp_dataset_info(const char *name, bp_shape *shape, int *classes);

#endif

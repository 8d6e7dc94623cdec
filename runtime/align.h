/* align.h: how closely a model's feedback follows the exact one (the alignment
 * metrics of feedback alignment, sign symmetry, Kolen-Pollack and direct feedback).
 *
 * Once per epoch, on a fixed probe batch (the first images of the training split, in
 * file order, with the Philox step BP_ALIGN_STEP, so that its dropout masks and actions
 * are the same every epoch and never those of a training step), two SGD steps are
 * taken from the model's current state and both are undone:
 *   - the model's own step, with its feedback, choosing its actions as in training;
 *   - the same step of the same model with every feedback tied (exact backprop of the
 *     rule's loss), with those actions held fixed, from the same weights.
 * For each weight layer, the update angle is the angle between the two weight updates
 * (dL/dW as delivered, against the exact dL/dW; the L2 and Kolen-Pollack decay terms
 * are taken out), and the weight angle the angle between the matrix that the feedback
 * crosses and W (B for random and kolen_pollack, sign(W) for sign; tied: 0; direct and
 * the first trainable layer, which no feedback crosses: none). Both in degrees: 0 is
 * exact, 90 orthogonal (Lillicrap et al. 2016, Fig. 2; Akrout et al. 2019, Fig. 2).
 * The training itself is untouched: every tensor is put back as it was, so a run's
 * numbers do not depend on whether it is measured.
 */
#ifndef BPC_ALIGN_H
#define BPC_ALIGN_H

#include <stdio.h>
#include "data.h"
#include "exec.h"

#define BP_ALIGN_STEP 0xffffffffu /* the probe's Philox step: above any training step */

typedef struct {
    int layer;              /* IR index of a weight layer */
    double update_angle;    /* degrees; NAN when an update is zero */
    double weight_angle;    /* degrees; NAN when the layer has no such matrix */
} bp_align_row;

typedef struct {
    bp_ir tied_ir;          /* the model with every feedback tied (layers copied) */
    bp_plan *tied;
    bp_exec y;
    int opened;
    bp_align_row *rows;     /* one per weight layer, in layer order */
    int nrows;
} bp_align;

/* Builds and compiles the tied twin of plan p (same rule and batch) for target t.
 * Returns 0, or -1 with e set (out of memory, a failed compile). */
int bp_align_open(bp_align *a, const bp_plan *p, bp_target t, bp_err *e);

/* Measures every weight layer of the model that x runs (opened for the plan given to
 * bp_align_open, in any state) on the first min(batch, s->n) images of s, into
 * a->rows. x's tensors are as before afterwards. Returns 0, or -1 with e set (a target
 * failure, out of memory). */
int bp_align_measure(bp_align *a, bp_exec *x, const bp_split *s, uint64_t seed, bp_err *e);

/* Writes a->rows as the JSON member `"align": [{"layer": 2, "kind": "dense", "feedback":
 * "random", "update_angle": 41.2, "weight_angle": 89.7}, ...]` (null for NAN), without
 * braces around it. Returns what fprintf returns (< 0 on a write error). */
int bp_align_json(FILE *f, const bp_align *a, const bp_ir *ir);

void bp_align_close(bp_align *a);

#endif

/* checkpoint.h: a model's weights and state as a safetensors file that PyTorch loads.
 *
 * Why PyTorch's names and layouts rather than bpc's own: a checkpoint is what a user
 * takes elsewhere, and `safetensors.torch.load_file` + `load_state_dict` on the PyTorch
 * twin of the model is the most common place it goes. bpc keeps the arena layouts it
 * computes fastest with (plan.h); this file converts on the way out and back in.
 *
 * Names: for layer index k of the IR (the `input` is layer 0):
 *   conv        "k.weight"  [out, in, kh, kw]        (bpc: [F, K, K, Cin], OHWI)
 *   loccon      "k.weight"  [Ho*Wo, out, in, kh, kw] (bpc: [P, F, K, K, Cin])
 *   dense, output "k.weight" [out, in]; when the layer's input is spatial (H x W x C
 *               with H*W > 1) the `in` axis is in PyTorch's NCHW flatten order
 *               c*H*W + h*W + w (bpc flattens NHWC: (h*W + w)*C + c), so the weight
 *               fits nn.Linear after nn.Flatten on an NCHW tensor
 *   batchnorm   "k.weight" (gamma), "k.bias" (beta), "k.running_mean",
 *               "k.running_var"  [C]  (nn.BatchNorm2d/1d with eps 1e-3, momentum 0.01)
 * All tensors are F32, little-endian. No biases anywhere (bias=False in PyTorch).
 *
 * A snapshot is the host copy of every plan tensor, in bpc layout, concatenated in the
 * order of plan->tensors: bp_ckpt_floats(p) floats.
 *
 * The "__metadata__" block holds strings only (the format's rule); bp_ckpt_meta builds
 * it. The keys train.c writes (its fill_meta(); all values are strings):
 *   what the file is:   format ("bpc-checkpoint-1"), bpc_version, kind ("last" or
 *                       "best"), model, source_file, source_sha256 (of the .bp text)
 *   the run's fixed settings: rule, seed, philox, batch, dataset, data_dir, limit,
 *                       test_limit, val, train_images, val_images, test_images,
 *                       target, lr0, lr_every, lr_factor, max_epochs, patience,
 *                       min_delta
 *   where it stands:    epoch, step_in_epoch, steps_per_epoch, global_step, lr,
 *                       epoch_stats, epoch_seconds, train_seconds, saved_at
 *   early stopping:     best_val_acc, best_epoch, best_test_acc, ref_val_acc,
 *                       epochs_since_gain, val_acc, test_acc
 * `bpc eval` reads epoch and rule; a resume reads the rest and compares the settings.
 */
#ifndef BPC_CHECKPOINT_H
#define BPC_CHECKPOINT_H

#include "err.h"
#include "exec.h"
#include "ir.h"
#include "plan.h"
#include "safetensors.h"

#define BPC_VERSION "0.2.0"
#define BP_CKPT_FORMAT "bpc-checkpoint-1"

/* Floats in a snapshot: the sum of the plan's tensor sizes. */
long bp_ckpt_floats(const bp_plan *p);

/* The first tensor of the plan (its index) whose part of snap holds a NaN or an
 * infinity, or -1 when every value is finite; *count (may be NULL) gets the number of
 * such values in all tensors. */
int bp_ckpt_nonfinite(const bp_plan *p, const float *snap, long *count);

/* Copies every tensor of the plan from the arena into snap / from snap into the arena
 * (float, whatever the target's precision). snap holds bp_ckpt_floats(p) floats, the
 * tensors one after another in plan order. Returns 0, or -1 with e set (a target
 * failure). */
int bp_ckpt_get(bp_exec *x, float *snap, bp_err *e);
int bp_ckpt_put(bp_exec *x, const float *snap, bp_err *e);

/* The PyTorch name ("3.weight", "2.running_var") and shape of plan tensor t. Returns
 * the number of dimensions; 0 for a tensor that has no PyTorch counterpart (none so
 * far). name must hold 64 bytes. */
int bp_ckpt_torch_shape(const bp_ir *ir, const bp_tensor *t, char *name, long shape[5]);

/* Metadata under construction: string keys (copied) and printf-formatted values. */
typedef struct {
    bp_st_meta *m;
    int n, cap;
    int oom;  /* a key could not be added */
} bp_ckpt_meta;

/* Sets key to the formatted value (replacing an earlier value of the same key).
 * Out of memory is remembered and reported by bp_ckpt_write. */
void bp_ckpt_meta_set(bp_ckpt_meta *mt, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void bp_ckpt_meta_free(bp_ckpt_meta *mt);

/* Writes snap (bpc layout) to path in PyTorch names and layouts with the metadata,
 * atomically (safetensors.h: temp file, fsync, rename). Errors: out of memory, I/O
 * (the message names the file and the system error). */
int bp_ckpt_write(const char *path, const bp_ir *ir, const bp_plan *p, const float *snap,
                  const bp_ckpt_meta *mt, bp_err *e);

/* The result of bp_ckpt_read when the file is a sound safetensors file that does not
 * fit the model (names, shapes, dtypes, source hash): an error in the user's input. */
#define BP_CKPT_MISMATCH (-2)

/* Reads path and checks that it holds exactly the model's tensors (every name, no
 * extra one), each F32 with the PyTorch shape above and every value finite, and, when
 * sha256 is non-NULL and the file has "source_sha256" metadata (a file written by
 * PyTorch has none), that it equals sha256 (64 hex digits). `model` names the model
 * in messages. On success fills snap (bpc layout) and leaves the file in *f (for its
 * metadata; free with bp_st_free), and returns 0. Returns -1 when the file cannot be
 * read or is not a valid safetensors file (bp_st_read's messages: truncated, bad
 * header...), BP_CKPT_MISMATCH when it does not fit: the message lists what differs
 * ("6.weight is [16, 27] in the checkpoint but [17, 27] in the model", "8.weight is
 * missing", "9.weight is not in the model"; at most 4, then "and N more"), or says that
 * names and shapes match but the model source differs, or names the first tensor that
 * holds a NaN or an infinity. *f is empty on failure. */
int bp_ckpt_read(const char *path, const char *model, const bp_ir *ir, const bp_plan *p,
                 const char *sha256, float *snap, bp_st_file *f, bp_err *e);

#endif

/* build.h: `bpc build MODEL.bp -o TRAINER [--target cpu|cuda]`: one executable that
 * trains the model with the options of `bpc train` and needs neither bpc nor a compiler
 * at run time.
 *
 * The trainer holds the model source (so checkpoints carry the same source hash and
 * --resume works) and the kernels of both rules already compiled: for the CPU target
 * the emitted C, compiled by $CC with the flags of the C JIT (jit_c.h), so that it
 * computes exactly what `bpc train` computes (-march=native included: like the JIT's
 * cache, a CPU trainer is for machines with the build machine's instruction set); for the CUDA target, images compiled by
 * NVRTC: by default PTX for the oldest and the newest architecture NVRTC knows (the
 * driver compiles PTX for the GPU when it loads it), or what --arch lists (sm_XY: a
 * cubin for exactly that GPU, compute_XY: PTX for it and newer ones; see linked.h for
 * how the backend picks one). It is linked against libbprt.a, the runtime and the compiler as
 * a static archive (made by `make` next to bpc), with the libraries bpc links.
 *
 * Needs at build time: $CC (default cc), libbprt.a (BPC_LIB=PATH, else next to the bpc
 * executable, else ../lib/bpc/ from it), the development libraries bpc was built with,
 * and for --target cuda NVRTC (without it, or for a GPU none of its images fit, the
 * CUDA trainer compiles with NVRTC at run time instead, and says so at build time).
 */
#ifndef BPC_BUILD_H
#define BPC_BUILD_H

#include "err.h"

/* Builds the trainer for the model at model_path into `out` (written to a temporary
 * name and renamed). target: "cpu" (also "c"; NULL means cpu) or "cuda". arch: NULL
 * for the default images, or a comma-separated list of sm_XY / compute_XY (CUDA only;
 * `--arch` on the command line). Prints one
 * line to stdout when done, and warnings to stderr.
 * Returns 0; 1 for an error in the input (the model's diagnostics are printed to stderr
 * and e->msg is then "", else e->msg says what is wrong: a bad target or arch, an -o that
 * names the model file or something other than a regular file); 2 for an I/O
 * or toolchain failure (libbprt.a missing, the compiler or linker failed: e->msg says
 * which, with the tail of its output). */
int bp_cmd_build(const char *model_path, const char *out, const char *target, const char *arch,
                 bp_err *e);

#endif

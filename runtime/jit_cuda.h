/* jit_cuda.h: the CUDA target's JIT: emitted CUDA source -> PTX or cubin through
 * NVRTC, with a cache on disk. (Not named nvrtc.h: -Iruntime would shadow NVRTC's.)
 *
 * Used by the CUDA backend at open (for the GPU's own architecture) and by
 * `bpc ptx` (to check every emitted file without a GPU). NVRTC is loaded with dlopen
 * (cuda_api.h) and needs no driver.
 */
#ifndef BPC_JIT_CUDA_H
#define BPC_JIT_CUDA_H

#include <stddef.h>
#include "err.h"

/* Compiles `source` (named `name` in messages and line info, e.g. "mnist_conv.cu")
 * for `arch`: "compute_XY" gives PTX, "sm_XY" a cubin (an ELF image for exactly that
 * GPU). Options: --std=c++17 -default-device --gpu-architecture=ARCH -lineinfo.
 *
 * The options, the NVRTC version and the name are appended to the source as a comment
 * line, and that text is what NVRTC compiles and what the cache is keyed by: the
 * SHA-256 of it names the file HASH.ptx or HASH.cubin in bp_cache_dir()
 * ($XDG_CACHE_HOME/bpc or ~/.cache/bpc), written to a temp file and renamed. A cache
 * that cannot be read or written only costs a compile.
 *
 * On success: 0; *image (malloc'd, NUL-terminated for PTX and followed by one NUL byte
 * for a cubin too) and *image_len (bytes, without that NUL). *log, when log is not
 * NULL, gets NVRTC's log (warnings; malloc'd) or NULL when empty or cached.
 * On failure: -1 and e says why. A compile error gives the first error line in e and
 * the full log in *log; the source and the log are also kept as failed-HASH16.cu and
 * failed-HASH16.log in the cache folder, and e names them.
 * Without the CUDA headers at build time it fails with BP_CUDA_NOT_BUILT. */
int bp_nvrtc_compile(const char *source, const char *name, const char *arch, char **image,
                     size_t *image_len, char **log, bp_err *e);

/* 1 when every comma-separated word of s is sm_XY or compute_XY (2 or 3 digits), each
 * optionally with the suffix a or f (sm_90a: the architecture-specific features), the
 * --arch of `bpc ptx` (one compute_XY) and `bpc build`; else 0. No NVRTC needed. */
int bp_cuda_archs_ok(const char *s);

/* For a list that bp_cuda_archs_ok accepts: 1 when the loaded NVRTC supports every
 * architecture in it (nvrtcGetSupportedArchs); 0 when it does not, with e naming the
 * first one it lacks and listing those it has ("compute_200: NVRTC 13.0 compiles for
 * 75, 80, ..., 121"); -1 when NVRTC is unavailable, with e set. */
int bp_cuda_archs_supported(const char *s, bp_err *e);

/* The architectures NVRTC can compile for (as XY numbers: 75, 80, 90, ...), ascending,
 * into archs[0..max); returns how many, or -1 with e set. */
int bp_nvrtc_archs(int *archs, int max, bp_err *e);

/* 1 when the CUDA target can run here: libcuda loads, cuInit succeeds, there is a
 * device, and NVRTC and cuBLAS load. For --target auto; never fails loudly.
 * (Defined in backend_cuda.c.) */
int bp_cuda_available(void);

struct bp_exec;
/* For logs, of an open CUDA exec: "NVIDIA H200 (device 0, sm_90, 132 SMs), kernels as
 * sm_90 cubin, steps as CUDA graphs"; "" for any other exec. Valid until the next
 * call for the same exec. (Defined in backend_cuda.c.) */
const char *bp_cuda_describe(const struct bp_exec *x);

/* 1 when an open CUDA exec runs its programs as CUDA graphs: not turned off by
 * BPC_CUDA_GRAPH=0, BPC_CUDA_SYNC=1 or BPC_PROFILE at open, nor by a capture that
 * failed since;
 * 0 otherwise, and for any other exec. (Defined in backend_cuda.c.) */
int bp_cuda_graphs_on(const struct bp_exec *x);

#endif

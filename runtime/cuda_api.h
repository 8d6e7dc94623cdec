/* cuda_api.h: libcuda, NVRTC, cuBLAS and NCCL, loaded at run time with dlopen.
 *
 * bpc links none of them, so it builds and runs on machines without a driver or
 * a GPU (CI, the CPU target). When the CUDA target is asked for, the libraries are
 * opened and every function bpc calls is resolved into a table of pointers whose
 * types come from the real headers (cuda.h, nvrtc.h, cublas_v2.h, nccl.h), so a signature
 * mismatch is a compile error, not a crash. The headers map names like cuMemAlloc to
 * versioned symbols (cuMemAlloc_v2) with macros; the tables use the same macros, so
 * the symbol looked up is the one the header would have linked.
 * NVRTC loads on its own: compiling PTX needs no driver.
 *
 * Every call goes through a check macro that turns a failure into a bp_err message
 * with the file, the line, the call and the library's own error name and text.
 * Everything here exists only when bpc is built with the CUDA headers
 * (BPC_HAVE_CUDA, set by the Makefile); NCCL, for data parallelism on GPUs (dist.h),
 * only when the toolkit also has nccl.h (BPC_HAVE_NCCL, set here).
 */
#ifndef BPC_CUDA_API_H
#define BPC_CUDA_API_H

#include <stddef.h>
#include "err.h"

#ifdef BPC_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda.h>
#include <nvrtc.h>
#if __has_include(<nccl.h>)
#include <nccl.h>
#define BPC_HAVE_NCCL 1
#endif

/* The functions bpc uses from each library. */
#define BP_CU_FUNCS(X)                                                                   \
    X(cuGetErrorName) X(cuGetErrorString) X(cuInit) X(cuDriverGetVersion)                \
    X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetName) X(cuDeviceGetAttribute)        \
    X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease) X(cuCtxSetCurrent)          \
    X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamSynchronize) X(cuStreamQuery)         \
    X(cuModuleLoadDataEx) X(cuModuleUnload) X(cuModuleGetFunction) X(cuLaunchKernel)     \
    X(cuMemAlloc) X(cuMemFree) X(cuMemsetD8Async) X(cuMemsetD32Async)                    \
    X(cuMemcpyHtoDAsync) X(cuMemcpyDtoHAsync)                                            \
    X(cuStreamBeginCapture) X(cuStreamEndCapture) X(cuGraphInstantiate) X(cuGraphLaunch) \
    X(cuGraphDestroy) X(cuGraphExecDestroy)                                               \
    X(cuEventCreate) X(cuEventRecord) X(cuEventSynchronize) X(cuEventElapsedTime)        \
    X(cuEventDestroy)

#define BP_NVRTC_FUNCS(X)                                                                \
    X(nvrtcGetErrorString) X(nvrtcVersion) X(nvrtcGetNumSupportedArchs)                  \
    X(nvrtcGetSupportedArchs) X(nvrtcCreateProgram) X(nvrtcDestroyProgram)               \
    X(nvrtcCompileProgram) X(nvrtcGetProgramLogSize) X(nvrtcGetProgramLog)               \
    X(nvrtcGetPTXSize) X(nvrtcGetPTX) X(nvrtcGetCUBINSize) X(nvrtcGetCUBIN)

#define BP_CUBLAS_FUNCS(X)                                                               \
    X(cublasGetStatusName) X(cublasGetStatusString) X(cublasCreate) X(cublasDestroy)     \
    X(cublasSetStream) X(cublasSetWorkspace) X(cublasSetMathMode) X(cublasSgemm)         \
    X(cublasSgemmStridedBatched)

#ifdef BPC_HAVE_NCCL
#define BP_NCCL_FUNCS(X)                                                                 \
    X(ncclGetVersion) X(ncclGetErrorString) X(ncclGetLastError) X(ncclGetUniqueId)       \
    X(ncclCommInitRank) X(ncclCommFinalize) X(ncclCommDestroy) X(ncclCommAbort)          \
    X(ncclCommGetAsyncError) X(ncclAllReduce) X(ncclBroadcast) X(ncclGroupStart)         \
    X(ncclGroupEnd)
#endif

/* A field per function, named and typed as the header declares it (after its macros:
 * the field for cuMemAlloc is cuMemAlloc_v2, and bp_cu.cuMemAlloc expands to it). */
#define BP_API_FIELD(f) __typeof__(&f) f;
typedef struct { BP_CU_FUNCS(BP_API_FIELD) } bp_cu_api;
typedef struct { BP_NVRTC_FUNCS(BP_API_FIELD) } bp_nvrtc_api;
typedef struct { BP_CUBLAS_FUNCS(BP_API_FIELD) } bp_cublas_api;
#ifdef BPC_HAVE_NCCL
typedef struct { BP_NCCL_FUNCS(BP_API_FIELD) } bp_nccl_api;
#endif
#undef BP_API_FIELD

/* The tables; valid after the matching bp_cuda_load_* returned 0. */
extern bp_cu_api bp_cu;
extern bp_nvrtc_api bp_nvrtc;
extern bp_cublas_api bp_cublas;
#ifdef BPC_HAVE_NCCL
extern bp_nccl_api bp_nccl;
#endif

/* Each loads its library once per process (later calls return at once) and resolves
 * every function of its list. On failure the message says which library or symbol
 * was missing, and where it was looked for; the library stays unloaded.
 *   driver: libcuda.so.1 from the loader's path (installed with the NVIDIA driver; if
 *           the toolkit's stub is found instead, cuInit fails and the message says so)
 *   NVRTC:  libnvrtc.so.13, .so.12, .so
 *   cuBLAS: libcublas.so.13, .so.12, .so
 *   NCCL:   libnccl.so.2, .so (in the toolkit's lib64, or NVIDIA's libnccl2 on the loader's path)
 * NVRTC, cuBLAS and NCCL are looked for in $CUDA_HOME/lib64 when CUDA_HOME is set, then on
 * the loader's path, then in /usr/local/cuda/lib64. Not thread-safe on the first call. */
int bp_cuda_load_driver(bp_err *e);
int bp_cuda_load_nvrtc(bp_err *e);
int bp_cuda_load_cublas(bp_err *e);
#ifdef BPC_HAVE_NCCL
int bp_cuda_load_nccl(bp_err *e);
#endif

/* "NAME (text)" of a driver status, or "CUDA error N" when the driver cannot say. */
void bp_cu_describe(CUresult r, char *buf, size_t len);

/* The check functions behind the macros: 0 on success, else -1 with
 * "FILE:LINE: CALL failed: NAME (text)" in e (NVRTC: its error string, no NAME). */
int bp_cu_check(CUresult r, const char *call, const char *file, int line, bp_err *e);
int bp_nvrtc_check(nvrtcResult r, const char *call, const char *file, int line, bp_err *e);
int bp_cublas_check(cublasStatus_t r, const char *call, const char *file, int line, bp_err *e);
#ifdef BPC_HAVE_NCCL
/* NCCL: its error name, then its text of the last error (comm may be NULL) */
int bp_nccl_check(ncclResult_t r, ncclComm_t comm, const char *call, const char *file, int line, bp_err *e);
#endif

/* Usage: if (BP_CU(e, bp_cu.cuInit(0))) return -1; */
#define BP_CU(e, call) bp_cu_check((call), #call, __FILE__, __LINE__, (e))
#define BP_NVRTC(e, call) bp_nvrtc_check((call), #call, __FILE__, __LINE__, (e))
#define BP_CUBLAS(e, call) bp_cublas_check((call), #call, __FILE__, __LINE__, (e))
#define BP_NCCL(e, comm, call) bp_nccl_check((call), (comm), #call, __FILE__, __LINE__, (e))

#endif /* BPC_HAVE_CUDA */

/* The message of every CUDA entry point in a bpc built without the CUDA headers. */
#define BP_CUDA_NOT_BUILT "CUDA target unavailable: bpc was built without the CUDA headers"

#endif

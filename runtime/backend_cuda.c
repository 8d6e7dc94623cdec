/* backend_cuda.c: the CUDA target. Kernels come from the emitted CUDA compiled by
 * NVRTC for the GPU's own architecture, GEMMs go to cuBLAS, arenas live in device
 * memory, and every operation of a program runs in order on one stream.
 *
 * Choices, and why:
 *  - libcuda, NVRTC and cuBLAS are opened at run time (cuda_api.c), so a bpc without a
 *    GPU builds and runs, and says "CUDA target unavailable: <reason>" here.
 *  - A cubin for exactly sm_XY when NVRTC knows that architecture (no driver JIT, and
 *    it loads on a driver older than NVRTC); otherwise PTX for the newest architecture
 *    NVRTC knows below the GPU's, which the driver JIT-compiles. Never the darknet
 *    "invalid device function".
 *  - The primary context, and one non-blocking stream that cuBLAS shares: nothing
 *    synchronises with the legacy default stream, so a whole step can be captured.
 *  - cuBLAS in CUBLAS_DEFAULT_MATH: no TF32, so results match the CPU to ~1e-5.
 *  - Row-major plan GEMMs become column-major calls through bp_gemm_map (gemm_map.c),
 *    which the CPU tests check.
 *  - The training split is uploaded once (stage) and each step's images are gathered
 *    on the GPU (bp_gather), so a step copies nothing from the host.
 *  - A program runs as a CUDA graph: captured from the stream the second time it runs
 *    with a given (program, batch size, global batch, learning rate), which fix the
 *    launch grids, the GEMMs (alpha = -lr) and the gathers' shares, then replayed with
 *    one launch. The first run goes one operation at a time, so that every kernel,
 *    ours and cuBLAS's, is loaded before a capture (lazy loading inside a capture
 *    fails on drivers before 12.3). Everything
 *    else that changes per step (the Philox step and seed, fix_actions) the kernels
 *    read from a device copy of bp_dyn, written before each run. cuBLAS gets its own
 *    workspace so that capture allocates nothing. If capture fails, bpc says why once and runs
 *    the operations one by one; BPC_CUDA_GRAPH=0 asks for that from the start.
 *  - run() does not wait for the GPU; put/get synchronise the stream, so an error of
 *    an earlier kernel shows up there. BPC_CUDA_SYNC=1 (no graphs) waits after every
 *    operation and names the operation that failed.
 *  - A data-parallel plan (dist.h) runs its collectives through NCCL on the same stream,
 *    one GPU per rank (the rank's local number, modulo the GPUs): a sum is an in-place
 *    ncclAllReduce, a gather one ncclBroadcast per rank in a group (the ranks' shares
 *    differ by one sample when the batch does not divide, which ncclAllGather cannot
 *    take). NCCL is captured into the graphs like everything else. Its collectives wait
 *    on the GPU for the other ranks, so every wait for the stream polls instead:
 *    an NCCL error, or a wait past BPC_DIST_TIMEOUT, aborts the communicator and fails.
 *  - BPC_PROFILE=1 (no graphs): an event before each operation of the train program
 *    and one after the last; each run waits for the last and adds the GPU time between
 *    neighbouring events to its operation (bp_profile_print when the model closes).
 *    An operation's figure includes any idle gap before the next one starts.
 */
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cuda_api.h"
#include "dist.h"
#include "exec.h"
#include "gemm_map.h"
#include "jit_cuda.h"
#include "linked.h"

#ifdef BPC_HAVE_CUDA

/* Threads per block: must not exceed __launch_bounds__ in templates/kernel_cu.in. */
enum { BLOCK = 256 };
/* Captured graphs kept per exec: train and eval, each with a full and a short last
 * batch (the validation and test splits may end differently), with room to spare. */
enum { NGRAPH = 8 };
/* cuBLAS's workspace: what its documentation recommends for Hopper. */
#define WORKSPACE_BYTES ((size_t)32 << 20)

/* One program, for one batch size and learning rate: seen once (exec NULL), or
 * captured. */
typedef struct {
    const bp_prog *prog;        /* NULL: a free slot */
    int nb, nb_all;             /* nb_all: a data-parallel plan's global batch, which
                                   sets the shares of its gathers */
    float lr;
    CUgraphExec exec;
    unsigned long used;         /* the run count when last run, for eviction */
} graph;

typedef struct {
    int ctx_held;
    CUdevice dev;
    CUcontext ctx;
    CUstream stream;
    CUmodule mod;
    CUfunction *fn;             /* one per plan kernel */
    CUfunction gather;          /* bp_gather (templates/gather_cu.in) */
    CUfunction split;           /* bp_tf32_split (the same file), for the precision modes */
    CUdeviceptr tf32;           /* their rounded or split operands (bp_plan_gemm_scratch) */
    CUdeviceptr A, I, X;
    CUdeviceptr dyn;            /* the bp_dyn every kernel reads */
    uint32_t dyn_now[sizeof(bp_dyn) / sizeof(uint32_t)]; /* what it holds once the stream gets there */
    CUdeviceptr workspace;      /* cuBLAS's */
    graph graphs[NGRAPH];
    unsigned long runs;
    int graphs_off;             /* BPC_CUDA_GRAPH=0, BPC_CUDA_SYNC, or capture failed */
    CUdeviceptr images, labels, order; /* the staged training split and its order */
    long nstaged, norder;
    long nA, nI, nX;            /* arena sizes in elements (floats, ints, bytes) */
    cublasHandle_t blas;
    int sms;                    /* streaming multiprocessors, for the grid size */
    int sync_each;              /* BPC_CUDA_SYNC */
    CUevent *ev;                /* BPC_PROFILE: train.n + 1 events, */
    double *prof;               /* and seconds per operation of the train program */
#ifdef BPC_HAVE_NCCL
    ncclComm_t comm;            /* a data-parallel plan's, over every rank; NULL once aborted */
#endif
    char gpu[128], arch[24];
    char about[288];            /* the device and the kernels, for bp_cuda_describe */
    char described[320];        /* about, and whether graphs are on */
} cuda;

static int unavailable(bp_err *e, const char *why) {
    char w[900];
    snprintf(w, sizeof w, "%.899s", why);
    return bp_fail(e, "CUDA target unavailable: %s; train on the CPU target instead (--target "
                      "cpu, or for a trainer, one made by `bpc build --target cpu`)", w);
}

/* Loads a cubin or PTX image; the driver's JIT error log goes into the message. */
static int load_module(cuda *s, const char *image, bp_err *e) {
    char elog[4096] = "";
    CUjit_option opt[2] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *val[2] = {elog, (void *)(uintptr_t)sizeof elog};
    CUresult r = bp_cu.cuModuleLoadDataEx(&s->mod, image, 2, opt, val);
    if (r == CUDA_SUCCESS) return 0;
    s->mod = NULL;
    bp_cu_check(r, "cuModuleLoadDataEx", __FILE__, __LINE__, e);
    char m[sizeof e->msg];
    if (r == CUDA_ERROR_UNSUPPORTED_PTX_VERSION) {
        int dv = 0;
        bp_cu.cuDriverGetVersion(&dv);
        snprintf(m, sizeof m, "%.700s; the driver (CUDA %d.%d) is older than NVRTC: update the driver or "
                 "put an older libnvrtc first on LD_LIBRARY_PATH", e->msg, dv / 1000, dv % 1000 / 10);
        return bp_fail(e, "%s", m);
    }
    if (elog[0]) {
        snprintf(m, sizeof m, "%.700s: %.300s", e->msg, elog);
        return bp_fail(e, "%s", m);
    }
    return -1;
}

/* Compiles the source for this GPU and loads it (see the head of the file). */
static int build_module(cuda *s, const bp_plan *p, const char *source, int cc, bp_err *e) {
    /* a standalone trainer: the image linked into it, no NVRTC */
    const unsigned char *linked;
    const char *larch;
    if (bp_linked_image(source, cc, &linked, &larch)) {
        snprintf(s->arch, sizeof s->arch, "%s", larch);
        return load_module(s, (const char *)linked, e);
    }
    /* none fits this GPU (or NVRTC was missing when the trainer was built): NVRTC */
    int archs[64];
    int na = bp_nvrtc_archs(archs, 64, e);
    if (na < 0) return unavailable(e, e->msg);
    int exact = 0, below = 0;
    for (int i = 0; i < na; i++) {
        if (archs[i] == cc) exact = 1;
        if (archs[i] <= cc) below = archs[i];
    }
    if (!below) {
        char w[256];
        snprintf(w, sizeof w, "the GPU %s (sm_%d) is older than every architecture this NVRTC supports "
                 "(from sm_%d)", s->gpu, cc, na > 0 ? archs[0] : 0);
        return unavailable(e, w);
    }
    char name[128];
    snprintf(name, sizeof name, "%s.cu", p->ir && p->ir->name ? p->ir->name : "model");
    char *img = NULL, *log = NULL;
    size_t len = 0;
    bp_err ce;
    if (exact) {
        snprintf(s->arch, sizeof s->arch, "sm_%d", cc);
        if (bp_nvrtc_compile(source, name, s->arch, &img, &len, &log, e)) { free(log); return -1; }
        free(log);
        int rc = load_module(s, img, &ce);
        free(img);
        if (rc == 0) return 0;
        /* a cubin the driver refuses (newer ELF than it knows): fall back to PTX */
    }
    snprintf(s->arch, sizeof s->arch, "compute_%d", below);
    if (bp_nvrtc_compile(source, name, s->arch, &img, &len, &log, e)) { free(log); return -1; }
    free(log);
    int rc = load_module(s, img, e);
    free(img);
    if (rc && exact) {
        char m[sizeof e->msg];
        snprintf(m, sizeof m, "%.600s (after the sm_%d cubin failed to load: %.350s)", e->msg, cc, ce.msg);
        return bp_fail(e, "%s", m);
    }
    return rc;
}

static void cuda_close(bp_exec *x) {
    cuda *s = x->impl;
    if (!s) return;
    if (s->ctx_held) {
        bp_cu.cuCtxSetCurrent(s->ctx);
        if (s->stream) bp_cu.cuStreamSynchronize(s->stream);
        for (int i = 0; i < NGRAPH; i++)
            if (s->graphs[i].exec) bp_cu.cuGraphExecDestroy(s->graphs[i].exec);
#ifdef BPC_HAVE_NCCL
        if (s->comm) { /* after the graphs that hold its collectives (an aborted one is gone) */
            bp_nccl.ncclCommFinalize(s->comm);
            bp_nccl.ncclCommDestroy(s->comm);
        }
#endif
        if (s->blas) bp_cublas.cublasDestroy(s->blas);
        if (s->prof) bp_profile_print(x->plan, 1, "GPU time from CUDA events, no graphs", s->prof);
        for (int i = 0; s->ev && i <= x->plan->train.n; i++)
            if (s->ev[i]) bp_cu.cuEventDestroy(s->ev[i]);
        if (s->dyn) bp_cu.cuMemFree(s->dyn);
        if (s->workspace) bp_cu.cuMemFree(s->workspace);
        if (s->tf32) bp_cu.cuMemFree(s->tf32);
        if (s->A) bp_cu.cuMemFree(s->A);
        if (s->I) bp_cu.cuMemFree(s->I);
        if (s->X) bp_cu.cuMemFree(s->X);
        if (s->images) bp_cu.cuMemFree(s->images);
        if (s->labels) bp_cu.cuMemFree(s->labels);
        if (s->order) bp_cu.cuMemFree(s->order);
        if (s->mod) bp_cu.cuModuleUnload(s->mod);
        if (s->stream) bp_cu.cuStreamDestroy(s->stream);
        bp_cu.cuCtxSetCurrent(NULL);
        bp_cu.cuDevicePrimaryCtxRelease(s->dev);
    }
    free(s->ev);
    free(s->prof);
    free(s->fn);
    free(s);
    x->impl = NULL;
}

/* cuMemAlloc refuses 0 bytes: an empty arena gets a small buffer anyway. */
static int alloc_zeroed(cuda *s, CUdeviceptr *d, size_t bytes, bp_err *e) {
    if (BP_CU(e, bp_cu.cuMemAlloc(d, bytes ? bytes : 256))) { *d = 0; return -1; }
    return bytes ? BP_CU(e, bp_cu.cuMemsetD8Async(*d, 0, bytes, s->stream)) : 0;
}

#ifdef BPC_HAVE_NCCL
/* The communicator of a data-parallel plan. Rank 0 makes the NCCL id and MPI carries
 * it to the others (NCCL's own recipe); every rank then joins. Rank 0 sends whether it
 * could, so no rank waits for an id that never comes. */
static int open_nccl(cuda *s, bp_err *e) {
    int rank = bp_dist_rank(), ranks = bp_dist_size();
    bp_err le = {{0}};
    struct { int ok; ncclUniqueId id; } m;
    memset(&m, 0, sizeof m);
    int loaded = !bp_cuda_load_nccl(&le);
    if (rank == 0) m.ok = loaded && !BP_NCCL(&le, NULL, bp_nccl.ncclGetUniqueId(&m.id));
    bp_dist_broadcast(&m, sizeof m);
    if (!loaded)
        return bp_fail(e, "data parallelism on the CUDA target needs NCCL: %.700s; install it (the CUDA "
                          "toolkit's, or NVIDIA's libnccl2), or give --target cpu", le.msg);
    if (!m.ok)
        return rank == 0 ? bp_fail(e, "%s", le.msg)
                         : bp_fail(e, "rank 0 could not create the NCCL id (its message says why)");
    if (BP_NCCL(e, NULL, bp_nccl.ncclCommInitRank(&s->comm, ranks, m.id, rank))) { s->comm = NULL; return -1; }
    return 0;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Aborts the communicator, whose collectives may now never end (e keeps the reason). */
static int abort_comm(cuda *s) {
    bp_nccl.ncclCommAbort(s->comm);
    s->comm = NULL;
    return -1;
}

/* The stream's end, by polling: a collective whose partner rank is gone or stuck never
 * ends on the GPU, where no MPI watchdog sees it (see the head of the file). */
static int wait_collectives(cuda *s, bp_err *e) {
    double t0 = seconds(), limit = bp_dist_timeout();
    for (long polls = 0;; polls++) {
        CUresult r = bp_cu.cuStreamQuery(s->stream);
        if (r == CUDA_SUCCESS) return 0;
        if (r != CUDA_ERROR_NOT_READY) return bp_cu_check(r, "cuStreamQuery", __FILE__, __LINE__, e);
        ncclResult_t st = ncclSuccess;
        if (BP_NCCL(e, s->comm, bp_nccl.ncclCommGetAsyncError(s->comm, &st))) return abort_comm(s);
        if (st != ncclSuccess && st != ncclInProgress) {
            bp_nccl_check(st, s->comm, "a collective (ncclCommGetAsyncError)", __FILE__, __LINE__, e);
            return abort_comm(s);
        }
        if (seconds() - t0 > limit) {
            bp_fail(e, "rank %d of %d has waited %.0f s for the GPU's collectives (NCCL) with another "
                       "rank: a rank is stuck or its machine is gone (BPC_DIST_TIMEOUT sets the limit)",
                    bp_dist_rank(), bp_dist_size(), limit);
            return abort_comm(s);
        }
        if (polls < 1000) sched_yield(); /* a step's usual end comes soon */
        else nanosleep(&(struct timespec){0, 20000}, NULL);
    }
}
#endif

/* Waits until the stream has done everything queued on it. */
static int wait_stream(cuda *s, bp_err *e) {
#ifdef BPC_HAVE_NCCL
    if (s->comm) return wait_collectives(s, e);
#endif
    return BP_CU(e, bp_cu.cuStreamSynchronize(s->stream));
}

static int cuda_open(bp_exec *x, const char *source, bp_err *e) {
    const bp_plan *p = x->plan;
#ifndef BPC_HAVE_NCCL
    if (p->dp)
        return bp_fail(e, "data parallelism on the CUDA target needs NCCL, and this bpc was built without "
                          "nccl.h (the CUDA toolkit's, or NVIDIA's libnccl-dev): build it again with NCCL, or "
                          "give --target cpu under mpirun");
#endif
    cuda *s = calloc(1, sizeof *s);
    if (!s) return bp_fail(e, "out of memory opening the CUDA target");
    x->impl = s;
    bp_err le;
    if (bp_cuda_load_driver(&le)) { unavailable(e, le.msg); goto fail; }
    CUresult r = bp_cu.cuInit(0);
    if (r != CUDA_SUCCESS) {
        char d[256];
        bp_cu_describe(r, d, sizeof d);
        snprintf(le.msg, sizeof le.msg, "cuInit failed: %s", d);
        unavailable(e, le.msg);
        goto fail;
    }
    int ndev = 0, ord = 0;
    if (BP_CU(e, bp_cu.cuDeviceGetCount(&ndev))) goto fail;
    if (ndev < 1) { unavailable(e, "no CUDA device found"); goto fail; }
    const char *env = getenv("BPC_CUDA_DEVICE");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end || v < 0 || v >= ndev) {
            bp_fail(e, "BPC_CUDA_DEVICE=%s: not a device number; this machine has %d device%s (0..%d)",
                    env, ndev, ndev == 1 ? "" : "s", ndev - 1);
            goto fail;
        }
        ord = (int)v;
    } else if (bp_dist_size() > 1) {
        ord = bp_dist_local_rank() % ndev; /* one GPU per rank of a machine */
    }
    int here = bp_dist_local_size();
    if (p->dp && here > ndev && !(env && *env)) { /* NCCL refuses two ranks on one GPU */
        bp_fail(e, "%d ranks on this machine share its %d GPU%s: NCCL takes one GPU per rank; start at most "
                   "%d rank%s per machine (mpirun --map-by ppr:%d:node), or give --target cpu",
                here, ndev, ndev == 1 ? "" : "s", ndev, ndev == 1 ? "" : "s", ndev);
        goto fail;
    }
    int major = 0, minor = 0;
    if (BP_CU(e, bp_cu.cuDeviceGet(&s->dev, ord)) ||
        BP_CU(e, bp_cu.cuDeviceGetName(s->gpu, sizeof s->gpu, s->dev)) ||
        BP_CU(e, bp_cu.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, s->dev)) ||
        BP_CU(e, bp_cu.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, s->dev)) ||
        BP_CU(e, bp_cu.cuDeviceGetAttribute(&s->sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, s->dev)))
        goto fail;
    if (BP_CU(e, bp_cu.cuDevicePrimaryCtxRetain(&s->ctx, s->dev))) goto fail;
    s->ctx_held = 1;
    if (BP_CU(e, bp_cu.cuCtxSetCurrent(s->ctx)) ||
        BP_CU(e, bp_cu.cuStreamCreate(&s->stream, CU_STREAM_NON_BLOCKING)))
        goto fail;
    const char *sy = getenv("BPC_CUDA_SYNC");
    s->sync_each = sy && *sy && strcmp(sy, "0");
    const char *gr = getenv("BPC_CUDA_GRAPH");
    int profile = bp_profile_wanted();
    s->graphs_off = s->sync_each || (gr && !strcmp(gr, "0")) || profile;
    if (profile) {
        int n = p->train.n + 1;
        s->ev = calloc((size_t)n, sizeof *s->ev);
        s->prof = calloc((size_t)n, sizeof *s->prof);
        if (!s->ev || !s->prof) { bp_fail(e, "out of memory opening the CUDA target"); goto fail; }
        for (int i = 0; i < n; i++)
            if (BP_CU(e, bp_cu.cuEventCreate(&s->ev[i], CU_EVENT_DEFAULT))) goto fail;
    }

    if (build_module(s, p, source, major * 10 + minor, e)) goto fail;
    if (p->nkernels > 0 && !(s->fn = calloc((size_t)p->nkernels, sizeof *s->fn))) {
        bp_fail(e, "out of memory opening the CUDA target");
        goto fail;
    }
    for (int i = 0; i < p->nkernels; i++)
        if (BP_CU(e, bp_cu.cuModuleGetFunction(&s->fn[i], s->mod, p->kernels[i].name))) goto fail;
    if (BP_CU(e, bp_cu.cuModuleGetFunction(&s->gather, s->mod, "bp_gather")) ||
        BP_CU(e, bp_cu.cuModuleGetFunction(&s->split, s->mod, "bp_tf32_split")))
        goto fail;

    s->nA = p->arena_floats;
    s->nI = p->arena_ints;
    s->nX = (long)p->batch * p->x_bytes;
    if (alloc_zeroed(s, &s->A, (size_t)s->nA * sizeof(float), e) ||
        alloc_zeroed(s, &s->I, (size_t)s->nI * sizeof(int), e) ||
        alloc_zeroed(s, &s->X, (size_t)s->nX, e) ||
        alloc_zeroed(s, &s->dyn, sizeof(bp_dyn), e) ||
        alloc_zeroed(s, &s->workspace, WORKSPACE_BYTES, e) ||
        (p->precision != BP_PREC_IEEE &&
         alloc_zeroed(s, &s->tf32, (size_t)bp_plan_gemm_scratch(p) * sizeof(float), e))) {
        char need[32], big[256], why[sizeof e->msg];
        snprintf(why, sizeof why, "%s", e->msg);
        bp_bytes_str((double)s->nA * sizeof(float) + (double)s->nI * sizeof(int) + (double)s->nX +
                     WORKSPACE_BYTES + (p->precision != BP_PREC_IEEE ? bp_plan_gemm_scratch(p) * 4.0 : 0),
                     need, sizeof need);
        bp_fail(e, "the model's tensors and buffers need %s of GPU memory at batch %d (%s): %s",
                need, p->batch, bp_plan_largest(p, (int)sizeof(float), big, sizeof big), why);
        goto fail;
    }

    if (bp_cuda_load_cublas(&le)) { unavailable(e, le.msg); goto fail; }
    if (BP_CUBLAS(e, bp_cublas.cublasCreate(&s->blas))) { s->blas = NULL; goto fail; }
    if (BP_CUBLAS(e, bp_cublas.cublasSetStream(s->blas, s->stream)) ||
        /* after SetStream, which resets the workspace to cuBLAS's own pool */
        BP_CUBLAS(e, bp_cublas.cublasSetWorkspace(s->blas, (void *)(uintptr_t)s->workspace, WORKSPACE_BYTES)) ||
        /* TF32 and 3xTF32 hand cuBLAS operands already rounded (gemm below): its tensor
         * cores then multiply exactly the values the CPU target does */
        BP_CUBLAS(e, bp_cublas.cublasSetMathMode(s->blas, p->precision == BP_PREC_IEEE
                                                              ? CUBLAS_DEFAULT_MATH
                                                              : CUBLAS_TF32_TENSOR_OP_MATH)) ||
        BP_CU(e, bp_cu.cuStreamSynchronize(s->stream)))
        goto fail;
    int o = snprintf(s->about, sizeof s->about, "%.127s (device %d, sm_%d%d, %d SMs), kernels as %s %s",
                     s->gpu, ord, major, minor, s->sms, s->arch, s->arch[0] == 's' ? "cubin" : "PTX (driver JIT)");
#ifdef BPC_HAVE_NCCL
    if (p->dp) {
        if (open_nccl(s, e)) goto fail;
        int v = 0;
        bp_nccl.ncclGetVersion(&v);
        snprintf(s->about + o, sizeof s->about - (size_t)o, ", NCCL %d.%d.%d over %d rank%s", v / 10000,
                 v % 10000 / 100, v % 100, bp_dist_size(), bp_dist_size() == 1 ? "" : "s");
    }
#endif
    (void)o;
    return 0;
fail:
    cuda_close(x);
    return -1;
}

/* The arena's base and size in elements and bytes per element; -1 on a bad range. */
static int arena(cuda *s, bp_arena a, long off, long n, CUdeviceptr *ptr, bp_err *e) {
    CUdeviceptr base = a == BP_ARENA_F ? s->A : a == BP_ARENA_I ? s->I : s->X;
    long size = a == BP_ARENA_F ? s->nA : a == BP_ARENA_I ? s->nI : s->nX;
    size_t el = a == BP_ARENA_X ? 1 : 4;
    if (off < 0 || n < 0 || off > size || n > size - off)
        return bp_fail(e, "CUDA copy of %ld elements at %ld is outside the %s arena of %ld", n, off,
                       a == BP_ARENA_F ? "float" : a == BP_ARENA_I ? "int" : "input", size);
    *ptr = base + (CUdeviceptr)off * el;
    return 0;
}

/* One copy between host memory and an arena, in stream order, waited for: so that it
 * also reports an error an earlier kernel left. */
static int copy(bp_exec *x, bp_arena a, long off, void *host, long n, int to_device, bp_err *e) {
    cuda *s = x->impl;
    CUdeviceptr d = 0;
    if (arena(s, a, off, n, &d, e)) return -1;
    if (n == 0) return 0;
    size_t bytes = (size_t)n * (a == BP_ARENA_X ? 1 : 4);
    if (BP_CU(e, bp_cu.cuCtxSetCurrent(s->ctx)) ||
        (to_device ? BP_CU(e, bp_cu.cuMemcpyHtoDAsync(d, host, bytes, s->stream))
                   : BP_CU(e, bp_cu.cuMemcpyDtoHAsync(host, d, bytes, s->stream))) ||
        wait_stream(s, e))
        return -1;
    return 0;
}

static int cuda_put(bp_exec *x, bp_arena a, long off, const void *src, long n, bp_err *e) {
    return copy(x, a, off, (void *)src, n, 1, e);
}

static int cuda_get(bp_exec *x, bp_arena a, long off, void *dst, long n, bp_err *e) {
    return copy(x, a, off, dst, n, 0, e);
}

static int launch(cuda *s, const bp_plan *p, int ki, const bp_dyn *d, bp_err *e) {
    if (ki < 0 || ki >= p->nkernels) return bp_fail(e, "plan refers to kernel %d of %d", ki, p->nkernels);
    ki = bp_kernel_for(p, ki, 1); /* the GPU's layout of the same values (bp_kernel) */
    const bp_kernel *k = &p->kernels[ki];
    long long n = (long long)k->count * (k->per_sample ? d->nb : 1);
    if (n <= 0) return 0;
    long long blocks = (n + BLOCK - 1) / BLOCK, cap = (long long)(s->sms > 0 ? s->sms : 1) * 32;
    unsigned grid = (unsigned)(blocks < cap ? blocks : cap); /* the kernel loops over the rest */
    void *args[] = {&s->A, &s->I, &s->X, &s->dyn};
    return BP_CU(e, bp_cu.cuLaunchKernel(s->fn[ki], grid, 1, 1, BLOCK, 1, 1, 0, s->stream, args, NULL));
}

/* One column-major call of the mapped GEMM c on device operands A, B and C. */
static int sgemm(cuda *s, const bp_gemm_cm *c, float beta, const float *A, const float *B, float *C,
                 bp_err *e) {
    cublasOperation_t ta = c->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = c->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (c->batch == 1)
        return BP_CUBLAS(e, bp_cublas.cublasSgemm(s->blas, ta, tb, c->m, c->n, c->k, &c->alpha, A, c->lda, B,
                                                  c->ldb, &beta, C, c->ldc));
    return BP_CUBLAS(e, bp_cublas.cublasSgemmStridedBatched(s->blas, ta, tb, c->m, c->n, c->k, &c->alpha, A,
                                                            c->lda, c->stride_a, B, c->ldb, c->stride_b,
                                                            &beta, C, c->ldc, c->stride_c, c->batch));
}

/* bp_tf32_split over n floats of the arena at off into big (and small, or 0). */
static int split(cuda *s, long off, long n, CUdeviceptr big, CUdeviceptr small, bp_err *e) {
    if (n <= 0) return 0;
    CUdeviceptr src = s->A + (CUdeviceptr)off * sizeof(float);
    long long blocks = (n + BLOCK - 1) / BLOCK, cap = (long long)(s->sms > 0 ? s->sms : 1) * 32;
    unsigned grid = (unsigned)(blocks < cap ? blocks : cap);
    void *args[] = {&src, &big, &small, &n};
    return BP_CU(e, bp_cu.cuLaunchKernel(s->split, grid, 1, 1, BLOCK, 1, 1, 0, s->stream, args, NULL));
}

static int gemm(cuda *s, const bp_plan *p, const bp_gemm *g, const bp_dyn *d, bp_err *e) {
    bp_gemm_cm c;
    if (bp_gemm_map(g, d->nb, d->lr, s->nA, &c, e)) return -1;
    if (c.m == 0 || c.n == 0) return 0;
    float *C = (float *)(uintptr_t)(s->A + (CUdeviceptr)c.c * sizeof(float));
    if (p->precision == BP_PREC_IEEE) {
        const float *A = (const float *)(uintptr_t)(s->A + (CUdeviceptr)c.a * sizeof(float));
        const float *B = (const float *)(uintptr_t)(s->A + (CUdeviceptr)c.b * sizeof(float));
        return sgemm(s, &c, c.beta, A, B, C, e);
    }
    /* as bp_gemm_cpu_prec: the row-major A (the call's B) and B (the call's A), each
     * from its first element, rounded or split into the scratch; in 3xTF32 the small
     * products first */
    long na = bp_gemm_operand_extent(g, d->nb, 0), nb = bp_gemm_operand_extent(g, d->nb, 1);
    CUdeviceptr Ab = s->tf32, Bb = Ab + (CUdeviceptr)na * 4, As = Bb + (CUdeviceptr)nb * 4,
                Bs = As + (CUdeviceptr)na * 4;
    int three = p->precision == BP_PREC_3XTF32;
    if (split(s, g->a, na, Ab, three ? As : 0, e) || split(s, g->b, nb, Bb, three ? Bs : 0, e)) return -1;
#define DEV(x) ((const float *)(uintptr_t)(x))
    if (three && (sgemm(s, &c, c.beta, DEV(Bb), DEV(As), C, e) || sgemm(s, &c, 1.0f, DEV(Bs), DEV(Ab), C, e)))
        return -1;
    return sgemm(s, &c, three ? 1.0f : c.beta, DEV(Bb), DEV(Ab), C, e);
#undef DEV
}

/* A collective of a data-parallel plan (plan.h), on the stream (see the head of the
 * file). */
static int collective(cuda *s, const bp_coll *c, const bp_dyn *d, bp_err *e) {
    long len = c->kind == BP_COLL_SUM ? c->n : c->n * d->nb_all;
    if (c->off < 0 || c->n < 0 || len < 0 || c->off > s->nA - len)
        return bp_fail(e, "collective of %ld floats at %ld is outside the float arena of %ld", len, c->off, s->nA);
#ifdef BPC_HAVE_NCCL
    if (!s->comm) return bp_fail(e, "internal error: a collective without an NCCL communicator");
    float *at = (float *)(uintptr_t)(s->A + (CUdeviceptr)c->off * sizeof(float));
    if (c->kind == BP_COLL_SUM)
        return BP_NCCL(e, s->comm, bp_nccl.ncclAllReduce(at, at, (size_t)c->n, ncclFloat, ncclSum, s->comm, s->stream));
    /* an in-place allgather of shares that may differ in size: each rank broadcasts its rows */
    if (BP_NCCL(e, s->comm, bp_nccl.ncclGroupStart())) return -1;
    int rc = 0;
    for (int r = 0; r < bp_dist_size() && !rc; r++) {
        int b0, n;
        bp_dist_share(d->nb_all, r, &b0, &n);
        float *rows = at + (long)b0 * c->n;
        if (n) rc = BP_NCCL(e, s->comm, bp_nccl.ncclBroadcast(rows, rows, (size_t)n * (size_t)c->n, ncclFloat, r,
                                                              s->comm, s->stream));
    }
    bp_err ge;
    if (BP_NCCL(rc ? &ge : e, s->comm, bp_nccl.ncclGroupEnd())) rc = -1; /* a group always ends */
    return rc;
#else
    (void)d;
    return bp_fail(e, "internal error: a collective in a bpc built without NCCL");
#endif
}

/* Brings the device copy of bp_dyn to d: a memset per 32-bit word that changed
 * (usually the step alone). A memset takes its value by value, so nothing on the host
 * must outlive the call, and the stream orders it after the previous run's kernels. */
_Static_assert(sizeof(bp_dyn) % sizeof(uint32_t) == 0, "bp_dyn is written in 32-bit words");
static int set_dyn(cuda *s, const bp_dyn *d, bp_err *e) {
    uint32_t want[sizeof(bp_dyn) / sizeof(uint32_t)];
    memcpy(want, d, sizeof want);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (want[i] == s->dyn_now[i]) continue;
        if (BP_CU(e, bp_cu.cuMemsetD32Async(s->dyn + i * sizeof(uint32_t), want[i], 1, s->stream))) return -1;
        s->dyn_now[i] = want[i];
    }
    return 0;
}

/* Queues the operations of a program on the stream, one by one; with `ev`, records
 * ev[i] before operation i and ev[g->n] after the last. */
static int enqueue(cuda *s, const bp_plan *p, const bp_prog *g, const bp_dyn *d, CUevent *ev, bp_err *e) {
    for (int i = 0; i < g->n; i++) {
        const bp_op *o = &g->ops[i];
        int rc = ev ? BP_CU(e, bp_cu.cuEventRecord(ev[i], s->stream)) : 0;
        if (!rc) rc = o->kind == BP_OP_KERNEL ? launch(s, p, o->kernel, d, e)
                      : o->kind == BP_OP_GEMM ? gemm(s, p, &o->g, d, e) : collective(s, &o->coll, d, e);
        if (!rc && s->sync_each) rc = wait_stream(s, e);
        if (rc) {
            char m[sizeof e->msg];
            snprintf(m, sizeof m, "operation %d (%.47s %.63s): %.800s", i,
                     o->kind == BP_OP_KERNEL && o->kernel >= 0 && o->kernel < p->nkernels
                         ? p->kernels[o->kernel].name : o->kind == BP_OP_GEMM ? "gemm" : "collective",
                     o->what, e->msg);
            return bp_fail(e, "%s", m);
        }
    }
    return ev ? BP_CU(e, bp_cu.cuEventRecord(ev[g->n], s->stream)) : 0;
}

/* BPC_PROFILE: waits for the run just queued and adds each operation's GPU time. */
static int add_profile(cuda *s, const bp_prog *g, bp_err *e) {
    if (BP_CU(e, bp_cu.cuEventSynchronize(s->ev[g->n]))) return -1;
    for (int i = 0; i < g->n; i++) {
        float ms = 0;
        if (BP_CU(e, bp_cu.cuEventElapsedTime(&ms, s->ev[i], s->ev[i + 1]))) return -1;
        s->prof[i] += 1e-3 * ms;
    }
    return 0;
}

/* The slot of (g, nb, nb_all, lr): its graph, captured now when this is the second run of
 * that key. NULL: run it one operation at a time (the first run of a key, or capture
 * failed, which turns graphs off for this exec and says so once on stderr). */
static graph *graph_for(cuda *s, const bp_plan *p, const bp_prog *g, const bp_dyn *d) {
    graph *slot = NULL;
    for (int i = 0; i < NGRAPH && !slot; i++) {
        graph *c = &s->graphs[i];
        if (c->prog == g && c->nb == d->nb && c->nb_all == d->nb_all && !memcmp(&c->lr, &d->lr, sizeof c->lr))
            slot = c;
    }
    if (!slot) { /* first seen: take a free slot, or the least recently used */
        slot = &s->graphs[0];
        for (int i = 1; i < NGRAPH && slot->prog; i++)
            if (!s->graphs[i].prog || s->graphs[i].used < slot->used) slot = &s->graphs[i];
        if (slot->exec) bp_cu.cuGraphExecDestroy(slot->exec);
        *slot = (graph){.prog = g, .nb = d->nb, .nb_all = d->nb_all, .lr = d->lr, .used = s->runs};
        return NULL;
    }
    slot->used = s->runs;
    if (slot->exec) return slot;
    bp_err ce;
    CUgraph cg = NULL;
    CUgraphExec ex = NULL;
    int rc = BP_CU(&ce, bp_cu.cuStreamBeginCapture(s->stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    if (!rc) {
        bp_err end;
        rc = enqueue(s, p, g, d, NULL, &ce);
        /* always end the capture, so the stream leaves capture mode */
        if (BP_CU(rc ? &end : &ce, bp_cu.cuStreamEndCapture(s->stream, &cg))) rc = -1;
    }
    if (!rc) rc = BP_CU(&ce, bp_cu.cuGraphInstantiate(&ex, cg, 0));
    if (cg) bp_cu.cuGraphDestroy(cg);
    if (rc) {
        s->graphs_off = 1;
        fprintf(stderr, "bpc: warning: cannot capture a step as a CUDA graph (%.800s); the operations "
                        "run one by one instead\n", ce.msg);
        return NULL;
    }
    slot->exec = ex;
    return slot;
}

static int cuda_run(bp_exec *x, const bp_prog *g, const bp_dyn *d, bp_err *e) {
    cuda *s = x->impl;
    const bp_plan *p = x->plan;
    if (d->nb < 0 || d->nb > p->batch)
        return bp_fail(e, "batch of %d samples; the model was compiled for at most %d", d->nb, p->batch);
    if (BP_CU(e, bp_cu.cuCtxSetCurrent(s->ctx)) || set_dyn(s, d, e)) return -1;
    s->runs++;
    graph *gr = s->graphs_off || g->n == 0 ? NULL : graph_for(s, p, g, d);
    if (!gr && s->prof && g == &p->train)
        return enqueue(s, p, g, d, s->ev, e) || add_profile(s, g, e) ? -1 : 0;
    if (!gr) return enqueue(s, p, g, d, NULL, e);
    return BP_CU(e, bp_cu.cuGraphLaunch(gr->exec, s->stream));
}

/* A device buffer of `bytes` holding a copy of host memory; waits for the copy. */
static int upload(cuda *s, CUdeviceptr *d, const void *src, size_t bytes, bp_err *e) {
    if (BP_CU(e, bp_cu.cuMemAlloc(d, bytes ? bytes : 256))) { *d = 0; return -1; }
    if (!bytes) return 0;
    return BP_CU(e, bp_cu.cuMemcpyHtoDAsync(*d, src, bytes, s->stream)) || wait_stream(s, e) ? -1 : 0;
}

static int cuda_stage(bp_exec *x, const unsigned char *images, const int *labels, long n, bp_err *e) {
    cuda *s = x->impl;
    if (BP_CU(e, bp_cu.cuCtxSetCurrent(s->ctx))) return -1;
    if (s->images) { bp_cu.cuMemFree(s->images); s->images = 0; }
    if (s->labels) { bp_cu.cuMemFree(s->labels); s->labels = 0; }
    s->nstaged = 0;
    if (upload(s, &s->images, images, (size_t)n * (size_t)x->plan->x_bytes, e) ||
        upload(s, &s->labels, labels, (size_t)n * sizeof(int), e))
        return -1;
    s->nstaged = n;
    return 0;
}

static int cuda_order(bp_exec *x, const int *idx, long n, bp_err *e) {
    cuda *s = x->impl;
    if (BP_CU(e, bp_cu.cuCtxSetCurrent(s->ctx))) return -1;
    if (!s->order || n > s->norder) {
        if (s->order) { bp_cu.cuMemFree(s->order); s->order = 0; }
        s->norder = 0;
        if (BP_CU(e, bp_cu.cuMemAlloc(&s->order, (size_t)(n > 0 ? n : 1) * sizeof(int)))) { s->order = 0; return -1; }
    }
    /* the stream runs in order, so the steps queued before see the old order; the
     * wait keeps idx alive until the copy is done */
    if (n && (BP_CU(e, bp_cu.cuMemcpyHtoDAsync(s->order, idx, (size_t)n * sizeof(int), s->stream)) ||
              wait_stream(s, e)))
        return -1;
    s->norder = n;
    return 0;
}

static int cuda_gather(bp_exec *x, long first, int nb, bp_err *e) {
    cuda *s = x->impl;
    const bp_plan *p = x->plan;
    if (first < 0 || nb < 0 || nb > p->batch || first + nb > s->norder || !s->nstaged)
        return bp_fail(e, "internal error: gather of %d images at %ld of an order of %ld", nb, first, s->norder);
    long long n = (long long)nb * p->x_bytes;
    if (n <= 0) return 0;
    long long blocks = (n + BLOCK - 1) / BLOCK, cap = (long long)(s->sms > 0 ? s->sms : 1) * 32;
    unsigned grid = (unsigned)(blocks < cap ? blocks : cap);
    long xb = p->x_bytes, lab = p->labels;
    void *args[] = {&s->X, &s->I, &s->images, &s->labels, &s->order, &first, &nb, &xb, &lab};
    if (BP_CU(e, bp_cu.cuCtxSetCurrent(s->ctx)) ||
        BP_CU(e, bp_cu.cuLaunchKernel(s->gather, grid, 1, 1, BLOCK, 1, 1, 0, s->stream, args, NULL)))
        return -1;
    return s->sync_each ? wait_stream(s, e) : 0;
}

const char *bp_cuda_describe(const bp_exec *x) {
    cuda *s = x && x->target == BP_TARGET_CUDA ? x->impl : NULL;
    if (!s) return "";
    snprintf(s->described, sizeof s->described, "%s, %s", s->about,
             s->graphs_off ? "operations launched one by one" : "steps as CUDA graphs");
    return s->described;
}

int bp_cuda_graphs_on(const bp_exec *x) {
    const cuda *s = x && x->target == BP_TARGET_CUDA ? x->impl : NULL;
    return s && !s->graphs_off;
}

int bp_cuda_available(void) {
    static int known = -1;
    if (known >= 0) return known;
    bp_err e;
    int n = 0;
    known = !bp_cuda_load_driver(&e) && bp_cu.cuInit(0) == CUDA_SUCCESS &&
            bp_cu.cuDeviceGetCount(&n) == CUDA_SUCCESS && n > 0 && !bp_cuda_load_nvrtc(&e) &&
            !bp_cuda_load_cublas(&e);
    return known;
}

#else /* built without the CUDA headers */

int bp_cuda_available(void) { return 0; }
const char *bp_cuda_describe(const bp_exec *x) { (void)x; return ""; }
int bp_cuda_graphs_on(const bp_exec *x) { (void)x; return 0; }

static int cuda_open(bp_exec *x, const char *source, bp_err *e) {
    (void)x; (void)source;
    return bp_fail(e, BP_CUDA_NOT_BUILT);
}
static int cuda_put(bp_exec *x, bp_arena a, long off, const void *src, long n, bp_err *e) {
    (void)x; (void)a; (void)off; (void)src; (void)n;
    return bp_fail(e, BP_CUDA_NOT_BUILT);
}
static int cuda_get(bp_exec *x, bp_arena a, long off, void *dst, long n, bp_err *e) {
    (void)x; (void)a; (void)off; (void)dst; (void)n;
    return bp_fail(e, BP_CUDA_NOT_BUILT);
}
static int cuda_run(bp_exec *x, const bp_prog *g, const bp_dyn *d, bp_err *e) {
    (void)x; (void)g; (void)d;
    return bp_fail(e, BP_CUDA_NOT_BUILT);
}
static void cuda_close(bp_exec *x) { x->impl = NULL; }
static int cuda_stage(bp_exec *x, const unsigned char *images, const int *labels, long n, bp_err *e) {
    (void)x; (void)images; (void)labels; (void)n;
    return bp_fail(e, BP_CUDA_NOT_BUILT);
}
static int cuda_order(bp_exec *x, const int *idx, long n, bp_err *e) {
    (void)x; (void)idx; (void)n;
    return bp_fail(e, BP_CUDA_NOT_BUILT);
}
static int cuda_gather(bp_exec *x, long first, int nb, bp_err *e) {
    (void)x; (void)first; (void)nb;
    return bp_fail(e, BP_CUDA_NOT_BUILT);
}

#endif

const bp_backend bp_backend_cuda = {"cuda", cuda_open, cuda_put, cuda_get, cuda_run, cuda_close,
                                    cuda_stage, cuda_order, cuda_gather};

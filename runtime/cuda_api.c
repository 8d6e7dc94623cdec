/* cuda_api.c: opens libcuda, NVRTC, cuBLAS and NCCL with dlopen and resolves the function
 * tables of cuda_api.h, plus the check functions that turn a library status into a
 * bp_err message with the file, the line and the library's own error text.
 *
 * Resolving at run time keeps bpc free of a link-time dependency on the driver (absent
 * on CI and CPU-only machines) and lets one bpc binary use NVRTC/cuBLAS 12 or 13.
 * The libraries are never closed: cuBLAS and the driver keep threads and state whose
 * teardown at dlclose is not worth the risk.
 */
#include "cuda_api.h"

#ifdef BPC_HAVE_CUDA
#include <dlfcn.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bp_cu_api bp_cu;
bp_nvrtc_api bp_nvrtc;
bp_cublas_api bp_cublas;
#ifdef BPC_HAVE_NCCL
bp_nccl_api bp_nccl;
#endif

#define BP_STR_(x) #x
#define BP_STR(x) BP_STR_(x)

/* One entry per function: the symbol name after the header's macros, and the slot
 * (a function pointer, written with memcpy from dlsym's void *, as POSIX allows). */
typedef struct { const char *name; void *slot; } sym;
_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "function pointers must fit a void *");
#define BP_SYM_CU(f) { BP_STR(f), (void *)&bp_cu.f },
#define BP_SYM_NVRTC(f) { BP_STR(f), (void *)&bp_nvrtc.f },
#define BP_SYM_CUBLAS(f) { BP_STR(f), (void *)&bp_cublas.f },
#define BP_SYM_NCCL(f) { BP_STR(f), (void *)&bp_nccl.f },

/* dlopen the first of `names` that loads from DIR/lib64 (or from the loader's path
 * when DIR is NULL); writes what loaded into why. */
static void *try_dir(const char *dir, const char *const *names, char *first, size_t flen, char *why,
                     size_t whylen) {
    for (const char *const *n = names; *n; n++) {
        char path[4096];
        if (dir) snprintf(path, sizeof path, "%s/lib64/%s", dir, *n);
        else snprintf(path, sizeof path, "%s", *n);
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (h) { snprintf(why, whylen, "%.800s", path); return h; }
        const char *err = dlerror();
        if (!dir && !first[0] && err) snprintf(first, flen, "%s", err);
    }
    return NULL;
}

/* dlopen the first of `names` that loads. With `dirs`: from $CUDA_HOME/lib64 when
 * CUDA_HOME is set (the user chose that toolkit), then the loader's path, then
 * /usr/local/cuda/lib64; without: the loader's path only. Writes into why the file
 * that loaded or, on failure, what was tried and the loader's error. */
static void *open_lib(const char *const *names, int dirs, char *why, size_t whylen) {
    char first[512] = "";
    const char *home = getenv("CUDA_HOME");
    void *h = NULL;
    if (dirs && home && *home) h = try_dir(home, names, first, sizeof first, why, whylen);
    if (!h) h = try_dir(NULL, names, first, sizeof first, why, whylen);
    if (!h && dirs) h = try_dir("/usr/local/cuda", names, first, sizeof first, why, whylen);
    if (h) return h;
    int o = snprintf(why, whylen, "cannot load");
    for (const char *const *n = names; *n && o > 0 && (size_t)o < whylen; n++)
        o += snprintf(why + o, whylen - (size_t)o, "%s %s", n == names ? "" : " or", *n);
    if (o > 0 && (size_t)o < whylen)
        snprintf(why + o, whylen - (size_t)o, "%s (%s)",
                 dirs ? " (searched $CUDA_HOME/lib64, the loader path, /usr/local/cuda/lib64)" : "",
                 first[0] ? first : "not found");
    return NULL;
}

/* Resolves every symbol; on a missing one clears the slots and says which. */
static int resolve(void *h, const char *lib, sym *s, int n, bp_err *e) {
    for (int i = 0; i < n; i++) {
        void *p = dlsym(h, s[i].name);
        memcpy(s[i].slot, &p, sizeof p);
        if (!p) {
            for (int j = 0; j < n; j++) memset(s[j].slot, 0, sizeof p);
            return bp_fail(e, "%s has no symbol %s: the library is too old for bpc", lib, s[i].name);
        }
    }
    return 0;
}

/* Loads the first of names that opens (open_lib) and resolves its symbols; writes the
 * file that loaded into path (size 900) when path is not NULL. */
static int load(int *done, const char *const *names, int dirs, sym *s, int n, char *path,
                bp_err *e) {
    if (*done) return 0;
    char why[900];
    void *h = open_lib(names, dirs, why, sizeof why);
    if (!h) return bp_fail(e, "%s", why);
    if (resolve(h, why, s, n, e)) { dlclose(h); return -1; }
    if (path) memcpy(path, why, sizeof why);
    *done = 1;
    return 0;
}

int bp_cuda_load_driver(bp_err *e) {
    static int done;
    static const char *const names[] = {"libcuda.so.1", NULL};
    static sym s[] = {BP_CU_FUNCS(BP_SYM_CU)};
    return load(&done, names, 0, s, (int)(sizeof s / sizeof s[0]), NULL, e);
}

int bp_cuda_load_nvrtc(bp_err *e) {
    static int done;
    static const char *const names[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", NULL};
    static sym s[] = {BP_NVRTC_FUNCS(BP_SYM_NVRTC)};
    char path[900];
    if (done) return 0;
    if (load(&done, names, 1, s, (int)(sizeof s / sizeof s[0]), path, e)) return -1;
    /* libnvrtc dlopens its builtins (libnvrtc-builtins.so.13.0) by name at the first
     * compile, from the loader's path only: a toolkit found through CUDA_HOME alone would
     * then fail with "failed to open libnvrtc-builtins.so". Loading the builtins of the
     * same folder first makes that dlopen find them already loaded (by their soname). */
    char *slash = strrchr(path, '/');
    if (slash) {
        glob_t g;
        snprintf(slash + 1, sizeof path - (size_t)(slash + 1 - path), "libnvrtc-builtins.so.*");
        if (glob(path, 0, NULL, &g) == 0) {
            for (size_t i = 0; i < g.gl_pathc; i++)
                if (dlopen(g.gl_pathv[i], RTLD_NOW | RTLD_GLOBAL)) break;
            globfree(&g);
        }
    }
    return 0;
}

int bp_cuda_load_cublas(bp_err *e) {
    static int done;
    static const char *const names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so", NULL};
    static sym s[] = {BP_CUBLAS_FUNCS(BP_SYM_CUBLAS)};
    return load(&done, names, 1, s, (int)(sizeof s / sizeof s[0]), NULL, e);
}

#ifdef BPC_HAVE_NCCL
int bp_cuda_load_nccl(bp_err *e) {
    static int done;
    static const char *const names[] = {"libnccl.so.2", "libnccl.so", NULL};
    static sym s[] = {BP_NCCL_FUNCS(BP_SYM_NCCL)};
    return load(&done, names, 1, s, (int)(sizeof s / sizeof s[0]), NULL, e);
}
#endif

void bp_cu_describe(CUresult r, char *buf, size_t len) {
    const char *name = NULL, *text = NULL;
    if (bp_cu.cuGetErrorName && bp_cu.cuGetErrorName(r, &name) != CUDA_SUCCESS) name = NULL;
    if (bp_cu.cuGetErrorString && bp_cu.cuGetErrorString(r, &text) != CUDA_SUCCESS) text = NULL;
    if (!name && r == CUDA_ERROR_STUB_LIBRARY) {
        name = "CUDA_ERROR_STUB_LIBRARY";
        text = "the libcuda.so.1 found is the CUDA toolkit's stub, not an NVIDIA driver";
    }
    if (name) snprintf(buf, len, "%s (%s)", name, text ? text : "no description");
    else snprintf(buf, len, "CUDA error %d", (int)r);
}

int bp_cu_check(CUresult r, const char *call, const char *file, int line, bp_err *e) {
    if (r == CUDA_SUCCESS) return 0;
    char d[256];
    bp_cu_describe(r, d, sizeof d);
    return bp_fail(e, "%s:%d: %s failed: %s", file, line, call, d);
}

int bp_nvrtc_check(nvrtcResult r, const char *call, const char *file, int line, bp_err *e) {
    if (r == NVRTC_SUCCESS) return 0;
    return bp_fail(e, "%s:%d: %s failed: %s", file, line, call,
                   bp_nvrtc.nvrtcGetErrorString ? bp_nvrtc.nvrtcGetErrorString(r) : "NVRTC error");
}

int bp_cublas_check(cublasStatus_t r, const char *call, const char *file, int line, bp_err *e) {
    if (r == CUBLAS_STATUS_SUCCESS) return 0;
    return bp_fail(e, "%s:%d: %s failed: %s (%s)", file, line, call,
                   bp_cublas.cublasGetStatusName ? bp_cublas.cublasGetStatusName(r) : "cuBLAS error",
                   bp_cublas.cublasGetStatusString ? bp_cublas.cublasGetStatusString(r) : "?");
}

#ifdef BPC_HAVE_NCCL
int bp_nccl_check(ncclResult_t r, ncclComm_t comm, const char *call, const char *file, int line, bp_err *e) {
    if (r == ncclSuccess) return 0;
    const char *last = bp_nccl.ncclGetLastError ? bp_nccl.ncclGetLastError(comm) : NULL;
    return bp_fail(e, "%s:%d: %s failed: %s%s%.400s", file, line, call,
                   bp_nccl.ncclGetErrorString ? bp_nccl.ncclGetErrorString(r) : "NCCL error",
                   last && *last ? ": " : "", last ? last : "");
}
#endif

#else
/* Built without the CUDA headers: nothing to load; see backend_cuda.c and jit_cuda.c. */
typedef int bp_cuda_api_unused;
#endif

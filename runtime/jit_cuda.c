/* jit_cuda.c: the CUDA target's JIT: emitted CUDA -> PTX or cubin through NVRTC,
 * cached on disk by content hash.
 *
 * As in tiny-cuda-nn, the compile options are written into the compiled text as a
 * comment, so the cache key (SHA-256 of that text) covers the source, the options, the
 * architecture and the NVRTC version at once, and a reader of a kept source file sees
 * how it was compiled. A failed compile keeps the source and the full log beside the
 * cache, because the generated source is what the user needs to see.
 */
#include "jit_cuda.h"
#include "cuda_api.h"
#include <string.h>

int bp_cuda_archs_ok(const char *s) {
    if (!*s) return 0;
    while (*s) {
        int n = !strncmp(s, "sm_", 3) ? 3 : !strncmp(s, "compute_", 8) ? 8 : 0, d = 0;
        if (!n) return 0;
        for (s += n; *s >= '0' && *s <= '9'; s++) d++;
        if (*s == 'a' || *s == 'f') s++;
        if (d < 2 || d > 3 || (*s && *s != ',')) return 0;
        if (*s == ',' && !*++s) return 0;
    }
    return 1;
}

#ifdef BPC_HAVE_CUDA
#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "files.h"
#include "jit_c.h" /* bp_cache_dir */

/* compute_XY or sm_XY, with an optional a/f suffix (sm_90a). */
static int valid_arch(const char *a) {
    const char *p = !strncmp(a, "compute_", 8) ? a + 8 : !strncmp(a, "sm_", 3) ? a + 3 : NULL;
    if (!p || !isdigit((unsigned char)*p) || strlen(a) > 16) return 0;
    while (isdigit((unsigned char)*p)) p++;
    if (*p == 'a' || *p == 'f') p++;
    return *p == 0;
}

static int sha256_hex(const char *s, size_t n, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(s, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) return -1;
    for (unsigned i = 0; i < mdlen; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* The first line of the log that mentions an error, else its first line. */
static void first_error(const char *log, char *out, size_t len) {
    const char *s = log ? strstr(log, "error") : NULL;
    if (!log || !*log) { snprintf(out, len, "(NVRTC gave no log)"); return; }
    if (!s) s = log;
    while (s > log && s[-1] != '\n') s--;
    size_t n = strcspn(s, "\n");
    snprintf(out, len, "%.*s", (int)(n < 400 ? n : 400), s);
}

int bp_nvrtc_archs(int *archs, int max, bp_err *e) {
    bp_err le;
    if (bp_cuda_load_nvrtc(&le)) return bp_fail(e, "NVRTC unavailable: %s", le.msg);
    int n = 0;
    if (BP_NVRTC(e, bp_nvrtc.nvrtcGetNumSupportedArchs(&n))) return -1;
    int *a = malloc(sizeof *a * (size_t)(n > 0 ? n : 1));
    if (!a) return bp_fail(e, "out of memory");
    if (BP_NVRTC(e, bp_nvrtc.nvrtcGetSupportedArchs(a))) { free(a); return -1; }
    for (int i = 1; i < n; i++) /* ascending, whatever order NVRTC gave */
        for (int j = i; j > 0 && a[j - 1] > a[j]; j--) { int t = a[j]; a[j] = a[j - 1]; a[j - 1] = t; }
    int k = n < max ? n : max;
    memcpy(archs, a, sizeof *a * (size_t)(k > 0 ? k : 0));
    free(a);
    return k;
}

int bp_cuda_archs_supported(const char *s, bp_err *e) {
    int archs[128];
    int n = bp_nvrtc_archs(archs, 128, e);
    if (n < 0) return -1;
    while (*s) {
        const char *w = s + (s[0] == 's' ? 3 : 8); /* past sm_ or compute_ */
        int v = atoi(w), found = 0;
        for (int i = 0; i < n; i++) found |= archs[i] == v;
        if (!found) {
            int major = 0, minor = 0, o;
            bp_nvrtc.nvrtcVersion(&major, &minor);
            o = snprintf(e->msg, sizeof e->msg, "%.*s: NVRTC %d.%d compiles for", (int)strcspn(s, ","),
                         s, major, minor);
            for (int i = 0; i < n && o > 0 && (size_t)o < sizeof e->msg - 16; i++)
                o += snprintf(e->msg + o, sizeof e->msg - (size_t)o, "%s %d", i ? "," : "", archs[i]);
            if (o > 0 && (size_t)o < sizeof e->msg - 64)
                snprintf(e->msg + o, sizeof e->msg - (size_t)o, " (as compute_XY or sm_XY)");
            return 0;
        }
        s += strcspn(s, ",");
        if (*s) s++;
    }
    return 1;
}

int bp_nvrtc_compile(const char *source, const char *name, const char *arch, char **image,
                     size_t *image_len, char **log, bp_err *e) {
    *image = NULL;
    *image_len = 0;
    if (log) *log = NULL;
    if (!arch || !valid_arch(arch))
        return bp_fail(e, "invalid CUDA architecture '%s': use compute_XY (PTX) or sm_XY (cubin), "
                          "e.g. compute_90", arch ? arch : "");
    bp_err le;
    if (bp_cuda_load_nvrtc(&le)) return bp_fail(e, "NVRTC unavailable: %s", le.msg);
    int major = 0, minor = 0;
    if (BP_NVRTC(e, bp_nvrtc.nvrtcVersion(&major, &minor))) return -1;
    int cubin = !strncmp(arch, "sm_", 3);

    char archopt[64];
    snprintf(archopt, sizeof archopt, "--gpu-architecture=%s", arch);
    const char *opts[] = {"--std=c++17", "-default-device", archopt, "-lineinfo"};
    enum { NOPT = sizeof opts / sizeof opts[0] };

    /* the compiled text: the source, then one comment line naming how it is compiled */
    size_t slen = strlen(source);
    char tail[512];
    int tn = snprintf(tail, sizeof tail, "%s// bpc: NVRTC %d.%d compiled %.200s with",
                      slen && source[slen - 1] != '\n' ? "\n" : "", major, minor, name);
    for (int i = 0; i < NOPT; i++) tn += snprintf(tail + tn, sizeof tail - (size_t)tn, " %s", opts[i]);
    tn += snprintf(tail + tn, sizeof tail - (size_t)tn, "\n");
    char *text = malloc(slen + (size_t)tn + 1);
    if (!text) return bp_fail(e, "out of memory compiling %s", name);
    memcpy(text, source, slen);
    memcpy(text + slen, tail, (size_t)tn + 1);

    char hash[65], dirbuf[4096], path[4200] = "";
    const char *dir = bp_cache_dir(dirbuf, sizeof dirbuf, &le);
    if (sha256_hex(text, slen + (size_t)tn, hash)) dir = NULL;
    if (dir) {
        snprintf(path, sizeof path, "%s/%s.%s", dir, hash, cubin ? "cubin" : "ptx");
        size_t n = 0;
        char *hit = NULL;
        if (!bp_read_file(path, &hit, &n) && n > 0) {
            free(text);
            *image = hit;
            *image_len = n;
            return 0;
        }
        free(hit); /* unreadable or empty: a miss */
    }

    int rc = -1;
    nvrtcProgram prog = NULL;
    char *lg = NULL, *out = NULL;
    if (BP_NVRTC(e, bp_nvrtc.nvrtcCreateProgram(&prog, text, name, 0, NULL, NULL))) goto done;
    nvrtcResult cr = bp_nvrtc.nvrtcCompileProgram(prog, NOPT, opts);
    size_t ln = 0;
    if (bp_nvrtc.nvrtcGetProgramLogSize(prog, &ln) == NVRTC_SUCCESS && ln > 1 && (lg = malloc(ln))) {
        if (bp_nvrtc.nvrtcGetProgramLog(prog, lg) != NVRTC_SUCCESS) { free(lg); lg = NULL; }
        else lg[ln - 1] = 0;
    }
    if (cr != NVRTC_SUCCESS) {
        char first[512], kept[4400] = "";
        first_error(lg, first, sizeof first);
        if (dir) {
            char fs[4200], fl[4200];
            snprintf(fs, sizeof fs, "%s/failed-%.16s.cu", dir, hash);
            snprintf(fl, sizeof fl, "%s/failed-%.16s.log", dir, hash);
            const char *body = lg ? lg : bp_nvrtc.nvrtcGetErrorString(cr);
            if (!bp_write_atomic(fs, text, slen + (size_t)tn) && !bp_write_atomic(fl, body, strlen(body)))
                snprintf(kept, sizeof kept, "; the full log is in %.2000s, the source in %.2000s", fl, fs);
        }
        bp_fail(e, "NVRTC %d.%d could not compile %s for %s (%s): %s%s", major, minor, name, arch,
                bp_nvrtc.nvrtcGetErrorString(cr), first, kept);
        goto done;
    }
    size_t size = 0;
    if (BP_NVRTC(e, cubin ? bp_nvrtc.nvrtcGetCUBINSize(prog, &size) : bp_nvrtc.nvrtcGetPTXSize(prog, &size)))
        goto done;
    if (size == 0) { bp_fail(e, "NVRTC produced an empty %s for %s", cubin ? "cubin" : "PTX", arch); goto done; }
    if (!(out = malloc(size + 1))) { bp_fail(e, "out of memory compiling %s", name); goto done; }
    if (BP_NVRTC(e, cubin ? bp_nvrtc.nvrtcGetCUBIN(prog, out) : bp_nvrtc.nvrtcGetPTX(prog, out))) goto done;
    out[size] = 0;
    if (!cubin) size = strlen(out); /* the PTX size counts its terminating NUL */
    if (dir) (void)bp_write_atomic(path, out, size); /* a cache that cannot be written costs only time */
    *image = out;
    *image_len = size;
    out = NULL;
    rc = 0;
done:
    if (prog) bp_nvrtc.nvrtcDestroyProgram(&prog);
    free(out);
    free(text);
    if (log) *log = lg;
    else free(lg);
    return rc;
}

#else /* built without the CUDA headers */

int bp_nvrtc_compile(const char *source, const char *name, const char *arch, char **image,
                     size_t *image_len, char **log, bp_err *e) {
    (void)source; (void)name; (void)arch;
    *image = NULL;
    *image_len = 0;
    if (log) *log = NULL;
    return bp_fail(e, BP_CUDA_NOT_BUILT);
}

int bp_nvrtc_archs(int *archs, int max, bp_err *e) {
    (void)archs; (void)max;
    return bp_fail(e, BP_CUDA_NOT_BUILT);
}

int bp_cuda_archs_supported(const char *s, bp_err *e) {
    (void)s;
    return bp_fail(e, BP_CUDA_NOT_BUILT);
}

#endif

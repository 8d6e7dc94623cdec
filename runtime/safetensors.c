/* safetensors.c: the safetensors writer and reader (format and API: safetensors.h).
 *
 * The JSON header is built and parsed with cJSON only. The writer puts the tensors'
 * bytes in the data section ordered by element size, largest first (as the reference
 * writer does), and pads the header with spaces to a multiple of 8 bytes, so every
 * tensor is aligned to its element size in the file. The reader copies the data
 * section into its own allocation and hands out pointers into it; a tensor that a
 * foreign writer left misaligned is copied to an aligned block of its own.
 */
#include "safetensors.h"
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation refuses headers above 100 MB; so do we. */
#define ST_MAX_HEADER 100000000ULL
/* Integers in the JSON header are doubles in cJSON: exact up to 2^53. */
#define ST_MAX_INT 9007199254740992.0

static const struct { const char *name; size_t size; } dtypes[] = {
    [BP_ST_F32] = {"F32", 4}, [BP_ST_F64] = {"F64", 8}, [BP_ST_I32] = {"I32", 4}, [BP_ST_U8] = {"U8", 1},
};
#define NDTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *bp_st_dtype_name(bp_st_dtype t) {
    return (int)t >= 0 && (int)t < NDTYPES ? dtypes[t].name : "?";
}

size_t bp_st_dtype_size(bp_st_dtype t) {
    return (int)t >= 0 && (int)t < NDTYPES ? dtypes[t].size : 0;
}

int bp_st_dtype_parse(const char *s, bp_st_dtype *t) {
    for (int i = 0; i < NDTYPES; i++)
        if (!strcmp(s, dtypes[i].name)) { *t = (bp_st_dtype)i; return 0; }
    return -1;
}

long bp_st_numel(const bp_st_tensor *t) {
    long n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static int host_is_little(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* Reverses the bytes of each esize-byte element of buf (big-endian hosts only). */
static void swap_elems(unsigned char *buf, size_t nbytes, size_t esize) {
    for (size_t i = 0; esize > 1 && i + esize <= nbytes; i += esize)
        for (size_t a = 0, b = esize - 1; a < b; a++, b--) {
            unsigned char c = buf[i + a];
            buf[i + a] = buf[i + b];
            buf[i + b] = c;
        }
}

/* prod(shape) * esize, or -1 on overflow / negative dimension. */
static long long shape_bytes(const long *shape, int ndim, size_t esize) {
    unsigned long long n = esize;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] && n > (unsigned long long)INT64_MAX / (unsigned long long)shape[i]) return -1;
        n *= (unsigned long long)shape[i];
    }
    return n > (unsigned long long)INT64_MAX ? -1 : (long long)n;
}

/* ---- writing ------------------------------------------------------------------------ */

static int check_tensor(const char *path, const bp_st_tensor *t, int i, bp_err *e) {
    if (!t->name || !t->name[0]) return bp_fail(e, "%s: tensor %d has no name", path, i);
    if (!strcmp(t->name, "__metadata__"))
        return bp_fail(e, "%s: a tensor may not be called __metadata__", path);
    if ((int)t->dtype < 0 || (int)t->dtype >= NDTYPES)
        return bp_fail(e, "%s: tensor %s: unknown dtype %d", path, t->name, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > BP_ST_MAX_DIMS)
        return bp_fail(e, "%s: tensor %s: %d dimensions (0 to %d allowed)", path, t->name, t->ndim,
                       BP_ST_MAX_DIMS);
    long long want = shape_bytes(t->shape, t->ndim, dtypes[t->dtype].size);
    if (want < 0) return bp_fail(e, "%s: tensor %s: negative or too large shape", path, t->name);
    if ((unsigned long long)want != (unsigned long long)t->nbytes)
        return bp_fail(e, "%s: tensor %s: %zu bytes given but its shape and dtype need %lld", path,
                       t->name, t->nbytes, want);
    if (t->nbytes && !t->data) return bp_fail(e, "%s: tensor %s: no data", path, t->name);
    return 0;
}

/* Writes nbytes of data in little-endian order. Returns 0, or -1 with errno set. */
static int write_le(FILE *f, const void *data, size_t nbytes, size_t esize) {
    if (!nbytes) return 0;
    if (host_is_little() || esize == 1) return fwrite(data, 1, nbytes, f) == nbytes ? 0 : -1;
    unsigned char chunk[65536];
    const unsigned char *p = data;
    while (nbytes) {
        size_t k = nbytes < sizeof chunk ? nbytes : sizeof chunk;
        memcpy(chunk, p, k);
        swap_elems(chunk, k, esize);
        if (fwrite(chunk, 1, k, f) != k) return -1;
        p += k;
        nbytes -= k;
    }
    return 0;
}

/* The directory part of path, fsync'ed so that the rename itself is durable. Best
 * effort: some file systems refuse to fsync a directory, and nothing is lost then. */
static void sync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(copy);
}

int bp_st_write(const char *path, const bp_st_tensor *t, int n, const bp_st_meta *meta,
                int nmeta, bp_err *e) {
    if (n < 0 || nmeta < 0 || (n && !t) || (nmeta && !meta))
        return bp_fail(e, "%s: invalid arguments to the safetensors writer", path);
    for (int i = 0; i < n; i++) {
        if (check_tensor(path, &t[i], i, e)) return -1;
        for (int j = 0; j < i; j++)
            if (!strcmp(t[i].name, t[j].name))
                return bp_fail(e, "%s: two tensors are called %s", path, t[i].name);
    }
    for (int i = 0; i < nmeta; i++)
        if (!meta[i].key || !meta[i].value)
            return bp_fail(e, "%s: metadata entry %d has no key or no value", path, i);

    /* data order: element size descending, stable; keeps every tensor aligned */
    int *order = malloc(sizeof *order * (size_t)(n ? n : 1));
    unsigned long long *begin = malloc(sizeof *begin * (size_t)(n ? n : 1));
    if (!order || !begin) { free(order); free(begin); return bp_fail(e, "%s: out of memory", path); }
    int k = 0;
    for (size_t sz = 8; sz >= 1; sz /= 2)
        for (int i = 0; i < n; i++)
            if (dtypes[t[i].dtype].size == sz) order[k++] = i;
    unsigned long long off = 0;
    for (int j = 0; j < k; j++) {
        begin[order[j]] = off;
        off += t[order[j]].nbytes;
    }

    /* the JSON header, in the caller's order, metadata first */
    cJSON *root = cJSON_CreateObject();
    int oom = !root;
    if (!oom && nmeta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        oom = !m;
        for (int i = 0; !oom && i < nmeta; i++) oom = !cJSON_AddStringToObject(m, meta[i].key, meta[i].value);
    }
    for (int i = 0; !oom && i < n; i++) {
        cJSON *o = cJSON_AddObjectToObject(root, t[i].name), *shape = NULL, *offs = NULL;
        oom = !o || !cJSON_AddStringToObject(o, "dtype", dtypes[t[i].dtype].name) ||
              !(shape = cJSON_AddArrayToObject(o, "shape"));
        for (int d = 0; !oom && d < t[i].ndim; d++) {
            cJSON *v = cJSON_CreateNumber((double)t[i].shape[d]);
            oom = !v || !cJSON_AddItemToArray(shape, v);
        }
        if (!oom) oom = !(offs = cJSON_AddArrayToObject(o, "data_offsets"));
        double be[2] = {(double)begin[i], (double)(begin[i] + t[i].nbytes)};
        for (int d = 0; !oom && d < 2; d++) {
            cJSON *v = cJSON_CreateNumber(be[d]);
            oom = !v || !cJSON_AddItemToArray(offs, v);
        }
    }
    char *json = oom ? NULL : cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) { free(order); free(begin); return bp_fail(e, "%s: out of memory building the header", path); }
    size_t hlen = strlen(json), padded = (hlen + 7) / 8 * 8;

    size_t tlen = strlen(path) + 5;
    char *tmp = malloc(tlen);
    if (!tmp) { free(json); free(order); free(begin); return bp_fail(e, "%s: out of memory", path); }
    snprintf(tmp, tlen, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int rc = 0;
    if (!f) {
        rc = bp_fail(e, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    } else {
        unsigned char len8[8];
        for (int b = 0; b < 8; b++) len8[b] = (unsigned char)((unsigned long long)padded >> (8 * b));
        int bad = fwrite(len8, 1, 8, f) != 8 || fwrite(json, 1, hlen, f) != hlen;
        for (size_t p = hlen; !bad && p < padded; p++) bad = fputc(' ', f) == EOF;
        for (int j = 0; !bad && j < k; j++)
            bad = write_le(f, t[order[j]].data, t[order[j]].nbytes, dtypes[t[order[j]].dtype].size);
        if (!bad) bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
        int err = errno;
        if (fclose(f) != 0 && !bad) { bad = 1; err = errno; }
        if (!bad && rename(tmp, path) != 0) {
            rc = bp_fail(e, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        } else if (bad) {
            rc = bp_fail(e, "%s: write failed: %s (disk full?)", path, strerror(err));
        }
        if (rc) remove(tmp);
        else sync_dir(path);
    }
    free(tmp);
    free(json);
    free(order);
    free(begin);
    return rc;
}

/* ---- reading ------------------------------------------------------------------------ */

typedef struct {
    unsigned char *data;   /* the data section */
    char **strs;           /* owned strings: names, metadata keys and values */
    int nstrs;
    void **blocks;         /* aligned copies of misaligned tensors */
    int nblocks;
} st_store;

void bp_st_free(bp_st_file *f) {
    if (!f) return;
    st_store *s = f->store_;
    if (s) {
        free(s->data);
        for (int i = 0; i < s->nstrs; i++) free(s->strs[i]);
        free(s->strs);
        for (int i = 0; i < s->nblocks; i++) free(s->blocks[i]);
        free(s->blocks);
        free(s);
    }
    free(f->tensors);
    free(f->meta);
    memset(f, 0, sizeof *f);
}

static char *keep_str(st_store *s, const char *str) {
    char **v = realloc(s->strs, sizeof *v * (size_t)(s->nstrs + 1));
    if (!v) return NULL;
    s->strs = v;
    char *c = strdup(str);
    if (c) s->strs[s->nstrs++] = c;
    return c;
}

/* A JSON number that is a non-negative integer below 2^53. */
static int json_uint(const cJSON *v, unsigned long long *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d >= ST_MAX_INT || floor(d) != d) return -1;
    *out = (unsigned long long)d;
    return 0;
}

typedef struct { unsigned long long b, e; int idx; } span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->b != y->b) return x->b < y->b ? -1 : 1;
    if (x->e != y->e) return x->e < y->e ? -1 : 1;
    return 0;
}

/* Parses one tensor entry of the header into t (name set by the caller). */
static int parse_entry(const char *path, const cJSON *o, bp_st_tensor *t, unsigned long long dlen,
                       unsigned long long be[2], bp_err *e) {
    const char *nm = o->string;
    if (!cJSON_IsObject(o)) return bp_fail(e, "%s: header entry %s is not an object", path, nm);
    for (const cJSON *c = o->child; c; c = c->next)
        if (strcmp(c->string, "dtype") && strcmp(c->string, "shape") && strcmp(c->string, "data_offsets"))
            return bp_fail(e, "%s: tensor %s: unexpected field \"%s\"", path, nm, c->string);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(o, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(o, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(o, "data_offsets");
    if (!cJSON_IsString(dt)) return bp_fail(e, "%s: tensor %s: no \"dtype\" string", path, nm);
    if (bp_st_dtype_parse(dt->valuestring, &t->dtype))
        return bp_fail(e, "%s: tensor %s: dtype %s is not supported (F32, F64, I32, U8)", path, nm,
                       dt->valuestring);
    if (!cJSON_IsArray(sh)) return bp_fail(e, "%s: tensor %s: no \"shape\" array", path, nm);
    int nd = cJSON_GetArraySize(sh);
    if (nd > BP_ST_MAX_DIMS)
        return bp_fail(e, "%s: tensor %s: %d dimensions, at most %d supported", path, nm, nd, BP_ST_MAX_DIMS);
    t->ndim = nd;
    int d = 0;
    for (const cJSON *v = sh->child; v; v = v->next, d++) {
        unsigned long long u;
        if (json_uint(v, &u) || u > (unsigned long long)INT64_MAX)
            return bp_fail(e, "%s: tensor %s: shape[%d] is not a non-negative integer", path, nm, d);
        t->shape[d] = (long)u;
    }
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || json_uint(of->child, &be[0]) ||
        json_uint(of->child->next, &be[1]))
        return bp_fail(e, "%s: tensor %s: \"data_offsets\" must be two non-negative integers", path, nm);
    if (be[1] < be[0]) return bp_fail(e, "%s: tensor %s: data_offsets end before they begin", path, nm);
    if (be[1] > dlen)
        return bp_fail(e, "%s: tensor %s: data_offsets [%llu, %llu] run past the data section (%llu bytes); "
                          "the file is truncated or corrupt", path, nm, be[0], be[1], dlen);
    long long want = shape_bytes(t->shape, t->ndim, dtypes[t->dtype].size);
    if (want < 0) return bp_fail(e, "%s: tensor %s: the shape's size overflows", path, nm);
    if ((unsigned long long)want != be[1] - be[0])
        return bp_fail(e, "%s: tensor %s: shape and dtype %s need %lld bytes but data_offsets span %llu",
                       path, nm, dtypes[t->dtype].name, want, be[1] - be[0]);
    t->nbytes = (size_t)(be[1] - be[0]);
    return 0;
}

static int read_all(const char *path, FILE *f, unsigned long long size, bp_st_file *out, bp_err *e) {
    unsigned char len8[8];
    if (size < 8 || fread(len8, 1, 8, f) != 8)
        return bp_fail(e, "%s: too short for a safetensors file (%llu bytes)", path, size);
    unsigned long long hlen = 0;
    for (int b = 0; b < 8; b++) hlen |= (unsigned long long)len8[b] << (8 * b);
    if (hlen > size - 8)
        return bp_fail(e, "%s: header length %llu exceeds the file size %llu; not a safetensors file, "
                          "or truncated", path, hlen, size);
    if (hlen > ST_MAX_HEADER) return bp_fail(e, "%s: header of %llu bytes is too large", path, hlen);
    if (hlen < 2) return bp_fail(e, "%s: empty header", path);
    char *hdr = malloc((size_t)hlen + 1);
    if (!hdr) return bp_fail(e, "%s: out of memory", path);
    if (fread(hdr, 1, (size_t)hlen, f) != hlen) { free(hdr); return bp_fail(e, "%s: read error", path); }
    hdr[hlen] = 0;
    if (hdr[0] != '{') { free(hdr); return bp_fail(e, "%s: the header is not a JSON object", path); }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    int trailing = 0;
    for (const char *p = end; root && p && p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') trailing = 1;
    if (!root || !cJSON_IsObject(root) || trailing) {
        long at = end ? (long)(end - hdr) : -1;
        const char *ep = cJSON_GetErrorPtr();
        if (!root && ep && ep >= hdr && ep <= hdr + hlen) at = (long)(ep - hdr);
        cJSON_Delete(root);
        free(hdr);
        return bp_fail(e, "%s: the header is not valid JSON (near byte %ld of %llu)", path, at, hlen);
    }
    unsigned long long dlen = size - 8 - hlen;
    st_store *s = calloc(1, sizeof *s);
    int n = 0, nm = 0, rc = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!strcmp(c->string, "__metadata__")) nm += cJSON_GetArraySize(c);
        else n++;
    }
    out->store_ = s;
    out->tensors = calloc((size_t)(n ? n : 1), sizeof *out->tensors);
    out->meta = calloc((size_t)(nm ? nm : 1), sizeof *out->meta);
    span *sp = calloc((size_t)(n ? n : 1), sizeof *sp);
    if (s) s->data = malloc((size_t)(dlen ? dlen : 1));
    if (!s || !out->tensors || !out->meta || !sp || !s->data) rc = bp_fail(e, "%s: out of memory", path);
    int seen_meta = 0;
    for (const cJSON *c = root->child; !rc && c; c = c->next) {
        for (const cJSON *p = root->child; p != c; p = p->next)
            if (!strcmp(p->string, c->string)) { rc = bp_fail(e, "%s: \"%s\" appears twice in the header", path, c->string); break; }
        if (rc) break;
        if (!strcmp(c->string, "__metadata__")) {
            if (seen_meta++ || !cJSON_IsObject(c)) { rc = bp_fail(e, "%s: __metadata__ must be one object", path); break; }
            for (const cJSON *m = c->child; !rc && m; m = m->next) {
                if (!cJSON_IsString(m)) { rc = bp_fail(e, "%s: __metadata__ value of \"%s\" is not a string", path, m->string); break; }
                bp_st_meta *me = &out->meta[out->nmeta];
                if (!(me->key = keep_str(s, m->string)) || !(me->value = keep_str(s, m->valuestring)))
                    rc = bp_fail(e, "%s: out of memory", path);
                else out->nmeta++;
            }
            continue;
        }
        bp_st_tensor *t = &out->tensors[out->n];
        unsigned long long be[2] = {0, 0};
        if (parse_entry(path, c, t, dlen, be, e)) { rc = -1; break; }
        if (!(t->name = keep_str(s, c->string))) { rc = bp_fail(e, "%s: out of memory", path); break; }
        sp[out->n] = (span){be[0], be[1], out->n};
        out->n++;
    }
    /* the spans, sorted, must tile the data section exactly */
    if (!rc) qsort(sp, (size_t)out->n, sizeof *sp, cmp_span);
    unsigned long long at = 0;
    for (int i = 0; !rc && i < out->n; i++) {
        const char *nm_i = out->tensors[sp[i].idx].name;
        if (sp[i].b < at)
            rc = bp_fail(e, "%s: tensor %s overlaps tensor %s in the data section", path, nm_i,
                         out->tensors[sp[i - 1].idx].name);
        else if (sp[i].b > at)
            rc = bp_fail(e, "%s: %llu unused bytes before tensor %s in the data section", path,
                         sp[i].b - at, nm_i);
        at = sp[i].e;
    }
    if (!rc && at != dlen)
        rc = bp_fail(e, "%s: the tensors cover %llu bytes but the data section holds %llu", path, at, dlen);
    if (!rc && dlen && fread(s->data, 1, (size_t)dlen, f) != dlen) rc = bp_fail(e, "%s: read error", path);
    for (int i = 0; !rc && i < out->n; i++) {
        bp_st_tensor *t = &out->tensors[sp[i].idx];
        size_t es = dtypes[t->dtype].size;
        unsigned char *p = s->data + sp[i].b;
        if (!host_is_little()) swap_elems(p, t->nbytes, es);
        if ((uintptr_t)p % es) {
            void **bl = realloc(s->blocks, sizeof *bl * (size_t)(s->nblocks + 1));
            void *copy = malloc(t->nbytes);
            if (bl) s->blocks = bl;
            if (!bl || !copy) { free(copy); rc = bp_fail(e, "%s: out of memory", path); break; }
            memcpy(copy, p, t->nbytes);
            s->blocks[s->nblocks++] = copy;
            p = copy;
        }
        t->data = p;
    }
    free(sp);
    cJSON_Delete(root);
    free(hdr);
    return rc;
}

int bp_st_read(const char *path, bp_st_file *out, bp_err *e) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return bp_fail(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc;
    if (fstat(fileno(f), &st) != 0) rc = bp_fail(e, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode)) rc = bp_fail(e, "%s: not a regular file", path);
    else rc = read_all(path, f, (unsigned long long)st.st_size, out, e);
    fclose(f);
    if (rc) bp_st_free(out);
    return rc;
}

const bp_st_tensor *bp_st_find(const bp_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *bp_st_meta_get(const bp_st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[i].key, key)) return f->meta[i].value;
    return NULL;
}

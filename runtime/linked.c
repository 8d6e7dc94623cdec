/* linked.c: the table of kernels linked into a standalone trainer (see linked.h).
 * A handful of entries at most (one per rule and target), so a plain list will do. */
#include "linked.h"
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bp_linked_only;

typedef struct {
    char key[65];
    int n;                          /* C: kernels; -1: a CUDA image */
    const char *const *names;
    void (*const *fns)(void);
    char arch[24];
    const unsigned char *image;
    size_t len;
} entry;

enum { MAX_ENTRIES = 256 };
static entry table[MAX_ENTRIES];
static int nentries;

void bp_linked_key(const char *source, char hex[65]) {
    const char *body = source;
    if (!strncmp(body, "/*", 2)) {
        const char *end = strstr(body, "*/");
        if (end) body = end + 2;
    }
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, body, strlen(body));
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static entry *add(const char *key) {
    if (nentries == MAX_ENTRIES) return NULL;
    entry *t = &table[nentries++];
    memset(t, 0, sizeof *t);
    snprintf(t->key, sizeof t->key, "%s", key);
    return t;
}

void bp_linked_add_c(const char *key, int n, const char *const *names, void (*const *fns)(void)) {
    entry *t = add(key);
    if (!t) return;
    t->n = n;
    t->names = names;
    t->fns = fns;
}

void bp_linked_add_image(const char *key, const char *arch, const unsigned char *image, size_t len) {
    entry *t = add(key);
    if (!t) return;
    t->n = -1;
    snprintf(t->arch, sizeof t->arch, "%s", arch);
    t->image = image;
    t->len = len;
}

int bp_linked_c(const char *source, const char *name, void (**fn)(void), bp_err *e) {
    if (!nentries) return 0;
    char key[65];
    bp_linked_key(source, key);
    for (int i = 0; i < nentries; i++) {
        const entry *t = &table[i];
        if (t->n < 0 || strcmp(t->key, key)) continue;
        if (!name) return 1;
        for (int k = 0; k < t->n; k++)
            if (!strcmp(t->names[k], name)) { *fn = t->fns[k]; return 1; }
        return bp_fail(e, "internal error: kernel %s missing from the linked model", name);
    }
    return 0;
}

int bp_linked_image(const char *source, int cc, const unsigned char **image, const char **arch) {
    if (!nentries) return 0;
    char key[65];
    bp_linked_key(source, key);
    const entry *best = NULL;
    int best_arch = 0;
    for (int i = 0; i < nentries; i++) {
        const entry *t = &table[i];
        if (t->n >= 0 || strcmp(t->key, key)) continue;
        int sm = !strncmp(t->arch, "sm_", 3), a = atoi(t->arch + (sm ? 3 : 8));
        if (sm && a == cc) { best = t; break; }
        if (!sm && a <= cc && a > best_arch) { best = t; best_arch = a; }
    }
    if (!best) return 0;
    *image = best->image;
    *arch = best->arch;
    return 1;
}

int bp_linked_refuse(bp_err *e, const char *what) {
    return bp_fail(e, "this trainer holds no %s kernels for this run (it was built by `bpc build` "
                      "for one target and the model's batch size, with both rules); it compiles "
                      "nothing at run time: rebuild it with the target you need", what);
}

/* ir_json.c: see ir_json.h. Built with cJSON; never by hand. */
#include "ir_json.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *shape_json(bp_shape s) {
    int v[3] = {s.h, s.w, s.c};
    return cJSON_CreateIntArray(v, 3);
}

cJSON *bp_ir_layers_json(const bp_ir *ir) {
    cJSON *layers = cJSON_CreateArray();
    for (int i = 0; layers && i < ir->n; i++) {
        const bp_layer *L = &ir->layers[i];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(layers, o)) { cJSON_Delete(o); cJSON_Delete(layers); return NULL; }
        cJSON_AddNumberToObject(o, "index", i);
        cJSON_AddStringToObject(o, "kind", bp_layer_kind_name(L->kind));
        cJSON_AddItemToObject(o, "in", shape_json(L->in));
        cJSON_AddItemToObject(o, "out", shape_json(L->out));
        cJSON_AddNumberToObject(o, "units", L->units);
        cJSON_AddNumberToObject(o, "ksize", L->ksize);
        cJSON_AddNumberToObject(o, "stride", L->stride);
        cJSON_AddBoolToObject(o, "pad_same", L->pad_same);
        cJSON_AddNumberToObject(o, "pad_top", L->pad_top);
        cJSON_AddNumberToObject(o, "pad_left", L->pad_left);
        cJSON_AddBoolToObject(o, "relu", L->relu);
        cJSON_AddNumberToObject(o, "rate", (double)L->rate);
        cJSON_AddNumberToObject(o, "epsilon", (double)L->epsilon);
        cJSON_AddStringToObject(o, "feedback", bp_feedback_name(L->feedback));
        cJSON_AddNumberToObject(o, "fb_decay", (double)L->fb_decay);
    }
    return layers;
}

int bp_json_write(const char *path, const cJSON *v, bp_err *e) {
    char *txt = cJSON_Print(v);
    if (!txt) return bp_fail(e, "out of memory");
    FILE *f = fopen(path, "w");
    if (!f) { free(txt); return bp_fail(e, "%s: %s", path, strerror(errno)); }
    int bad = fputs(txt, f) == EOF || fputc('\n', f) == EOF;
    bad |= fclose(f) != 0;
    free(txt);
    return bad ? bp_fail(e, "%s: write failed (disk full?)", path) : 0;
}

/* ast.c: constructors and destructors of the syntax tree (ast.h). Lists are freed
 * with loops, not recursion, so that a file with a million statements cannot
 * overflow the stack. */
#include "ast.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *bp_xmalloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fputs("bpc: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

char *bp_xstrndup(const char *s, size_t n) {
    char *p = bp_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static bp_arg *arg_new(bp_arg_kind kind, char *text, bp_span loc) {
    bp_arg *a = bp_xmalloc(sizeof *a);
    a->kind = kind;
    a->text = text;
    a->loc = loc;
    return a;
}

bp_arg *bp_arg_word(char *text, bp_span loc) { return arg_new(BP_ARG_WORD, text, loc); }

bp_arg *bp_arg_num(char *text, bp_span loc) { return arg_new(BP_ARG_NUM, text, loc); }

bp_arg *bp_arg_dims(bp_arg *first, bp_span loc) {
    bp_arg *a = arg_new(BP_ARG_DIMS, NULL, loc);
    a->dims = a->dims_tail = first;
    a->ndims = 1;
    return a;
}

void bp_arg_dims_add(bp_arg *dims, bp_arg *num) {
    dims->dims_tail->next = num;
    dims->dims_tail = num;
    dims->ndims++;
    dims->loc.last_line = num->loc.last_line;
    dims->loc.last_column = num->loc.last_column;
}

bp_stmt *bp_stmt_new(char *head, bp_span loc, bp_arg *args) {
    bp_stmt *s = bp_xmalloc(sizeof *s);
    s->head = head;
    s->loc = loc;
    s->args = args;
    return s;
}

bp_block *bp_block_new(bp_block_kind kind, bp_span loc, char *name, bp_span name_loc,
                       bp_stmt *stmts) {
    bp_block *b = bp_xmalloc(sizeof *b);
    b->kind = kind;
    b->loc = loc;
    b->name = name;
    b->name_loc = name_loc;
    b->stmts = stmts;
    return b;
}

void bp_arg_list_add(bp_arg_list *l, bp_arg *a) {
    if (l->tail) l->tail->next = a;
    else l->head = a;
    l->tail = a;
}

void bp_stmt_list_add(bp_stmt_list *l, bp_stmt *s) {
    if (l->tail) l->tail->next = s;
    else l->head = s;
    l->tail = s;
}

void bp_ast_add(bp_ast *ast, bp_block *b) {
    if (ast->tail) ast->tail->next = b;
    else ast->head = b;
    ast->tail = b;
}

void bp_arg_free(bp_arg *a) {
    while (a) {
        bp_arg *next = a->next;
        bp_arg_free(a->dims); /* one level deep: dims hold only numbers */
        free(a->text);
        free(a);
        a = next;
    }
}

void bp_stmt_free(bp_stmt *s) {
    while (s) {
        bp_stmt *next = s->next;
        free(s->head);
        bp_arg_free(s->args);
        free(s);
        s = next;
    }
}

void bp_block_free(bp_block *b) {
    while (b) {
        bp_block *next = b->next;
        free(b->name);
        bp_stmt_free(b->stmts);
        free(b);
        b = next;
    }
}

void bp_ast_free(bp_ast *ast) {
    if (!ast) return;
    bp_block_free(ast->head);
    ast->head = ast->tail = NULL;
}

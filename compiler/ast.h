/* ast.h: the syntax tree of a .bp file, as the parser builds it.
 *
 * The grammar is deliberately generic: a file is a list of blocks (`model NAME {...}`,
 * `train {...}`), and a block is a list of statements `WORD arg... ;` where an arg is
 * a word, a number or a dimension list `28 x 28 x 1`. What the words mean (layer kinds,
 * options, settings) is decided by the checker (check.c), which can then say
 * "unknown option 'relux' for dense; did you mean 'relu'?" rather than a bare syntax
 * error. Every node keeps its source span for messages.
 */
#ifndef BPC_AST_H
#define BPC_AST_H

#include <stdint.h>
#include "diag.h"

typedef enum { BP_ARG_WORD, BP_ARG_NUM, BP_ARG_DIMS } bp_arg_kind;

typedef struct bp_arg {
    bp_arg_kind kind;
    bp_span loc;
    char *text;          /* WORD: the word; NUM: the number as written; DIMS: NULL */
    /* NUM: */
    int is_int;          /* written without '.' or exponent */
    int neg;             /* written with a leading '-' */
    uint64_t mag;        /* is_int: the magnitude |value|, UINT64_MAX if it overflowed */
    int overflow;        /* is_int: |value| > 2^64 - 1 (reported by whoever reads it) */
    double val;          /* the value as the nearest double; may be +-inf */
    /* DIMS: the NUM args of `A x B x ...`, in order */
    struct bp_arg *dims, *dims_tail;
    int ndims;
    struct bp_arg *next;
} bp_arg;

typedef struct bp_stmt {
    char *head;          /* the first word: a layer kind or a train setting */
    bp_span loc;         /* of the head word */
    bp_arg *args;
    struct bp_stmt *next;
} bp_stmt;

typedef enum { BP_BLOCK_MODEL, BP_BLOCK_TRAIN } bp_block_kind;

typedef struct bp_block {
    bp_block_kind kind;
    bp_span loc;         /* of the `model` / `train` keyword */
    char *name;          /* model name; NULL for train */
    bp_span name_loc;
    bp_stmt *stmts;
    struct bp_block *next;
} bp_block;

/* Lists under construction: head plus tail, so that appending is O(1). */
typedef struct { bp_arg *head, *tail; } bp_arg_list;
typedef struct { bp_stmt *head, *tail; } bp_stmt_list;

typedef struct { bp_block *head, *tail; } bp_ast;

/* Constructors. Strings passed in are taken over (freed with the node). They never
 * return NULL: out of memory ends the process with a message. */
bp_arg *bp_arg_word(char *text, bp_span loc);
bp_arg *bp_arg_num(char *text, bp_span loc);      /* fields set by the caller */
bp_arg *bp_arg_dims(bp_arg *first, bp_span loc);  /* first: a NUM arg */
void bp_arg_dims_add(bp_arg *dims, bp_arg *num);  /* appends, extends the span */
bp_stmt *bp_stmt_new(char *head, bp_span loc, bp_arg *args);
bp_block *bp_block_new(bp_block_kind kind, bp_span loc, char *name, bp_span name_loc,
                       bp_stmt *stmts);

/* Appends to a list; the list owns the node afterwards. */
void bp_arg_list_add(bp_arg_list *l, bp_arg *a);
void bp_stmt_list_add(bp_stmt_list *l, bp_stmt *s);
void bp_ast_add(bp_ast *ast, bp_block *b);

/* Destructors: each frees the node, everything it owns and the rest of its list.
 * NULL is allowed. */
void bp_arg_free(bp_arg *a);
void bp_stmt_free(bp_stmt *s);
void bp_block_free(bp_block *b);
void bp_ast_free(bp_ast *ast);   /* frees the blocks, not `ast` itself */

/* Allocation that never returns NULL (out of memory: message and exit 1).
 * bp_xmalloc returns zeroed memory (calloc): the parser relies on fields it does not
 * set being 0. bp_xstrndup copies exactly n bytes and adds a NUL (memcpy: a NUL
 * inside the n bytes does not stop it, unlike strndup). */
void *bp_xmalloc(size_t n);
char *bp_xstrndup(const char *s, size_t n);

#endif

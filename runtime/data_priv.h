/* data_priv.h: helpers the data readers (mnist.c, cifar.c, tinyimagenet.c, dataset.c,
 * data_cmd.c) share and nobody else needs: whole-file and archive-member reads with
 * size limits, and the one-name-per-line text files that carry class names.
 * Implemented in dataset.c. */
#ifndef BPC_DATA_PRIV_H
#define BPC_DATA_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include "data.h"

struct archive;
struct archive_entry;

/* The largest single file or archive member a reader takes into memory (CIFAR-100's
 * train.bin is 153,700,000 bytes; a Tiny ImageNet JPEG a few kB). */
#define BP_MAX_MEMBER (256ll << 20)

/* Reads the whole file into a malloc'ed buffer (NUL-terminated one past *n, so text
 * can be parsed in place). Errors name the file; a missing file says `missing_hint`
 * (e.g. "extract the archive again") after "not found; ". */
int bp_read_whole(const char *path, const char *missing_hint, uint8_t **buf, size_t *n,
                  bp_err *e);

/* Reads the current archive entry's data whole (NUL-terminated one past *n). `what`
 * names the member in messages ("ARCHIVE:MEMBER"); `fix` says what to do when the
 * archive is damaged. */
int bp_archive_member(struct archive *a, struct archive_entry *ent, const char *what,
                      const char *fix, uint8_t **buf, size_t *n, bp_err *e);

/* The non-empty lines of text (trailing spaces, tabs and CRs dropped), malloc'ed; *count
 * gets their number. NULL only when out of memory. */
char **bp_text_lines(const char *text, size_t n, int *count);

/* Frees n strings and the array (NULL is fine). */
void bp_strings_free(char **s, int n);

/* "a/b/c.bin" -> "c.bin" */
const char *bp_basename(const char *path);

#endif

/* files.h: the file chores every part of bpc needs, done once: a whole file into
 * memory, a folder and its parents, a file replaced atomically, a file's SHA-256. */
#ifndef BPC_FILES_H
#define BPC_FILES_H

#include <stddef.h>
#include "err.h"

/* Reads all of path into a malloc'ed, NUL-terminated buffer (*len excludes the NUL).
 * Works on files whose size stat cannot tell (/proc). Returns 0, or -1 with errno set
 * (the file cannot be opened or read, or memory ran out). */
int bp_read_file(const char *path, char **buf, size_t *len);

/* mkdir -p: path and its missing parents (mode 0777 before the umask). Returns 0, or
 * -1 with errno set (ENOTDIR when path exists and is not a folder). */
int bp_mkdirs(const char *path);

/* Replaces path with data[0..n) so that no reader ever sees half a file: a unique
 * temporary file beside it (several processes may write the same path), fsync, rename.
 * A path that exists and is not a regular file (/dev/stdout, a FIFO, a symbolic link)
 * is written in place instead: renaming over it would replace the device or the link.
 * Returns 0, or -1 with errno set and no temporary file left behind. */
int bp_write_atomic(const char *path, const void *data, size_t n);

/* 1 when paths a and b both exist and are the same file (device and inode: a link or
 * another spelling of the path counts), else 0. Guards an output against overwriting
 * its own input. */
int bp_same_file(const char *a, const char *b);

/* SHA-256 of a file's bytes as 64 hex digits. Returns 0, or -1 with e set. */
int bp_sha256_file(const char *path, char hex[65], bp_err *e);

#endif

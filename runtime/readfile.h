/* readfile.h: a whole small file into memory (metrics, summaries, /proc files). */
#ifndef BPC_READFILE_H
#define BPC_READFILE_H

#include <stddef.h>

/* Reads all of path into a malloc'ed, NUL-terminated buffer (*len excludes the NUL).
 * Works on files whose size stat cannot tell (/proc). Returns 0, or -1 with errno set
 * (the file cannot be opened or read, or memory ran out). */
int bp_read_file(const char *path, char **buf, size_t *len);

#endif

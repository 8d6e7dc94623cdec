/* fuzz_input.h: the readers under test take a path, so each fuzz input is written to a
 * memfd and read back through /proc/self/fd/N: no disk, no temp names. Shared by the
 * libFuzzer harnesses of the data readers. */
#ifndef BPC_FUZZ_INPUT_H
#define BPC_FUZZ_INPUT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* The memfd that holds the current input, and its /proc path. */
static int g_fd = -1;
static char g_path[64];

/* Makes the memfd's content exactly p[0..n); aborts (a harness failure) on error. */
static void put_input(const uint8_t *p, size_t n) {
    if (g_fd < 0) {
        g_fd = memfd_create("fuzz-input", 0);
        if (g_fd < 0) abort();
        snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
    }
    if (ftruncate(g_fd, 0) != 0 || pwrite(g_fd, p, n, 0) != (ssize_t)n) abort();
}

#endif

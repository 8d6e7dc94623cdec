/* jit_c.h: compiles emitted C into a shared object and loads it (the CPU JIT). */
#ifndef BPC_JIT_C_H
#define BPC_JIT_C_H

#include <stddef.h>
#include "err.h"

/* The cache folder: $XDG_CACHE_HOME/bpc (when absolute, as the XDG spec asks), else
 * $HOME/.cache/bpc, else
 * /tmp/bpc-cache-UID (created if missing). Writes into buf; returns buf, or NULL with
 * e set. Shared: the CUDA JIT caches there too, and the Tiny ImageNet loader puts its
 * decoded images there when it cannot write beside the data. */
const char *bp_cache_dir(char *buf, size_t len, bp_err *e);

/* The flags of every compile of emitted C (the JIT and `bpc build`), so that a
 * standalone trainer computes bit for bit what `bpc train` computes.
 * -fno-trapping-math: no program here reads the floating-point exception flags, and
 * without it GCC keeps a branch for every ReLU (x > 0 ? x : 0) and leaves the batch-norm
 * and ReLU loops scalar; values are unchanged (no reassociation, no fast-math). */
#define BP_KERNEL_CFLAGS "-O3 -march=native -fopenmp -fno-trapping-math -fPIC -std=c11"

/* Compiles `source` with $CC (default cc) and the flags below, unless an object with
 * the same SHA-256 of (source, $CC as written, flags, the host CPU's model and flags
 * from /proc/cpuinfo) is in the cache, and dlopens it. (The compiler's version is not
 * in the key: an object from an older compiler stays valid.)
 * Flags: BP_KERNEL_CFLAGS -shared (plus $BPC_CFLAGS).
 * The object is written to a temp name and renamed, so a killed compile leaves no
 * half-written cache entry. On a compile error the compiler's output and the path of
 * the kept source are in the message. A compiled model that the cache cannot keep (a
 * full disk) is still used, with a warning on stderr. Returns the dlopen handle or
 * NULL. */
void *bp_jit_c(const char *source, bp_err *e);

/* Splits `words` on blanks (CC may be "gcc -O1", as make allows) into argv[*argc ..
 * max); words beyond max are dropped. Returns the malloc'd buffer the words point
 * into, to free; NULL on out of memory. */
char *bp_split_words(const char *words, char **argv, int *argc, int max);

/* Runs argv (argv[0] found on $PATH) with stdout and stderr into the file `log`, and
 * waits for it. The command and every process it starts (a compiler's cc1, as, ld)
 * are killed if this process dies first, so an interrupted bpc leaves no compiler
 * running. Returns the wait status (a program that cannot be
 * executed gives exit status 127, as in a shell), or -1 if no child could be made. */
int bp_run_logged(char **argv, const char *log);

/* After a compile failed: a full disk makes the compiler or the linker fail with a
 * message of its own, when it can write one at all (its log is on that disk too). So
 * this appends a note to e->msg when the disk of dir (where the output goes) or of
 * TMPDIR (the compiler's temporary files, a few MB for the deep nets) has under 16 MB
 * free, with `move` as the way out for dir ("set XDG_CACHE_HOME to another folder");
 * nothing otherwise. */
void bp_note_low_disk(const char *dir, const char *move, bp_err *e);

/* Kills the command bp_run_logged is running, with everything it started; nothing when
 * none runs. Async-signal-safe: for signal handlers. */
void bp_run_logged_kill(void);

#endif

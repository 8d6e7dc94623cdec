/* trainer.h: main() of a standalone trainer made by `bpc build` (compiler/build.c).
 *
 * The generated main of a trainer registers its linked kernels (linked.h) and calls
 * bp_trainer_main with the model source it holds. The trainer takes the run options of
 * `bpc train` (cli.h), without the MODEL.bp: `./trainer [--data DIR] [--epochs N] ...`.
 */
#ifndef BPC_TRAINER_H
#define BPC_TRAINER_H

#include <stddef.h>

/* file: the .bp file's name when it was built ("mnist_dense.bp"); source/len: its
 * bytes; target: the bp_target it was built for (0 CPU, 1 CUDA). Returns the exit
 * status, as `bpc train` would: 0, 1 (input), 2 (I/O, target), 130/143 (interrupted).
 * The source is given to the training code as a file: RUN_DIR/model.bp with --out or
 * --resume (written when missing, and it must hold this source when present), else a
 * temporary file removed at the end. */
int bp_trainer_main(int argc, char **argv, const char *file, const char *source, size_t len,
                    int target);

#endif

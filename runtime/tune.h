/* tune.h: process settings that must be in place before OpenMP and OpenBLAS start. */
#ifndef BPC_TUNE_H
#define BPC_TUNE_H

/* Called first thing in main(). Two settings are read only from the environment, when
 * libgomp and OpenBLAS load, so bpc sets them and re-executes itself once (argv
 * unchanged) when either is missing:
 *  - OMP_WAIT_POLICY=passive: OpenMP threads that spin at every barrier fight
 *    OpenBLAS's threads for the cores (on the 2-core development machine a mnist_conv
 *    step took 96-109 ms with active waiting, 50 ms with passive);
 *  - OPENBLAS_CORETYPE, only when OpenBLAS did not recognise the CPU and fell back to
 *    its generic kernel ("Prescott") although the CPU has AVX-512 (SkylakeX kernels)
 *    or AVX2 (Haswell kernels): a 2048^3 sgemm ran at 65 GFLOP/s as Prescott and at
 *    310 as SkylakeX on that machine.
 * A value the user set is never changed. BPC_NO_TUNE (any value) turns all of this
 * off; the re-executed process finds BPC_TUNED set and does not tune again. */
void bp_tune_process(char **argv);

#endif

/* tune.h: process settings that must be in place before OpenMP and OpenBLAS start. */
#ifndef BPC_TUNE_H
#define BPC_TUNE_H

/* Called first thing in main(). Two settings are read only from the environment, when
 * libgomp and OpenBLAS load, so bpc sets them and re-executes itself once (argv
 * unchanged) when either is missing:
 *  - OMP_WAIT_POLICY=passive: on a shared machine, OpenMP threads that spin at every
 *    barrier while the other core is busy cost up to three quarters of the run time;
 *  - OPENBLAS_CORETYPE, only when OpenBLAS did not recognise the CPU and fell back to
 *    its generic kernel ("Prescott") although the CPU has AVX-512 (SkylakeX kernels)
 *    or AVX2 (Haswell kernels): 3-4x faster sgemm on such machines.
 * A value the user set is never changed. BPC_NO_TUNE=1 turns all of this off. */
void bp_tune_process(char **argv);

#endif

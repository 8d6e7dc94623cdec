/* dist.h: data parallelism over MPI processes (ranks), one per CPU socket or machine
 * (`mpirun -np N bpc train ...`). Built with OpenMPI when its headers are found
 * (BPC_HAVE_MPI); without them bpc runs as one process, and refuses a launch by
 * mpirun with more than one rank.
 *
 * A training run under N ranks splits every global batch of B samples into N
 * contiguous shares (bp_dist_share), runs a data-parallel plan (plan.h, BP_PLAN_DP)
 * whose collectives call bp_dist_sum and bp_dist_gather, and agrees each step on the
 * statistics and on whether to stop (bp_dist_step), so that every rank holds the same
 * weights after every step and all stop at the same step. Rank 0 alone writes the run
 * folder. A rank that dies takes the job down: mpirun stops the others and exits
 * non-zero; a collective that waits longer than BPC_DIST_TIMEOUT seconds (default
 * 600) for another rank aborts the job with a message instead of hanging.
 *
 * On the CUDA target the plan's collectives go to NCCL instead, one GPU per rank
 * (backend_cuda.c): the NCCL id travels from rank 0 over MPI (bp_dist_broadcast), and
 * the rest of this file does what it does on the CPU target.
 */
#ifndef BPC_DIST_H
#define BPC_DIST_H

#include "err.h"

/* Joins the MPI job when this process was started by mpirun (or srun) with more than
 * one rank; otherwise does nothing (one process). Call once, first thing in main.
 * Returns 0, or -1 with e set: started as one of several ranks by a bpc built without
 * MPI, or MPI_Init failed. */
int bp_dist_init(int *argc, char ***argv, bp_err *e);

/* Leaves the job (MPI_Finalize); safe without bp_dist_init. Registered with atexit by
 * bp_dist_init. */
void bp_dist_finalize(void);

/* This process's rank, 0 .. size-1, and the number of ranks (1 without MPI). */
int bp_dist_rank(void);
int bp_dist_size(void);

/* This process's rank among the ranks on its machine, from the launcher (OpenMPI's
 * OMPI_COMM_WORLD_LOCAL_RANK, MPICH's MPI_LOCALRANKID, SLURM_LOCALID); 0 when none
 * says. Picks the GPU of a rank. */
int bp_dist_local_rank(void);

/* How many ranks run on this process's machine, from the launcher (OpenMPI's
 * OMPI_COMM_WORLD_LOCAL_SIZE, MPICH's MPI_LOCALNRANKS); 0 when none says. */
int bp_dist_local_size(void);

/* How long a collective may wait for another rank, in seconds: BPC_DIST_TIMEOUT when
 * it is a positive number, else 600. */
double bp_dist_timeout(void);

/* Rank r's share of a batch of nb samples: samples *b0 .. *b0 + *n - 1, the first
 * nb % size ranks taking one more than the others. */
void bp_dist_share(int nb, int r, int *b0, int *n);

/* buf[0..n) summed over the ranks, in place, on every rank. */
void bp_dist_sum(float *buf, long n);

/* An in-place gather of a per-sample array: rank r holds rows b0_r .. b0_r + n_r - 1
 * (bp_dist_share of nb) of `per` floats each at buf; afterwards every rank holds all nb
 * rows. */
void bp_dist_gather(float *buf, long per, int nb);

/* Rank 0's `bytes` bytes at buf, copied to buf on every other rank. */
void bp_dist_broadcast(void *buf, long bytes);

/* The same for an int array of one value per sample (the actions). */
void bp_dist_gather_int(int *buf, int nb);

/* Waits until every rank gets here, without the timeout: for the end of `bpc repro`,
 * whose ranks train runs of different lengths. */
void bp_dist_wait_all(void);

/* The end of one training step: sums the four statistics st over the ranks (in place)
 * and returns the largest `stop` of any rank (a signal number, or 0), so that every
 * rank sees the same numbers and stops at the same step. */
int bp_dist_step(float st[4], int stop);

/* 1 when every rank passes ok = 1 (a collective AND); for a failure on one rank that
 * the others must hear of before their next collective. */
int bp_dist_all(int ok);

#endif

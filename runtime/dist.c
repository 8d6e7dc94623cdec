/* dist.c: data parallelism over MPI (dist.h). The collectives are blocking, in the
 * order the plan lists them, identical on every rank, so no tags or requests are
 * needed. A watchdog thread aborts the job when a collective has waited past the
 * timeout: a rank stuck in an endless loop would otherwise hang the others. */
#include "dist.h"
#include <stdlib.h>

static int g_rank = 0, g_size = 1;

int bp_dist_rank(void) { return g_rank; }
int bp_dist_size(void) { return g_size; }

void bp_dist_share(int nb, int r, int *b0, int *n) {
    int q = nb / g_size, m = nb % g_size;
    *n = q + (r < m);
    *b0 = r * q + (r < m ? r : m);
}

int bp_dist_local_rank(void) {
    const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    return 0;
}

int bp_dist_local_size(void) {
    const char *v = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!v || !*v) v = getenv("MPI_LOCALNRANKS");
    return v && *v ? atoi(v) : 0;
}

double bp_dist_timeout(void) {
    const char *t = getenv("BPC_DIST_TIMEOUT");
    return t && atof(t) > 0 ? atof(t) : 600;
}

/* The number of ranks the launcher asked for: OpenMPI's mpirun, PMI (MPICH, srun). */
static int launched_ranks(void) {
    const char *v = getenv("OMPI_COMM_WORLD_SIZE");
    if (!v) v = getenv("PMI_SIZE");
    if (!v) v = getenv("PMIX_SIZE");
    return v ? atoi(v) : 1;
}

#ifdef BPC_HAVE_MPI
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static int g_on;
static double g_timeout;
static volatile double g_waiting_since; /* MPI_Wtime when the current collective began, 0: none */
static volatile const char *g_waiting_in;

static void *watchdog(void *arg) {
    (void)arg;
    for (;;) {
        sleep(1);
        double t = g_waiting_since;
        if (t > 0 && MPI_Wtime() - t > g_timeout) {
            fprintf(stderr, "bpc: error: rank %d of %d has waited %.0f s in %s for another rank: "
                            "a rank is stuck or its machine is gone; stopping the job "
                            "(BPC_DIST_TIMEOUT sets the limit)\n",
                    g_rank, g_size, g_timeout, (const char *)g_waiting_in);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    }
    return NULL;
}

#define WAIT(what, call)                                                                 \
    do {                                                                                 \
        g_waiting_in = what;                                                             \
        g_waiting_since = MPI_Wtime();                                                   \
        int rc_ = (call);                                                                \
        g_waiting_since = 0;                                                             \
        if (rc_ != MPI_SUCCESS) {                                                        \
            char s_[MPI_MAX_ERROR_STRING];                                               \
            int n_ = 0;                                                                  \
            MPI_Error_string(rc_, s_, &n_);                                              \
            fprintf(stderr, "bpc: error: rank %d: %s failed: %s\n", g_rank, what, s_);   \
            MPI_Abort(MPI_COMM_WORLD, 2);                                                \
        }                                                                                \
    } while (0)

int bp_dist_init(int *argc, char ***argv, bp_err *e) {
    if (launched_ranks() <= 1) return 0;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return bp_fail(e, "MPI_Init failed: bpc was started by mpirun but could not join the job");
    g_on = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    /* errors come back as return codes, reported with the rank (WAIT) */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    g_timeout = bp_dist_timeout();
    pthread_t th;
    if (pthread_create(&th, NULL, watchdog, NULL) == 0) pthread_detach(th);
    atexit(bp_dist_finalize);
    return 0;
}

void bp_dist_finalize(void) {
    if (!g_on) return;
    g_on = 0;
    MPI_Finalize();
}

void bp_dist_sum(float *buf, long n) {
    if (!g_on) return; /* one process: the sum is buf */
    for (long at = 0; at < n; at += 1L << 30) { /* MPI counts are ints */
        long k = n - at < (1L << 30) ? n - at : 1L << 30;
        WAIT("a gradient sum (MPI_Allreduce)", MPI_Allreduce(MPI_IN_PLACE, buf + at, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    }
}

/* Every rank's share of nb samples of `per` values each, as MPI_Allgatherv counts. */
static void shares(int nb, long per, int *counts, int *displs) {
    for (int r = 0; r < g_size; r++) {
        int b0, n;
        bp_dist_share(nb, r, &b0, &n);
        counts[r] = (int)(n * per);
        displs[r] = (int)(b0 * per);
    }
}

void bp_dist_gather(float *buf, long per, int nb) {
    if (!g_on) return;
    int counts[g_size], displs[g_size];
    shares(nb, per, counts, displs);
    WAIT("a batch-norm gather (MPI_Allgatherv)",
         MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT, MPI_COMM_WORLD));
}

void bp_dist_broadcast(void *buf, long bytes) {
    if (!g_on) return;
    WAIT("a broadcast from rank 0 (MPI_Bcast)", MPI_Bcast(buf, (int)bytes, MPI_BYTE, 0, MPI_COMM_WORLD));
}

void bp_dist_gather_int(int *buf, int nb) {
    if (!g_on) return;
    int counts[g_size], displs[g_size];
    shares(nb, 1, counts, displs);
    WAIT("a gather of the actions (MPI_Allgatherv)",
         MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_INT, MPI_COMM_WORLD));
}

void bp_dist_wait_all(void) {
    if (g_on) MPI_Barrier(MPI_COMM_WORLD);
}

int bp_dist_step(float st[4], int stop) {
    if (!g_on) return stop;
    float v[5] = {st[0], st[1], st[2], st[3], (float)stop};
    float s[5];
    WAIT("the end of a step (MPI_Allreduce)", MPI_Allreduce(v, s, 4, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    WAIT("the end of a step (MPI_Allreduce)", MPI_Allreduce(v + 4, s + 4, 1, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD));
    for (int i = 0; i < 4; i++) st[i] = s[i];
    return (int)s[4];
}

int bp_dist_all(int ok) {
    if (!g_on) return ok;
    int all = 0;
    WAIT("a check that every rank is ready (MPI_Allreduce)", MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    return all;
}

#else /* built without MPI */

int bp_dist_init(int *argc, char ***argv, bp_err *e) {
    (void)argc; (void)argv;
    int n = launched_ranks();
    if (n > 1)
        return bp_fail(e, "started as one of %d ranks (mpirun), but this bpc was built without "
                          "MPI: install libopenmpi-dev and build again", n);
    return 0;
}
void bp_dist_finalize(void) {}
void bp_dist_sum(float *buf, long n) { (void)buf; (void)n; }
void bp_dist_gather(float *buf, long per, int nb) { (void)buf; (void)per; (void)nb; }
void bp_dist_gather_int(int *buf, int nb) { (void)buf; (void)nb; }
void bp_dist_broadcast(void *buf, long bytes) { (void)buf; (void)bytes; }
void bp_dist_wait_all(void) {}
int bp_dist_step(float st[4], int stop) { (void)st; return stop; }
int bp_dist_all(int ok) { return ok; }

#endif

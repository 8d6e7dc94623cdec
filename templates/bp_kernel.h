/* bp_kernel.h: what every generated kernel sees, on both targets.
 *
 * A kernel is one loop body over an index i in [0, count) (count times the live batch
 * size nb for per-sample kernels). The C target wraps the body in an OpenMP loop, the
 * CUDA target in a grid-stride loop. The body text is the same, so the arithmetic is,
 * up to what the compilers may change: NVRTC fuses a * b + c into one FMA (its default
 * --fmad=true) where gcc -std=c11 does not, and CUDA's expf/logf are not glibc's. So
 * the targets agree to float rounding, not bit for bit (tests/gpu/check.sh measures it).
 * Every kernel takes the same four arguments:
 *   A  float arena: weights, activations, feedback, batch-norm state, statistics
 *   I  int arena: labels, actions, greedy predictions, pooling argmax
 *   X  the batch of input images, uint8 NHWC [nb, H, W, C]
 *   dp the values that change from step to step (bp_dyn), read once into d. A
 *      pointer, not a value, so that on the GPU they live in device memory and a
 *      step captured as a CUDA graph replays with each step's values.
 * Offsets into A and I are compile-time constants written into each body.
 * This header is also included by the runtime so that host and kernels agree on
 * bp_dyn's layout.
 */
#ifndef BP_KERNEL_H
#define BP_KERNEL_H

typedef struct {
    float lr;                 /* SGD learning rate of this epoch */
    int nb;                   /* live batch size (the last batch may be short) */
    unsigned int step;        /* global SGD step: Philox counter word */
    int fix_actions;          /* 1: BrainProp takes the actions already in I (tests,
                                 oracles); 0: it chooses them (max-Boltzmann) */
    unsigned long long seed;  /* Philox key */
    /* Data parallelism (plans built with BP_PLAN_DP, one process per rank): this
     * rank's samples are b0 .. b0 + nb - 1 of a global batch of nb_all. Unused, and
     * left 0, otherwise. */
    int b0;
    int nb_all;
} bp_dyn;

#endif

/* prelude_cuda.h: the head of every emitted CUDA file. NVRTC compiles it with no
 * include path, so nothing here may include a header; the math functions used by
 * the kernels (expf, logf, sqrt, sqrtf) are NVRTC built-ins. */
typedef float bp_real;
#define BP_C(x) ((float)(x))
#define BP_EXP expf
#define BP_LOG logf
#define BP_SQRT sqrtf
#define BP_FN static __device__ __forceinline__
/* ReLU as a function, not a macro: the argument is read once (a macro would load
 * A[...] twice), and the C prelude's twin matches it. */
BP_FN bp_real BP_RELU(bp_real x) { return x > BP_C(0.0) ? x : BP_C(0.0); }
#define BP_NEG_INF (__int_as_float(0xff800000))

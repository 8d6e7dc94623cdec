/* prelude_c64.h: the C target in double precision. Same kernels as prelude_c.h, with
 * bp_real = double; used by the tests to check gradients against finite differences
 * in double precision. */
#include <math.h>
typedef double bp_real;
#define BP_C(x) ((double)(x))
#define BP_EXP exp
#define BP_LOG log
#define BP_SQRT sqrt
#define BP_RELU(x) ((x) > BP_C(0.0) ? (x) : BP_C(0.0))
#define BP_FN static inline
#define BP_NEG_INF (-INFINITY)

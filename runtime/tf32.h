/* tf32.h: float32 -> TF32 operand rounding, the precision modes' one formula (ir.h's
 * bp_precision). TF32 keeps float32's sign and 8 exponent bits and the top 10 of its 23
 * mantissa bits. The rounding is to nearest with ties away from zero, as PTX's
 * cvt.rna.tf32.f32 does: add half of the dropped part's weight (bit 12) to the
 * magnitude, then clear the 13 dropped bits; a carry moves into the exponent, so the
 * largest floats round to infinity. Infinities and NaNs are kept as they are.
 * The CPU target (runtime/backend_cpu.c) and the CUDA target's split kernel
 * (templates/gather_cu.in) apply these same bit operations. */
#ifndef BPC_TF32_H
#define BPC_TF32_H

#include <stdint.h>
#include <string.h>

static inline float bp_tf32_round(float a) {
    uint32_t u;
    memcpy(&u, &a, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

/* 3xTF32's split: a = big + small + O(2^-22 |a|), both TF32 values. */
static inline void bp_tf32_split(float a, float *big, float *small) {
    *big = bp_tf32_round(a);
    *small = bp_tf32_round(a - *big);
}

#endif

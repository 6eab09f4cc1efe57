// cuda_bf16.h (host emulation, see cuda_runtime.h here): bf16 types and the conversions and bf16x2 arithmetic the
// kernels use; arithmetic is exact in double, then one rounding to bf16 (to nearest even; NaN -> 0x7fff).
#pragma once
#include "cuda_runtime.h"
struct __nv_bfloat16 { unsigned short __x; };
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return {0x7fff};
    u += 0x7fffu + ((u >> 16) & 1u); return {(unsigned short)(u >> 16)};
}
inline float __bfloat162float(__nv_bfloat16 h) { return __uint_as_float((unsigned)h.__x << 16); }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short s) { return {s}; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__float2bfloat16_rn(a), __float2bfloat16_rn(b)}; }
inline __nv_bfloat162 __float2bfloat162_rn(float a) { return {__float2bfloat16_rn(a), __float2bfloat16_rn(a)}; }
// Exact op then one rounding to bf16 (the inputs here give results exact in double, and float when representable).
inline __nv_bfloat16 bf_round_d(double d) { return __float2bfloat16_rn((float)d); }
inline __nv_bfloat162 __hsub2(__nv_bfloat162 a, __nv_bfloat162 b) {
    return {bf_round_d((double)__bfloat162float(a.x) - __bfloat162float(b.x)), bf_round_d((double)__bfloat162float(a.y) - __bfloat162float(b.y))};
}
inline __nv_bfloat162 __hmul2(__nv_bfloat162 a, __nv_bfloat162 b) {
    return {bf_round_d((double)__bfloat162float(a.x) * __bfloat162float(b.x)), bf_round_d((double)__bfloat162float(a.y) * __bfloat162float(b.y))};
}

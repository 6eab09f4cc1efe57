// weight_decode.cuh: device-side dequantisation of dsk_weight elements, shared by every kernel that reads a weight
// (linear_simt.cuh, linear_mma.cu, embedding.cu, dequantize_fp8.cu). Header-only, no state.
//
// The value of a weight element is EXACTLY the one deepseek_kernels.h documents (and WeightMatrix.cs):
//   FP8_BLOCK:   bf16(fp8_e4m3(code) * scale)             the product in fp32, one rounding to bf16 (RNE)
//   INT4_GROUP:  bf16(((float)q - (float)zero) * scale)   q the unsigned 4-bit code; fp32 arithmetic, one rounding
// Every function here returns that bf16 value, either widened to fp32 (exact) or as bf16 bits, so a kernel may
// multiply it in fp32 or on bf16 tensor cores without changing the products.
//
//   fp8_e4m3_to_float(code)            exact value of an e4m3fn code (subnormals; 0x7f and 0xff are NaN)
//   dequant_fp8(code, scale)           one FP8 element
//   dequant_fp8x4(word, scale, f)      four FP8 codes of a 32-bit word (byte j = element j)
//   dequant_int4(q, scale, zero)       one INT4 element
//   dequant_int4x8(word, scale, zero, f)   eight INT4 codes of a 32-bit word (nibble j, from the low end = element j)
// The x4 / x8 forms are the fast paths of the weight-streaming kernels: they take bit tricks where those are exact
// (checked per call, once per 4 or 8 elements) and fall back to the scalar forms otherwise, with identical results.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>

namespace dsk {

// fp32 -> bf16 (round to nearest even) -> fp32.
__device__ __forceinline__ float round_to_bf16(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

// Two packed bf16 (low half = first) -> two floats, exact.
__device__ __forceinline__ void widen_bf16x2(uint32_t bits, float& first, float& second) {
    first = __uint_as_float(bits << 16);
    second = __uint_as_float(bits & 0xffff0000u);
}

// ---------------------------------------------------------------------------------------------------------
// FP8 e4m3 (e4m3fn: 1 sign, 4 exponent bits with bias 7, 3 mantissa bits, no infinities, 0x7f / 0xff NaN)

// The exact value of the code in the low byte of `code`. Integer arithmetic only (no reliance on fp32 denormals).
__device__ __forceinline__ float fp8_e4m3_to_float(uint32_t code) {
    const uint32_t sign = (code & 0x80u) << 24;
    const uint32_t mag = code & 0x7fu;
    if (mag == 0x7fu) return __uint_as_float(sign | 0x7fc00000u);  // NaN
    if (mag >= 8u) return __uint_as_float(sign | ((mag << 20) + (120u << 23)));  // normal: exponent 7 -> 127 bias
    return __uint_as_float(sign | __float_as_uint((float)mag * 0x1p-9f));  // subnormal: mag * 2^-9, exact
}

// One FP8 element: bf16(value * scale), widened to fp32.
__device__ __forceinline__ float dequant_fp8(uint32_t code, float scale) {
    return round_to_bf16(fp8_e4m3_to_float(code) * scale);
}

// Four FP8 codes (byte j of `word` = element j) -> f[0..3], each bf16(value * scale) widened to fp32.
// Fast path: two codes at a time are moved into the top bytes of a bf16 pair (one byte permute), and one shift and
// one mask put each code's sign, exponent and mantissa into bf16's fields: read as a number (widened to fp32) that is
// exactly 2^-120 times the code's value, subnormal codes included (they become denormals). With s = scale * 2^120
// (exact when finite) each product then equals value * scale before its one rounding. Taken when no code is NaN
// and s is finite; otherwise the scalar form (same results). Needs fp32 denormals (no -ftz=true).
__device__ __forceinline__ void dequant_fp8x4(uint32_t word, float scale, float (&f)[4]) {
    const float s = scale * 0x1p120f;
    const bool has_nan = __vcmpeq4(word & 0x7f7f7f7fu, 0x7f7f7f7fu) != 0u;
    if (!has_nan && fabsf(s) < INFINITY) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const uint32_t top = __byte_perm(word, 0u, h == 0 ? 0x1404u : 0x3424u);  // codes 2h, 2h+1 in bytes 1, 3
            const uint32_t bits = ((top >> 4) & 0x07f007f0u) | (top & 0x80008000u);  // bf16 pair, 2^-120 x value
            float lo, hi;
            widen_bf16x2(bits, lo, hi);
            const __nv_bfloat162 r = __floats2bfloat162_rn(lo * s, hi * s);
            widen_bf16x2(*reinterpret_cast<const uint32_t*>(&r), f[2 * h], f[2 * h + 1]);
        }
    } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) f[j] = dequant_fp8(word >> (8 * j), scale);
    }
}

// ---------------------------------------------------------------------------------------------------------
// INT4 (unsigned codes 0..15; element 2i in the low nibble of byte i, so nibble j of a little-endian word is
// element j of that word's eight)

// One INT4 element: bf16((q - zero) * scale), widened to fp32.
__device__ __forceinline__ float dequant_int4(uint32_t q, float scale, float zero) {
    return round_to_bf16(((float)(q & 0xfu) - zero) * scale);
}

// Eight INT4 codes (nibble j of `word` = element j) -> f[0..7], each bf16((q - zero) * scale) widened to fp32.
// Fast path, when zero is an integer in [-128, 127] and scale is zero or at least 2^-100 in magnitude (or not
// finite): in bf16x2 arithmetic, (128 + q) is a nibble OR-ed into bf16 128's mantissa; (128 + q) - (128 + zero) is
// exact (an integer of at most 8 significant bits); the product with scale on bf16x2 (fma.rn with -0) rounds the
// exact product once, which equals rounding the (exact) fp32 product once. Nibbles j and j + 4 share a 32-bit
// pair (one shift and one mask per two elements). Otherwise the scalar form (same results).
__device__ __forceinline__ void dequant_int4x8(uint32_t word, float scale, float zero, float (&f)[8]) {
    const bool fast = zero == rintf(zero) && zero >= -128.0f && zero <= 127.0f &&
                      !(fabsf(scale) < 0x1p-100f && scale != 0.0f);
    if (fast) {
        const __nv_bfloat162 base = __float2bfloat162_rn(128.0f + zero);  // exact
        const __nv_bfloat162 s2 = __float2bfloat162_rn(scale);              // exact (scale is a bf16)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const uint32_t bits = ((word >> (4 * j)) & 0x000f000fu) | 0x43004300u;  // bf16 (128 + q_j, 128 + q_{j+4})
            const __nv_bfloat162 v = __hmul2(__hsub2(*reinterpret_cast<const __nv_bfloat162*>(&bits), base), s2);
            widen_bf16x2(*reinterpret_cast<const uint32_t*>(&v), f[j], f[j + 4]);
        }
    } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) f[j] = dequant_int4(word >> (4 * j), scale, zero);
    }
}

}  // namespace dsk

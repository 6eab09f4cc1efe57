// quantize_fp8_act.cu: per-token FP8 activation quantisation for W8A8 prefill (dsk_quantize_fp8_act), DeepGEMM's
// 1 x 128 scaling.
//
// Math, per row i and block j of 128 columns (the last block may be narrower), all in fp32:
//   amax = max_k |x[i, k]|;   s = amax == 0 ? 1 : amax / 448;   q[i, k] = e4m3_rn_sat(x[i, k] / s);   scale[i, j] = s
// e4m3_rn_sat rounds to nearest even and saturates at +-448 (infinities included); NaN stays NaN (S.1111.111).
// A NaN in the block makes amax (and s) NaN, so NaN propagates; an infinity makes s infinite.
// This is bit-exact with Numerics/Float8E4M3.FromSingleSaturating of the C# reference (same integer rounding), except
// for the sign of NaN codes: x / NaN and inf / inf give the GPU's canonical (positive) NaN, while x86 may give a
// negative one, so a comparison should treat 0x7f and 0xff alike.
//
// Cost: read m * cols * sizeof(x), write m * cols + m * cols / 32 bytes; memory-bound.
// Kernel: one warp per (row, block of 128); lane l owns columns l, l + 32, l + 64, l + 96 of the block (coalesced
// scalar accesses, any alignment and stride), the amax by a warp max, then each lane converts and stores its four.
#include <climits>

#include "common.cuh"

namespace dsk {
namespace {

constexpr const char* kOp = "dsk_quantize_fp8_act";
constexpr int kThreads = 256;  // 8 warps, one (row, block) each
constexpr int kBlock = 128;    // columns per scale

// float -> e4m3fn bits, round to nearest even, saturating at +-448; NaN -> S.1111.111.
__device__ __forceinline__ uint32_t float_to_e4m3_sat(float v) {
    const uint32_t nan_bits = (__float_as_uint(v) >> 24 & 0x80u) | 0x7fu;
    if (v != v) return nan_bits;
    v = fminf(fmaxf(v, -448.0f), 448.0f);
    const uint32_t bits = __float_as_uint(v);
    const uint32_t sign = (bits >> 24) & 0x80u;
    const uint32_t abs = bits & 0x7fffffffu;
    if (abs < 0x3c800000u) {  // below 2^-6: an e4m3 subnormal, a multiple of 2^-9 (exact scaling, then RNE)
        const uint32_t q = (uint32_t)__float2int_rn(__uint_as_float(abs) * 512.0f);
        return sign | q;
    }
    const uint32_t mantissa = abs & 0x7fffffu;
    uint32_t r = (((abs >> 23) - 120u) << 3) | (mantissa >> 20);
    const uint32_t rest = mantissa & 0xfffffu;
    if (rest > 0x80000u || (rest == 0x80000u && (r & 1u) == 1u)) ++r;
    return sign | (r >= 0x7fu ? 0x7fu : r);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) quantize_fp8_act_kernel(const T* __restrict__ x, uint8_t* __restrict__ q,
                                                                     float* __restrict__ scale, int64_t m, int64_t cols,
                                                                     int64_t x_stride, int64_t blocks) {
    const int lane = threadIdx.x & 31;
    const int64_t item = (int64_t)blockIdx.x * (kThreads / 32) + (threadIdx.x >> 5);  // row * blocks + j
    if (item >= m * blocks) return;  // whole warps leave together
    const int64_t row = item / blocks;
    const int64_t j = item - row * blocks;
    const T* x_row = x + row * x_stride;

    float v[kBlock / 32];
    float amax = 0.0f;
    bool nan = false;
#pragma unroll
    for (int e = 0; e < kBlock / 32; ++e) {
        const int64_t k = j * kBlock + lane + 32 * e;
        v[e] = k < cols ? to_float(x_row[k]) : 0.0f;
        nan |= v[e] != v[e];
        amax = fmaxf(amax, fabsf(v[e]));
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
    nan = __any_sync(0xffffffffu, nan);
    if (nan) amax = __uint_as_float(0x7fc00000u);
    const float s = amax > 0.0f ? amax / 448.0f : (amax != amax ? amax : 1.0f);

    uint8_t* q_row = q + row * cols;
#pragma unroll
    for (int e = 0; e < kBlock / 32; ++e) {
        const int64_t k = j * kBlock + lane + 32 * e;
        if (k < cols) q_row[k] = (uint8_t)float_to_e4m3_sat(v[e] / s);
    }
    if (lane == 0) scale[row * blocks + j] = s;
}

}  // namespace
}  // namespace dsk

extern "C" DSK_API dsk_status dsk_quantize_fp8_act(const dsk_quantize_fp8_act_params* p) {
    using namespace dsk;
    DSK_CHECK_NOT_NULL(kOp, p, "params");
    DSK_CHECK_NOT_NULL(kOp, p->x, "x");
    DSK_CHECK_NOT_NULL(kOp, p->q, "q");
    DSK_CHECK_NOT_NULL(kOp, p->scale, "scale");
    DSK_CHECK_MIN(kOp, p->m, 1, "m");
    DSK_CHECK_MIN(kOp, p->cols, 1, "cols");
    DSK_CHECK_MIN(kOp, p->x_row_stride, p->cols, "x_row_stride");
    DSK_CHECK_ARG(kOp, p->act_dtype == DSK_DTYPE_F32 || p->act_dtype == DSK_DTYPE_BF16,
                  "act_dtype must be F32 or BF16 (got %s)", dtype_name(p->act_dtype));
    const int64_t blocks = (p->cols + kBlock - 1) / kBlock;
    const int64_t items = p->m * blocks;
    const int64_t grid = (items + kThreads / 32 - 1) / (kThreads / 32);
    DSK_CHECK_ARG(kOp, grid <= INT_MAX, "m * ceil(cols / 128) is too large (%lld)", (long long)items);
    const cudaStream_t stream = static_cast<cudaStream_t>(p->stream);
    uint8_t* q = static_cast<uint8_t*>(p->q);
    if (p->act_dtype == DSK_DTYPE_F32) {
        quantize_fp8_act_kernel<float><<<(unsigned)grid, kThreads, 0, stream>>>(
            static_cast<const float*>(p->x), q, p->scale, p->m, p->cols, p->x_row_stride, blocks);
    } else {
        quantize_fp8_act_kernel<__nv_bfloat16><<<(unsigned)grid, kThreads, 0, stream>>>(
            static_cast<const __nv_bfloat16*>(p->x), q, p->scale, p->m, p->cols, p->x_row_stride, blocks);
    }
    DSK_CHECK_LAUNCH(kOp);
    return DSK_SUCCESS;
}

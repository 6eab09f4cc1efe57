// rope.cu: rotary position embedding in place (dsk_rope):
//   x[t, h, off + a], x[t, h, off + b]  <-  (xa * c - xb * s, xb * c + xa * s),   c, s = cos / sin[positions[t], i]
// for every pair (a, b) of the layout with angle index i < d / 2 (half-split: (i, i + d/2); interleaved: (2i, 2i + 1)).
// fp32 math, one rounding to x's dtype. Memory-bound: each rotated element is read and written once, the cos / sin
// rows once per token (L1-resident across the token's heads).
//
// Positions are device data: a position outside [0, max_positions) leaves its token as it was; the first such token
// (lowest t, found by one warp of block 0, each lane scanning a stride) claims error_word[0] with atomicCAS(0 -> error_site)
// and writes word[1] = t, word[2] = the position, word[3] = max_positions, word[4] = 0.
//
// One kernel, one block per token row (grid-stride), templated on x's dtype and the layout; a runtime flag picks
// 4-pair vector accesses (8- or 16-byte loads and stores of x, 16-byte loads of cos / sin) where aligned, else one
// pair per step.
#include "common.cuh"
#include "weight_check.cuh"

namespace dsk {
namespace {

constexpr const char* kOp = "dsk_rope";
constexpr int kThreads = 128;

struct RopeArgs {
    void* x;
    const int32_t* positions;
    const float* cos;  // [max_positions, half]
    const float* sin;
    int32_t* error_word;
    int64_t tokens, heads, head_stride, row_stride, offset, max_positions;
    int32_t half;       // rotary_dim / 2
    int32_t error_site;
    int32_t vec;        // 4 pairs per step (see the launcher for the alignment it needs)
};

// Four consecutive elements of T at p (aligned to 4 * sizeof(T) bytes) as floats, and back.
template <typename T> __device__ __forceinline__ void load4(const T* p, float (&f)[4]) {
    if constexpr (sizeof(T) == 4) {
        unpack16<float>(ld16(p), f);
    } else {
        const uint2 v = *reinterpret_cast<const uint2*>(p);
        bf16x2_to_float(v.x, f[0], f[1]);
        bf16x2_to_float(v.y, f[2], f[3]);
    }
}
template <typename T> __device__ __forceinline__ void store4(T* p, const float (&f)[4]) {
    if constexpr (sizeof(T) == 4) {
        st16(p, pack16<float>(f));
    } else {
        uint2 v;
        v.x = float_to_bf16x2(f[0], f[1]);
        v.y = float_to_bf16x2(f[2], f[3]);
        *reinterpret_cast<uint2*>(p) = v;
    }
}

// Rotates the rotary part of every head of every token with a valid position (one block per token row).
template <typename T, int LAYOUT> __global__ void __launch_bounds__(kThreads) rope_kernel(const RopeArgs a) {
    // Block 0 reports the first bad position (lowest t), whatever the block order; the other blocks do not wait for it.
    if (blockIdx.x == 0 && threadIdx.x < 32) report_first_out_of_range(a.positions, a.tokens, a.max_positions, a.error_word, a.error_site);
    const int half = a.half;
    for (int64_t t = blockIdx.x; t < a.tokens; t += gridDim.x) {
        const int32_t pos = __ldg(a.positions + t);
        if (pos < 0 || (int64_t)pos >= a.max_positions) continue;  // left as it was (reported above)
        const float* cr = a.cos + (int64_t)pos * half;
        const float* sr = a.sin + (int64_t)pos * half;
        T* row = static_cast<T*>(a.x) + t * a.row_stride + a.offset;
        if (a.vec) {
            // Unit u = (head, group of 4 angle indices).
            const int groups = half / 4;
            const int64_t units = a.heads * groups;
            for (int64_t u = threadIdx.x; u < units; u += kThreads) {
                const int64_t h = u / groups;
                const int i = (int)(u % groups) * 4;
                T* hp = row + h * a.head_stride;
                float c[4], s[4];
                unpack16<float>(ld16_ro(cr + i), c);
                unpack16<float>(ld16_ro(sr + i), s);
                if constexpr (LAYOUT == DSK_ROPE_HALF_SPLIT) {
                    float xa[4], xb[4], ya[4], yb[4];
                    load4<T>(hp + i, xa);
                    load4<T>(hp + half + i, xb);
#pragma unroll
                    for (int k = 0; k < 4; ++k) {
                        ya[k] = xa[k] * c[k] - xb[k] * s[k];
                        yb[k] = xb[k] * c[k] + xa[k] * s[k];
                    }
                    store4<T>(hp + i, ya);
                    store4<T>(hp + half + i, yb);
                } else {
                    float lo[4], hi[4];  // pairs (lo0, lo1), (lo2, lo3), (hi0, hi1), (hi2, hi3)
                    load4<T>(hp + 2 * i, lo);
                    load4<T>(hp + 2 * i + 4, hi);
                    const float l0 = lo[0], l1 = lo[1], l2 = lo[2], l3 = lo[3];
                    const float h0 = hi[0], h1 = hi[1], h2 = hi[2], h3 = hi[3];
                    lo[0] = l0 * c[0] - l1 * s[0];
                    lo[1] = l1 * c[0] + l0 * s[0];
                    lo[2] = l2 * c[1] - l3 * s[1];
                    lo[3] = l3 * c[1] + l2 * s[1];
                    hi[0] = h0 * c[2] - h1 * s[2];
                    hi[1] = h1 * c[2] + h0 * s[2];
                    hi[2] = h2 * c[3] - h3 * s[3];
                    hi[3] = h3 * c[3] + h2 * s[3];
                    store4<T>(hp + 2 * i, lo);
                    store4<T>(hp + 2 * i + 4, hi);
                }
            }
        } else {
            const int64_t units = a.heads * half;
            for (int64_t u = threadIdx.x; u < units; u += kThreads) {
                const int64_t h = u / half;
                const int i = (int)(u % half);
                T* hp = row + h * a.head_stride;
                const float c = __ldg(cr + i), s = __ldg(sr + i);
                T* pa = LAYOUT == DSK_ROPE_HALF_SPLIT ? hp + i : hp + 2 * i;
                T* pb = LAYOUT == DSK_ROPE_HALF_SPLIT ? hp + half + i : hp + 2 * i + 1;
                const float xa = to_float(*pa), xb = to_float(*pb);
                *pa = from_float<T>(xa * c - xb * s);
                *pb = from_float<T>(xb * c + xa * s);
            }
        }
    }
}

template <typename T> void launch(const RopeArgs& a, int32_t layout, cudaStream_t st) {
    const unsigned grid = (unsigned)(a.tokens < 65535 * 16 ? a.tokens : 65535 * 16);  // the kernel loops over the rest
    if (layout == DSK_ROPE_HALF_SPLIT) {
        rope_kernel<T, DSK_ROPE_HALF_SPLIT><<<grid, kThreads, 0, st>>>(a);
    } else {
        rope_kernel<T, DSK_ROPE_INTERLEAVED><<<grid, kThreads, 0, st>>>(a);
    }
}

}  // namespace
}  // namespace dsk

extern "C" DSK_API dsk_status dsk_rope(const dsk_rope_params* p) {
    using namespace dsk;

    // Every argument is checked before anything touches the GPU; the dtype last (DSK_ERROR_UNSUPPORTED).
    DSK_CHECK_NOT_NULL(kOp, p, "p");
    DSK_CHECK_NOT_NULL(kOp, p->x, "x");
    DSK_CHECK_NOT_NULL(kOp, p->positions, "positions");
    DSK_CHECK_NOT_NULL(kOp, p->cos, "cos");
    DSK_CHECK_NOT_NULL(kOp, p->sin, "sin");
    DSK_CHECK_NOT_NULL(kOp, p->error_word, "error_word");
    DSK_CHECK_MIN(kOp, p->tokens, 1, "tokens");
    DSK_CHECK_MIN(kOp, p->heads, 1, "heads");
    DSK_CHECK_MIN(kOp, p->rope_offset, 0, "rope_offset");
    DSK_CHECK_ARG(kOp, p->rotary_dim >= 2 && p->rotary_dim % 2 == 0, "rotary_dim must be even and >= 2 (got %lld)",
                  (long long)p->rotary_dim);
    DSK_CHECK_ARG(kOp, p->rotary_dim <= INT32_MAX, "rotary_dim must be < 2^31 (got %lld)", (long long)p->rotary_dim);
    DSK_CHECK_ARG(kOp, p->head_stride >= p->rope_offset + p->rotary_dim,
                  "head_stride must be >= rope_offset + rotary_dim (got %lld, rope_offset %lld, rotary_dim %lld)",
                  (long long)p->head_stride, (long long)p->rope_offset, (long long)p->rotary_dim);
    DSK_CHECK_ARG(kOp, p->x_row_stride >= p->heads * p->head_stride,
                  "x_row_stride must be >= heads * head_stride (got %lld, heads %lld, head_stride %lld)",
                  (long long)p->x_row_stride, (long long)p->heads, (long long)p->head_stride);
    DSK_CHECK_ARG(kOp, p->max_positions >= 1 && p->max_positions <= INT32_MAX,
                  "max_positions must be in [1, 2^31) (got %lld)", (long long)p->max_positions);
    DSK_CHECK_ARG(kOp, p->layout == DSK_ROPE_HALF_SPLIT || p->layout == DSK_ROPE_INTERLEAVED,
                  "layout must be HALF_SPLIT (0) or INTERLEAVED (1) (got %d)", (int)p->layout);
    DSK_CHECK_ARG(kOp, p->error_site > 0, "error_site must be > 0 (got %d)", (int)p->error_site);
    DSK_CHECK_ARG(kOp, p->reserved == 0, "reserved must be 0 (got %d)", (int)p->reserved);
    const int64_t esz = p->x_dtype == DSK_DTYPE_F32 ? 4 : 2;  // an unsupported x_dtype is reported below
    const int64_t half = p->rotary_dim / 2;
    const ByteRange x_range = view_bytes(p->x, 1, p->tokens, p->heads * p->head_stride, 0, p->x_row_stride, esz);
    const int64_t table_bytes = p->max_positions * half * 4;
    DSK_CHECK_ARG(kOp, !overlaps(x_range, bytes_of(p->cos, table_bytes)), "x must not overlap cos");
    DSK_CHECK_ARG(kOp, !overlaps(x_range, bytes_of(p->sin, table_bytes)), "x must not overlap sin");
    DSK_CHECK_ARG(kOp, !overlaps(x_range, bytes_of(p->positions, p->tokens * 4)), "x must not overlap positions");
    DSK_CHECK_ARG(kOp, !overlaps(x_range, bytes_of(p->error_word, 32)), "x must not overlap error_word");
    if (p->x_dtype != DSK_DTYPE_F32 && p->x_dtype != DSK_DTYPE_BF16) {
        DSK_UNSUPPORTED(kOp, "x_dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->x_dtype), (int)p->x_dtype);
    }

    RopeArgs a{};
    a.x = p->x;
    a.positions = p->positions;
    a.cos = p->cos;
    a.sin = p->sin;
    a.error_word = p->error_word;
    a.tokens = p->tokens;
    a.heads = p->heads;
    a.head_stride = p->head_stride;
    a.row_stride = p->x_row_stride;
    a.offset = p->rope_offset;
    a.max_positions = p->max_positions;
    a.half = (int32_t)half;
    a.error_site = p->error_site;
    // Vector path: groups of 4 angle indices. x accesses of 4 elements (half-split: 8 or 16 bytes; interleaved: two
    // such) need the rotary part of every head aligned to 4 elements' bytes; cos / sin rows of half floats 16-byte
    // aligned (half % 4 == 0 and 16-byte aligned tables).
    const int64_t x_align = 4 * esz;
    const uintptr_t first = reinterpret_cast<uintptr_t>(p->x) + (uintptr_t)(p->rope_offset * esz);
    a.vec = half % 4 == 0 && first % (uintptr_t)x_align == 0 && (p->head_stride * esz) % x_align == 0 &&
            (p->x_row_stride * esz) % x_align == 0 && is_aligned_16(p->cos) && is_aligned_16(p->sin);

    const cudaStream_t st = static_cast<cudaStream_t>(p->stream);
    if (p->x_dtype == DSK_DTYPE_F32) {
        launch<float>(a, p->layout, st);
    } else {
        launch<__nv_bfloat16>(a, p->layout, st);
    }
    DSK_CHECK_LAUNCH(kOp);
    return DSK_SUCCESS;
}

// moe_combine.cu: gathers each token's expert rows back and sums them weighted (dsk_moe_combine):
//   sum = sum_{k < top_k, in k order} expert_weights[t, k] * expert_output[slot_rows[t * top_k + k], i]   (fp32, each term
//         added with one fused multiply-add: sum = fmaf(w, v, sum), starting from 0)
//   y[t, i] = round(accumulate ? y[t, i] + sum : sum)
// Memory-bound: top_k rows read and one row written (read too with accumulate) per token; DeepSeek-V3 (top 8, hidden
// 7168 bf16): 8 x 14 KiB read + 14 KiB written per token.
//
// slot_rows are device data: a token with a row outside [0, tokens * top_k) leaves its row of y as it was; the lowest
// flat index of a bad value (one warp of block 0, each lane scanning a stride) claims error_word[0] with
// atomicCAS(0 -> error_site) and writes word[1] = index, word[2] = the value, word[3] = tokens * top_k.
//
// One kernel, one block per token (grid-stride), templated on the two dtypes; blocks of 32 .. 128 threads by the row's
// width; a runtime flag picks 8-element vector accesses (16- or 32-byte loads and stores) where aligned.
#include "common.cuh"
#include "weight_check.cuh"

namespace dsk {
namespace {

constexpr const char* kOp = "dsk_moe_combine";
constexpr int kMaxThreads = 128;

struct CombineArgs {
    const void* out;           // [slots, hidden], rows out_stride apart
    const int32_t* slot_rows;  // [slots]
    const float* weights;      // [slots]
    void* y;                   // [tokens, hidden], rows y_stride apart
    int32_t* error_word;
    int64_t tokens, top_k, hidden, out_stride, y_stride;
    int32_t slots;
    int32_t accumulate;
    int32_t error_site;
    int32_t vec;
};

template <typename Y> __device__ __forceinline__ void load8(const Y* p, float (&f)[8]) {
    if constexpr (sizeof(Y) == 4) {
        float lo[4], hi[4];
        unpack16<float>(ld16(p), lo);
        unpack16<float>(ld16(p + 4), hi);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            f[i] = lo[i];
            f[4 + i] = hi[i];
        }
    } else {
        unpack16<__nv_bfloat16>(ld16(p), f);
    }
}

template <typename Y> __device__ __forceinline__ void store8(Y* p, const float (&f)[8]) {
    if constexpr (sizeof(Y) == 4) {
        st16(p, make_uint4(__float_as_uint(f[0]), __float_as_uint(f[1]), __float_as_uint(f[2]), __float_as_uint(f[3])));
        st16(p + 4, make_uint4(__float_as_uint(f[4]), __float_as_uint(f[5]), __float_as_uint(f[6]), __float_as_uint(f[7])));
    } else {
        st16(p, make_uint4(float_to_bf16x2(f[0], f[1]), float_to_bf16x2(f[2], f[3]), float_to_bf16x2(f[4], f[5]),
                           float_to_bf16x2(f[6], f[7])));
    }
}

// Eight read-only elements of E at p (16-byte aligned) as floats.
template <typename E> __device__ __forceinline__ void load8_ro(const E* p, float (&f)[8]) {
    if constexpr (sizeof(E) == 4) {
        const uint4 lo = ld16_ro(p), hi = ld16_ro(p + 4);
        f[0] = __uint_as_float(lo.x);
        f[1] = __uint_as_float(lo.y);
        f[2] = __uint_as_float(lo.z);
        f[3] = __uint_as_float(lo.w);
        f[4] = __uint_as_float(hi.x);
        f[5] = __uint_as_float(hi.y);
        f[6] = __uint_as_float(hi.z);
        f[7] = __uint_as_float(hi.w);
    } else {
        unpack16<__nv_bfloat16>(ld16_ro(p), f);
    }
}

template <typename E, typename Y> __global__ void __launch_bounds__(kMaxThreads) moe_combine_kernel(const CombineArgs a) {
    if (blockIdx.x == 0 && threadIdx.x < 32) {
        report_first_out_of_range(a.slot_rows, a.slots, a.slots, a.error_word, a.error_site);
    }
    const E* out = static_cast<const E*>(a.out);
    for (int64_t t = blockIdx.x; t < a.tokens; t += gridDim.x) {
        const int32_t* rows = a.slot_rows + t * a.top_k;
        const float* w = a.weights + t * a.top_k;
        bool bad = false;
        for (int k = 0; k < (int)a.top_k; ++k) {
            const int32_t r = __ldg(rows + k);
            bad |= r < 0 || r >= a.slots;
        }
        if (bad) continue;  // the token's row of y is left as it was (reported above); uniform over the block
        Y* y = static_cast<Y*>(a.y) + t * a.y_stride;
        if (a.vec) {
            for (int64_t i = threadIdx.x * 8; i < a.hidden; i += blockDim.x * 8) {
                float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
                for (int k = 0; k < (int)a.top_k; ++k) {
                    const float wk = __ldg(w + k);
                    float v[8];
                    load8_ro<E>(out + (int64_t)__ldg(rows + k) * a.out_stride + i, v);
#pragma unroll
                    for (int j = 0; j < 8; ++j) acc[j] = fmaf(wk, v[j], acc[j]);
                }
                if (a.accumulate) {
                    float old[8];
                    load8<Y>(y + i, old);
#pragma unroll
                    for (int j = 0; j < 8; ++j) acc[j] = old[j] + acc[j];
                }
                store8<Y>(y + i, acc);
            }
        } else {
            for (int64_t i = threadIdx.x; i < a.hidden; i += blockDim.x) {
                float acc = 0.0f;
                for (int k = 0; k < (int)a.top_k; ++k) {
                    acc = fmaf(__ldg(w + k), to_float(load_ro(out + (int64_t)__ldg(rows + k) * a.out_stride + i)), acc);
                }
                if (a.accumulate) acc = to_float(y[i]) + acc;
                y[i] = from_float<Y>(acc);
            }
        }
    }
}

template <typename E>
void launch(const CombineArgs& a, int32_t y_dtype, unsigned grid, int threads, cudaStream_t st) {
    if (y_dtype == DSK_DTYPE_F32) {
        moe_combine_kernel<E, float><<<grid, threads, 0, st>>>(a);
    } else {
        moe_combine_kernel<E, __nv_bfloat16><<<grid, threads, 0, st>>>(a);
    }
}

bool is_row_dtype(int32_t dt) { return dt == DSK_DTYPE_F32 || dt == DSK_DTYPE_BF16; }

}  // namespace
}  // namespace dsk

extern "C" DSK_API dsk_status dsk_moe_combine(const dsk_moe_combine_params* p) {
    using namespace dsk;

    // Every argument is checked before anything touches the GPU; dtypes last (DSK_ERROR_UNSUPPORTED).
    DSK_CHECK_NOT_NULL(kOp, p, "p");
    DSK_CHECK_NOT_NULL(kOp, p->expert_output, "expert_output");
    DSK_CHECK_NOT_NULL(kOp, p->slot_rows, "slot_rows");
    DSK_CHECK_NOT_NULL(kOp, p->expert_weights, "expert_weights");
    DSK_CHECK_NOT_NULL(kOp, p->y, "y");
    DSK_CHECK_NOT_NULL(kOp, p->error_word, "error_word");
    DSK_CHECK_MIN(kOp, p->tokens, 1, "tokens");
    DSK_CHECK_MIN(kOp, p->top_k, 1, "top_k");
    DSK_CHECK_ARG(kOp, p->top_k <= INT32_MAX / p->tokens, "tokens * top_k must be < 2^31 (got %lld * %lld)",
                  (long long)p->tokens, (long long)p->top_k);
    DSK_CHECK_MIN(kOp, p->hidden, 1, "hidden");
    DSK_CHECK_ARG(kOp, p->expert_output_row_stride >= p->hidden,
                  "expert_output_row_stride must be >= hidden (got %lld, hidden %lld)",
                  (long long)p->expert_output_row_stride, (long long)p->hidden);
    DSK_CHECK_ARG(kOp, p->y_row_stride >= p->hidden, "y_row_stride must be >= hidden (got %lld, hidden %lld)",
                  (long long)p->y_row_stride, (long long)p->hidden);
    DSK_CHECK_ARG(kOp, p->accumulate == 0 || p->accumulate == 1, "accumulate must be 0 or 1 (got %d)", (int)p->accumulate);
    DSK_CHECK_ARG(kOp, p->error_site > 0, "error_site must be > 0 (got %d)", (int)p->error_site);

    // Overlaps (an unsupported dtype's size is taken as 2 here; the dtype is refused below).
    const int64_t slots = p->tokens * p->top_k;
    const int64_t e_esz = p->expert_output_dtype == DSK_DTYPE_F32 ? 4 : 2;
    const int64_t y_esz = p->y_dtype == DSK_DTYPE_F32 ? 4 : 2;
    const ByteRange y = view_bytes(p->y, 1, p->tokens, p->hidden, 0, p->y_row_stride, y_esz);
    const ByteRange out = view_bytes(p->expert_output, 1, slots, p->hidden, 0, p->expert_output_row_stride, e_esz);
    DSK_CHECK_ARG(kOp, !overlaps(y, out), "y must not overlap expert_output");
    DSK_CHECK_ARG(kOp, !overlaps(y, bytes_of(p->slot_rows, slots * 4)), "y must not overlap slot_rows");
    DSK_CHECK_ARG(kOp, !overlaps(y, bytes_of(p->expert_weights, slots * 4)), "y must not overlap expert_weights");
    DSK_CHECK_ARG(kOp, !overlaps(y, bytes_of(p->error_word, 32)), "y must not overlap error_word");

    if (!is_row_dtype(p->expert_output_dtype)) {
        DSK_UNSUPPORTED(kOp, "expert_output_dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->expert_output_dtype),
                        (int)p->expert_output_dtype);
    }
    if (!is_row_dtype(p->y_dtype)) {
        DSK_UNSUPPORTED(kOp, "y_dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->y_dtype), (int)p->y_dtype);
    }

    CombineArgs a{};
    a.out = p->expert_output;
    a.slot_rows = p->slot_rows;
    a.weights = p->expert_weights;
    a.y = p->y;
    a.error_word = p->error_word;
    a.tokens = p->tokens;
    a.top_k = p->top_k;
    a.hidden = p->hidden;
    a.out_stride = p->expert_output_row_stride;
    a.y_stride = p->y_row_stride;
    a.slots = (int32_t)slots;
    a.accumulate = p->accumulate;
    a.error_site = p->error_site;
    // Vector path: 8 elements a step (16 or 32 bytes each side): hidden a multiple of 8, every row 16-byte aligned.
    a.vec = p->hidden % 8 == 0 && is_aligned_16(p->expert_output) && is_aligned_16(p->y) &&
            (slots == 1 || (p->expert_output_row_stride * e_esz) % 16 == 0) &&
            (p->tokens == 1 || (p->y_row_stride * y_esz) % 16 == 0);
    // Threads: one per step of the row (8 elements vectorised, else 1), in whole warps, 32 .. 128.
    const int64_t steps = a.vec ? p->hidden / 8 : p->hidden;
    const int threads = steps >= kMaxThreads ? kMaxThreads : (int)((steps + 31) / 32 * 32);
    const unsigned grid = (unsigned)(p->tokens < 65535 * 16 ? p->tokens : 65535 * 16);  // the kernel loops over the rest

    const cudaStream_t st = static_cast<cudaStream_t>(p->stream);
    if (p->expert_output_dtype == DSK_DTYPE_F32) {
        launch<float>(a, p->y_dtype, grid, threads, st);
    } else {
        launch<__nv_bfloat16>(a, p->y_dtype, grid, threads, st);
    }
    DSK_CHECK_LAUNCH(kOp);
    return DSK_SUCCESS;
}

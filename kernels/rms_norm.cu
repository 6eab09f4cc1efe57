// rms_norm.cu: RMSNorm with an optional fused residual add (dsk_rms_norm).
//
// Math, per row of `cols` elements (all arithmetic in fp32; T = x_dtype, F32 or BF16; w is F32 or BF16):
//
//   plain:  v_i = x_i
//   fused:  v_i = round_T(x_i + residual_i)      one rounding; v is written to r
//   inv_rms = rsqrtf(sum_i(v_i * v_i) / cols + eps)   (sum over the rounded v, as the next layer sees it)
//   y_i     = round_T((v_i * inv_rms) * w_i)     one rounding, multiplications in this order
//
// Cost per row (the floor; w is read once per launch and then served from L1/L2):
//   plain:  read x, write y                   = 2 * cols * sizeof(T) bytes   (bf16, cols 7168: 28 KiB)
//   fused:  read x, residual, write r, y      = 4 * cols * sizeof(T) bytes   (bf16, cols 7168: 56 KiB)
//   FLOPs ~ 4 * cols: far below any GPU's ratio, so the kernel is memory-bound; its goal is a share of the
//   device-to-device copy bandwidth.
//
// Two kernels:
//   rms_norm_vec_kernel    the fast path: 16-byte accesses, x (and residual) read once into registers.
//   rms_norm_scalar_kernel any shape and alignment: scalar strided loop, two passes over the row.
// Both do the same per-element math; they differ only in the order in which the sum of squares is added up,
// which can move inv_rms (and so y) by an ulp.

#include <climits>
#include <cmath>

#include "common.cuh"

namespace dsk {
namespace {

constexpr const char* kOp = "dsk_rms_norm";
constexpr int kMaxThreads = 1024;      // largest block either kernel is launched with
constexpr int kMaxVpt = 8;             // most 16-byte vectors one thread of the fast path keeps in registers
constexpr int64_t kFewRows = 256;      // below this many rows, spread each row over up to 1024 threads
constexpr int kManyRowsThreads = 256;  // block-size cap otherwise (several blocks per SM)

// Largest block of the fast path for a given VPT: at 1024 threads a thread has 64 registers, which VPT 8
// (32 of them for x, 32 more for residual) overflows, so VPT 8 runs with at most 512 threads (128 registers).
constexpr int vec_max_threads(int vpt) { return vpt >= 8 ? 512 : kMaxThreads; }

// Most 16-byte vectors per row the fast path holds in registers: 4096 (32768 bf16 or 16384 f32 elements).
constexpr int64_t kMaxRowVecs = (int64_t)kMaxVpt * vec_max_threads(kMaxVpt);

// The params as the kernels see them: element pointers and element strides.
template <typename T, typename W> struct RmsNormArgs {
    const T* x;         // [rows, cols]
    const T* residual;  // [rows, cols], unused unless fused
    const W* w;         // [cols]
    T* y;               // [rows, cols]
    T* r;               // [rows, cols], unused unless fused
    int64_t rows;
    int64_t cols;
    int64_t x_stride;
    int64_t residual_stride;
    int64_t y_stride;
    int64_t r_stride;
    float eps;
};

// Fast path: each thread loads its VPT 16-byte vectors of the row (vector j = threadIdx.x + i * blockDim.x,
// so a warp's accesses are contiguous) into registers, writes r when fused, and after the block reduction
// scales the registers and stores y; x (and residual) are read from global memory exactly once.
// Needs every pointer 16-byte aligned and cols and the row strides multiples of Vec16<T>::kN.
template <typename T, typename W, int VPT, bool kFused>
__global__ void __launch_bounds__(vec_max_threads(VPT)) rms_norm_vec_kernel(const RmsNormArgs<T, W> a) {
    constexpr int kN = Vec16<T>::kN;  // elements per 16-byte vector of T
    __shared__ float scratch[32];
    const int num_vecs = (int)(a.cols / kN);

    for (int64_t row = blockIdx.x; row < a.rows; row += gridDim.x) {
        const T* x_row = a.x + row * a.x_stride;
        T* y_row = a.y + row * a.y_stride;

        // Issue every load of the row before any store (r may alias x or residual element for element).
        uint4 v[VPT];
        uint4 res[kFused ? VPT : 1];
#pragma unroll
        for (int i = 0; i < VPT; ++i) {
            const int j = threadIdx.x + i * blockDim.x;
            if (j < num_vecs) {
                v[i] = ld16(x_row + (int64_t)j * kN);
                if constexpr (kFused) res[i] = ld16(a.residual + row * a.residual_stride + (int64_t)j * kN);
            }
        }

        // With one vector per thread (the few-rows launch at decode widths), load w together with x, so its
        // latency overlaps x's and the reduction's instead of following them: at one row the kernel is a chain
        // of latencies (load x, reduce, load w, store) and this removes a link. At VPT 2 and up it costs
        // registers (and spills, f32 x at VPT 2); there w is L1-resident and other blocks hide its latency.
        constexpr bool kEarlyW = VPT == 1;
        float w_early[kEarlyW ? VPT : 1][kN];
        if constexpr (kEarlyW) {
#pragma unroll
            for (int i = 0; i < VPT; ++i) {
                const int j = threadIdx.x + i * blockDim.x;
                if (j < num_vecs) load_ro_widen<W, kN>(a.w + (int64_t)j * kN, w_early[i]);
            }
        }

        float sum_sq = 0.0f;
#pragma unroll
        for (int i = 0; i < VPT; ++i) {
            const int j = threadIdx.x + i * blockDim.x;
            if (j < num_vecs) {
                float f[kN];
                unpack16<T>(v[i], f);
                if constexpr (kFused) {
                    float g[kN];
                    unpack16<T>(res[i], g);
#pragma unroll
                    for (int k = 0; k < kN; ++k) f[k] += g[k];
                    v[i] = pack16<T>(f);  // r = round_T(x + residual)
                    st16(a.r + row * a.r_stride + (int64_t)j * kN, v[i]);
                    unpack16<T>(v[i], f);  // the norm is taken over the rounded r
                }
#pragma unroll
                for (int k = 0; k < kN; ++k) sum_sq += f[k] * f[k];
            }
        }

        sum_sq = block_sum(sum_sq, scratch);
        const float inv_rms = rsqrtf(sum_sq / (float)a.cols + a.eps);

        // Scale and store.
#pragma unroll
        for (int i = 0; i < VPT; ++i) {
            const int j = threadIdx.x + i * blockDim.x;
            if (j < num_vecs) {
                float f[kN];
                float wf[kN];
                unpack16<T>(v[i], f);
                if constexpr (kEarlyW) {
#pragma unroll
                    for (int k = 0; k < kN; ++k) wf[k] = w_early[i][k];
                } else {
                    load_ro_widen<W, kN>(a.w + (int64_t)j * kN, wf);
                }
#pragma unroll
                for (int k = 0; k < kN; ++k) f[k] = f[k] * inv_rms * wf[k];
                st16(y_row + (int64_t)j * kN, pack16<T>(f));  // y = round_T((v * inv_rms) * w)
            }
        }
    }
}

// General path: any cols, strides and alignment. Pass 1 reads x (+ residual), writes r when fused and sums
// the squares; pass 2 re-reads the normalised input (r when fused, else x) and writes y. Each thread touches
// the same elements in both passes, so every in-place combination the header allows is safe.
template <typename T, typename W, bool kFused>
__global__ void __launch_bounds__(kMaxThreads) rms_norm_scalar_kernel(const RmsNormArgs<T, W> a) {
    __shared__ float scratch[32];

    for (int64_t row = blockIdx.x; row < a.rows; row += gridDim.x) {
        const T* x_row = a.x + row * a.x_stride;
        T* y_row = a.y + row * a.y_stride;
        T* r_row = kFused ? a.r + row * a.r_stride : nullptr;

        float sum_sq = 0.0f;
        for (int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) {
            float v = to_float(x_row[c]);
            if constexpr (kFused) {
                const T rounded = from_float<T>(v + to_float(a.residual[row * a.residual_stride + c]));
                r_row[c] = rounded;
                v = to_float(rounded);
            }
            sum_sq += v * v;
        }

        sum_sq = block_sum(sum_sq, scratch);
        const float inv_rms = rsqrtf(sum_sq / (float)a.cols + a.eps);

        const T* src = kFused ? r_row : x_row;
        for (int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) {
            y_row[c] = from_float<T>(to_float(src[c]) * inv_rms * to_float(load_ro(a.w + c)));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Launcher

// Threads for `units` work items per row: a multiple of 32 in [32, cap].
inline int threads_for(int64_t units, int cap) {
    const int64_t t = units < cap ? units : cap;
    return t <= 32 ? 32 : (int)((t + 31) / 32 * 32);
}

// Block shape of the fast path for a row of `num_vecs` 16-byte vectors: the fewest vectors per thread (1, 2,
// 4, 8) whose block (a multiple of 32 threads) fits under `cap` and under that VPT's own limit. Only under the
// many-rows cap (256) can none fit while the row still fits in registers (2048 < num_vecs <= 4096): then VPT
// 8 with up to 512 threads. vpt = 0 when the row is too wide for registers (num_vecs > kMaxRowVecs).
struct VecShape {
    int vpt;
    int threads;
};
inline VecShape pick_vec_shape(int64_t num_vecs, int cap) {
    if (num_vecs > kMaxRowVecs) return {0, 0};
    for (int vpt = 1; vpt <= kMaxVpt; vpt *= 2) {
        const int limit = cap < vec_max_threads(vpt) ? cap : vec_max_threads(vpt);
        const int64_t threads = (num_vecs + vpt - 1) / vpt;
        if (threads <= limit) return {vpt, threads_for(threads, limit)};
    }
    return {kMaxVpt, threads_for((num_vecs + kMaxVpt - 1) / kMaxVpt, vec_max_threads(kMaxVpt))};
}

template <typename T, typename W, bool kFused>
void launch_vec(const RmsNormArgs<T, W>& a, VecShape shape, unsigned grid, cudaStream_t stream) {
    switch (shape.vpt) {
        case 1: rms_norm_vec_kernel<T, W, 1, kFused><<<grid, shape.threads, 0, stream>>>(a); break;
        case 2: rms_norm_vec_kernel<T, W, 2, kFused><<<grid, shape.threads, 0, stream>>>(a); break;
        case 4: rms_norm_vec_kernel<T, W, 4, kFused><<<grid, shape.threads, 0, stream>>>(a); break;
        default: rms_norm_vec_kernel<T, W, 8, kFused><<<grid, shape.threads, 0, stream>>>(a); break;
    }
}

template <typename T, typename W> dsk_status launch(const dsk_rms_norm_params& p, bool fused) {
    constexpr int kN = Vec16<T>::kN;
    const RmsNormArgs<T, W> a{static_cast<const T*>(p.x), static_cast<const T*>(p.residual),
                              static_cast<const W*>(p.w), static_cast<T*>(p.y), static_cast<T*>(p.r),
                              p.rows, p.cols, p.x_row_stride, p.residual_row_stride, p.y_row_stride,
                              p.r_row_stride, p.eps};
    const cudaStream_t stream = static_cast<cudaStream_t>(p.stream);
    const unsigned grid = (unsigned)(p.rows < INT_MAX ? p.rows : INT_MAX);  // kernels loop over extra rows
    const int cap = p.rows < kFewRows ? kMaxThreads : kManyRowsThreads;

    // Fast path: every pointer used 16-byte aligned, cols and every used row stride (only used when rows > 1)
    // whole 16-byte vectors of T, and the row fits in registers (at most kMaxRowVecs vectors). w needs only
    // its pointer aligned: its chunk for vector j of x starts at j * kN elements, a multiple of 8, 16 or 32
    // bytes, whatever w's dtype.
    const auto stride_ok = [&](int64_t stride) { return p.rows == 1 || stride % kN == 0; };
    bool vec_ok = is_aligned_16(p.x) && is_aligned_16(p.y) && is_aligned_16(p.w) && p.cols % kN == 0 &&
                  stride_ok(p.x_row_stride) && stride_ok(p.y_row_stride);
    if (fused) {
        vec_ok = vec_ok && is_aligned_16(p.residual) && is_aligned_16(p.r) && stride_ok(p.residual_row_stride) &&
                 stride_ok(p.r_row_stride);
    }
    const VecShape shape = vec_ok ? pick_vec_shape(p.cols / kN, cap) : VecShape{0, 0};

    if (shape.vpt != 0) {
        if (fused) {
            launch_vec<T, W, true>(a, shape, grid, stream);
        } else {
            launch_vec<T, W, false>(a, shape, grid, stream);
        }
    } else {
        const int threads = threads_for(p.cols, cap);
        if (fused) {
            rms_norm_scalar_kernel<T, W, true><<<grid, threads, 0, stream>>>(a);
        } else {
            rms_norm_scalar_kernel<T, W, false><<<grid, threads, 0, stream>>>(a);
        }
    }
    DSK_CHECK_LAUNCH(kOp);
    return DSK_SUCCESS;
}

}  // namespace
}  // namespace dsk

// A row stride that is used must be >= cols: "dsk_rms_norm: x_row_stride must be >= cols (got 7, cols 8)".
#define DSK_CHECK_ROW_STRIDE(stride, field)                                                                  \
    DSK_CHECK_ARG(kOp, (stride) >= p->cols, "%s must be >= cols (got %lld, cols %lld)", field,               \
                  (long long)(stride), (long long)p->cols)

extern "C" DSK_API dsk_status dsk_rms_norm(const dsk_rms_norm_params* p) {
    using namespace dsk;

    // Every argument is checked before anything touches the GPU; dtypes last (DSK_ERROR_UNSUPPORTED).
    DSK_CHECK_NOT_NULL(kOp, p, "p");
    DSK_CHECK_NOT_NULL(kOp, p->x, "x");
    DSK_CHECK_NOT_NULL(kOp, p->w, "w");
    DSK_CHECK_NOT_NULL(kOp, p->y, "y");
    DSK_CHECK_ARG(kOp, (p->residual == nullptr) == (p->r == nullptr),
                  "residual and r must be both NULL or both set (residual %s, r %s)",
                  p->residual != nullptr ? "set" : "NULL", p->r != nullptr ? "set" : "NULL");
    const bool fused = p->residual != nullptr;
    DSK_CHECK_MIN(kOp, p->rows, 1, "rows");
    DSK_CHECK_MIN(kOp, p->cols, 1, "cols");
    DSK_CHECK_ROW_STRIDE(p->x_row_stride, "x_row_stride");
    if (fused) DSK_CHECK_ROW_STRIDE(p->residual_row_stride, "residual_row_stride");
    DSK_CHECK_ROW_STRIDE(p->y_row_stride, "y_row_stride");
    if (fused) DSK_CHECK_ROW_STRIDE(p->r_row_stride, "r_row_stride");
    DSK_CHECK_ARG(kOp, std::isfinite(p->eps) && p->eps > 0.0f, "eps must be finite and > 0 (got %g)",
                  (double)p->eps);
    DSK_CHECK_ARG(kOp, !fused || p->r != p->y, "r and y must differ (both %p)", p->y);

    // dtypes: x F32 or BF16, w F32 or BF16.
    const int32_t xt = p->x_dtype;
    const int32_t wt = p->w_dtype;
    if (xt == DSK_DTYPE_BF16 && wt == DSK_DTYPE_BF16) return launch<__nv_bfloat16, __nv_bfloat16>(*p, fused);
    if (xt == DSK_DTYPE_BF16 && wt == DSK_DTYPE_F32) return launch<__nv_bfloat16, float>(*p, fused);
    if (xt == DSK_DTYPE_F32 && wt == DSK_DTYPE_F32) return launch<float, float>(*p, fused);
    if (xt == DSK_DTYPE_F32 && wt == DSK_DTYPE_BF16) return launch<float, __nv_bfloat16>(*p, fused);
    DSK_UNSUPPORTED(kOp, "x_dtype %s (%d) with w_dtype %s (%d) is not supported (x_dtype: F32 or BF16; w_dtype: F32 or BF16)",
                    dtype_name(xt), (int)xt, dtype_name(wt), (int)wt);
}

// softmax.cu: row softmax over contiguous rows (dsk_softmax):
//
//   y[r, i] = round_T(exp(x[r, i] - max_r) / sum_j exp(x[r, j] - max_r))      (fp32; y may be exactly x)
//
// One block per row (grid-stride over rows). Pass 1 reads the row once and keeps, per thread, a running maximum m and
// the sum s of exp(x - m) over its elements (rescaled when m grows: s = s * exp(m_old - m_new) + 1); the block then
// combines the (m, s) pairs. Pass 2 reads the row again and writes exp(x - m) / s. Each thread writes only the elements
// it read, after the block-wide barrier of the reduction, so y may be exactly x. A NaN anywhere in a row makes that row
// all NaN (as the reference's); -inf elements give 0 (a row of -inf only gives NaN, as exp(-inf - (-inf)) does there).
//
// Cost: read the row twice (the second read mostly from L2), write it once; ~2 exp per element: memory-bound, the goal
// is a share of the device-to-device copy bandwidth. 16-byte vectors where x and y are aligned and rows are whole
// vectors; elements otherwise.
#include <climits>
#include <cmath>

#include "common.cuh"
#include "weight_check.cuh"

namespace dsk {
namespace {

constexpr const char* kOp = "dsk_softmax";
constexpr int kMaxThreads = 1024;
constexpr int64_t kFewRows = 256;      // below this many rows, spread each row over up to 1024 threads
constexpr int kManyRowsThreads = 256;  // block-size cap otherwise (several blocks per SM)

struct SoftmaxArgs {
    const void* x;  // [rows, row_length]
    void* y;        // [rows, row_length]; may be x
    int64_t rows, row_length;
};

// Adds element v to a running (max m, sum s of exp(x - m)). v == m adds exp(0) = 1 (also for -inf == -inf).
__device__ __forceinline__ void online_add(float& m, float& s, float v) {
    if (v > m) {
        s = s * expf(m - v) + 1.0f;
        m = v;
    } else {
        s += v == m ? 1.0f : expf(v - m);
    }
}

// Merges (m2, s2) into (m, s); a side already at the new maximum is not rescaled (so -inf with -inf stays exact).
__device__ __forceinline__ void combine(float& m, float& s, float m2, float s2) {
    const float mn = fmaxf(m, m2);
    s = (m == mn ? s : s * expf(m - mn)) + (m2 == mn ? s2 : s2 * expf(m2 - mn));
    m = mn;
}

// The block's (max, sum) in every thread; `sm`, `ss` are __shared__ float[32]. The leading barrier makes it safe to
// call once per row in a loop. blockDim.x is a multiple of 32.
__device__ __forceinline__ void block_max_sum(float& m, float& s, float* sm, float* ss) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, num_warps = blockDim.x >> 5;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        combine(m, s, __shfl_xor_sync(0xffffffffu, m, offset), __shfl_xor_sync(0xffffffffu, s, offset));
    }
    __syncthreads();  // the previous row's readers are done with sm, ss
    if (lane == 0) {
        sm[warp] = m;
        ss[warp] = s;
    }
    __syncthreads();
    m = lane < num_warps ? sm[lane] : -INFINITY;
    s = lane < num_warps ? ss[lane] : 0.0f;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        combine(m, s, __shfl_xor_sync(0xffffffffu, m, offset), __shfl_xor_sync(0xffffffffu, s, offset));
    }
}

template <typename T, bool kVec> __global__ void __launch_bounds__(kMaxThreads) softmax_kernel(const SoftmaxArgs a) {
    constexpr int kN = kVec ? Vec16<T>::kN : 1;  // elements per unit
    __shared__ float sm[32], ss[32];
    const int64_t units = a.row_length / kN;
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        const T* x = static_cast<const T*>(a.x) + r * a.row_length;
        T* y = static_cast<T*>(a.y) + r * a.row_length;
        float m = -INFINITY, s = 0.0f;
        for (int64_t j = threadIdx.x; j < units; j += blockDim.x) {
            if constexpr (kVec) {
                float f[kN];
                unpack16<T>(ld16(x + j * kN), f);  // y may be x: plain loads
#pragma unroll
                for (int k = 0; k < kN; ++k) online_add(m, s, f[k]);
            } else {
                online_add(m, s, to_float(x[j]));
            }
        }
        block_max_sum(m, s, sm, ss);
        for (int64_t j = threadIdx.x; j < units; j += blockDim.x) {
            if constexpr (kVec) {
                float f[kN];
                unpack16<T>(ld16(x + j * kN), f);
#pragma unroll
                for (int k = 0; k < kN; ++k) f[k] = expf(f[k] - m) / s;
                st16(y + j * kN, pack16<T>(f));
            } else {
                y[j] = from_float<T>(expf(to_float(x[j]) - m) / s);
            }
        }
    }
}

// Threads for `units` work items per row: a multiple of 32 in [32, cap].
inline int threads_for(int64_t units, int cap) {
    const int64_t t = units < cap ? units : cap;
    return t <= 32 ? 32 : (int)((t + 31) / 32 * 32);
}

template <typename T> dsk_status launch(const dsk_softmax_params& p) {
    constexpr int kN = Vec16<T>::kN;
    const bool vec = is_aligned_16(p.x) && is_aligned_16(p.y) && p.row_length % kN == 0;
    const SoftmaxArgs a{p.x, p.y, p.rows, p.row_length};
    const int threads = threads_for(vec ? p.row_length / kN : p.row_length, p.rows < kFewRows ? kMaxThreads : kManyRowsThreads);
    const unsigned grid = (unsigned)(p.rows < INT_MAX ? p.rows : INT_MAX);  // the kernel loops over extra rows
    const cudaStream_t stream = static_cast<cudaStream_t>(p.stream);
    if (vec) {
        softmax_kernel<T, true><<<grid, threads, 0, stream>>>(a);
    } else {
        softmax_kernel<T, false><<<grid, threads, 0, stream>>>(a);
    }
    DSK_CHECK_LAUNCH(kOp);
    return DSK_SUCCESS;
}

}  // namespace
}  // namespace dsk

extern "C" DSK_API dsk_status dsk_softmax(const dsk_softmax_params* p) {
    using namespace dsk;

    // Every argument is checked before anything touches the GPU; the dtype last (DSK_ERROR_UNSUPPORTED).
    DSK_CHECK_NOT_NULL(kOp, p, "p");
    DSK_CHECK_NOT_NULL(kOp, p->x, "x");
    DSK_CHECK_NOT_NULL(kOp, p->y, "y");
    DSK_CHECK_MIN(kOp, p->rows, 1, "rows");
    DSK_CHECK_MIN(kOp, p->row_length, 1, "row_length");
    DSK_CHECK_ARG(kOp, p->reserved == 0, "reserved must be 0 (got %d)", (int)p->reserved);
    // y is exactly x or apart from it (an unsupported dtype's size is taken as 2 here; it is refused below).
    const int64_t bytes = p->rows * p->row_length * (p->dtype == DSK_DTYPE_F32 ? 4 : 2);
    DSK_CHECK_ARG(kOp, p->y == p->x || !overlaps(bytes_of(p->y, bytes), bytes_of(p->x, bytes)),
                  "y must be exactly x or not overlap it");

    if (p->dtype == DSK_DTYPE_BF16) return launch<__nv_bfloat16>(*p);
    if (p->dtype == DSK_DTYPE_F32) return launch<float>(*p);
    DSK_UNSUPPORTED(kOp, "dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->dtype), (int)p->dtype);
}

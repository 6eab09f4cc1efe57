// silu_and_mul.cu: SwiGLU's gate (dsk_silu_and_mul):
//
//   y[r, i] = round_T(silu(g) * u),  g = x[r, i], u = x[r, intermediate + i], silu(g) = g / (1 + exp(-g))   (fp32)
//
// x [rows, 2 * intermediate] = [gate | up], y [rows, intermediate], T = F32 or BF16; y must not overlap x.
// Cost: read 2 * intermediate, write intermediate elements per row; ~10 FLOPs per output (exp included): memory-bound,
// its goal is a share of the device-to-device copy bandwidth (bytes read + written).
//
// One kernel, templated on T and on the access width: a thread takes one 16-byte vector of the gate, the matching one
// of the up half and writes one vector of y (VEC: every pointer, the row strides and intermediate whole vectors), or one
// element (any shape). A row's units go to 2^lane_bits threads (the power of two at or above the units, at most the
// block), so short rows (an expert's 1408 bf16 = 176 vectors) share a block instead of idling most of it. Grid: x over a
// row's units, y over groups of rows (grid-stride in both), so no thread divides an index.
#include <climits>
#include <cmath>

#include "common.cuh"
#include "weight_check.cuh"

namespace dsk {
namespace {

constexpr const char* kOp = "dsk_silu_and_mul";
constexpr int kThreads = 256;

struct SiluArgs {
    const void* x;  // [rows, 2 * intermediate], rows x_stride apart
    void* y;        // [rows, intermediate], rows y_stride apart
    int64_t rows, intermediate, x_stride, y_stride;  // elements
    int lane_bits;  // 2^lane_bits threads per row
};

__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// Each thread: one unit (a 16-byte vector when kVec, else one element) of each row it visits.
template <typename T, bool kVec> __global__ void __launch_bounds__(kThreads) silu_and_mul_kernel(const SiluArgs a) {
    constexpr int kN = kVec ? Vec16<T>::kN : 1;  // elements per unit
    const int64_t units = a.intermediate / kN;
    const int lanes = 1 << a.lane_bits;  // threads per row
    const int lane = threadIdx.x & (lanes - 1);
    const int rows_per_block = blockDim.x >> a.lane_bits;
    for (int64_t r = (int64_t)blockIdx.y * rows_per_block + (threadIdx.x >> a.lane_bits); r < a.rows;
         r += (int64_t)gridDim.y * rows_per_block) {
        const T* gate = static_cast<const T*>(a.x) + r * a.x_stride;
        const T* up = gate + a.intermediate;
        T* y = static_cast<T*>(a.y) + r * a.y_stride;
        for (int64_t j = blockIdx.x * (int64_t)lanes + lane; j < units; j += (int64_t)gridDim.x * lanes) {
            if constexpr (kVec) {
                float g[kN], u[kN];
                unpack16<T>(ld16_ro(gate + j * kN), g);  // y never overlaps x: read-only loads
                unpack16<T>(ld16_ro(up + j * kN), u);
#pragma unroll
                for (int k = 0; k < kN; ++k) g[k] = silu_mul(g[k], u[k]);
                st16(y + j * kN, pack16<T>(g));
            } else {
                y[j] = from_float<T>(silu_mul(to_float(load_ro(gate + j)), to_float(load_ro(up + j))));
            }
        }
    }
}

template <typename T> dsk_status launch(const dsk_silu_and_mul_params& p) {
    constexpr int kN = Vec16<T>::kN;
    const auto stride_ok = [&](int64_t s) { return p.rows == 1 || s % kN == 0; };
    const bool vec = is_aligned_16(p.x) && is_aligned_16(p.y) && p.intermediate % kN == 0 && stride_ok(p.x_row_stride) &&
                     stride_ok(p.y_row_stride);
    const int64_t units = vec ? p.intermediate / kN : p.intermediate;
    int lane_bits = 0;
    while ((1 << lane_bits) < kThreads && (1 << lane_bits) < units) ++lane_bits;
    const SiluArgs a{p.x, p.y, p.rows, p.intermediate, p.x_row_stride, p.y_row_stride, lane_bits};
    const int64_t bx = (units + (1 << lane_bits) - 1) >> lane_bits;
    const int64_t by = (p.rows + (kThreads >> lane_bits) - 1) / (kThreads >> lane_bits);
    const dim3 grid((unsigned)(bx < 65535 ? bx : 65535), (unsigned)(by < 65535 ? by : 65535));
    const cudaStream_t stream = static_cast<cudaStream_t>(p.stream);
    if (vec) {
        silu_and_mul_kernel<T, true><<<grid, kThreads, 0, stream>>>(a);
    } else {
        silu_and_mul_kernel<T, false><<<grid, kThreads, 0, stream>>>(a);
    }
    DSK_CHECK_LAUNCH(kOp);
    return DSK_SUCCESS;
}

}  // namespace
}  // namespace dsk

extern "C" DSK_API dsk_status dsk_silu_and_mul(const dsk_silu_and_mul_params* p) {
    using namespace dsk;

    // Every argument is checked before anything touches the GPU; the dtype last (DSK_ERROR_UNSUPPORTED).
    DSK_CHECK_NOT_NULL(kOp, p, "p");
    DSK_CHECK_NOT_NULL(kOp, p->x, "x");
    DSK_CHECK_NOT_NULL(kOp, p->y, "y");
    DSK_CHECK_MIN(kOp, p->rows, 1, "rows");
    DSK_CHECK_MIN(kOp, p->intermediate, 1, "intermediate");
    DSK_CHECK_ARG(kOp, p->x_row_stride >= 2 * p->intermediate,
                  "x_row_stride must be >= 2 * intermediate (got %lld, intermediate %lld)", (long long)p->x_row_stride,
                  (long long)p->intermediate);
    DSK_CHECK_ARG(kOp, p->y_row_stride >= p->intermediate, "y_row_stride must be >= intermediate (got %lld, intermediate %lld)",
                  (long long)p->y_row_stride, (long long)p->intermediate);
    DSK_CHECK_ARG(kOp, p->reserved == 0, "reserved must be 0 (got %d)", (int)p->reserved);
    // An unsupported dtype's size is taken as 2 here; the dtype is refused below.
    const int64_t esz = p->dtype == DSK_DTYPE_F32 ? 4 : 2;
    DSK_CHECK_ARG(kOp,
                  !overlaps(view_bytes(p->y, 1, p->rows, p->intermediate, 0, p->y_row_stride, esz),
                            view_bytes(p->x, 1, p->rows, 2 * p->intermediate, 0, p->x_row_stride, esz)),
                  "y must not overlap x");

    if (p->dtype == DSK_DTYPE_BF16) return launch<__nv_bfloat16>(*p);
    if (p->dtype == DSK_DTYPE_F32) return launch<float>(*p);
    DSK_UNSUPPORTED(kOp, "dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->dtype), (int)p->dtype);
}

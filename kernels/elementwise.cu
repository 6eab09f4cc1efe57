// elementwise.cu: the elementwise binary and scalar ops over n contiguous elements (dsk_elementwise):
//
//   DSK_ELEMENTWISE_ADD    z[i] = round_T(x[i] + y[i])       (residual adds)
//   DSK_ELEMENTWISE_SCALE  z[i] = round_T(x[i] * factor)
//
// fp32 arithmetic, one rounding to T (F32 or BF16). z may be exactly x or y: each thread reads its elements before it
// writes them, with plain (not read-only) loads. Cost: ADD reads 2n and writes n elements, SCALE reads n and writes n;
// one FLOP each: memory-bound, the goal is the device-to-device copy bandwidth.
//
// One kernel per op, templated on T: where x, (y) and z are all 16-byte aligned, the first n / kN elements go as 16-byte
// vectors (one per thread per step of a grid-stride loop) and the last n % kN as elements; otherwise all as elements.
#include <climits>
#include <cmath>

#include "common.cuh"
#include "weight_check.cuh"

namespace dsk {
namespace {

constexpr const char* kOp = "dsk_elementwise";
constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;  // grid-stride beyond this

struct EwArgs {
    const void* x;
    const void* y;  // ADD only
    void* z;
    int64_t n;
    int64_t vectors;  // 16-byte vectors at the front (0 when not aligned)
    float factor;     // SCALE only
};

template <bool kAdd> __device__ __forceinline__ float apply(float a, float b, float factor) {
    if constexpr (kAdd) {
        return a + b;
    } else {
        (void)b;
        return a * factor;
    }
}

template <typename T, bool kAdd> __global__ void __launch_bounds__(kThreads) elementwise_kernel(const EwArgs a) {
    constexpr int kN = Vec16<T>::kN;
    const T* x = static_cast<const T*>(a.x);
    const T* y = static_cast<const T*>(a.y);
    T* z = static_cast<T*>(a.z);
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    const int64_t first = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    for (int64_t v = first; v < a.vectors; v += step) {
        float fx[kN], fy[kN] = {};
        unpack16<T>(ld16(x + v * kN), fx);  // z may be x or y: plain loads
        if constexpr (kAdd) unpack16<T>(ld16(y + v * kN), fy);
#pragma unroll
        for (int k = 0; k < kN; ++k) fx[k] = apply<kAdd>(fx[k], kAdd ? fy[k] : 0.0f, a.factor);
        st16(z + v * kN, pack16<T>(fx));
    }
    // The scalar tail (or everything, when not aligned).
    for (int64_t i = a.vectors * kN + first; i < a.n; i += step) {
        const float fy = kAdd ? to_float(y[i]) : 0.0f;
        z[i] = from_float<T>(apply<kAdd>(to_float(x[i]), fy, a.factor));
    }
}

template <typename T> dsk_status launch(const dsk_elementwise_params& p, bool add) {
    constexpr int kN = Vec16<T>::kN;
    const bool aligned = is_aligned_16(p.x) && is_aligned_16(p.z) && (!add || is_aligned_16(p.y));
    const EwArgs a{p.x, p.y, p.z, p.n, aligned ? p.n / kN : 0, p.factor};
    const int64_t units = a.vectors + (p.n - a.vectors * kN);  // per thread: a vector, or a tail element
    const int64_t blocks = (units + kThreads - 1) / kThreads;
    const unsigned grid = (unsigned)(blocks < kMaxBlocks ? blocks : kMaxBlocks);
    const cudaStream_t stream = static_cast<cudaStream_t>(p.stream);
    if (add) {
        elementwise_kernel<T, true><<<grid, kThreads, 0, stream>>>(a);
    } else {
        elementwise_kernel<T, false><<<grid, kThreads, 0, stream>>>(a);
    }
    DSK_CHECK_LAUNCH(kOp);
    return DSK_SUCCESS;
}

}  // namespace
}  // namespace dsk

extern "C" DSK_API dsk_status dsk_elementwise(const dsk_elementwise_params* p) {
    using namespace dsk;

    // Every argument is checked before anything touches the GPU; the dtype last (DSK_ERROR_UNSUPPORTED).
    DSK_CHECK_NOT_NULL(kOp, p, "p");
    DSK_CHECK_ARG(kOp, p->op == DSK_ELEMENTWISE_ADD || p->op == DSK_ELEMENTWISE_SCALE,
                  "op must be ADD (0) or SCALE (1) (got %d)", (int)p->op);
    const bool add = p->op == DSK_ELEMENTWISE_ADD;
    DSK_CHECK_NOT_NULL(kOp, p->x, "x");
    if (add) {
        DSK_CHECK_NOT_NULL(kOp, p->y, "y");
    } else {
        DSK_CHECK_ARG(kOp, p->y == nullptr, "y must be NULL for SCALE");
    }
    DSK_CHECK_NOT_NULL(kOp, p->z, "z");
    DSK_CHECK_MIN(kOp, p->n, 1, "n");
    DSK_CHECK_ARG(kOp, add || std::isfinite(p->factor), "factor must be finite for SCALE (got %g)", (double)p->factor);
    DSK_CHECK_ARG(kOp, p->reserved == 0, "reserved must be 0 (got %d)", (int)p->reserved);
    // z is exactly an input or apart from it (an unsupported dtype's size is taken as 2 here; it is refused below).
    const int64_t bytes = p->n * (p->dtype == DSK_DTYPE_F32 ? 4 : 2);
    const ByteRange zr = bytes_of(p->z, bytes);
    DSK_CHECK_ARG(kOp, p->z == p->x || !overlaps(zr, bytes_of(p->x, bytes)), "z must be exactly x or not overlap it");
    DSK_CHECK_ARG(kOp, !add || p->z == p->y || !overlaps(zr, bytes_of(p->y, bytes)), "z must be exactly y or not overlap it");

    if (p->dtype == DSK_DTYPE_BF16) return launch<__nv_bfloat16>(*p, add);
    if (p->dtype == DSK_DTYPE_F32) return launch<float>(*p, add);
    DSK_UNSUPPORTED(kOp, "dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->dtype), (int)p->dtype);
}

// copy_columns.cu: a block of columns between two row-major matrices (dsk_copy_columns), bit for bit:
//
//   y[r, y_offset + c] = x[r, x_offset + c]   for r < rows, c < width;   every other element of y is left as it is.
//
// MLA uses it to place q_pe beside the absorbed query and to move the latent part of kv_a rows around a dense-only
// RMSNorm. A pure copy: read width, write width elements per row; its goal is the device-to-device copy bandwidth.
//
// The copy is the same for F32 and BF16 (raw bytes), so one kernel, templated on the access unit U: the widest of 16, 8,
// 4 or 2 bytes that both views' starts, the row's bytes and the row strides (in bytes) are multiples of. A row's units
// go to 2^lane_bits threads (the power of two at or above the units, at most the block), so a block of 256 threads
// copies 256 >> lane_bits rows at once (MLA's q_pe is 8 units per row: 32 rows per block, not 8 busy threads of 256).
// Grid: x over a row's units, y over groups of rows (grid-stride in both); no thread divides an index.
#include <cstdint>

#include "common.cuh"
#include "weight_check.cuh"

namespace dsk {
namespace {

constexpr const char* kOp = "dsk_copy_columns";
constexpr int kThreads = 256;

struct CopyArgs {
    const unsigned char* x;  // the first copied element of row 0
    unsigned char* y;        // where it goes
    int64_t rows, units;     // units of U per row
    int64_t x_stride, y_stride;  // bytes
    int lane_bits;           // 2^lane_bits threads per row
};

template <typename U> __global__ void __launch_bounds__(kThreads) copy_columns_kernel(const CopyArgs a) {
    const int lanes = 1 << a.lane_bits;                    // threads per row
    const int lane = threadIdx.x & (lanes - 1);
    const int rows_per_block = blockDim.x >> a.lane_bits;
    for (int64_t r = (int64_t)blockIdx.y * rows_per_block + (threadIdx.x >> a.lane_bits); r < a.rows;
         r += (int64_t)gridDim.y * rows_per_block) {
        const U* src = reinterpret_cast<const U*>(a.x + r * a.x_stride);
        U* dst = reinterpret_cast<U*>(a.y + r * a.y_stride);
        for (int64_t j = blockIdx.x * (int64_t)lanes + lane; j < a.units; j += (int64_t)gridDim.x * lanes) {
            dst[j] = __ldg(src + j);  // y's rows never overlap x's: read-only loads
        }
    }
}

// The widest unit (16, 8, 4, 2 bytes) that every address and length of the copy is a multiple of.
inline int unit_bytes(uintptr_t x, uintptr_t y, int64_t row_bytes, int64_t x_stride, int64_t y_stride, int64_t rows) {
    uintptr_t all = x | y | (uintptr_t)row_bytes;
    if (rows > 1) all |= (uintptr_t)x_stride | (uintptr_t)y_stride;  // one row: the strides are never used
    return (all & 15u) == 0 ? 16 : (all & 7u) == 0 ? 8 : (all & 3u) == 0 ? 4 : 2;
}

dsk_status launch(const dsk_copy_columns_params& p, int64_t esz) {
    const unsigned char* x = static_cast<const unsigned char*>(p.x) + p.x_offset * esz;
    unsigned char* y = static_cast<unsigned char*>(p.y) + p.y_offset * esz;
    const int64_t row_bytes = p.width * esz, xs = p.x_row_stride * esz, ys = p.y_row_stride * esz;
    const int unit = unit_bytes(reinterpret_cast<uintptr_t>(x), reinterpret_cast<uintptr_t>(y), row_bytes, xs, ys, p.rows);
    const int64_t units = row_bytes / unit;
    int lane_bits = 0;
    while ((1 << lane_bits) < kThreads && (1 << lane_bits) < units) ++lane_bits;
    const CopyArgs a{x, y, p.rows, units, xs, ys, lane_bits};
    const int64_t bx = (units + (1 << lane_bits) - 1) >> lane_bits;
    const int64_t by = (p.rows + (kThreads >> lane_bits) - 1) / (kThreads >> lane_bits);
    const dim3 grid((unsigned)(bx < 65535 ? bx : 65535), (unsigned)(by < 65535 ? by : 65535));
    const cudaStream_t stream = static_cast<cudaStream_t>(p.stream);
    switch (unit) {
        case 16: copy_columns_kernel<uint4><<<grid, kThreads, 0, stream>>>(a); break;
        case 8: copy_columns_kernel<uint2><<<grid, kThreads, 0, stream>>>(a); break;
        case 4: copy_columns_kernel<uint32_t><<<grid, kThreads, 0, stream>>>(a); break;
        default: copy_columns_kernel<uint16_t><<<grid, kThreads, 0, stream>>>(a); break;
    }
    DSK_CHECK_LAUNCH(kOp);
    return DSK_SUCCESS;
}

}  // namespace
}  // namespace dsk

// "dsk_copy_columns: x_row_stride must be >= x_offset + width (got 10, x_offset 4, width 8)".
#define DSK_CHECK_COPY_STRIDE(stride, offset, name, offset_name)                                             \
    DSK_CHECK_ARG(kOp, (stride) >= (offset) + p->width, "%s must be >= %s + width (got %lld, %s %lld, width %lld)", \
                  name, offset_name, (long long)(stride), offset_name, (long long)(offset), (long long)p->width)

extern "C" DSK_API dsk_status dsk_copy_columns(const dsk_copy_columns_params* p) {
    using namespace dsk;

    // Every argument is checked before anything touches the GPU; the dtype last (DSK_ERROR_UNSUPPORTED).
    DSK_CHECK_NOT_NULL(kOp, p, "p");
    DSK_CHECK_NOT_NULL(kOp, p->x, "x");
    DSK_CHECK_NOT_NULL(kOp, p->y, "y");
    DSK_CHECK_MIN(kOp, p->rows, 1, "rows");
    DSK_CHECK_MIN(kOp, p->width, 1, "width");
    DSK_CHECK_MIN(kOp, p->x_offset, 0, "x_offset");
    DSK_CHECK_MIN(kOp, p->y_offset, 0, "y_offset");
    DSK_CHECK_COPY_STRIDE(p->x_row_stride, p->x_offset, "x_row_stride", "x_offset");
    DSK_CHECK_COPY_STRIDE(p->y_row_stride, p->y_offset, "y_row_stride", "y_offset");
    DSK_CHECK_ARG(kOp, p->reserved == 0, "reserved must be 0 (got %d)", (int)p->reserved);
    // An unsupported dtype's size is taken as 2 here; the dtype is refused below.
    const int64_t esz = p->dtype == DSK_DTYPE_F32 ? 4 : 2;
    const ByteRange xr = view_bytes(static_cast<const unsigned char*>(p->x) + p->x_offset * esz, 1, p->rows, p->width, 0,
                                    p->x_row_stride, esz);
    const ByteRange yr = view_bytes(static_cast<const unsigned char*>(p->y) + p->y_offset * esz, 1, p->rows, p->width, 0,
                                    p->y_row_stride, esz);
    DSK_CHECK_ARG(kOp, !overlaps(xr, yr), "y's rows must not overlap x's");

    if (p->dtype == DSK_DTYPE_F32 || p->dtype == DSK_DTYPE_BF16) return launch(*p, esz);
    DSK_UNSUPPORTED(kOp, "dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->dtype), (int)p->dtype);
}

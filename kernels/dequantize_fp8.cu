// dequantize_fp8.cu: an FP8_BLOCK weight as F32 (dsk_dequantize_fp8):
//
//   y[m, r, c] = bf16(fp8[m, r, c] * scale[m, r / block_rows, c / block_cols])   widened to f32 (exact)
//
// the same value every kernel that reads the weight uses (weight_decode.cuh). Cost: read 1 byte, write 4 bytes per
// element (memory-bound; a load-time op, not on the decode path).
//
// One kernel: a block per (matrix, row), grid-stride over rows; threads take 4 consecutive codes at a time (one
// 32-bit load, dequant_fp8x4, one 16-byte store) when the row allows it (cols % 4 == 0, 4 codes in one scale block,
// aligned pointers), else one code at a time.
#include "common.cuh"
#include "weight_check.cuh"
#include "weight_decode.cuh"

namespace dsk {
namespace {

constexpr const char* kOp = "dsk_dequantize_fp8";
constexpr int kThreads = 256;

struct DequantArgs {
    const unsigned char* codes;  // [count * rows, cols]
    const float* scale;          // [count, ceil(rows / block_rows), scale_cols]
    float* y;                    // [count * rows, cols]
    int64_t rows, cols, total_rows, scale_cols, scale_mat;
    int32_t block_rows, block_cols;
    int32_t vec;
};

// Dequantises rows of the stacked [count * rows, cols] codes into y (one block per row).
__global__ void __launch_bounds__(kThreads) dequantize_fp8_kernel(const DequantArgs a) {
    for (int64_t rr = blockIdx.x; rr < a.total_rows; rr += gridDim.x) {
        const int64_t m = rr / a.rows, r = rr % a.rows;
        const float* s_row = a.scale + m * a.scale_mat + r / a.block_rows * a.scale_cols;
        const unsigned char* c_row = a.codes + rr * a.cols;
        float* y_row = a.y + rr * a.cols;
        if (a.vec) {
            for (int64_t c = threadIdx.x * 4; c < a.cols; c += kThreads * 4) {
                float f[4];
                dequant_fp8x4(__ldg(reinterpret_cast<const uint32_t*>(c_row + c)), __ldg(s_row + c / a.block_cols), f);
                st16(y_row + c, make_uint4(__float_as_uint(f[0]), __float_as_uint(f[1]), __float_as_uint(f[2]),
                                           __float_as_uint(f[3])));
            }
        } else {
            for (int64_t c = threadIdx.x; c < a.cols; c += kThreads) {
                y_row[c] = dequant_fp8(__ldg(c_row + c), __ldg(s_row + c / a.block_cols));
            }
        }
    }
}

}  // namespace
}  // namespace dsk

extern "C" DSK_API dsk_status dsk_dequantize_fp8(const dsk_dequantize_fp8_params* p) {
    using namespace dsk;

    DSK_CHECK_NOT_NULL(kOp, p, "p");
    DSK_CHECK_NOT_NULL(kOp, p->y, "y");
    const dsk_status ws = check_weight(kOp, p->w, "w");
    if (ws != DSK_SUCCESS) return ws;
    const dsk_weight& w = p->w;
    DSK_CHECK_ARG(kOp, w.scheme == DSK_WEIGHT_FP8_BLOCK, "w.scheme must be FP8_BLOCK (got %s (%d))",
                  scheme_name(w.scheme), (int)w.scheme);
    const int64_t elems = w.count * w.rows * w.cols;
    DSK_CHECK_ARG(kOp, !weight_overlaps(w, bytes_of(p->y, elems * 4)), "y must not overlap the weight (w.data, w.scale)");

    DequantArgs a{};
    a.codes = static_cast<const unsigned char*>(w.data);
    a.scale = static_cast<const float*>(w.scale);
    a.y = p->y;
    a.rows = w.rows;
    a.cols = w.cols;
    a.total_rows = w.count * w.rows;
    a.scale_cols = (w.cols + w.block_cols - 1) / w.block_cols;
    a.scale_mat = (w.rows + w.block_rows - 1) / w.block_rows * a.scale_cols;
    a.block_rows = w.block_rows;
    a.block_cols = w.block_cols;
    a.vec = w.cols % 4 == 0 && w.block_cols % 4 == 0 && (reinterpret_cast<uintptr_t>(w.data) & 3u) == 0 &&
            is_aligned_16(p->y);

    const unsigned grid = (unsigned)(a.total_rows < (1 << 20) ? a.total_rows : (1 << 20));  // the kernel loops
    dequantize_fp8_kernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(p->stream)>>>(a);
    DSK_CHECK_LAUNCH(kOp);
    return DSK_SUCCESS;
}

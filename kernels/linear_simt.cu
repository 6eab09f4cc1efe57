// linear_simt.cu: dsk_linear on CUDA cores, for every request the entry point accepts (linear_simt in linear.cuh): the
// host side (checks, LinearArgs, the GEMV / tiled choice and split-K). The algorithm, the kernels and their launchers are in
// linear_simt.cuh; their instantiations in linear_simt_w_{f32,bf16,fp8,int4}.cu.
#include <atomic>
#include <climits>

#include "linear_simt.cuh"

namespace dsk {
namespace {

constexpr int kMaxDevices = 64;
std::atomic<int> g_sm_count[kMaxDevices];  // 0 = not yet asked

// The current device's SM count (cached per device); 0 with the message set when CUDA fails.
int sm_count(const char* op) {
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess && dev >= 0 && dev < kMaxDevices) {
        const int cached = g_sm_count[dev].load(std::memory_order_relaxed);
        if (cached > 0) return cached;
    }
    int count = 0;
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev);
    if (e != cudaSuccess || count < 1) {
        set_error(op, "CUDA error %s (%s) asking for the SM count", cudaGetErrorName(e), cudaGetErrorString(e));
        return 0;
    }
    if (dev < kMaxDevices) g_sm_count[dev].store(count, std::memory_order_relaxed);
    return count;
}

int log2_if_pow2(int64_t v) {
    if (v < 1 || (v & (v - 1)) != 0) return -1;
    int s = 0;
    while ((int64_t{1} << s) < v) ++s;
    return s;
}

}  // namespace

using namespace simt;


dsk_status linear_simt(const char* op, const dsk_linear_params& p, const RowTiles* rt) {
    const dsk_weight& w = p.w;
    // The kernels index rows, columns and (row, batch) tiles with 32-bit divisions.
    constexpr int64_t kLimit = INT32_MAX;
    if (w.rows > kLimit || w.cols > kLimit || p.m > kLimit / p.batch) {
        DSK_UNSUPPORTED(op, "SIMT path: w.rows, w.cols and m * batch must be < 2^31 (got %lld, %lld, %lld * %lld)",
                        (long long)w.rows, (long long)w.cols, (long long)p.m, (long long)p.batch);
    }
    // Grid y runs over tiles of 64 rows (or fewer), grid z over the batch: both at most 65535 (the grouped op's bound
    // on its tiles is checked below).
    if (p.batch > 65535 || p.m > 65535LL * 64) {
        DSK_UNSUPPORTED(op, "SIMT path: batch must be <= 65535 and m <= 4194240 (got batch %lld, m %lld)",
                        (long long)p.batch, (long long)p.m);
    }
    const int wk = w.scheme == DSK_WEIGHT_FP8_BLOCK   ? kWFP8
                   : w.scheme == DSK_WEIGHT_INT4_GROUP ? kWINT4
                   : w.dtype == DSK_DTYPE_F32          ? kWF32
                                                       : kWBF16;
    const int bits = wk == kWF32 ? 32 : wk == kWBF16 ? 16 : wk == kWFP8 ? 8 : 4;
    const bool shared_w = w.count == 1;  // else one matrix per batch entry

    LinearArgs a{};
    a.x = p.x;
    a.y = p.y;
    a.residual = p.residual;
    a.bias = p.bias;
    a.w = w.data;
    a.w_scale = w.scale;
    a.w_zero = w.zero;
    a.m = p.m;
    if (rt != nullptr) a.rt = *rt;
    a.batch = p.batch;
    a.in = linear_in(p);
    a.out = linear_out(p);
    a.half = a.out / 2;
    a.y_cols = linear_y_cols(p);
    a.x_row = p.x_row_stride;
    a.x_batch = p.batch > 1 ? p.x_batch_stride : 0;
    a.y_row = p.y_row_stride;
    a.y_batch = p.batch > 1 ? p.y_batch_stride : 0;
    a.r_row = p.residual_row_stride;
    a.r_batch = p.batch > 1 ? p.residual_batch_stride : 0;
    a.w_rows = w.rows;
    a.w_cols = w.cols;
    a.w_mat_stride = shared_w ? 0 : w.rows * w.cols;
    a.block_rows = w.block_rows;
    a.block_cols = w.block_cols;
    a.group = w.group_size;
    if (wk == kWFP8) {
        a.s_cols = (w.cols + w.block_cols - 1) / w.block_cols;
        a.s_mat_stride = shared_w ? 0 : (w.rows + w.block_rows - 1) / w.block_rows * a.s_cols;
        a.row_shift = log2_if_pow2(w.block_rows);
        a.col_shift = log2_if_pow2(w.block_cols);
    } else if (wk == kWINT4) {
        a.s_cols = w.cols / w.group_size;
        a.s_mat_stride = shared_w ? 0 : w.rows * a.s_cols;
        a.row_shift = -1;
        a.col_shift = log2_if_pow2(w.group_size);
    } else {
        a.row_shift = a.col_shift = -1;
    }

    // The GEMV takes the weight in 16-byte chunks along k: rows of whole chunks from a 16-byte-aligned base, and
    // for FP8 scale blocks of whole chunks (INT4 groups always are: multiples of 32 codes).
    const bool gemv = p.transpose_w == 0 && rows_per_matrix(a) <= 64 && is_aligned_16(w.data) && (w.cols * bits) % 128 == 0 &&
                      (wk != kWFP8 || w.block_cols % 16 == 0);
    if (rt != nullptr && row_tiles(a, gemv ? gemv_rows(a) : 64) > 65535) {
        DSK_UNSUPPORTED(op, "SIMT path: too many row tiles for m %lld over %d experts", (long long)p.m, (int)rt->count);
    }
    const int64_t esz = p.x_dtype == DSK_DTYPE_F32 ? 4 : 2;
    a.x_vec = is_aligned_16(p.x) && (p.m == 1 || (p.x_row_stride * esz) % 16 == 0) &&
              (p.batch == 1 || (p.x_batch_stride * esz) % 16 == 0);
    a.split = 1;

    int64_t sms = 0;
    if (gemv) {
        sms = sm_count(op);
        if (sms == 0) return DSK_ERROR_CUDA;
    }
    const cudaStream_t st = static_cast<cudaStream_t>(p.stream);
    a.y_f32 = p.y_dtype == DSK_DTYPE_F32;
    const bool x_f32 = p.x_dtype == DSK_DTYPE_F32, trans = p.transpose_w != 0;
    switch (wk) {
        case kWF32: launch_weight_kind<kWF32>(a, x_f32, p.epilogue, gemv, trans, sms, st); break;
        case kWBF16: launch_weight_kind<kWBF16>(a, x_f32, p.epilogue, gemv, trans, sms, st); break;
        case kWFP8: launch_weight_kind<kWFP8>(a, x_f32, p.epilogue, gemv, trans, sms, st); break;
        default: launch_weight_kind<kWINT4>(a, x_f32, p.epilogue, gemv, trans, sms, st); break;
    }
    DSK_CHECK_LAUNCH(op);
    return DSK_SUCCESS;
}

}  // namespace dsk

// linear.cuh: the internal interface between the entry points of the linear family (linear.cu: dsk_linear,
// grouped_linear.cu: dsk_grouped_linear; validation and dispatch) and its kernel families (linear_simt.cu: CUDA-core
// GEMV / skinny GEMM for every request; linear_mma.cu: bf16 tensor cores for prefill). An entry point has checked every
// field of the params (see deepseek_kernels.h) before a family sees them; families only check what is theirs (the GPU's
// arch, alignment, shape limits).
//
// Both entry points hand the families a dsk_linear_params. The grouped op is a dsk_linear request with batch 1, x and y
// [m, ...] and a stack of w.count expert matrices, plus a RowTiles source that says which rows each matrix multiplies:
// the same kernel bodies run both, only the row tile a block works on comes from elsewhere (row_tile below).
#pragma once

#include <cmath>

#include "common.cuh"

namespace dsk {

// In / out features of a dsk_linear request (transpose_w swaps the weight's rows and cols).
inline int64_t linear_in(const dsk_linear_params& p) { return p.transpose_w ? p.w.rows : p.w.cols; }
inline int64_t linear_out(const dsk_linear_params& p) { return p.transpose_w ? p.w.cols : p.w.rows; }
// Columns of y: out, or out / 2 with the SiLU-and-mul epilogue.
inline int64_t linear_y_cols(const dsk_linear_params& p) {
    return p.epilogue == DSK_EPILOGUE_SILU_MUL ? linear_out(p) / 2 : linear_out(p);
}

// linear.cu: the checks both entry points share, on a dsk_linear_params (the grouped entry builds one with batch 1 and
// its expert stack as w). `stacked`: w.count may be anything (one matrix per expert), else it must be 1 or batch.
// check_linear_args returns DSK_ERROR_INVALID_ARGUMENT for a malformed request (pointers x / y, m, batch, the weight's
// fields, w.count, transpose_w, path, epilogue and residual, strides, overlaps of y with x, the weight and bias);
// check_linear_dtypes then returns DSK_ERROR_UNSUPPORTED for dtypes no family reads (asked last, after every other check).
dsk_status check_linear_args(const char* op, const dsk_linear_params& p, bool stacked);
dsk_status check_linear_dtypes(const char* op, const dsk_linear_params& p);

// Where a block's rows come from. dsk_linear (offsets NULL): batch entry b = blockIdx.z, rows tile * TM .. of [0, m).
// dsk_grouped_linear: matrix e's rows are offsets[e] .. offsets[e + 1] (e < count); the tiles of TM rows are numbered
// expert by expert (expert e owns ceil(rows_e / TM) consecutive tiles), and a block finds its (e, first row) by a warp
// prefix sum over the offsets. The grid is sized from host values only (grouped_row_tiles), so blocks past the last
// tile exit. Every block checks all offsets as it scans (each in [0, m], not decreasing) and exits when one is bad;
// block 0 then reports the first bad one in the header's order through the error word.
struct RowTiles {
    const int32_t* offsets;  // [count + 1], device; NULL for dsk_linear
    int32_t* error_word;     // 8 int32, device (grouped)
    int32_t count;           // matrices (experts)
    int32_t error_site;      // > 0 (grouped)
};

// An upper bound on the grouped tiles of TM rows for m rows over `count` experts, from host sizes only:
// sum_e ceil(rows_e / TM) <= (m + min(m, count) * (TM - 1)) / TM and <= m.
inline int64_t grouped_row_tiles(int64_t m, int64_t count, int64_t tm) {
    const int64_t used = m < count ? m : count;
    const int64_t bound = (m + used * (tm - 1)) / tm;
    return bound < m ? bound : m;
}

// The mean rows of a used expert when m rows fall on `count` experts at random (what the host knows: m balls into count
// bins use count * (1 - (1 - 1/count)^m) of them): 1.01 at decode (m = 8 of 256), 1.25 at m = 128, 4.1 at m = 1024.
// The families size their row tiles by it, so that most experts' rows fit one tile and each weight is streamed once.
inline double grouped_rows_per_expert(int64_t m, int64_t count) {
    const double used = count == 1 ? 1.0 : -(double)count * std::expm1((double)m * std::log1p(-1.0 / (double)count));
    return used >= 1.0 ? (double)m / used : (double)m;
}

// The rows a block works on: matrix `mat` (its weight, and its x / y batch entry for dsk_linear), rows [row0, row_end)
// of which the block takes row0 .. row0 + TM - 1 (those below row_end). Every thread of the block calls it with the
// same arguments and gets the same answer (each warp scans on its own: no barrier); false: nothing to do, exit (past the
// last tile, or bad offsets). `tile`: the block's row-tile index; `entry`: its batch entry (dsk_linear's grid z).
template <int TM>
__device__ __forceinline__ bool row_tile(const RowTiles& rt, int64_t m, int64_t tile, int64_t entry, int64_t& mat,
                                         int64_t& row0, int64_t& row_end) {
    if (rt.offsets == nullptr) {
        mat = entry;
        row0 = tile * TM;
        row_end = m;
        return true;
    }
    constexpr unsigned kAll = 0xffffffffu, kNone = 0xffffffffu;
    constexpr int kBatch = 8;  // chunks of 32 offsets whose loads are in flight together (DeepSeek-V3's 257: 2 rounds)
    const unsigned lane = threadIdx.x & 31;
    const unsigned n = (unsigned)rt.count + 1;  // offsets
    unsigned bad_range = kNone, bad_order = kNone;  // lowest bad index of each kind (warp-uniform)
    uint32_t before = 0;  // tiles of the experts before this chunk (< m < 2^31 when the offsets are good; wraps otherwise)
    int64_t found_mat = -1, found_row0 = 0, found_end = 0;
    int32_t prev_last = 0;  // offsets[base - 1] (lane 31's value of the previous chunk)
    for (unsigned batch = 0; batch < n; batch += 32 * kBatch) {
        int32_t vals[kBatch];
#pragma unroll
        for (int c = 0; c < kBatch; ++c) {
            const unsigned i = batch + 32 * c + lane;
            vals[c] = i < n ? __ldg(rt.offsets + i) : 0;
        }
#pragma unroll
        for (int c = 0; c < kBatch; ++c) {
            const unsigned base = batch + 32 * c;
            if (base >= n) break;  // warp-uniform
            const unsigned i = base + lane;
            const int32_t v = vals[c];
            const int32_t up = __shfl_up_sync(kAll, v, 1);
            const int32_t lv = lane == 0 ? (base == 0 ? v : prev_last) : up;  // offsets[i - 1]
            const bool out_of_range = i < n && (v < 0 || (int64_t)v > m);
            const bool decreasing = i < n && i > 0 && v < lv;
            const unsigned r_ball = __ballot_sync(kAll, out_of_range);
            const unsigned o_ball = __ballot_sync(kAll, decreasing);
            if (r_ball != 0u && bad_range == kNone) bad_range = base + (unsigned)(__ffs((int)r_ball) - 1);
            if (o_ball != 0u && bad_order == kNone) bad_order = base + (unsigned)(__ffs((int)o_ball) - 1);
            // Expert e = i - 1 ends at offsets[i]: its rows lv .. v, its tiles ceil(rows / TM) (0 when bad or i == 0).
            const uint32_t rows = (i > 0 && i < n && v > lv) ? (uint32_t)v - (uint32_t)lv : 0u;
            const uint32_t mine = rows / TM + (rows % TM != 0u);
            uint32_t t = mine;
#pragma unroll
            for (int d = 1; d < 32; d <<= 1) {  // inclusive prefix over the chunk's lanes
                const uint32_t o = __shfl_up_sync(kAll, t, d);
                if ((int)lane >= d) t += o;
            }
            const uint32_t incl = before + t;
            const bool here = found_mat < 0 && mine > 0u && tile < (int64_t)incl && tile >= (int64_t)(incl - mine);
            const unsigned h_ball = __ballot_sync(kAll, here);
            if (h_ball != 0u) {
                const int src = __ffs((int)h_ball) - 1;
                const uint32_t first = __shfl_sync(kAll, incl - mine, src);
                const int32_t lo = __shfl_sync(kAll, lv, src);
                const int32_t hi = __shfl_sync(kAll, v, src);
                found_mat = (int64_t)(base + (unsigned)src) - 1;
                found_row0 = (int64_t)lo + (tile - (int64_t)first) * TM;
                found_end = hi;
            }
            before = __shfl_sync(kAll, incl, 31);
            prev_last = __shfl_sync(kAll, v, 31);
        }
    }
    if (bad_range != kNone || bad_order != kNone) {
        // Block 0's first warp reports (range errors first); the word keeps an error recorded before.
        if (blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0 && threadIdx.x == 0 &&
            atomicCAS(rt.error_word, 0, rt.error_site) == 0) {
            const bool range = bad_range != kNone;
            const unsigned at = range ? bad_range : bad_order;
            rt.error_word[1] = (int32_t)at;
            rt.error_word[2] = __ldg(rt.offsets + at);
            rt.error_word[3] = range ? (int32_t)(m + 1) : rt.count + 1;
            rt.error_word[4] = range ? 0 : 1;
        }
        return false;
    }
    if (found_mat < 0) return false;
    mat = found_mat;
    row0 = found_row0;
    row_end = found_end;
    return true;
}

// linear_simt.cu: runs every valid request (any x and y dtype, scheme, transpose, epilogue, stride). Returns
// DSK_SUCCESS or DSK_ERROR_CUDA (launch error) with the message set under `op`. `rt`: the grouped op's row source, or
// NULL for dsk_linear.
dsk_status linear_simt(const char* op, const dsk_linear_params& p, const RowTiles* rt = nullptr);

// linear_mma.cu: whether the tensor-core family runs this request on the current device; when not, `why`
// (if non-NULL) gets a short reason ("x_dtype is not BF16", "needs sm_80+ (device is sm_75)", ...).
bool linear_mma_supports(const dsk_linear_params& p, const char** why);

// linear_mma.cu: runs a request linear_mma_supports accepted (`rt` as for linear_simt); on warpgroup tensor cores (wgmma)
// when `allow_wgmma` and they can run here (a cc 9.0 GPU, a library built for sm_90a), else on mma.sync.
dsk_status linear_mma(const char* op, const dsk_linear_params& p, const RowTiles* rt = nullptr, bool allow_wgmma = true);

// AUTO's choice: MMA from this many rows per batch entry up (below it the SIMT GEMV streams the weight once).
constexpr int64_t kLinearMmaMinRows = 32;

}  // namespace dsk

// linear_simt.cuh: the CUDA-core (SIMT) family of dsk_linear, shared by its translation units: the request as the kernels
// see it (LinearArgs), the two kernels and their launchers. linear_simt.cu is the entry point (linear_simt in linear.cuh);
// linear_simt_w_{f32,bf16,fp8,int4}.cu each instantiate the kernels of one weight storage (launch_weight_kind<WK>), so the
// 2 x 4 x 3 x 5 kernel variants (x type, weight storage, epilogue, GEMV tile heights + tiled orientations) compile in four
// parallel units instead of one (CUDA 11.8 took 165 s of a 191 s CI build on that single unit).
//
//   acc[b, i, n] = sum_k x[b, i, k] * w[b', n, k] (+ bias[n]);  y = round_y(epilogue(acc))
//
// The weight element w[b', n, k] is dequantised to exactly the value deepseek_kernels.h documents (weight_decode.cuh:
// a bf16 for FP8 and INT4), widened to fp32; products and sums are fp32; y is rounded once. Results differ from a
// float64 reference only by the fp32 summation order.
//
// Cost of the decode shapes (the goal): at m <= 16 every weight byte is read once per launch and x is tiny, so the
// kernel should stream the weight at a share of the copy bandwidth (bf16 2, FP8 1, INT4 0.5 bytes per weight).
// The arithmetic per weight element is about 3-5 instructions to dequantise plus one FMA per row of x, so on CUDA
// cores (H200: ~33.5e12 FMA/s against ~4.3e12 bytes/s) the kernel stays memory-bound only up to a few rows
// (INT4 ~1-2, FP8 ~3-4, bf16 ~8-16); beyond that the tensor-core family (linear_mma.cu) is the fast one.
//
// Two kernels (the algorithm is written down once for the CUDA and the ILGPU implementations, which follow it):
//   linear_gemv_kernel   the decode path (transpose_w 0, m <= 64, weight rows in whole 16-byte chunks): one warp per
//                        output feature (S warps with split-K), each lane streams 16-byte weight chunks with read-only
//                        loads, several in flight, dequantises each once and multiplies it into MT rows of x.
//   linear_tiled_kernel  everything else (m > 64, transpose_w, chunk-misaligned rows): a shared-memory tiled SIMT
//                        GEMM, 64 x 64 x 32 tiles, the weight dequantised to fp32 as it is staged.
// Both write every output element of y's [batch, m, columns] window exactly once and nothing outside it.
// dsk_grouped_linear (grouped_linear.cu) runs the same two kernels: its row tiles come from the expert offsets
// (linear.cuh, row_tile: expert b's rows, x and y batch strides 0, the weight offset by matrix b as in batch mode), and
// the GEMV's tile height follows the mean rows of a used expert, so at decode each used expert's weight is streamed once.
#pragma once

#include "linear.cuh"
#include "weight_decode.cuh"

namespace dsk {
namespace simt {

// The weight's storage, as a template parameter.
enum WeightKind : int { kWF32 = 0, kWBF16 = 1, kWFP8 = 2, kWINT4 = 3 };

// Bits per stored element, and elements per 16-byte chunk.
template <int WK> struct WeightTraits {
    static constexpr int kBits = WK == kWF32 ? 32 : WK == kWBF16 ? 16 : WK == kWFP8 ? 8 : 4;
    static constexpr int kChunk = 128 / kBits;                  // 4, 8, 16, 32
    static constexpr int kPiece = kChunk < 8 ? kChunk : 8;      // elements dequantised and multiplied at a time
};

// The request as the kernels see it (elements and element strides; the weight's stored matrix is [w_rows, w_cols]).
struct LinearArgs {
    const void* x;          // [batch, m, in], x_dtype (the kernels' T)
    void* y;                // [batch, m, y_cols], f32 when y_f32 else bf16
    const void* residual;   // [batch, m, out], y's type (ADD)
    const float* bias;      // [out] or NULL
    const void* w;          // stored [count, w_rows, w_cols]
    const void* w_scale;    // FP8: f32 [count, ceil(w_rows / block_rows), s_cols]; INT4: bf16 [count, w_rows, s_cols]
    const void* w_zero;     // INT4: bf16 like w_scale
    int64_t m, batch, in, out, half, y_cols;
    int64_t x_row, x_batch, y_row, y_batch, r_row, r_batch;
    int64_t w_rows, w_cols;
    int64_t w_mat_stride;   // elements between the matrices of batch entries b and b + 1 (0: one matrix for all)
    int64_t s_mat_stride;   // likewise for the scale and zero tensors
    int64_t s_cols;         // scale columns per scale row: ceil(w_cols / block_cols) (FP8), w_cols / group (INT4)
    int32_t block_rows, block_cols, group;
    int32_t row_shift;      // log2(block_rows) when a power of two, else -1
    int32_t col_shift;      // log2(block_cols) (FP8) or log2(group) (INT4) when a power of two, else -1
    int32_t split;          // gemv: warps per output feature (1, 2, 4)
    int32_t x_vec;          // gemv: x rows allow 16-byte loads of each piece
    int32_t y_f32;          // y and residual are f32 (else bf16): a runtime choice, uniform over the grid
    RowTiles rt;            // the grouped op's row source (offsets NULL for dsk_linear; linear.cuh, row_tile)
};

// v / d for 0 <= v < 2^31 (the host refuses larger shapes), by a shift when d is a power of two (shift >= 0).
// 32-bit: a 64-bit division is a function call, and live registers get spilled around it.
__device__ __forceinline__ int64_t div_by(int64_t v, int32_t d, int32_t shift) {
    return shift >= 0 ? (v >> shift) : (int64_t)((uint32_t)v / (uint32_t)d);
}

// Word i (0..3) of a 16-byte vector.
__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
    return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// The dequantised stored element [mat, row, col] of the weight (any layout, any alignment).
template <int WK> __device__ __forceinline__ float weight_at(const LinearArgs& a, int64_t mat, int64_t row, int64_t col) {
    const int64_t e = mat * a.w_mat_stride + row * a.w_cols + col;
    if constexpr (WK == kWF32) {
        return load_ro(static_cast<const float*>(a.w) + e);
    } else if constexpr (WK == kWBF16) {
        return to_float(load_ro(static_cast<const __nv_bfloat16*>(a.w) + e));
    } else if constexpr (WK == kWFP8) {
        const uint32_t code = __ldg(static_cast<const unsigned char*>(a.w) + e);
        const int64_t s = mat * a.s_mat_stride + div_by(row, a.block_rows, a.row_shift) * a.s_cols +
                          div_by(col, a.block_cols, a.col_shift);
        return dequant_fp8(code, load_ro(static_cast<const float*>(a.w_scale) + s));
    } else {
        const uint32_t byte = __ldg(static_cast<const unsigned char*>(a.w) + (e >> 1));  // e is even iff col is
        const int64_t s = mat * a.s_mat_stride + row * a.s_cols + div_by(col, a.group, a.col_shift);
        return dequant_int4((col & 1) ? byte >> 4 : byte, to_float(load_ro(static_cast<const __nv_bfloat16*>(a.w_scale) + s)),
                            to_float(load_ro(static_cast<const __nv_bfloat16*>(a.w_zero) + s)));
    }
}

// Piece p of a 16-byte weight chunk, dequantised: kPiece floats. `scale` and `zero` are the chunk's (FP8, INT4).
template <int WK>
__device__ __forceinline__ void decode_piece(const uint4& v, int p, float scale, float zero,
                                             float (&f)[WeightTraits<WK>::kPiece]) {
    if constexpr (WK == kWF32) {
        unpack16<float>(v, f);
    } else if constexpr (WK == kWBF16) {
        unpack16<__nv_bfloat16>(v, f);
    } else if constexpr (WK == kWFP8) {
        float lo[4], hi[4];
        dequant_fp8x4(word_of(v, 2 * p), scale, lo);
        dequant_fp8x4(word_of(v, 2 * p + 1), scale, hi);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            f[e] = lo[e];
            f[4 + e] = hi[e];
        }
    } else {
        dequant_int4x8(word_of(v, p), scale, zero, f);
    }
}

// N elements of x at p, widened: 16-byte read-only loads when `vec` (p then aligned to min(16, N * sizeof(T))).
template <typename T, int N> __device__ __forceinline__ void load_x(const T* p, bool vec, float (&f)[N]) {
    if (vec) {
        load_ro_widen<T, N>(p, f);
    } else {
#pragma unroll
        for (int e = 0; e < N; ++e) f[e] = to_float(load_ro(p + e));
    }
}

__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }

// y[b, i, j] from the column's fp32 sums (bias included): tot[0] = acc[n], tot[1] = acc[half + j] with SILU_MUL.
// y (and residual) are f32 or bf16 whatever x is (T): a uniform runtime branch, one rounding.
template <typename T, int EPI>
__device__ __forceinline__ void store_y(const LinearArgs& a, int64_t b, int64_t i, int64_t j, const float* tot) {
    float v = tot[0];
    if constexpr (EPI == DSK_EPILOGUE_SILU_MUL) v = silu(tot[0]) * tot[1];
    if constexpr (EPI == DSK_EPILOGUE_ADD) {
        const int64_t r = b * a.r_batch + i * a.r_row + j;  // residual may be y: plain loads
        v += a.y_f32 ? static_cast<const float*>(a.residual)[r] : to_float(static_cast<const __nv_bfloat16*>(a.residual)[r]);
    }
    const int64_t at = b * a.y_batch + i * a.y_row + j;
    if (a.y_f32) {
        static_cast<float*>(a.y)[at] = v;
    } else {
        static_cast<__nv_bfloat16*>(a.y)[at] = from_float<__nv_bfloat16>(v);
    }
}

// ---------------------------------------------------------------------------------------------------------
// GEMV / skinny GEMM (decode). Block = 128 threads = 4 warps; S = a.split warps per output column j, so a block
// owns 4 / S columns (column j = feature n = j, or with SILU_MUL the pair n = j and n = half + j, both dotted by
// the same lanes). Warp s of a column takes the weight row's 16-byte chunks s + S * (lane + 32 t), t = 0, 1, ...:
// the column's 32 * S lanes stride over the chunks. For each chunk a lane loads the weight once (U chunks in
// flight before any math), dequantises it piece by piece and does fused multiply-adds into MT per-row partial sums,
// in element order. Then: warp sums by shuffles (xor 16..1), the S warps' sums added in order s = 0..S-1 through
// shared memory, bias, epilogue, one rounding, one store per (row, column). Rows come in tiles of MT (grid.y runs
// over tiles, grid.z over the batch; the grouped op's tiles come from its offsets, linear.cuh's row_tile: matrix b's
// rows up to row_end, x and y with batch stride 0); rows past the tile's end repeat its last row (valid memory, results
// dropped).
template <typename T, int WK, int EPI, int MT>
__global__ void __launch_bounds__(128, 1) linear_gemv_kernel(const LinearArgs a) {
    using Tr = WeightTraits<WK>;
    constexpr int kChunk = Tr::kChunk;
    constexpr int kPiece = Tr::kPiece;
    constexpr int kPieces = kChunk / kPiece;
    constexpr int NF = EPI == DSK_EPILOGUE_SILU_MUL ? 2 : 1;  // weight rows per column
    // Weight chunks in flight per lane (16 bytes each per weight row): at N = 2048 a GPU holds only ~16 warps per
    // SM, so each lane must keep several loads in flight to cover the memory latency. Fewer with more rows of x:
    // ptxas hoists the x loads of every unrolled chunk, and at MT = 8 the kernel is compute-bound anyway.
    constexpr int U = MT * NF <= 2 ? 4 : MT * NF <= 4 ? 2 : 1;
    __shared__ float red[4][NF][MT];                           // [warp][feature][row] warp sums

    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int S = a.split;
    const int slot = warp / S;  // the block's column this warp works on
    const int s = warp % S;     // its share of the chunks
    int64_t b, i0, row_end;
    if (!row_tile<MT>(a.rt, a.m, blockIdx.y, blockIdx.z, b, i0, row_end)) return;  // uniform over the block
    const int64_t j = (int64_t)blockIdx.x * (4 / S) + slot;
    const bool active = j < a.y_cols;  // warp-uniform
    const int num_chunks = (int)(a.in / kChunk);  // in < 2^31 (the host checks)
    const int stride = 32 * S;
    float acc[NF][MT];
#pragma unroll
    for (int f = 0; f < NF; ++f) {
#pragma unroll
        for (int r = 0; r < MT; ++r) acc[f][r] = 0.0f;
    }

    if (active) {
        const T* xrow[MT];
#pragma unroll
        for (int r = 0; r < MT; ++r) {
            const int64_t i = i0 + r < row_end ? i0 + r : row_end - 1;
            xrow[r] = static_cast<const T*>(a.x) + b * a.x_batch + i * a.x_row;
        }
        const unsigned char* wrow[NF];
        const void* srow[NF];  // the feature's scale row (FP8: its block row; INT4: its own)
        const void* zrow[NF];
#pragma unroll
        for (int f = 0; f < NF; ++f) {
            const int64_t n = f == 0 ? j : a.half + j;
            wrow[f] = static_cast<const unsigned char*>(a.w) + (b * a.w_mat_stride + n * a.w_cols) * Tr::kBits / 8;
            if constexpr (WK == kWFP8) {
                srow[f] = static_cast<const float*>(a.w_scale) + b * a.s_mat_stride +
                          div_by(n, a.block_rows, a.row_shift) * a.s_cols;
            } else if constexpr (WK == kWINT4) {
                srow[f] = static_cast<const __nv_bfloat16*>(a.w_scale) + b * a.s_mat_stride + n * a.s_cols;
                zrow[f] = static_cast<const __nv_bfloat16*>(a.w_zero) + b * a.s_mat_stride + n * a.s_cols;
            }
        }

        for (int c0 = s + S * lane; c0 < num_chunks; c0 += stride * U) {
            // Issue every load of the U chunks (weights, scales, zeros) before any math.
            uint4 wv[U][NF];
            float sc[U][NF];
            float zr[U][NF];
#pragma unroll
            for (int u = 0; u < U; ++u) {
                const int c = c0 + u * stride;
#pragma unroll
                for (int f = 0; f < NF; ++f) {
                    sc[u][f] = 0.0f;
                    zr[u][f] = 0.0f;
                    if (c < num_chunks) {
                        wv[u][f] = ld16_ro(reinterpret_cast<const uint4*>(wrow[f]) + c);
                        const int k0 = c * kChunk;
                        if constexpr (WK == kWFP8) {
                            sc[u][f] = load_ro(static_cast<const float*>(srow[f]) + div_by(k0, a.block_cols, a.col_shift));
                        } else if constexpr (WK == kWINT4) {
                            const int64_t g = div_by(k0, a.group, a.col_shift);
                            sc[u][f] = to_float(load_ro(static_cast<const __nv_bfloat16*>(srow[f]) + g));
                            zr[u][f] = to_float(load_ro(static_cast<const __nv_bfloat16*>(zrow[f]) + g));
                        }
                    } else {
                        wv[u][f] = make_uint4(0u, 0u, 0u, 0u);
                    }
                }
            }
#pragma unroll
            for (int u = 0; u < U; ++u) {
                const int c = c0 + u * stride;
                if (c >= num_chunks) break;
                const int k0 = c * kChunk;
                // Pieces one at a time (not unrolled): only one piece's x values are live.
#pragma unroll 1
                for (int p = 0; p < kPieces; ++p) {
                    float wf[NF][kPiece];
#pragma unroll
                    for (int f = 0; f < NF; ++f) decode_piece<WK>(wv[u][f], p, sc[u][f], zr[u][f], wf[f]);
#pragma unroll
                    for (int r = 0; r < MT; ++r) {
                        float xf[kPiece];
                        load_x<T, kPiece>(xrow[r] + k0 + p * kPiece, a.x_vec != 0, xf);
#pragma unroll
                        for (int f = 0; f < NF; ++f) {
#pragma unroll
                            for (int e = 0; e < kPiece; ++e) acc[f][r] = fmaf(xf[e], wf[f][e], acc[f][r]);
                        }
                    }
                }
            }
        }

        // Warp sums; lane r keeps row r's (conflict-free stores of consecutive words).
#pragma unroll
        for (int f = 0; f < NF; ++f) {
            float mine = 0.0f;
#pragma unroll
            for (int r = 0; r < MT; ++r) {
                const float t = warp_sum(acc[f][r]);
                if (lane == r) mine = t;
            }
            if (lane < MT) red[warp][f][lane] = mine;
        }
    }
    __syncthreads();

    // The column's first warp adds the S warps' sums in order and writes the tile's rows (lane r: row i0 + r).
    if (active && s == 0 && lane < MT && i0 + lane < row_end) {
        float tot[NF];
#pragma unroll
        for (int f = 0; f < NF; ++f) {
            float t = red[warp][f][lane];
            for (int w = 1; w < S; ++w) t += red[warp + w][f][lane];
            if (a.bias != nullptr) t += __ldg(a.bias + (f == 0 ? j : a.half + j));
            tot[f] = t;
        }
        store_y<T, EPI>(a, b, i0 + lane, j, tot);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Tiled SIMT GEMM (everything else). Block = 256 threads, tile 64 rows of x x 64 weight rows x 32 k. Per k-tile the
// threads stage x (widened to fp32) and the weight (dequantised to fp32, read in either layout: TRANS reads the
// stored [k, n]) in shared memory, zero-filled past the edges; each thread accumulates a 4 x 4 register tile (rows
// ty + 16 i, weight rows tx + 16 jj) over the k-tiles in order. With SILU_MUL the block's 64 weight rows are 32
// gate rows j0..j0+31 and the matching up rows half + j0.., so a thread holds both halves of its outputs
// (columns jj = 0, 1 gate; jj = 2, 3 up). Then bias, epilogue, one rounding, one store per output.
template <typename T, int WK, int EPI, bool TRANS>
__global__ void __launch_bounds__(256, 1) linear_tiled_kernel(const LinearArgs a) {
    constexpr int BM = 64, BN = 64, BK = 32;
    constexpr bool kSilu = EPI == DSK_EPILOGUE_SILU_MUL;
    constexpr int kCols = kSilu ? BN / 2 : BN;  // columns of y per block
    __shared__ float xs[BK][BM + 1];            // [k][row]; the +1 keeps the transposing stores conflict-free
    __shared__ float ws[BK][BN + 1];            // [k][weight row]

    const int tx = threadIdx.x % 16;
    const int ty = threadIdx.x / 16;
    const int64_t j0 = (int64_t)blockIdx.x * kCols;
    const int64_t w_out = kSilu ? a.half : a.out;  // columns of y

    // The feature behind tile column c (c < BN), and whether it exists.
    auto feature = [&](int c, int64_t& n) {
        if constexpr (kSilu) {
            const int64_t jj = j0 + (c % (BN / 2));
            n = c < BN / 2 ? jj : a.half + jj;
            return jj < a.half;
        } else {
            n = j0 + c;
            return n < a.out;
        }
    };

    int64_t b, i0, row_end;  // batch entry or expert b (x / y batch strides 0 for the grouped op), its rows
    if (!row_tile<BM>(a.rt, a.m, blockIdx.y, blockIdx.z, b, i0, row_end)) return;  // uniform over the block
    const int64_t mat = b;  // weight_at multiplies by the matrix strides (0 when one matrix serves all)
    const T* xb = static_cast<const T*>(a.x) + b * a.x_batch;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) acc[i][jj] = 0.0f;
    }

    for (int64_t k0 = 0; k0 < a.in; k0 += BK) {
        // x tile: consecutive threads read consecutive k of a row.
        for (int e = threadIdx.x; e < BM * BK; e += 256) {
            const int kk = e % BK, r = e / BK;
            const int64_t i = i0 + r, k = k0 + kk;
            xs[kk][r] = (i < row_end && k < a.in) ? to_float(load_ro(xb + i * a.x_row + k)) : 0.0f;
        }
        // weight tile: consecutive threads read consecutive stored columns.
        for (int e = threadIdx.x; e < BN * BK; e += 256) {
            const int kk = TRANS ? e / BN : e % BK;
            const int c = TRANS ? e % BN : e / BK;
            const int64_t k = k0 + kk;
            int64_t n;
            float v = 0.0f;
            if (feature(c, n) && k < a.in) v = TRANS ? weight_at<WK>(a, mat, k, n) : weight_at<WK>(a, mat, n, k);
            ws[kk][c] = v;
        }
        __syncthreads();
#pragma unroll 8
        for (int kk = 0; kk < BK; ++kk) {
            float xv[4], wv[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) xv[i] = xs[kk][ty + 16 * i];
#pragma unroll
            for (int jj = 0; jj < 4; ++jj) wv[jj] = ws[kk][tx + 16 * jj];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
#pragma unroll
                for (int jj = 0; jj < 4; ++jj) acc[i][jj] = fmaf(xv[i], wv[jj], acc[i][jj]);
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int64_t row = i0 + ty + 16 * i;
        if (row >= row_end) continue;
#pragma unroll
        for (int jj = 0; jj < (kSilu ? 2 : 4); ++jj) {
            const int64_t col = j0 + tx + 16 * jj;  // column of y
            if (col >= w_out) continue;
            float tot[2];
            tot[0] = acc[i][jj] + (a.bias != nullptr ? __ldg(a.bias + col) : 0.0f);
            if constexpr (kSilu) tot[1] = acc[i][jj + 2] + (a.bias != nullptr ? __ldg(a.bias + a.half + col) : 0.0f);
            store_y<T, EPI>(a, b, row, col, tot);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Launcher

template <typename T, int WK, int EPI, int MT> void launch_gemv(const LinearArgs& a, dim3 grid, cudaStream_t st) {
    linear_gemv_kernel<T, WK, EPI, MT><<<grid, 128, 0, st>>>(a);
}

// Rows each matrix multiplies, as the host knows it: m for dsk_linear; for the grouped op the mean rows of a used
// expert (grouped_rows_per_expert).
inline double rows_per_matrix(const LinearArgs& a) {
    return a.rt.offsets == nullptr ? (double)a.m : grouped_rows_per_expert(a.m, a.rt.count);
}

// Row tiles of `tm` rows per batch entry (dsk_linear) or in all (the grouped op's bound from host sizes).
inline int64_t row_tiles(const LinearArgs& a, int64_t tm) {
    return a.rt.offsets == nullptr ? (a.m + tm - 1) / tm : grouped_row_tiles(a.m, a.rt.count, tm);
}

// The GEMV's rows per tile (1, 2, 4 or 8): dsk_linear's m rounded down; for the grouped op the rows per expert rounded
// up, so that at decode each expert's weight is streamed once for all its rows.
inline int gemv_rows(const LinearArgs& a) {
    const double r = rows_per_matrix(a);
    if (a.rt.offsets == nullptr) return r >= 8 ? 8 : r >= 4 ? 4 : r >= 2 ? 2 : 1;
    return r > 4.2 ? 8 : r > 2.2 ? 4 : r > 1.1 ? 2 : 1;  // a little slack: decode's 1.01 stays 1
}

// Grid: x over columns of y, y over tiles of rows, z over the batch (the host keeps y and z under 65536).
template <typename T, int WK, int EPI>
void launch(const LinearArgs& a, bool gemv, bool trans, int64_t sms, cudaStream_t st) {
    if (gemv) {
        const int mt = gemv_rows(a);
        const int64_t row_blocks = row_tiles(a, mt) * a.batch;
        // Split-K: the largest S in {1, 2, 4} for which the grid at S / 2 still has fewer than 2 * SMs blocks.
        auto blocks = [&](int s) { return (a.y_cols + 4 / s - 1) / (4 / s) * row_blocks; };
        const int split = blocks(2) < 2 * sms ? 4 : blocks(1) < 2 * sms ? 2 : 1;
        LinearArgs g = a;
        g.split = split;
        const dim3 grid((unsigned)((a.y_cols + 4 / split - 1) / (4 / split)), (unsigned)row_tiles(a, mt),
                        (unsigned)a.batch);
        switch (mt) {
            case 1: launch_gemv<T, WK, EPI, 1>(g, grid, st); break;
            case 2: launch_gemv<T, WK, EPI, 2>(g, grid, st); break;
            case 4: launch_gemv<T, WK, EPI, 4>(g, grid, st); break;
            default: launch_gemv<T, WK, EPI, 8>(g, grid, st); break;
        }
        return;
    }
    const int64_t cols_per_block = EPI == DSK_EPILOGUE_SILU_MUL ? 32 : 64;
    const dim3 grid((unsigned)((a.y_cols + cols_per_block - 1) / cols_per_block), (unsigned)row_tiles(a, 64),
                    (unsigned)a.batch);
    if (trans) {
        linear_tiled_kernel<T, WK, EPI, true><<<grid, 256, 0, st>>>(a);
    } else {
        linear_tiled_kernel<T, WK, EPI, false><<<grid, 256, 0, st>>>(a);
    }
}

template <typename T, int WK> void launch_epi(const LinearArgs& a, int epi, bool gemv, bool trans, int64_t sms, cudaStream_t st) {
    switch (epi) {
        case DSK_EPILOGUE_SILU_MUL: launch<T, WK, DSK_EPILOGUE_SILU_MUL>(a, gemv, trans, sms, st); break;
        case DSK_EPILOGUE_ADD: launch<T, WK, DSK_EPILOGUE_ADD>(a, gemv, trans, sms, st); break;
        default: launch<T, WK, DSK_EPILOGUE_NONE>(a, gemv, trans, sms, st); break;
    }
}

// Every launch of one weight storage: x f32 or bf16, each epilogue, GEMV or tiled. Instantiated once, in
// linear_simt_w_<storage>.cu; linear_simt.cu declares the four instantiations extern.
template <int WK>
void launch_weight_kind(const LinearArgs& a, bool x_f32, int epi, bool gemv, bool trans, int64_t sms, cudaStream_t st) {
    if (x_f32) {
        launch_epi<float, WK>(a, epi, gemv, trans, sms, st);
    } else {
        launch_epi<__nv_bfloat16, WK>(a, epi, gemv, trans, sms, st);
    }
}

#define DSK_LINEAR_SIMT_WEIGHT_KIND(WK) \
    void launch_weight_kind<WK>(const LinearArgs& a, bool x_f32, int epi, bool gemv, bool trans, int64_t sms, cudaStream_t st)
extern template DSK_LINEAR_SIMT_WEIGHT_KIND(kWF32);
extern template DSK_LINEAR_SIMT_WEIGHT_KIND(kWBF16);
extern template DSK_LINEAR_SIMT_WEIGHT_KIND(kWFP8);
extern template DSK_LINEAR_SIMT_WEIGHT_KIND(kWINT4);

}  // namespace simt
}  // namespace dsk

// mma_common.cuh: tensor-core building blocks shared by linear_mma.cu (bf16 x dequantised weights) and
// linear_fp8_w8a8.cu (FP8 x FP8): cp.async with zero fill, ldmatrix, mma.sync, the swizzled shared-memory tile
// layout, and e4m3 pairs widened to bf16 pairs (weight_decode.cuh's exact decoding). sm_80+ only (every user
// checks the device before launching).
//
// Tile layout (both users): a shared tile of R rows x 128 bytes (64 bf16 or 128 e4m3 per row), stored as 8
// chunks of 16 bytes per row with chunk c of row r at physical chunk c ^ (r & 7). cp.async writes whole chunks
// and ldmatrix reads whole chunks (8 rows x one chunk per 8x8 matrix), so both are free of bank conflicts.
#pragma once

#include <cstdint>

#include "common.cuh"
#include "weight_decode.cuh"
#include "mma_ptx.cuh"

namespace dsk {
namespace mma {

// Byte offset of 16-byte chunk `c` (0..7) of row `r` in a swizzled 128-byte-row tile.
__device__ __forceinline__ uint32_t swz(int r, int c) { return (uint32_t)(r * 128 + ((c ^ (r & 7)) << 4)); }

// Address of this lane's row for an ldmatrix_x4 of a 16 x 32-byte A block (rows row0..row0+15, chunks kc, kc+1):
// matrices (rows 0-7, kc), (rows 8-15, kc), (rows 0-7, kc+1), (rows 8-15, kc+1) = the mma A fragment a0..a3.
__device__ __forceinline__ uint32_t a_frag_addr(uint32_t tile, int row0, int kc, int lane) {
    return tile + swz(row0 + (lane & 15), kc + (lane >> 4));
}
// Same for two n8 B blocks stored as [n][k]: matrices (n 0-7, kc), (n 0-7, kc+1), (n 8-15, kc), (n 8-15, kc+1)
// = b0, b1 of n-tile 0, then b0, b1 of n-tile 1.
__device__ __forceinline__ uint32_t b_frag_addr(uint32_t tile, int n0, int kc, int lane) {
    return tile + swz(n0 + (lane & 7) + ((lane >> 4) << 3), kc + ((lane >> 3) & 1));
}

// The B fragments of four n8 tiles (columns n0 .. n0 + 31 of a [n][k] tile) for the 16-byte chunks kc, kc + 1 of k:
// bf[j] = b0, b1 of n-tile j (two ldmatrix_x4 at b_frag_addr).
__device__ __forceinline__ void ldmatrix_b_n32(uint32_t (&bf)[4][2], uint32_t tile, int n0, int kc, int lane) {
#pragma unroll
    for (int nj = 0; nj < 2; ++nj) {
        uint32_t t[4];
        ldmatrix_x4(t, b_frag_addr(tile, n0 + nj * 16, kc, lane));
        bf[2 * nj][0] = t[0];
        bf[2 * nj][1] = t[1];
        bf[2 * nj + 1][0] = t[2];
        bf[2 * nj + 1][1] = t[3];
    }
}

// Two e4m3 bytes (bits 0-7 and 8-15 of `v`) -> two packed bf16 (first in the low half); exact, because every
// e4m3 value is a bf16 value.
__device__ __forceinline__ uint32_t e4m3x2_to_bf16x2(uint32_t v) {
    const uint32_t lo = __float_as_uint(fp8_e4m3_to_float(v & 0xffu)) >> 16;
    const uint32_t hi = __float_as_uint(fp8_e4m3_to_float((v >> 8) & 0xffu)) & 0xffff0000u;
    return lo | hi;
}

}  // namespace mma
}  // namespace dsk

// mma_ptx.cuh (host emulation, see cuda_runtime.h here): stands in for kernels/mma_ptx.cuh. Shared-memory addresses
// are offsets into the block's dynamic shared memory; cp.async copies at once (a legal schedule of an asynchronous
// copy: the kernels may not read a stage before their wait and barrier anyway); ldmatrix and mma.sync are warp-wide,
// so every lane publishes its operands, the warp meets, and each lane computes its own fragment from the PTX ISA's
// fragment layouts. The mma sums in fp32 in k order (the GPU's order within a k16 step is unspecified).
#pragma once

#include <cstdint>
#include <cstring>

#include "cuda_runtime.h"

namespace dsk {
namespace mma {

inline uint32_t smem_addr(const void* p) {
    return (uint32_t)(static_cast<const unsigned char*>(p) - emu::dyn_smem);
}

inline void cp_async16(uint32_t dst, const void* src, bool valid) {
    if (valid) {
        std::memcpy(emu::dyn_smem + dst, src, 16);
    } else {
        std::memset(emu::dyn_smem + dst, 0, 16);
    }
}
inline void cp_async_commit() {}
template <int N> inline void cp_async_wait() {}

// Matrix i's row j comes from lane 8 i + j's address; lane l receives, of each matrix, row l / 4, elements
// 2 (l % 4) and 2 (l % 4) + 1 (one 32-bit word).
inline void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
    const int t = emu::cur, base = t & ~31, lane = t & 31;
    emu::addr_buf[t] = addr;
    emu::warp_barrier();
    for (int i = 0; i < 4; ++i) {
        const uint32_t row = emu::addr_buf[base + 8 * i + (lane >> 2)];
        std::memcpy(&r[i], emu::dyn_smem + row + 4 * (lane & 3), 4);
    }
    emu::warp_barrier();
}

// ldmatrix .trans: matrix i's row j comes from lane 8 i + j's address; lane l receives, of each matrix, the elements
// (row 2 (l % 4), column l / 4) (low half) and (row 2 (l % 4) + 1, column l / 4) (high half).
inline void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
    const int t = emu::cur, base = t & ~31, lane = t & 31;
    emu::addr_buf[t] = addr;
    emu::warp_barrier();
    for (int i = 0; i < 4; ++i) {
        const uint32_t row0 = emu::addr_buf[base + 8 * i + 2 * (lane & 3)];
        const uint32_t row1 = emu::addr_buf[base + 8 * i + 2 * (lane & 3) + 1];
        uint16_t lo, hi;
        std::memcpy(&lo, emu::dyn_smem + row0 + 2 * (lane >> 2), 2);
        std::memcpy(&hi, emu::dyn_smem + row1 + 2 * (lane >> 2), 2);
        r[i] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
    emu::warp_barrier();
}

inline float bf16_lo(uint32_t v) { return __uint_as_float(v << 16); }
inline float bf16_hi(uint32_t v) { return __uint_as_float(v & 0xffff0000u); }

// m16n8k16, row.col: with g = lane / 4 and q = lane % 4, A: a0 = (g, 2q..2q+1), a1 = (g + 8, 2q..), a2 = (g, 2q + 8..),
// a3 = (g + 8, 2q + 8..); B (k x n): b0 = (k 2q..2q+1, n g), b1 = (k 2q + 8.., n g); C/D: d0, d1 = (g, 2q..2q+1),
// d2, d3 = (g + 8, 2q..2q+1).
inline void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    const int t = emu::cur, base = t & ~31, lane = t & 31;
    for (int i = 0; i < 4; ++i) emu::frag_buf[t][i] = a[i];
    emu::frag_buf[t][4] = b0;
    emu::frag_buf[t][5] = b1;
    emu::warp_barrier();
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; ++l) {
        const uint32_t* f = emu::frag_buf[base + l];
        const int g = l >> 2, q = l & 3;
        const int rows[4] = {g, g + 8, g, g + 8}, cols[4] = {2 * q, 2 * q, 2 * q + 8, 2 * q + 8};
        for (int i = 0; i < 4; ++i) {
            A[rows[i]][cols[i]] = bf16_lo(f[i]);
            A[rows[i]][cols[i] + 1] = bf16_hi(f[i]);
        }
        B[2 * q][g] = bf16_lo(f[4]);
        B[2 * q + 1][g] = bf16_hi(f[4]);
        B[2 * q + 8][g] = bf16_lo(f[5]);
        B[2 * q + 9][g] = bf16_hi(f[5]);
    }
    emu::warp_barrier();
    const int g = lane >> 2, q = lane & 3;
    for (int e = 0; e < 4; ++e) {
        const int row = g + 8 * (e >> 1), col = 2 * q + (e & 1);
        float s = d[e];
        for (int k = 0; k < 16; ++k) s += A[row][k] * B[k][col];
        d[e] = s;
    }
}

}  // namespace mma
}  // namespace dsk

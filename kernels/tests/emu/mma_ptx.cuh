// mma_ptx.cuh (host emulation, see cuda_runtime.h here): stands in for kernels/mma_ptx.cuh. Shared-memory addresses
// are offsets into the block's dynamic shared memory; cp.async copies at once (a legal schedule of an asynchronous
// copy: the kernels may not read a stage before their wait and barrier anyway); ldmatrix and mma.sync are warp-wide,
// so every lane publishes its operands, the warp meets, and each lane computes its own fragment from the PTX ISA's
// fragment layouts. The mma sums in fp32 in k order (the GPU's order within a k16 step is unspecified). wgmma below.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

// ---- wgmma (sm_90a; the kernels' DSK_WGMMA_DEVICE_CODE bodies are compiled here), warpgroup-wide: every thread
// publishes its descriptors, the 128 threads meet (they must agree), and each thread computes its own accumulators from
// shared memory, read as the hardware reads an operand in the 128-byte swizzle (the address bits 4-6 XOR bits 7-9: a
// byte at logical address L is stored at L ^ (((L >> 7) & 7) << 4)):
//   K-major (A; B unless transposed): row r, k byte b at L = start + (r / 8) SBO + (r % 8) 128 + b;
//   MN-major (B with imm-trans-b = 1, bf16): element (n, k) at L = start + (n / 64) LBO + (k / 8) SBO + (k % 8) 128
//   + 2 (n % 64), CUTLASS's canonical Swizzle<3,4,3> o ((8,8,m),(8,k)):((1,8,LBO),(64,SBO)).
// Only the 128-byte swizzle with base offset 0 is emulated; anything else aborts. The sum runs in fp32 in k order;
// commit and wait are no-ops (the product is complete at issue). Operands are read from the async proxy's view of shared
// memory, a copy taken at each fence.proxy.async (fence_proxy_async below), so a missing or misplaced fence shows.
#define DSK_WGMMA_DEVICE_CODE 1
inline uint64_t wgmma_desc_sw128(uint32_t addr) {
    return (uint64_t)((addr & 0x3ffffu) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}
inline uint64_t wgmma_desc_mn_sw128(uint32_t addr, uint32_t lead, uint32_t stride) {
    return (uint64_t)((addr & 0x3ffffu) >> 4) | ((uint64_t)((lead & 0x3ffffu) >> 4) << 16) |
           ((uint64_t)((stride & 0x3ffffu) >> 4) << 32) | ((uint64_t)1 << 62);
}
// fence.proxy.async: the async proxy's view of shared memory (cuda_runtime.h) becomes what shared memory holds now. A
// kernel that writes an operand after its last fence (or never fences) has wgmma read what the view held before: the
// previous tile, or poison. (Permissive where one thread's later fence covers another thread's unfenced write.)
inline void fence_proxy_async() {
    std::memcpy(emu::async_smem_buf.data(), emu::dyn_smem_buf.data(), emu::dyn_smem_buf.size());
}
inline void wgmma_sync_view() {}
inline void wgmma_fence() {}
inline void wgmma_commit() {}
template <int N> inline void wgmma_wait() {}
template <int N> inline void wgmma_fence_operand(float (&)[N]) {}

inline float emu_e4m3(uint8_t b) {
    const int e = (b >> 3) & 15, m = b & 7;
    if (e == 15 && m == 7) return NAN;
    const float v = e != 0 ? std::ldexp(1.0f + m / 8.0f, e - 7) : std::ldexp(m / 8.0f, -6);
    return (b & 0x80) ? -v : v;
}
inline void wgmma_check_desc(uint64_t desc) {
    if ((desc >> 62) != 1 || ((desc >> 49) & 7) != 0) {
        std::fprintf(stderr, "emu: wgmma descriptor %llx: only the 128-byte swizzle with base offset 0 is emulated\n",
                     (unsigned long long)desc);
        std::abort();
    }
}
inline uint8_t wgmma_smem_byte(uint32_t l) {
    const uint32_t phys = l ^ (((l >> 7) & 7u) << 4);
    if (phys >= emu::async_smem_buf.size()) {
        std::fprintf(stderr, "emu: wgmma reads shared byte %u of %zu\n", phys, emu::async_smem_buf.size());
        std::abort();
    }
    return emu::async_smem_buf[phys];  // the async proxy's view (fence_proxy_async)
}
// The byte at (row, kbyte) of a K-major operand.
inline uint8_t wgmma_operand_byte(uint64_t desc, int row, int kbyte) {
    wgmma_check_desc(desc);
    const uint32_t start = (uint32_t)(desc & 0x3fff) << 4, sbo = (uint32_t)((desc >> 32) & 0x3fff) << 4;
    return wgmma_smem_byte(start + (uint32_t)(row >> 3) * sbo + (uint32_t)(row & 7) * 128u + (uint32_t)kbyte);
}
inline float wgmma_operand_e4m3(uint64_t desc, int row, int kbyte) { return emu_e4m3(wgmma_operand_byte(desc, row, kbyte)); }
inline float wgmma_operand_bf16(uint64_t desc, int row, int k) {
    const uint32_t bits = (uint32_t)wgmma_operand_byte(desc, row, 2 * k) | ((uint32_t)wgmma_operand_byte(desc, row, 2 * k + 1) << 8);
    return __uint_as_float(bits << 16);
}
// Element (n, k) of an MN-major bf16 operand.
inline float wgmma_operand_bf16_mn(uint64_t desc, int n, int k) {
    wgmma_check_desc(desc);
    const uint32_t start = (uint32_t)(desc & 0x3fff) << 4, lbo = (uint32_t)((desc >> 16) & 0x3fff) << 4,
                   sbo = (uint32_t)((desc >> 32) & 0x3fff) << 4;
    const uint32_t l = start + (uint32_t)(n >> 6) * lbo + (uint32_t)(k >> 3) * sbo + (uint32_t)(k & 7) * 128u + 2u * (uint32_t)(n & 63);
    const uint32_t bits = (uint32_t)wgmma_smem_byte(l) | ((uint32_t)wgmma_smem_byte(l + 1) << 8);
    return __uint_as_float(bits << 16);
}

// D (64 x N) = A (64 x K) * B (N x K)^T (+ D), K = 32 e4m3 or 16 bf16 (32 bytes of k either way); thread t of the
// warpgroup holds in d[4 c + 2 h + e] row 16 (t / 32) + (t % 32) / 4 + 8 h, column 8 c + 2 (t % 4) + e (the PTX ISA's
// wgmma D fragment for m64nNk*). readA(da, row, k), readB(db, n, k).
template <int N, int K, typename ReadA, typename ReadB>
inline void wgmma_m64(float (&d)[N / 2], uint64_t da, uint64_t db, bool accumulate, ReadA read_a, ReadB read_b) {
    const int t = emu::cur, g0 = t & ~127, w = (t & 127) >> 5, lane = t & 31;
    emu::wg_desc[t][0] = da;
    emu::wg_desc[t][1] = db;
    emu::warpgroup_barrier();
    wgmma_sync_view();
    for (int i = g0; i < g0 + 128; ++i)
        if (emu::wg_desc[i][0] != da || emu::wg_desc[i][1] != db) {
            std::fprintf(stderr, "emu: wgmma descriptors differ across the warpgroup (threads %d and %d)\n", t, i);
            std::abort();
        }
    float a[2][K];
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k < K; ++k) a[h][k] = read_a(da, 16 * w + (lane >> 2) + 8 * h, k);
    for (int c = 0; c < N / 8; ++c)
        for (int e = 0; e < 2; ++e) {
            const int col = 8 * c + 2 * (lane & 3) + e;
            float b[K];
            for (int k = 0; k < K; ++k) b[k] = read_b(db, col, k);
            for (int h = 0; h < 2; ++h) {
                float s = 0.0f;
                for (int k = 0; k < K; ++k) s += a[h][k] * b[k];
                float& o = d[4 * c + 2 * h + e];
                o = accumulate ? o + s : s;
            }
        }
    emu::warpgroup_barrier();
}
inline void wgmma_m64n128k32_e4m3(float (&d)[64], uint64_t da, uint64_t db, bool accumulate) {
    wgmma_m64<128, 32>(d, da, db, accumulate, wgmma_operand_e4m3, wgmma_operand_e4m3);
}
inline void wgmma_m64n128k16_bf16(float (&d)[64], uint64_t da, uint64_t db, bool accumulate) {
    wgmma_m64<128, 16>(d, da, db, accumulate, wgmma_operand_bf16, wgmma_operand_bf16);
}
inline void wgmma_m64n64k16_bf16(float (&d)[32], uint64_t da, uint64_t db, bool accumulate) {
    wgmma_m64<64, 16>(d, da, db, accumulate, wgmma_operand_bf16, wgmma_operand_bf16);
}
inline void wgmma_m64n128k16_bf16_bmn(float (&d)[64], uint64_t da, uint64_t db, bool accumulate) {
    wgmma_m64<128, 16>(d, da, db, accumulate, wgmma_operand_bf16, wgmma_operand_bf16_mn);
}
// The register-A forms: every thread publishes its four A registers; A's row 16 w + g (+ 8), k 2 q (+ 8) come from warp
// w's lane 4 g + q as mma.sync m16n8k16's A fragment lays them out (see kernels/mma_ptx.cuh).
template <int N, typename ReadB>
inline void wgmma_m64_rs(float (&d)[N / 2], const uint32_t (&areg)[4], uint64_t db, bool accumulate, ReadB read_b) {
    const int t = emu::cur, g0 = t & ~127;
    for (int i = 0; i < 4; ++i) emu::wg_afrag[t][i] = areg[i];
    emu::wg_desc[t][0] = 0;
    emu::wg_desc[t][1] = db;
    emu::warpgroup_barrier();
    wgmma_sync_view();
    for (int i = g0; i < g0 + 128; ++i)
        if (emu::wg_desc[i][1] != db) {
            std::fprintf(stderr, "emu: wgmma descriptors differ across the warpgroup (threads %d and %d)\n", t, i);
            std::abort();
        }
    static thread_local float A[64][16];
    for (int i = 0; i < 128; ++i) {
        const uint32_t* f = emu::wg_afrag[g0 + i];
        const int w = i >> 5, g = (i & 31) >> 2, q = i & 3;
        const int rows[4] = {16 * w + g, 16 * w + g + 8, 16 * w + g, 16 * w + g + 8};
        const int cols[4] = {2 * q, 2 * q, 2 * q + 8, 2 * q + 8};
        for (int r = 0; r < 4; ++r) {
            A[rows[r]][cols[r]] = bf16_lo(f[r]);
            A[rows[r]][cols[r] + 1] = bf16_hi(f[r]);
        }
    }
    const int w = (t & 127) >> 5, lane = t & 31;
    for (int c = 0; c < N / 8; ++c)
        for (int e = 0; e < 2; ++e) {
            const int col = 8 * c + 2 * (lane & 3) + e;
            float b[16];
            for (int k = 0; k < 16; ++k) b[k] = read_b(db, col, k);
            for (int h = 0; h < 2; ++h) {
                const int row = 16 * w + (lane >> 2) + 8 * h;
                float s = 0.0f;
                for (int k = 0; k < 16; ++k) s += A[row][k] * b[k];
                float& o = d[4 * c + 2 * h + e];
                o = accumulate ? o + s : s;
            }
        }
    emu::warpgroup_barrier();
}
inline void wgmma_m64n128k16_bf16_rs_bmn(float (&d)[64], const uint32_t (&a)[4], uint64_t db, bool accumulate) {
    wgmma_m64_rs<128>(d, a, db, accumulate, wgmma_operand_bf16_mn);
}
inline void wgmma_m64n64k16_bf16_rs_bmn(float (&d)[32], const uint32_t (&a)[4], uint64_t db, bool accumulate) {
    wgmma_m64_rs<64>(d, a, db, accumulate, wgmma_operand_bf16_mn);
}
template <int N> inline void wgmma_fence_operand(uint32_t (&)[N]) {}

}  // namespace mma
}  // namespace dsk

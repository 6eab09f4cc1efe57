// mma_ptx.cuh: the inline-PTX wrappers of the tensor-core kernels (shared-memory addresses, cp.async, ldmatrix,
// mma.sync bf16; wgmma and its fences for sm_90a), kept apart from mma_common.cuh so that the host emulation
// (kernels/tests/emu/mma_ptx.cuh) can stand in for exactly these and nothing else. sm_80+ only.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace dsk {
namespace mma {

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

// 16-byte global -> shared copy that bypasses L1; when !valid nothing is read and the 16 bytes are zeroed
// (`src` must still be a valid address).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
    const int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8x8 b16 matrices; lane l supplies the row address of row (l & 7) of matrix (l >> 3).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// Four 8x8 b16 matrices, transposed (ldmatrix .trans: a [k][n] tile in shared memory as the mma's B operand): lane l
// supplies the row address of row (l & 7) of matrix (l >> 3) and receives, of each matrix, elements (2 (l % 4), l / 4)
// (low half) and (2 (l % 4) + 1, l / 4) (high half).
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// D = A * B + D, m16n8k16, bf16 inputs, fp32 accumulators.
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ---- Hopper (sm_90a) warpgroup MMA. The instructions exist only in device code compiled for sm_90a; elsewhere these
// wrappers are empty, and kernels that use them guard their bodies with DSK_WGMMA_DEVICE_CODE (the host launches them only
// on cc 9.0 devices of a library built for sm_90a). The host emulation (kernels/tests/emu) defines the macro too.
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DSK_WGMMA_DEVICE_CODE 1
#endif

// Shared-memory matrix descriptor of a K-major operand in the 128-byte swizzle (swz's layout on a 1024-byte-aligned
// tile): start address >> 4 (bits 0-13), leading byte offset 16 >> 4 (bits 16-29; unused when an instruction's K
// stays within one 128-byte row), stride byte offset 1024 >> 4 between 8-row groups (bits 32-45), base offset 0,
// swizzle mode 1 = 128 bytes (bits 62-63). Advancing `addr` by 32 bytes selects the rows' next 32 bytes of k (one k32
// step of e4m3, one k16 step of bf16).
__device__ __forceinline__ uint64_t wgmma_desc_sw128(uint32_t addr) {
    return (uint64_t)((addr & 0x3ffffu) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

// Descriptor of an MN-major operand (bf16 B stored [k][n], n contiguous: V in P V) in the same 128-byte swizzle: each
// 128-byte row holds 64 consecutive n of one k, 8 consecutive k rows form a 1024-byte swizzle atom, the next 8 k start
// `stride` bytes on (stride byte offset, bits 32-45) and the next 64 n `lead` bytes on (leading byte offset, bits
// 16-29): CUTLASS's canonical Swizzle<3,4,3> o ((8,8,m),(8,k)):((1,8,LBO),(64,SBO)) in bf16 elements. Advancing `addr`
// by 2048 bytes selects the next 16 k (one k16 step).
__device__ __forceinline__ uint64_t wgmma_desc_mn_sw128(uint32_t addr, uint32_t lead, uint32_t stride) {
    return (uint64_t)((addr & 0x3ffffu) >> 4) | ((uint64_t)((lead & 0x3ffffu) >> 4) << 16) |
           ((uint64_t)((stride & 0x3ffffu) >> 4) << 32) | ((uint64_t)1 << 62);
}

// This thread's earlier generic-proxy writes to shared memory (cp.async included) become visible to the async proxy,
// through which wgmma reads its operands; then a barrier publishes them to the warpgroup.
__device__ __forceinline__ void fence_proxy_async() {
#if defined(DSK_WGMMA_DEVICE_CODE)
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_fence() {
#if defined(DSK_WGMMA_DEVICE_CODE)
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#if defined(DSK_WGMMA_DEVICE_CODE)
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void wgmma_wait() {
#if defined(DSK_WGMMA_DEVICE_CODE)
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
// Keeps the compiler from moving reads or writes of accumulator registers across wgmma's asynchronous window.
template <int N> __device__ __forceinline__ void wgmma_fence_operand(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// The 64 fp32 accumulators of an m64n128 wgmma as asm operands %0..%63 ("+f": read and written) and their list.
#define DSK_WGMMA_D64_REGS "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "\
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "\
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "\
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define DSK_WGMMA_D64_OPERANDS(d) \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
    "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
    "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
    "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

// The 32 fp32 accumulators of an m64n64 wgmma, likewise.
#define DSK_WGMMA_D32_REGS "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "\
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define DSK_WGMMA_D32_OPERANDS(d) \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])

// D (64 x 128, fp32) = A (64 x 32 e4m3, K-major, descriptor da) * B (128 x 32 e4m3, K-major, db)^T (+ D if accumulate).
// Thread t of the warpgroup holds, in d[4 c + 2 h + e], row 16 (t / 32) + (t % 32) / 4 + 8 h, column 8 c + 2 (t % 4) + e.
__device__ __forceinline__ void wgmma_m64n128k32_e4m3(float (&d)[64], uint64_t da, uint64_t db, bool accumulate) {
#if defined(DSK_WGMMA_DEVICE_CODE)
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 " DSK_WGMMA_D64_REGS ", %64, %65, p, 1, 1;\n}\n"
        : DSK_WGMMA_D64_OPERANDS(d)
        : "l"(da), "l"(db), "r"((int)accumulate));
#endif
}

// D (64 x 128, fp32) += A (64 x 16 bf16, K-major, da) * B (128 x 16 bf16, K-major, db)^T; D's fragment as above.
__device__ __forceinline__ void wgmma_m64n128k16_bf16(float (&d)[64], uint64_t da, uint64_t db, bool accumulate) {
#if defined(DSK_WGMMA_DEVICE_CODE)
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " DSK_WGMMA_D64_REGS ", %64, %65, p, 1, 1, 0, 0;\n}\n"
        : DSK_WGMMA_D64_OPERANDS(d)
        : "l"(da), "l"(db), "r"((int)accumulate));
#endif
}


// D (64 x 64, fp32) (+)= A (64 x 16 bf16, K-major, da) * B (64 x 16 bf16, K-major, db)^T; d[4 c + 2 h + e] holds row
// 16 (t / 32) + (t % 32) / 4 + 8 h, column 8 c + 2 (t % 4) + e (c < 8).
__device__ __forceinline__ void wgmma_m64n64k16_bf16(float (&d)[32], uint64_t da, uint64_t db, bool accumulate) {
#if defined(DSK_WGMMA_DEVICE_CODE)
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " DSK_WGMMA_D32_REGS ", %32, %33, p, 1, 1, 0, 0;\n}\n"
        : DSK_WGMMA_D32_OPERANDS(d)
        : "l"(da), "l"(db), "r"((int)accumulate));
#endif
}

// D (64 x 128, fp32) (+)= A (64 x 16 bf16, K-major, da) * B (16 x 128 bf16 stored MN-major, db: wgmma_desc_mn_sw128), the
// B operand transposed by the instruction (imm-trans-b = 1); D's fragment as wgmma_m64n128k16_bf16's.
__device__ __forceinline__ void wgmma_m64n128k16_bf16_bmn(float (&d)[64], uint64_t da, uint64_t db, bool accumulate) {
#if defined(DSK_WGMMA_DEVICE_CODE)
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " DSK_WGMMA_D64_REGS ", %64, %65, p, 1, 1, 0, 1;\n}\n"
        : DSK_WGMMA_D64_OPERANDS(d)
        : "l"(da), "l"(db), "r"((int)accumulate));
#endif
}

// D (64 x N, fp32) (+)= A (64 x 16 bf16 from registers) * B (16 x N bf16 stored MN-major, db: wgmma_desc_mn_sw128),
// N = 128 or 64. Warp w of the warpgroup supplies rows 16 w .. 16 w + 15 of A in mma.sync m16n8k16's A fragment: with
// g = lane / 4, q = lane % 4, a[0] = (row g, k 2q, 2q + 1), a[1] = (row g + 8, same k), a[2] = (row g, k 2q + 8, + 9),
// a[3] = (row g + 8, k 2q + 8, + 9), low half first: the layout of two n8 column tiles of a D fragment, so softmax
// weights go from S's accumulators to P V's A operand without shared memory (FlashAttention-3). D's fragment as above.
__device__ __forceinline__ void wgmma_m64n128k16_bf16_rs_bmn(float (&d)[64], const uint32_t (&a)[4], uint64_t db,
                                                             bool accumulate) {
#if defined(DSK_WGMMA_DEVICE_CODE)
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " DSK_WGMMA_D64_REGS ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
        : DSK_WGMMA_D64_OPERANDS(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"((int)accumulate));
#endif
}
__device__ __forceinline__ void wgmma_m64n64k16_bf16_rs_bmn(float (&d)[32], const uint32_t (&a)[4], uint64_t db,
                                                            bool accumulate) {
#if defined(DSK_WGMMA_DEVICE_CODE)
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " DSK_WGMMA_D32_REGS ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
        : DSK_WGMMA_D32_OPERANDS(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"((int)accumulate));
#endif
}
// Keeps the compiler from moving writes of A registers across wgmma's asynchronous window.
template <int N> __device__ __forceinline__ void wgmma_fence_operand(uint32_t (&r)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

}  // namespace mma
}  // namespace dsk

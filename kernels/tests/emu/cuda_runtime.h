// cuda_runtime.h (host emulation): the subset of the CUDA runtime and device built-ins that kernels/*.cu use, so the
// kernels can be compiled with g++ and run on a machine without a GPU (kernels/tests/emu/run.sh). Test tooling only:
// it checks the kernels' indexing, reductions and arithmetic, not timing, memory ordering or the GPU's own numerics.
//
// A launch runs its blocks one after another; the threads of a block are fibers (ucontext) on one OS thread, switched
// at __syncthreads (block barrier) and at warp shuffles (warp barrier). __shared__ becomes a function-static array,
// shared by the fibers of the running block. "Device" memory is host memory (cudaMalloc = posix_memalign, exact size,
// so AddressSanitizer sees out-of-bounds accesses). The SM count is 132 unless EMU_SMS says otherwise.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>
#include <ucontext.h>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)
#define CUDART_VERSION 11080
struct dim3 { unsigned x, y, z; dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {} };
struct uint4 { unsigned x, y, z, w; };
struct uint2 { unsigned x, y; };
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
struct float2 { float x, y; };
inline float2 make_float2(float a, float b) { return {a, b}; }
typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1 };
typedef void* cudaStream_t;
typedef void* cudaEvent_t;
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16, cudaDevAttrComputeCapabilityMajor = 75, cudaDevAttrComputeCapabilityMinor = 76, cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
template <class F> inline cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int) { return 0; }
enum { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3, cudaStreamNonBlocking = 1 };
struct cudaDeviceProp { char name[256]; int major, minor; };
inline int emu_sm_count() { const char* s = getenv("EMU_SMS"); return s ? atoi(s) : 132; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return 0; }
inline cudaError_t cudaGetDeviceCount(int* d) { *d = 1; return 0; }
// An H100/H200-like device: sm_90, 227 KiB of opt-in shared memory per block, EMU_SMS multiprocessors (132).
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
    *v = a == cudaDevAttrComputeCapabilityMajor ? 9 : a == cudaDevAttrComputeCapabilityMinor ? 0
       : a == cudaDevAttrMaxSharedMemoryPerBlockOptin ? 232448 : emu_sm_count();
    return 0;
}
inline cudaError_t cudaGetLastError() { return 0; }
inline const char* cudaGetErrorName(cudaError_t) { return "cudaEmu"; }
inline const char* cudaGetErrorString(cudaError_t) { return "emulated"; }
inline cudaError_t cudaMalloc(void** p, size_t n) { return posix_memalign(p, 256, n ? n : 1); }
template <class T> inline cudaError_t cudaMalloc(T** p, size_t n) { return cudaMalloc(reinterpret_cast<void**>(p), n); }
inline cudaError_t cudaFree(void* p) { free(p); return 0; }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, int) { memcpy(d, s, n); return 0; }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, int, cudaStream_t) { memcpy(d, s, n); return 0; }
inline cudaError_t cudaMemset(void* d, int v, size_t n) { memset(d, v, n); return 0; }
inline cudaError_t cudaDeviceSynchronize() { return 0; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return 0; }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, int) { *s = (void*)1; return 0; }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return 0; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) { strcpy(p->name, "emu"); p->major = 9; p->minor = 0; return 0; }
inline cudaError_t cudaEventCreate(cudaEvent_t*) { return 0; }
inline cudaError_t cudaEventDestroy(cudaEvent_t) { return 0; }
inline cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return 0; }
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return 0; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) { *ms = 1; return 0; }

namespace emu {
struct Fiber { ucontext_t ctx; char* stack; bool done; int wait; };
inline dim3 threadIdx_, blockIdx_, blockDim_, gridDim_;
inline std::vector<Fiber> fibers;
inline ucontext_t sched;
inline int cur = 0, nthreads = 0, block_arrived = 0;
inline int warp_arrived[32];
inline float shfl_buf[1024];
inline int vote_buf[1024];
inline uint32_t addr_buf[1024];      // ldmatrix: each lane's row address
inline uint32_t frag_buf[1024][6];   // mma.sync: each lane's A and B fragments
inline std::vector<unsigned char> dyn_smem_buf;  // the running block's dynamic shared memory
inline unsigned char* dyn_smem = nullptr;
// What wgmma (the async proxy) sees of the block's shared memory: a copy of dyn_smem taken at each fence.proxy.async
// (emulated wgmma, mma_ptx.cuh). Writes made after the last fence are not seen by a wgmma.
inline std::vector<unsigned char> async_smem_buf;
inline std::function<void()>* body = nullptr;  // the running launch's kernel call
inline long long switches = 0;
inline void yield() { ++switches; swapcontext(&fibers[cur].ctx, &sched); }
inline void entry() { (*body)(); fibers[cur].done = true; }
inline void syncthreads() {
    fibers[cur].wait = 1;
    if (++block_arrived == nthreads) { for (int i = 0; i < nthreads; ++i) if (fibers[i].wait == 1) fibers[i].wait = 0; block_arrived = 0; }
    yield();
}
inline void warp_barrier() {
    const int w = cur / 32;
    fibers[cur].wait = 2;
    if (++warp_arrived[w] == 32) { for (int i = w * 32; i < w * 32 + 32; ++i) if (fibers[i].wait == 2) fibers[i].wait = 0; warp_arrived[w] = 0; }
    yield();
}
template <class F> void launch(dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t, F f) {
    nthreads = (int)(block.x * block.y * block.z);
    if (nthreads % 32 != 0) { fprintf(stderr, "emu: block not a multiple of 32\n"); abort(); }
    if (fibers.size() < 1024) { fibers.resize(1024); for (auto& fb : fibers) fb.stack = (char*)malloc(1 << 16); }
    std::function<void()> fn = f;
    body = &fn;
    gridDim_ = grid; blockDim_ = block;
    for (unsigned bz = 0; bz < grid.z; ++bz) for (unsigned by = 0; by < grid.y; ++by) for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx_ = dim3(bx, by, bz);
        dyn_smem_buf.assign(smem_bytes + 16, 0xff);  // poisoned: a read of shared memory nothing wrote shows as NaN
        dyn_smem = dyn_smem_buf.data();
        async_smem_buf.assign(smem_bytes + 16, 0xee);  // poisoned differently: an unfenced read shows as wrong values
        block_arrived = 0; memset(warp_arrived, 0, sizeof warp_arrived);
        for (int i = 0; i < nthreads; ++i) {
            Fiber& fb = fibers[i]; fb.done = false; fb.wait = 0;
            getcontext(&fb.ctx); fb.ctx.uc_stack.ss_sp = fb.stack; fb.ctx.uc_stack.ss_size = 1 << 16; fb.ctx.uc_link = &sched;
            makecontext(&fb.ctx, entry, 0);
        }
        for (;;) {
            bool any = false, progress = false;
            for (int i = 0; i < nthreads; ++i) {
                if (fibers[i].done) continue;
                any = true;
                if (fibers[i].wait) continue;
                cur = i; threadIdx_ = dim3(i, 0, 0);
                swapcontext(&sched, &fibers[i].ctx);
                progress = true;
            }
            if (!any) break;
            if (!progress) { fprintf(stderr, "emu: deadlock (block %u %u %u)\n", bx, by, bz); abort(); }
        }
    }
}
template <class F> void launch(dim3 grid, dim3 block, F f) { launch(grid, block, 0, nullptr, f); }
template <class F> void launch(dim3 grid, dim3 block, size_t smem_bytes, F f) { launch(grid, block, smem_bytes, nullptr, f); }
}  // namespace emu
#define threadIdx (emu::threadIdx_)
#define blockIdx (emu::blockIdx_)
#define blockDim (emu::blockDim_)
#define gridDim (emu::gridDim_)
inline void __syncthreads() { emu::syncthreads(); }
inline float __shfl_xor_sync(unsigned, float v, int off) {
    const int t = emu::cur; emu::shfl_buf[t] = v; emu::warp_barrier();
    const float r = emu::shfl_buf[(t & ~31) | ((t & 31) ^ off)]; emu::warp_barrier(); return r;
}
inline unsigned __ballot_sync(unsigned, int pred) {
    const int t = emu::cur; emu::vote_buf[t] = pred != 0; emu::warp_barrier();
    unsigned r = 0;
    for (int l = 0; l < 32; ++l) r |= (unsigned)emu::vote_buf[(t & ~31) | l] << l;
    emu::warp_barrier(); return r;
}
inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __float2int_rn(float f) { return (int)nearbyintf(f); }  // the default rounding mode: to nearest even
template <class T> inline T __ldg(const T* p) { return *p; }
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline unsigned __shfl_xor_sync(unsigned mask, unsigned v, int off) { return __float_as_uint(__shfl_xor_sync(mask, __uint_as_float(v), off)); }
inline unsigned __reduce_min_sync(unsigned mask, unsigned v) {
    for (int off = 16; off > 0; off >>= 1) { const unsigned o = __shfl_xor_sync(mask, v, off); v = o < v ? o : v; }
    return v;
}
inline unsigned __vcmpeq4(unsigned a, unsigned b) { unsigned r = 0; for (int i = 0; i < 4; ++i) if (((a >> 8 * i) & 255) == ((b >> 8 * i) & 255)) r |= 255u << 8 * i; return r; }
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) { unsigned char b[8]; for (int i = 0; i < 4; ++i) { b[i] = x >> 8 * i; b[4 + i] = y >> 8 * i; } unsigned r = 0; for (int i = 0; i < 4; ++i) r |= (unsigned)b[(s >> 4 * i) & 7] << 8 * i; return r; }
inline int atomicCAS(int* a, int c, int v) { int o = *a; if (o == c) *a = v; return o; }
#include <math.h>
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
// Fibers switch only at barriers, so a plain read-modify-write is atomic here.
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) { memset(d, v, n); return 0; }
inline unsigned long long atomicMax(unsigned long long* a, unsigned long long v) { unsigned long long o = *a; if (v > o) *a = v; return o; }
inline unsigned atomicAdd(unsigned* a, unsigned v) { unsigned o = *a; *a = o + v; return o; }
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) { unsigned long long o = *a; *a = o + v; return o; }
inline void __threadfence() {}
// What the attention kernels need beyond the above, one file per kernel family so their additions do not collide.
#include "emu_attention_simt.h"
#include "emu_attention_mma.h"
#include "emu_mla_mma.h"
#include "emu_moe.h"
#include "emu_grouped_linear.h"
#include "emu_wgmma.h"

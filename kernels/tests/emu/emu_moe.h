// emu_moe.h: emulated CUDA intrinsics the MoE kernels (moe_route, moe_permute, moe_combine) need (included by
// cuda_runtime.h). Fibers switch only at barriers, so each call below is a barrier of its warp or block.
#pragma once
// Warp barrier.
inline void __syncwarp(unsigned = 0xffffffffu) { emu::warp_barrier(); }
// Broadcast of lane `src`'s value to the warp.
inline float __shfl_sync(unsigned, float v, int src) {
    const int t = emu::cur; emu::shfl_buf[t] = v; emu::warp_barrier();
    const float r = emu::shfl_buf[(t & ~31) | (src & 31)]; emu::warp_barrier(); return r;
}
// Block barrier that returns how many threads of the block passed a nonzero predicate.
inline int __syncthreads_count(int pred) {
    const int t = emu::cur; emu::vote_buf[t] = pred != 0; emu::syncthreads();
    int n = 0;
    for (int i = 0; i < emu::nthreads; ++i) n += emu::vote_buf[i];
    emu::syncthreads(); return n;
}

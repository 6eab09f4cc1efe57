// emu_grouped_linear.h: emulated CUDA intrinsics the grouped linear's row-tile scan (kernels/linear.cuh, row_tile)
// needs (included by cuda_runtime.h): __shfl_up_sync and __shfl_sync on 32-bit integers.
#pragma once
inline unsigned emu_shfl_from(unsigned v, int src_lane) {
    const int t = emu::cur;
    emu::shfl_buf[t] = __uint_as_float(v);
    emu::warp_barrier();
    const unsigned r = __float_as_uint(emu::shfl_buf[(t & ~31) | (src_lane & 31)]);
    emu::warp_barrier();
    return r;
}
inline unsigned __shfl_up_sync(unsigned, unsigned v, unsigned d) {
    const int lane = emu::cur & 31;
    return emu_shfl_from(v, lane >= (int)d ? lane - (int)d : lane);
}
inline int __shfl_up_sync(unsigned m, int v, unsigned d) { return (int)__shfl_up_sync(m, (unsigned)v, d); }
inline unsigned __shfl_sync(unsigned, unsigned v, int src) { return emu_shfl_from(v, src); }
inline int __shfl_sync(unsigned m, int v, int src) { return (int)__shfl_sync(m, (unsigned)v, src); }

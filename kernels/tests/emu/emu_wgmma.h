// emu_wgmma.h (host emulation, included by cuda_runtime.h): what the emulated wgmma (mma_ptx.cuh here) needs: a barrier
// of the 128 threads of a warpgroup and each thread's published descriptors.
#pragma once
namespace emu {
inline int wg_arrived[8];
inline uint64_t wg_desc[1024][2];
inline uint32_t wg_afrag[1024][4];  // the register-A forms' published A fragments
inline void warpgroup_barrier() {
    const int g = cur / 128;
    if ((nthreads & 127) != 0) { fprintf(stderr, "emu: wgmma in a block of %d threads (not whole warpgroups)\n", nthreads); abort(); }
    fibers[cur].wait = 3;
    if (++wg_arrived[g] == 128) {
        for (int i = g * 128; i < g * 128 + 128; ++i) if (fibers[i].wait == 3) fibers[i].wait = 0;
        wg_arrived[g] = 0;
    }
    yield();
}
}  // namespace emu

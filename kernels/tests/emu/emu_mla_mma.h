// emu_mla_mma.h: emulated CUDA intrinsics the mla_mma kernels need (included by cuda_runtime.h).
//
// ldmatrix .trans (paged_mla_mma.cu reads V, stored [key][column], as the mma's B operand): matrix i's row j comes
// from lane 8 i + j's address; lane l receives, of each matrix, the elements (row 2 (l % 4), column l / 4) and
// (row 2 (l % 4) + 1, column l / 4) (one 32-bit word, the first in the low half). DSK_EMU_MLA_MMA tells the kernel
// file to use this instead of its inline PTX.
#pragma once
#define DSK_EMU_MLA_MMA 1
namespace dsk {
namespace mma {
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
}  // namespace mma
}  // namespace dsk

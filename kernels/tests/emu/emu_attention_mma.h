// emu_attention_mma.h: emulated CUDA intrinsics the attention_mma kernels need (included by cuda_runtime.h).
#pragma once
#include <cstring>

// paged_attention_mma.cu defines its inline-PTX ldmatrix.trans only without this.
#define DSK_EMU_ATTENTION_MMA 1

namespace dsk {
namespace attn_mma_ptx {
// ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16: matrix i's row r comes from lane 8 i + r's address (an offset into
// the block's dynamic shared memory); lane l receives, of each matrix, elements [2 (l % 4)][l / 4] (low half) and
// [2 (l % 4) + 1][l / 4] (high half).
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
}  // namespace attn_mma_ptx
}  // namespace dsk

// emu_attention_simt.h: emulated CUDA intrinsics the attention_simt kernels need (included by cuda_runtime.h).
#pragma once
// The SIMT family sizes its context splits by the blocks resident on an SM.
template <class F> inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, F, int, size_t) {
    *blocks = 2;
    return 0;
}

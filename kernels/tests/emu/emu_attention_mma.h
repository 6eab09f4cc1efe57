// emu_attention_mma.h: emulated CUDA intrinsics the attention_mma kernels need beyond cuda_runtime.h and mma_ptx.cuh (included by
// cuda_runtime.h; ldmatrix .trans, which both tensor-core attention families use, is in mma_ptx.cuh).
#pragma once

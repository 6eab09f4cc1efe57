// emu_attention_mma.h: emulated CUDA intrinsics the attention_mma kernels need (included by cuda_runtime.h).
#pragma once

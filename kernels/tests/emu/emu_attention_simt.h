// emu_attention_simt.h: emulated CUDA intrinsics the attention_simt kernels need (included by cuda_runtime.h).
#pragma once

// emu_mla_mma.h: emulated CUDA intrinsics the mla_mma kernels need (included by cuda_runtime.h).
#pragma once

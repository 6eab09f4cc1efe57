// linear_simt_w_fp8.cu: the CUDA-core Linear kernels (linear_simt.cuh) for FP8 e4m3 weights with 128x128-style fp32 block scales, x f32 or bf16, every epilogue.
#include "linear_simt.cuh"

namespace dsk {
namespace simt {

template DSK_LINEAR_SIMT_WEIGHT_KIND(kWFP8);

}  // namespace simt
}  // namespace dsk

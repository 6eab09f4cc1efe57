// linear_simt_w_f32.cu: the CUDA-core Linear kernels (linear_simt.cuh) for f32 weights, x f32 or bf16, every epilogue.
#include "linear_simt.cuh"

namespace dsk {
namespace simt {

template DSK_LINEAR_SIMT_WEIGHT_KIND(kWF32);

}  // namespace simt
}  // namespace dsk

// linear_simt_w_bf16.cu: the CUDA-core Linear kernels (linear_simt.cuh) for bf16 weights, x f32 or bf16, every epilogue.
#include "linear_simt.cuh"

namespace dsk {
namespace simt {

template DSK_LINEAR_SIMT_WEIGHT_KIND(kWBF16);

}  // namespace simt
}  // namespace dsk

// linear_simt_w_int4.cu: the CUDA-core Linear kernels (linear_simt.cuh) for INT4 group-wise weights (bf16 scale and zero point), x f32 or bf16, every epilogue.
#include "linear_simt.cuh"

namespace dsk {
namespace simt {

template DSK_LINEAR_SIMT_WEIGHT_KIND(kWINT4);

}  // namespace simt
}  // namespace dsk

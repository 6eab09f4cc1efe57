// linear.cuh: the internal interface between dsk_linear's entry point (linear.cu: validation and dispatch) and its
// kernel families (linear_simt.cu: CUDA-core GEMV / skinny GEMM for every request; linear_mma.cu: bf16 tensor
// cores for prefill). The entry point has checked every field of the params (see deepseek_kernels.h) before a
// family sees them; families only check what is theirs (the GPU's arch, alignment, shape limits).
#pragma once

#include "common.cuh"

namespace dsk {

// In / out features of a dsk_linear request (transpose_w swaps the weight's rows and cols).
inline int64_t linear_in(const dsk_linear_params& p) { return p.transpose_w ? p.w.rows : p.w.cols; }
inline int64_t linear_out(const dsk_linear_params& p) { return p.transpose_w ? p.w.cols : p.w.rows; }
// Columns of y: out, or out / 2 with the SiLU-and-mul epilogue.
inline int64_t linear_y_cols(const dsk_linear_params& p) {
    return p.epilogue == DSK_EPILOGUE_SILU_MUL ? linear_out(p) / 2 : linear_out(p);
}

// linear_simt.cu: runs every valid request (any x and y dtype, scheme, transpose, epilogue, stride). Returns
// DSK_SUCCESS or DSK_ERROR_CUDA (launch error) with the message set under `op`.
dsk_status linear_simt(const char* op, const dsk_linear_params& p);

// linear_mma.cu: whether the tensor-core family runs this request on the current device; when not, `why`
// (if non-NULL) gets a short reason ("x_dtype is not BF16", "needs sm_80+ (device is sm_75)", ...).
bool linear_mma_supports(const dsk_linear_params& p, const char** why);

// linear_mma.cu: runs a request linear_mma_supports accepted.
dsk_status linear_mma(const char* op, const dsk_linear_params& p);

// AUTO's choice: MMA from this many rows per batch entry up (below it the SIMT GEMV streams the weight once).
constexpr int64_t kLinearMmaMinRows = 32;

}  // namespace dsk

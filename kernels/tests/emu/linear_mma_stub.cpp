// linear_mma_stub.cpp (host emulation, see cuda_runtime.h here): stands in for linear_mma.cu, whose tensor-core PTX
// has no host form, so that dsk_linear's AUTO and MMA paths take their "MMA cannot run this" branches.
#include "linear.cuh"

namespace dsk {
bool linear_mma_supports(const dsk_linear_params& p, const char** why) {
    (void)p;
    if (why != nullptr) *why = "tensor cores are not emulated";
    return false;
}
dsk_status linear_mma(const char* op, const dsk_linear_params& p) {
    (void)p;
    set_error(op, "tensor cores are not emulated");
    return DSK_ERROR_UNSUPPORTED;
}
}  // namespace dsk

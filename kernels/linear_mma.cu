// linear_mma.cu: PLACEHOLDER until the kernel lands.
#include "linear.cuh"
namespace dsk {
bool linear_mma_supports(const dsk_linear_params& p, const char** why) { (void)p; if (why) *why = "not implemented yet"; return false; }
dsk_status linear_mma(const char* op, const dsk_linear_params& p) { (void)p; set_error(op, "MMA path not implemented yet"); return DSK_ERROR_UNSUPPORTED; }
}  // namespace dsk

// linear_simt.cu: PLACEHOLDER until the kernel lands.
#include "linear.cuh"
namespace dsk {
dsk_status linear_simt(const char* op, const dsk_linear_params& p) { (void)p; set_error(op, "SIMT path not implemented yet"); return DSK_ERROR_UNSUPPORTED; }
}  // namespace dsk

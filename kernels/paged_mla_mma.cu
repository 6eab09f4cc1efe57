// paged_mla_mma.cu: placeholder until the tensor-core family lands; it declines every request, so AUTO takes the SIMT family.
#include "paged_attention.cuh"

namespace dsk {

bool paged_mla_mma_supports(const dsk_paged_attention_params&, const char** why) {
    if (why) *why = "the tensor-core family is not built yet";
    return false;
}
int64_t paged_mla_mma_workspace_bytes(const dsk_paged_attention_params&) { return 0; }
dsk_status paged_mla_mma(const char* op, const dsk_paged_attention_params&, void*) {
    set_error(op, "the tensor-core family is not built yet");
    return DSK_ERROR_UNSUPPORTED;
}

}  // namespace dsk

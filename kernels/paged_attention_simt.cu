// paged_attention_simt.cu: placeholder until the CUDA-core family lands (it refuses every request).
#include "paged_attention.cuh"

namespace dsk {

int64_t paged_simt_workspace_bytes(const dsk_paged_attention_params&, bool) { return 0; }
dsk_status paged_simt(const char* op, const dsk_paged_attention_params&, bool, void*) {
    set_error(op, "the CUDA-core attention family is not built yet");
    return DSK_ERROR_UNSUPPORTED;
}

}  // namespace dsk

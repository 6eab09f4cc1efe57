// embedding.cu: PLACEHOLDER until the kernel lands (this session's helpers replace this file); refuses every call.
#include "common.cuh"

extern "C" DSK_API dsk_status dsk_embedding(const dsk_embedding_params* p) {
    (void)p;
    DSK_UNSUPPORTED("dsk_embedding", "not implemented in this build yet");
}

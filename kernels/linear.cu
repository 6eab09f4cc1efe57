// linear.cu: PLACEHOLDER until the kernel lands (this session's helpers replace this file); refuses every call.
#include "common.cuh"

extern "C" DSK_API dsk_status dsk_linear(const dsk_linear_params* p) {
    (void)p;
    DSK_UNSUPPORTED("dsk_linear", "not implemented in this build yet");
}

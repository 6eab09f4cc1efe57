// linear_fp8_w8a8.cu: PLACEHOLDER until the kernel lands (this session's helpers replace this file); refuses every call.
#include "common.cuh"

extern "C" DSK_API dsk_status dsk_linear_fp8_w8a8(const dsk_linear_fp8_w8a8_params* p) {
    (void)p;
    DSK_UNSUPPORTED("dsk_linear_fp8_w8a8", "not implemented in this build yet");
}

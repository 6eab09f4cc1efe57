// quantize_fp8_act.cu: PLACEHOLDER until the kernel lands (this session's helpers replace this file); refuses every call.
#include "common.cuh"

extern "C" DSK_API dsk_status dsk_quantize_fp8_act(const dsk_quantize_fp8_act_params* p) {
    (void)p;
    DSK_UNSUPPORTED("dsk_quantize_fp8_act", "not implemented in this build yet");
}

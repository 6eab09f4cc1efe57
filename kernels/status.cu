// status.cu: library status entry points and the per-thread last-error message behind them.
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common.cuh"

namespace dsk {
namespace {

constexpr int kMessageCapacity = 512;
thread_local char t_last_error[kMessageCapacity] = "";

}  // namespace

void set_error(const char* op, const char* fmt, ...) {
    int n = std::snprintf(t_last_error, kMessageCapacity, "%s: ", op != nullptr ? op : "dsk");
    if (n < 0 || n >= kMessageCapacity) return;  // op alone filled the buffer (or failed): keep what is there
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(t_last_error + n, (size_t)(kMessageCapacity - n), fmt, args);
    va_end(args);
}

const char* last_error() { return t_last_error; }

bool wgmma_device_ok(int smem_bytes) {
#if defined(DSK_SM90A_BUILT)
    int device = 0, major = 0, minor = 0, optin = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return major == 9 && minor == 0 && optin >= smem_bytes;
#else
    (void)smem_bytes;
    return false;
#endif
}

bool wgmma_preferred(int smem_bytes) {
    static const bool disabled = [] {
        const char* v = std::getenv("DSK_DISABLE_WGMMA");
        return v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0;
    }();
    return !disabled && wgmma_device_ok(smem_bytes);
}

const char* dtype_name(int32_t dtype) {
    switch (dtype) {
        case DSK_DTYPE_F32: return "F32";
        case DSK_DTYPE_BF16: return "BF16";
        case DSK_DTYPE_F16: return "F16";
        case DSK_DTYPE_FP8_E4M3: return "FP8_E4M3";
        case DSK_DTYPE_INT4: return "INT4";
        case DSK_DTYPE_I32: return "I32";
        default: return "unknown";
    }
}

}  // namespace dsk

extern "C" {

DSK_API const char* dsk_last_error_message(void) { return dsk::last_error(); }

DSK_API int32_t dsk_abi_version(void) { return DSK_ABI_VERSION; }

DSK_API int32_t dsk_cuda_runtime_version(void) { return CUDART_VERSION; }

}  // extern "C"

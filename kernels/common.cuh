// common.cuh: helpers shared by every kernel file of libdeepseek_kernels.
//
//  - error reporting: dsk::set_error() keeps a per-thread, printf-formatted message ("op: what went wrong")
//    for dsk_last_error_message(); the DSK_* macros below check a params field, set the message and return
//    the matching dsk_status from the calling entry point.
//  - bf16 <-> fp32 conversions (exact widening, round-to-nearest-even narrowing).
//  - 16-byte (and 8-byte) vector loads and stores, with a read-only (ld.global.nc) variant for inputs that
//    no thread of the kernel writes (weights). Never use the read-only variant on a buffer that may alias
//    an output of the same kernel.
//  - warp and block fp32 sum reductions.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "deepseek_kernels.h"

#if defined(__GNUC__) || defined(__clang__)
#define DSK_PRINTF_FORMAT(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define DSK_PRINTF_FORMAT(fmt_index, first_arg)
#endif

namespace dsk {

// ---------------------------------------------------------------------------------------------------------
// Errors (defined in status.cu)

// Sets this thread's last-error message to "<op>: <printf(fmt, ...)>"; truncated to the buffer size.
void set_error(const char* op, const char* fmt, ...) DSK_PRINTF_FORMAT(2, 3);

// The message of this thread's last failed call, "" if none. Never NULL.
const char* last_error();

// Short name of a dsk_dtype value ("F32", "BF16", ...; "unknown" for values outside the enum).
const char* dtype_name(int32_t dtype);

// ---------------------------------------------------------------------------------------------------------
// Hopper's warpgroup-MMA (wgmma) kernel variants (defined in status.cu)

// Whether they can run on the current device: the library holds sm_90a code (DSK_SM90A_BUILT, set by CMake when the
// architectures name 90a) and the device is cc 9.0 with at least `smem_bytes` of opt-in shared memory per block.
bool wgmma_device_ok(int smem_bytes);
// Whether a family picks them on its own (AUTO, and the tensor-core paths that mean "wgmma where it runs"): where they
// can run, unless the environment variable DSK_DISABLE_WGMMA is set to something other than "" or "0" (read once per
// process): a diagnostic switch that sends those choices to mma.sync, to tell a wgmma fault from another without a rebuild.
bool wgmma_preferred(int smem_bytes);

}  // namespace dsk

// Argument check: if `cond` is false, set "<op>: <printf(...)>" and return DSK_ERROR_INVALID_ARGUMENT.
// Example: DSK_CHECK_ARG(op, p->cols >= 1, "cols must be >= 1 (got %lld)", (long long)p->cols);
#define DSK_CHECK_ARG(op, cond, ...)                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            ::dsk::set_error((op), __VA_ARGS__);                                                             \
            return DSK_ERROR_INVALID_ARGUMENT;                                                               \
        }                                                                                                    \
    } while (0)

// A pointer field that must be set: "<op>: <field> must not be NULL".
#define DSK_CHECK_NOT_NULL(op, ptr, field) DSK_CHECK_ARG(op, (ptr) != nullptr, "%s must not be NULL", field)

// A size or stride field with a lower bound: "<op>: cols must be >= 1 (got 0)".
#define DSK_CHECK_MIN(op, value, min_value, field)                                                           \
    DSK_CHECK_ARG(op, (int64_t)(value) >= (int64_t)(min_value), "%s must be >= %lld (got %lld)", field,     \
                  (long long)(min_value), (long long)(value))

// A valid request that this build does not implement: set the message and return DSK_ERROR_UNSUPPORTED.
#define DSK_UNSUPPORTED(op, ...)                                                                             \
    do {                                                                                                     \
        ::dsk::set_error((op), __VA_ARGS__);                                                                 \
        return DSK_ERROR_UNSUPPORTED;                                                                        \
    } while (0)

// Right after a kernel launch: turn a launch error into DSK_ERROR_CUDA with
// "<op>: CUDA error cudaErrorInvalidValue (invalid argument) after launch".
#define DSK_CHECK_LAUNCH(op)                                                                                 \
    do {                                                                                                     \
        const cudaError_t dsk_launch_err_ = cudaGetLastError();                                              \
        if (dsk_launch_err_ != cudaSuccess) {                                                                \
            ::dsk::set_error((op), "CUDA error %s (%s) after launch", cudaGetErrorName(dsk_launch_err_),     \
                             cudaGetErrorString(dsk_launch_err_));                                           \
            return DSK_ERROR_CUDA;                                                                           \
        }                                                                                                    \
    } while (0)

namespace dsk {

// ---------------------------------------------------------------------------------------------------------
// Host-side helpers

inline bool is_aligned_16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

// ---------------------------------------------------------------------------------------------------------
// Element conversions (device)

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// Rounds an fp32 value to T (round to nearest even for bf16; NaN stays NaN).
template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

// Read-only scalar load (ld.global.nc): only for buffers no thread of the kernel writes.
__device__ __forceinline__ float load_ro(const float* p) { return __ldg(p); }
__device__ __forceinline__ __nv_bfloat16 load_ro(const __nv_bfloat16* p) {
    return __ushort_as_bfloat16(__ldg(reinterpret_cast<const unsigned short*>(p)));
}

// ---------------------------------------------------------------------------------------------------------
// 16-byte vectors (device). A vector of T holds Vec16<T>::kN elements as a raw uint4 in registers.

template <typename T> struct Vec16 {
    static constexpr int kN = 16 / (int)sizeof(T);  // 4 f32 or 8 bf16
};

// Plain 16-byte load / store; `p` must be 16-byte aligned. Safe on buffers that alias outputs.
__device__ __forceinline__ uint4 ld16(const void* p) { return *reinterpret_cast<const uint4*>(p); }
__device__ __forceinline__ void st16(void* p, const uint4& v) { *reinterpret_cast<uint4*>(p) = v; }

// Read-only loads (ld.global.nc) of 16 and 8 bytes; `p` aligned to the size. Only for never-written inputs.
__device__ __forceinline__ uint4 ld16_ro(const void* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }
__device__ __forceinline__ uint2 ld8_ro(const void* p) { return __ldg(reinterpret_cast<const uint2*>(p)); }

// Two packed bf16 (low half = lower address = first element) -> two floats; exact.
__device__ __forceinline__ void bf16x2_to_float(uint32_t bits, float& first, float& second) {
    first = __uint_as_float(bits << 16);
    second = __uint_as_float(bits & 0xffff0000u);
}

// Two floats -> two packed bf16, each rounded to nearest even.
__device__ __forceinline__ uint32_t float_to_bf16x2(float first, float second) {
    const uint32_t lo = __bfloat16_as_ushort(__float2bfloat16_rn(first));
    const uint32_t hi = __bfloat16_as_ushort(__float2bfloat16_rn(second));
    return lo | (hi << 16);
}

// A 16-byte vector of T -> Vec16<T>::kN floats.
template <typename T> __device__ __forceinline__ void unpack16(const uint4& v, float (&f)[Vec16<T>::kN]);
template <> __device__ __forceinline__ void unpack16<float>(const uint4& v, float (&f)[4]) {
    f[0] = __uint_as_float(v.x);
    f[1] = __uint_as_float(v.y);
    f[2] = __uint_as_float(v.z);
    f[3] = __uint_as_float(v.w);
}
template <> __device__ __forceinline__ void unpack16<__nv_bfloat16>(const uint4& v, float (&f)[8]) {
    bf16x2_to_float(v.x, f[0], f[1]);
    bf16x2_to_float(v.y, f[2], f[3]);
    bf16x2_to_float(v.z, f[4], f[5]);
    bf16x2_to_float(v.w, f[6], f[7]);
}

// Vec16<T>::kN floats -> a 16-byte vector of T (one rounding per element).
template <typename T> __device__ __forceinline__ uint4 pack16(const float (&f)[Vec16<T>::kN]);
template <> __device__ __forceinline__ uint4 pack16<float>(const float (&f)[4]) {
    return make_uint4(__float_as_uint(f[0]), __float_as_uint(f[1]), __float_as_uint(f[2]), __float_as_uint(f[3]));
}
template <> __device__ __forceinline__ uint4 pack16<__nv_bfloat16>(const float (&f)[8]) {
    return make_uint4(float_to_bf16x2(f[0], f[1]), float_to_bf16x2(f[2], f[3]), float_to_bf16x2(f[4], f[5]),
                      float_to_bf16x2(f[6], f[7]));
}

// Read-only load of N consecutive elements of W starting at `p` (p aligned to N * sizeof(W) bytes, or to 16
// bytes when that is larger), widened to float. Covers N*sizeof(W) = 8 (4 bf16), 16, or 32 (8 f32) bytes,
// i.e. every pairing of a 16-byte vector of one dtype with the same number of elements of another.
template <typename W, int N> __device__ __forceinline__ void load_ro_widen(const W* p, float (&f)[N]) {
    constexpr int kBytes = N * (int)sizeof(W);
    static_assert(kBytes == 8 || kBytes == 16 || kBytes == 32, "load_ro_widen: 8, 16 or 32 bytes");
    if constexpr (kBytes == 8) {
        static_assert(sizeof(W) == 2 && N == 4, "load_ro_widen: 8 bytes = 4 bf16");
        const uint2 v = ld8_ro(p);
        bf16x2_to_float(v.x, f[0], f[1]);
        bf16x2_to_float(v.y, f[2], f[3]);
    } else {
        constexpr int kPer16 = Vec16<W>::kN;
#pragma unroll
        for (int h = 0; h < kBytes / 16; ++h) {
            float part[kPer16];
            unpack16<W>(ld16_ro(p + h * kPer16), part);
#pragma unroll
            for (int k = 0; k < kPer16; ++k) f[h * kPer16 + k] = part[k];
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Reductions (device)

// Sum over the 32 lanes of a warp; every lane gets the total. All 32 lanes must be active.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Sum over the block; every thread gets the same total (same order in every warp, so bit-identical).
// blockDim.x must be a multiple of 32 (at most 1024) and every thread of the block must call it.
// `scratch` is __shared__ float[32]; the leading barrier makes it safe to call again in a loop.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int num_warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // the previous call's readers are done with scratch
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < num_warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

// ---------------------------------------------------------------------------------------------------------
// Device-held indices

// Warp-wide (the 32 lanes of one warp call it): finds the lowest i < n whose values[i] is outside [0, bound) and, if there
// is one, claims error_word[0] with atomicCAS(0 -> error_site) and writes word[1] = i, word[2] = values[i],
// word[3] = bound (an error recorded earlier is kept). Each lane scans its own stride with independent loads (no
// step waits for the one before) and the warp takes the minimum (__reduce_min_sync, sm_80+), so the report is deterministic and costs about n / 32
// loads per lane, not a serial walk. Ops call it from one warp of block 0 while the other warps and blocks work.
__device__ __forceinline__ void report_first_out_of_range(const int32_t* values, int64_t n, int64_t bound,
                                                          int32_t* error_word, int32_t error_site) {
    constexpr unsigned kNone = 0xffffffffu;
    const unsigned lane = threadIdx.x & 31;
    // The word holds int32 indices: the first 2^31 - 1 values are scanned.
    const unsigned count = (unsigned)(n < INT32_MAX ? n : INT32_MAX);
    unsigned first = kNone;  // the lowest bad index of this lane's stride
    for (unsigned i = lane; i < count; i += 32) {
        const int32_t v = __ldg(values + i);
        if ((v < 0 || (int64_t)v >= bound) && i < first) first = i;
    }
    first = __reduce_min_sync(0xffffffffu, first);
    if (lane == 0 && first != kNone && atomicCAS(error_word, 0, error_site) == 0) {
        error_word[1] = (int32_t)first;
        error_word[2] = values[first];
        error_word[3] = (int32_t)bound;
    }
}

}  // namespace dsk

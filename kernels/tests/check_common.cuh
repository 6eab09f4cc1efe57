// check_common.cuh: what the GPU check programs (rms_norm_check.cu, linear_check.cu, mma_check.cu) share: the CUDA_OK
// macro, host bf16 and e4m3 formats, and one xorshift64* stream of test values. Host code only.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include <cuda_runtime.h>

#include "deepseek_kernels.h"

#define CUDA_OK(call)                                                                                        \
    do {                                                                                                     \
        const cudaError_t e_ = (call);                                                                       \
        if (e_ != cudaSuccess) {                                                                             \
            std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));    \
            std::exit(2);                                                                                    \
        }                                                                                                    \
    } while (0)

// For the programs that link cuBLAS (their baselines); a macro, so the others need not include cublas_v2.h.
#define CUBLAS_OK(call)                                                                                      \
    do {                                                                                                     \
        const cublasStatus_t s_ = (call);                                                                    \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                                   \
            std::fprintf(stderr, "%s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #call, (int)s_);      \
            std::exit(2);                                                                                    \
        }                                                                                                    \
    } while (0)

namespace check {

inline uint32_t f32_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float bits_f32(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// bf16: round to nearest even, NaN kept quiet.
inline uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
inline float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }
inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

// Bytes and name of an F32 or BF16 element.
inline size_t dtype_bytes(int32_t dt) { return dt == DSK_DTYPE_F32 ? 4 : 2; }
inline const char* dtype_str(int32_t dt) { return dt == DSK_DTYPE_F32 ? "f32" : "bf16"; }

// A host tensor of F32 or BF16 elements stored in its dtype's bytes (initially 0xff: NaN in both), read and written as
// float: the check programs' inputs, poisoned outputs and references.
struct HostBuf {
    int32_t dt = DSK_DTYPE_F32;
    std::vector<uint8_t> bytes;
    HostBuf() = default;
    HostBuf(int32_t dtype, size_t n) : dt(dtype), bytes(n * dtype_bytes(dtype), 0xff) {}
    size_t size() const { return bytes.size() / dtype_bytes(dt); }
    float get(size_t i) const {
        if (dt == DSK_DTYPE_F32) {
            float f;
            std::memcpy(&f, &bytes[i * 4], 4);
            return f;
        }
        uint16_t h;
        std::memcpy(&h, &bytes[i * 2], 2);
        return bf16_to_f32(h);
    }
    // Stores v rounded to the dtype; returns the stored value.
    float set(size_t i, float v) {
        if (dt == DSK_DTYPE_F32) {
            std::memcpy(&bytes[i * 4], &v, 4);
            return v;
        }
        const uint16_t h = f32_to_bf16(v);
        std::memcpy(&bytes[i * 2], &h, 2);
        return bf16_to_f32(h);
    }
    float round(float v) const { return dt == DSK_DTYPE_F32 ? v : round_bf16(v); }
    bool same_bits(const HostBuf& o, size_t i) const {
        const size_t e = dtype_bytes(dt);
        return std::memcmp(&bytes[i * e], &o.bytes[i * e], e) == 0;
    }
};

// e4m3fn: the exact value of a code (bias 7, no infinities, S.1111.111 = NaN).
inline float e4m3_to_f32(uint8_t code) {
    const int e = (code >> 3) & 15, m = code & 7;
    if (e == 15 && m == 7) return NAN;
    const float mag = e == 0 ? std::ldexp((float)m, -9) : std::ldexp(1.0f + (float)m / 8.0f, e - 7);
    return (code & 0x80) ? -mag : mag;
}

// One xorshift64* stream for the test values of a program.
inline uint64_t g_rng = 0x9e3779b97f4a7c15ull;
inline uint64_t next_u64() {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545f4914f6cdd1dull;
}
inline uint32_t next_u32() { return (uint32_t)(next_u64() >> 32); }
// Uniform in [lo, hi), 24 random bits.
inline float uniform(float lo, float hi) { return lo + (hi - lo) * (float)((next_u64() >> 40) * (1.0 / 16777216.0)); }

// A device buffer of at least 16 bytes, freed with its scope, with whole-buffer copies to and from the host.
struct DevBuf {
    void* d = nullptr;
    size_t bytes = 0;
    explicit DevBuf(size_t n) : bytes(n) { CUDA_OK(cudaMalloc(&d, n < 16 ? 16 : n)); }
    ~DevBuf() { cudaFree(d); }
    DevBuf(const DevBuf&) = delete;
    DevBuf& operator=(const DevBuf&) = delete;
    void upload(const void* h) { CUDA_OK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice)); }
    void download(void* h) const { CUDA_OK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost)); }
};

// Median time of `fn` over `iters` launches on `stream` after 5 warm-ups, in microseconds (CUDA events around each).
// fn(i) gets the launch's index (0..4 the warm-ups, then 5, 6, ...) so a benchmark can rotate its inputs past the L2;
// an fn that takes no argument is called as fn().
template <typename Fn> double median_us(Fn fn, cudaStream_t stream, int iters) {
    auto call = [&](int i) {
        if constexpr (std::is_invocable_v<Fn&, int>) fn(i); else fn();
    };
    cudaEvent_t start, stop;
    CUDA_OK(cudaEventCreate(&start));
    CUDA_OK(cudaEventCreate(&stop));
    for (int i = 0; i < 5; ++i) call(i);
    std::vector<float> ms((size_t)iters);
    for (int i = 0; i < iters; ++i) {
        CUDA_OK(cudaEventRecord(start, stream));
        call(5 + i);
        CUDA_OK(cudaEventRecord(stop, stream));
        CUDA_OK(cudaEventSynchronize(stop));
        CUDA_OK(cudaEventElapsedTime(&ms[(size_t)i], start, stop));
    }
    CUDA_OK(cudaEventDestroy(start));
    CUDA_OK(cudaEventDestroy(stop));
    std::sort(ms.begin(), ms.end());
    return 1000.0 * ms[ms.size() / 2];
}

// True when a CUDA device is present; otherwise prints "SKIP: no CUDA device" (the caller exits 77, ctest's skip), or,
// under DSK_REQUIRE_GPU=1 (scripts/gpu-check.sh), "FAIL: ..." and exits 1: on the GPU machine a skip would hide that
// nothing ran.
inline bool gpu_present() {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        const char* required = std::getenv("DSK_REQUIRE_GPU");
        if (required != nullptr && std::strcmp(required, "1") == 0) {
            std::printf("FAIL: no CUDA device, and DSK_REQUIRE_GPU=1\n");
            std::exit(1);
        }
        std::printf("SKIP: no CUDA device\n");
        return false;
    }
    return true;
}

// A device copy of `h` (at least one element allocated), and a host copy of `n` elements at `d`.
template <typename T> T* upload(const std::vector<T>& h) {
    T* d = nullptr;
    CUDA_OK(cudaMalloc(&d, std::max<size_t>(h.size(), 1) * sizeof(T)));
    if (!h.empty()) CUDA_OK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}
template <typename T> std::vector<T> download(const T* d, size_t n) {
    std::vector<T> h(n);
    CUDA_OK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
}

// Benchmark inputs: n bf16 values in [-scale, scale) hashed from the index and `seed`, written on the device (no host copy
// of a large buffer). The host emulation gets this file rewritten like the check programs (kernels/tests/emu/run.sh).
__global__ void fill_bf16_kernel(uint16_t* p, size_t n, uint32_t seed, float scale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 0x9e3779b9u ^ seed;
        h ^= h >> 16;
        h *= 0x85ebca6bu;
        h ^= h >> 13;
        h *= 0xc2b2ae35u;
        h ^= h >> 16;
        const float v = ((float)(h & 0xffffu) / 32768.0f - 1.0f) * scale;
        p[i] = (uint16_t)(__float_as_uint(v) >> 16);
    }
}
inline void fill_bf16(void* p, size_t n, float scale, uint32_t seed) {
    fill_bf16_kernel<<<1024, 256>>>(static_cast<uint16_t*>(p), n, seed, scale);
    CUDA_OK(cudaGetLastError());
}

}  // namespace check

// check_weights.cuh: the weights and activation buffers of the linear-family check programs (linear_check.cu,
// grouped_linear_check.cu): a weight in every dsk_weight scheme as its stored bytes, scale and zero bytes and the exact
// dequantised values (the CPU references multiply those), and its device copy with the dsk_weight that describes it
// (activations: check_common.cuh's HostBuf). Include it after check_common.cuh (not from here: the host emulation
// substitutes its own copy of that header).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "deepseek_kernels.h"

namespace check {

enum Scheme { kF32, kBF16, kFP8, kINT4 };

struct WeightSpec {
    const char* name;
    Scheme scheme;
    int block_rows, block_cols;  // FP8
    int group;                   // INT4
    bool integer_zeros;          // INT4: zero points integers 0..15 (fast path) or not
};

struct HostWeight {
    WeightSpec spec;
    int64_t rows = 0, cols = 0, count = 0;
    std::vector<uint8_t> data, scale, zero;  // stored bytes
    std::vector<float> value;                // [count, rows, cols] dequantised
};

inline HostWeight make_weight(const WeightSpec& spec, int64_t rows, int64_t cols, int64_t count) {
    HostWeight w;
    w.spec = spec;
    w.rows = rows;
    w.cols = cols;
    w.count = count;
    const int64_t n = count * rows * cols;
    w.value.resize((size_t)n);
    switch (spec.scheme) {
        case kF32:
            w.data.resize((size_t)n * 4);
            for (int64_t e = 0; e < n; ++e) {
                const float v = uniform(-1.0f, 1.0f);
                std::memcpy(&w.data[(size_t)e * 4], &v, 4);
                w.value[(size_t)e] = v;
            }
            break;
        case kBF16:
            w.data.resize((size_t)n * 2);
            for (int64_t e = 0; e < n; ++e) {
                const uint16_t h = f32_to_bf16(uniform(-1.0f, 1.0f));
                std::memcpy(&w.data[(size_t)e * 2], &h, 2);
                w.value[(size_t)e] = bf16_to_f32(h);
            }
            break;
        case kFP8: {
            const int64_t srows = (rows + spec.block_rows - 1) / spec.block_rows;
            const int64_t scols = (cols + spec.block_cols - 1) / spec.block_cols;
            std::vector<float> s((size_t)(count * srows * scols));
            for (auto& v : s) v = uniform(0.25f, 2.0f) / 64.0f;  // not bf16 values: the product rounds
            w.scale.resize(s.size() * 4);
            std::memcpy(w.scale.data(), s.data(), w.scale.size());
            w.data.resize((size_t)n);
            for (int64_t m = 0; m < count; ++m) {
                for (int64_t r = 0; r < rows; ++r) {
                    for (int64_t c = 0; c < cols; ++c) {
                        uint8_t code;
                        do code = (uint8_t)(next_u64() >> 56); while ((code & 0x7f) == 0x7f);  // no NaN here
                        const int64_t e = (m * rows + r) * cols + c;
                        w.data[(size_t)e] = code;
                        const float sc = s[(size_t)((m * srows + r / spec.block_rows) * scols + c / spec.block_cols)];
                        w.value[(size_t)e] = round_bf16(e4m3_to_f32(code) * sc);
                    }
                }
            }
            break;
        }
        case kINT4: {
            const int64_t groups = cols / spec.group;
            const size_t ng = (size_t)(count * rows * groups);
            std::vector<uint16_t> s(ng), z(ng);
            for (size_t g = 0; g < ng; ++g) {
                s[g] = f32_to_bf16(uniform(0.02f, 0.2f));
                z[g] = f32_to_bf16(spec.integer_zeros ? (float)(next_u64() >> 60) : uniform(4.0f, 11.0f));
            }
            w.scale.resize(ng * 2);
            w.zero.resize(ng * 2);
            std::memcpy(w.scale.data(), s.data(), ng * 2);
            std::memcpy(w.zero.data(), z.data(), ng * 2);
            w.data.assign((size_t)n / 2, 0);
            for (int64_t e = 0; e < n; ++e) {
                const uint8_t q = (uint8_t)(next_u64() >> 60);
                w.data[(size_t)e / 2] |= (uint8_t)(e % 2 == 0 ? q : q << 4);
                const int64_t row = e / cols, c = e % cols;  // row over the whole stack
                const size_t g = (size_t)(row * groups + c / spec.group);
                w.value[(size_t)e] = round_bf16(((float)q - bf16_to_f32(z[g])) * bf16_to_f32(s[g]));
            }
            break;
        }
    }
    return w;
}

// The device copy of a weight, and its dsk_weight.
struct DevWeight {
    DevBuf data, scale, zero;
    dsk_weight w{};
    explicit DevWeight(const HostWeight& h)
        : data(h.data.size()), scale(h.scale.size()), zero(h.zero.size()) {
        data.upload(h.data.data());
        if (!h.scale.empty()) scale.upload(h.scale.data());
        if (!h.zero.empty()) zero.upload(h.zero.data());
        std::memset(&w, 0, sizeof w);
        w.data = data.d;
        w.rows = h.rows;
        w.cols = h.cols;
        w.count = h.count;
        switch (h.spec.scheme) {
            case kF32: w.scheme = DSK_WEIGHT_DENSE; w.dtype = DSK_DTYPE_F32; break;
            case kBF16: w.scheme = DSK_WEIGHT_DENSE; w.dtype = DSK_DTYPE_BF16; break;
            case kFP8:
                w.scheme = DSK_WEIGHT_FP8_BLOCK;
                w.dtype = DSK_DTYPE_FP8_E4M3;
                w.scale = scale.d;
                w.block_rows = h.spec.block_rows;
                w.block_cols = h.spec.block_cols;
                break;
            case kINT4:
                w.scheme = DSK_WEIGHT_INT4_GROUP;
                w.dtype = DSK_DTYPE_INT4;
                w.scale = scale.d;
                w.zero = zero.d;
                w.group_size = h.spec.group;
                break;
        }
    }
};


}  // namespace check

// mma_check.cu: the tensor-core paths on a GPU against CPU references, plus an optional timing (--bench).
//
//   1. dsk_linear with path = DSK_LINEAR_PATH_MMA (wgmma on Hopper with an sm_90a build) and MMA_SYNC (mma.sync
//      everywhere), bf16 activations, over dense BF16, FP8 128 x 128 blocks (ragged 576 / 96 shapes included) and INT4 group 128 (and 32) weights; m in {16, 64, 257, 1000}; batch 1 and 2 (one
//      matrix per entry, or one shared); bias; the NONE, SILU_MUL and ADD epilogues (ADD also in place, residual = y);
//      padded row and batch strides. Reference: float64 sums over the weight's exact dequantised values (the
//      definition in deepseek_kernels.h), the epilogue in float64. Every element of the [batch, m, y_cols] window
//      must be within 2^-7 |ref| + 2e-5 * mag (mag = sum |x * w| (+ |bias| + |residual|): room for one bf16
//      rounding and the fp32 summation order), and every byte outside the window (poisoned with NaN) unchanged.
//   2. dsk_quantize_fp8_act, bit-exact against a CPU implementation of its definition (the same integer e4m3
//      rounding as Numerics/Float8E4M3.FromSingleSaturating): F32 and BF16 input, ragged last blocks, padded rows,
//      an all-zero block (scale 1), a NaN and an infinity (NaN codes compare equal whatever their sign).
//   3. dsk_linear_fp8_w8a8 (and dsk_grouped_linear_fp8_w8a8: empty experts, an expert spanning two row tiles, rows
//      outside the offsets left alone, a bad offset reported through the error word with nothing written) against a
//      float64 reference of its formula, bf16 and f32 output, bias, ragged shapes, on
//      each kernel family: mma.sync, and wgmma where the library holds sm_90a code and the GPU is cc 9.0 (else a note;
//      a failure on a cc 9.0 GPU under DSK_REQUIRE_GPU=1); one case through AUTO.
//      Tolerance 2^-7 |ref| (bf16) or 1e-5 |ref| (f32) + 1e-4 * mag, which leaves room for the reduced-precision
//      accumulation of FP8 tensor cores inside a 128-wide block.
//   4. A few requests that must be refused with the documented status.
// Exits 77 (ctest: skipped) when no CUDA device is present.
//
//   dsk_mma_check            run the checks
//   dsk_mma_check --w8a8     section 3 alone (W8A8, dense and grouped)
//   dsk_mma_check --bench    also time M = 512 and 4096 at (K, N) = (7168, 18432) and (4096, 14336): cuBLAS bf16
//                            (cublasGemmEx, the baseline), dsk_linear MMA (wgmma on Hopper) and MMA_SYNC over bf16 /
//                            FP8 / INT4 weights, and W8A8 on both its families
//                            (plus its activation quantisation); CUDA events, median of 20 after 3 warm-ups.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "deepseek_kernels.h"
#include "check_common.cuh"

namespace {

using namespace check;

// Float8E4M3.FromSingle / FromSingleSaturating of the C# reference, transcribed.
uint8_t f32_to_e4m3(float value) {
    const uint32_t bits = f32_bits(value);
    const uint8_t sign = (uint8_t)((bits >> 24) & 0x80);
    const uint32_t abs = bits & 0x7fffffffu;
    if (abs >= 0x43f00000u) return (uint8_t)(sign | 0x7f);
    if (abs < 0x3c800000u) {
        const int q = (int)std::nearbyint(bits_f32(abs) * 512.0f);  // default rounding mode: to nearest even
        return (uint8_t)(sign | q);
    }
    const uint32_t mantissa = abs & 0x7fffffu;
    uint32_t r = (((abs >> 23) - 120) << 3) | (mantissa >> 20);
    const uint32_t rest = mantissa & 0xfffffu;
    if (rest > 0x80000u || (rest == 0x80000u && (r & 1) == 1)) r++;
    return (uint8_t)(sign | (r >= 0x7f ? 0x7fu : r));
}
uint8_t f32_to_e4m3_sat(float value) {
    if (std::isnan(value)) return f32_to_e4m3(value);
    return f32_to_e4m3(std::min(std::max(value, -448.0f), 448.0f));
}

// A random finite e4m3 byte (any code but the two NaNs), subnormals included.
uint8_t random_e4m3() {
    for (;;) {
        const uint8_t b = (uint8_t)next_u32();
        if ((b & 0x7f) != 0x7f) return b;
    }
}

int g_cases = 0;
int g_failed = 0;

// ---------------------------------------------------------------------------------------------------------
// 1. dsk_linear, path MMA

enum { kDense = 0, kFp8 = 1, kInt4 = 2 };
const char* scheme_str(int s) { return s == kDense ? "bf16" : s == kFp8 ? "fp8" : "int4"; }
const char* epi_str(int e) { return e == DSK_EPILOGUE_NONE ? "none" : e == DSK_EPILOGUE_SILU_MUL ? "silu_mul" : "add"; }

struct LinCase {
    int scheme;
    int64_t m, in, out;
    int64_t batch, count;
    int epilogue;
    bool bias;
    bool res_is_y;     // ADD in place
    int64_t x_pad;     // x row stride = in + x_pad (a multiple of 8)
    int64_t y_pad;     // y row stride = y_cols + y_pad (odd strides take the kernel's scalar stores)
    int block;         // FP8 block rows = cols; INT4 group size
};

// The path the linear cases run on: MMA (Hopper's wgmma where the library holds sm_90a code and the GPU is cc 9.0, else
// mma.sync), then MMA_SYNC (mma.sync everywhere), so that on Hopper both families of the tensor-core kernel are checked.
int32_t g_linear_path = DSK_LINEAR_PATH_MMA;

void run_linear_case(const LinCase& c, cudaStream_t stream) {
    ++g_cases;
    const int64_t in = c.in, out = c.out, m = c.m, batch = c.batch, count = c.count;
    // Weights: host dequantised values wf [count, out, in] and the stored form.
    std::vector<float> wf((size_t)(count * out * in));
    std::vector<uint16_t> w_bf16;
    std::vector<uint8_t> w_bytes;
    std::vector<float> fp8_scale;
    std::vector<uint16_t> i4_scale, i4_zero;
    const int64_t sr = (out + c.block - 1) / c.block, sc = (in + c.block - 1) / c.block, groups = in / c.block;
    if (c.scheme == kDense) {
        w_bf16.resize(wf.size());
        for (size_t i = 0; i < wf.size(); ++i) {
            w_bf16[i] = f32_to_bf16(uniform(-1.0f, 1.0f));
            wf[i] = bf16_to_f32(w_bf16[i]);
        }
    } else if (c.scheme == kFp8) {
        w_bytes.resize(wf.size());
        fp8_scale.resize((size_t)(count * sr * sc));
        for (auto& s : fp8_scale) s = uniform(0.5f, 2.0f) * (1.0f / 64.0f);
        for (int64_t b = 0; b < count; ++b)
            for (int64_t r = 0; r < out; ++r)
                for (int64_t k = 0; k < in; ++k) {
                    const size_t i = (size_t)((b * out + r) * in + k);
                    w_bytes[i] = random_e4m3();
                    const float s = fp8_scale[(size_t)((b * sr + r / c.block) * sc + k / c.block)];
                    wf[i] = round_bf16(e4m3_to_f32(w_bytes[i]) * s);  // the definition: fp32 product, one rounding
                }
    } else {
        w_bytes.assign(wf.size() / 2, 0);
        i4_scale.resize((size_t)(count * out * groups));
        i4_zero.resize(i4_scale.size());
        for (size_t g = 0; g < i4_scale.size(); ++g) {
            i4_scale[g] = f32_to_bf16(uniform(0.05f, 0.2f));
            i4_zero[g] = f32_to_bf16(uniform(6.0f, 9.0f));
        }
        for (int64_t b = 0; b < count; ++b)
            for (int64_t r = 0; r < out; ++r)
                for (int64_t k = 0; k < in; ++k) {
                    const size_t i = (size_t)((b * out + r) * in + k);
                    const uint32_t q = next_u32() & 15u;
                    w_bytes[i / 2] |= (uint8_t)(q << (4 * (i & 1)));
                    const size_t g = (size_t)((b * out + r) * groups + k / c.block);
                    wf[i] = round_bf16(((float)q - bf16_to_f32(i4_zero[g])) * bf16_to_f32(i4_scale[g]));
                }
    }
    // Activations [batch, m, in] with padded strides.
    const int64_t x_rs = in + c.x_pad, x_bs = m * x_rs + 8;
    std::vector<uint16_t> x((size_t)(batch * x_bs), f32_to_bf16(NAN));
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < m; ++i)
            for (int64_t k = 0; k < in; ++k) x[(size_t)(b * x_bs + i * x_rs + k)] = f32_to_bf16(uniform(-1.0f, 1.0f));
    std::vector<float> bias;
    if (c.bias) {
        bias.resize((size_t)out);
        for (auto& v : bias) v = uniform(-0.5f, 0.5f);
    }
    const bool silu = c.epilogue == DSK_EPILOGUE_SILU_MUL, add = c.epilogue == DSK_EPILOGUE_ADD;
    const int64_t y_cols = silu ? out / 2 : out;
    const int64_t y_rs = y_cols + c.y_pad, y_bs = m * y_rs + 2;
    const size_t y_n = (size_t)(batch * y_bs);
    std::vector<uint16_t> y0(y_n, 0xffffu);  // NaN poison
    std::vector<uint16_t> res;
    if (add) {
        res.assign(y_n, 0xffffu);
        for (int64_t b = 0; b < batch; ++b)
            for (int64_t i = 0; i < m; ++i)
                for (int64_t n = 0; n < y_cols; ++n) res[(size_t)(b * y_bs + i * y_rs + n)] = f32_to_bf16(uniform(-2.0f, 2.0f));
        if (c.res_is_y) y0 = res;
    }

    void* d_x = upload(x);
    void* d_w = c.scheme == kDense ? (void*)upload(w_bf16) : (void*)upload(w_bytes);
    void* d_scale = c.scheme == kFp8 ? (void*)upload(fp8_scale) : c.scheme == kInt4 ? (void*)upload(i4_scale) : nullptr;
    void* d_zero = c.scheme == kInt4 ? (void*)upload(i4_zero) : nullptr;
    float* d_bias = c.bias ? upload(bias) : nullptr;
    uint16_t* d_y = upload(y0);
    uint16_t* d_res = add ? (c.res_is_y ? d_y : upload(res)) : nullptr;

    dsk_linear_params p;
    std::memset(&p, 0, sizeof p);
    p.x = d_x;
    p.w.data = d_w;
    p.w.scale = d_scale;
    p.w.zero = d_zero;
    p.w.rows = out;
    p.w.cols = in;
    p.w.count = count;
    p.w.scheme = c.scheme == kDense ? DSK_WEIGHT_DENSE : c.scheme == kFp8 ? DSK_WEIGHT_FP8_BLOCK : DSK_WEIGHT_INT4_GROUP;
    p.w.dtype = c.scheme == kDense ? DSK_DTYPE_BF16 : c.scheme == kFp8 ? DSK_DTYPE_FP8_E4M3 : DSK_DTYPE_INT4;
    p.w.block_rows = c.scheme == kFp8 ? c.block : 0;
    p.w.block_cols = c.scheme == kFp8 ? c.block : 0;
    p.w.group_size = c.scheme == kInt4 ? c.block : 0;
    p.bias = d_bias;
    p.residual = d_res;
    p.y = d_y;
    p.m = m;
    p.batch = batch;
    p.x_row_stride = x_rs;
    p.x_batch_stride = x_bs;
    p.y_row_stride = y_rs;
    p.y_batch_stride = y_bs;
    p.residual_row_stride = add ? y_rs : 0;
    p.residual_batch_stride = add ? y_bs : 0;
    p.x_dtype = DSK_DTYPE_BF16; p.y_dtype = DSK_DTYPE_BF16;
    p.epilogue = c.epilogue;
    p.path = g_linear_path;
    p.stream = stream;

    char label[200];
    std::snprintf(label, sizeof label, "linear %-8s %-4s m=%-4lld in=%-4lld out=%-4lld batch=%lld count=%lld %-8s%s%s",
                  g_linear_path == DSK_LINEAR_PATH_MMA ? "mma" : "mma.sync", scheme_str(c.scheme), (long long)m, (long long)in, (long long)out, (long long)batch,
                  (long long)count, epi_str(c.epilogue), c.bias ? " bias" : "", c.res_is_y ? " res=y" : "");
    const dsk_status st = dsk_linear(&p);
    bool ok = st == DSK_SUCCESS;
    int bad = 0;
    double err2 = 0, ref2 = 0;
    if (!ok) {
        std::printf("FAIL %s: status %d: %s\n", label, (int)st, dsk_last_error_message());
    } else {
        CUDA_OK(cudaStreamSynchronize(stream));
        const std::vector<uint16_t> y = download(d_y, y_n);
        std::vector<char> inside(y_n, 0);
        std::vector<double> acc((size_t)out), mag((size_t)out);
        for (int64_t b = 0; b < batch; ++b) {
            const float* wm = wf.data() + (size_t)((count == batch ? b : 0) * out * in);
            for (int64_t i = 0; i < m; ++i) {
                const uint16_t* xr = x.data() + (size_t)(b * x_bs + i * x_rs);
                std::vector<double> xd((size_t)in);
                for (int64_t k = 0; k < in; ++k) xd[(size_t)k] = bf16_to_f32(xr[k]);
                for (int64_t n = 0; n < out; ++n) {
                    const float* wr = wm + (size_t)(n * in);
                    double s = 0, a = 0;
                    for (int64_t k = 0; k < in; ++k) {
                        const double t = xd[(size_t)k] * wr[k];
                        s += t;
                        a += std::fabs(t);
                    }
                    if (c.bias) {
                        s += bias[(size_t)n];
                        a += std::fabs(bias[(size_t)n]);
                    }
                    acc[(size_t)n] = s;
                    mag[(size_t)n] = a;
                }
                for (int64_t n = 0; n < y_cols; ++n) {
                    const size_t at = (size_t)(b * y_bs + i * y_rs + n);
                    inside[at] = 1;
                    double ref, scale;
                    if (silu) {
                        const double g = acc[(size_t)n], u = acc[(size_t)(out / 2 + n)];
                        const double sg = g / (1.0 + std::exp(-g));
                        ref = sg * u;
                        scale = mag[(size_t)n] * std::fabs(u) + mag[(size_t)(out / 2 + n)] * std::max(std::fabs(sg), 1.0);
                    } else {
                        ref = acc[(size_t)n];
                        scale = mag[(size_t)n];
                        if (add) {
                            const double r = bf16_to_f32(res[at]);
                            ref += r;
                            scale += std::fabs(r);
                        }
                    }
                    const double got = bf16_to_f32(y[at]);
                    const double tol = std::ldexp(std::fabs(ref), -7) + 2e-5 * scale;
                    err2 += (got - ref) * (got - ref);
                    ref2 += ref * ref;
                    if (!(std::fabs(got - ref) <= tol)) {
                        if (bad < 5)
                            std::printf("  %s: [b %lld, i %lld, n %lld] got %.6g, want %.6g (tol %.3g)\n", label,
                                        (long long)b, (long long)i, (long long)n, got, ref, tol);
                        ++bad;
                    }
                }
            }
        }
        int64_t outside_bad = 0;
        for (size_t at = 0; at < y_n; ++at)
            if (!inside[at] && y[at] != y0[at]) ++outside_bad;
        if (outside_bad) std::printf("  %s: %lld elements outside the window were written\n", label, (long long)outside_bad);
        const double rel = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
        ok = bad == 0 && outside_bad == 0 && rel <= 5e-3;
        std::printf("%s %s: rel l2 %.2e, %d elements out of tolerance\n", ok ? "ok  " : "FAIL", label, rel, bad);
    }
    if (!ok) ++g_failed;
    CUDA_OK(cudaFree(d_x));
    CUDA_OK(cudaFree(d_w));
    if (d_scale) CUDA_OK(cudaFree(d_scale));
    if (d_zero) CUDA_OK(cudaFree(d_zero));
    if (d_bias) CUDA_OK(cudaFree(d_bias));
    if (d_res && d_res != d_y) CUDA_OK(cudaFree(d_res));
    CUDA_OK(cudaFree(d_y));
}

// ---------------------------------------------------------------------------------------------------------
// 2. dsk_quantize_fp8_act

void run_quant_case(int64_t m, int64_t cols, int32_t dt, int64_t pad, cudaStream_t stream) {
    ++g_cases;
    const int64_t rs = cols + pad, blocks = (cols + 127) / 128;
    std::vector<float> xf((size_t)(m * rs), 0.0f);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t k = 0; k < cols; ++k) {
            // magnitudes from 2^-20 to 2^20 per (row, block), so scales, subnormal codes and saturation all occur
            float v = uniform(-1.0f, 1.0f) * std::ldexp(1.0f, (int)((i * 7 + k / 128 * 3) % 41) - 20);
            xf[(size_t)(i * rs + k)] = dt == DSK_DTYPE_BF16 ? round_bf16(v) : v;
        }
    // Special blocks: row 0 block 0 all zero (scale 1), a NaN in row 1, an infinity in row 2.
    for (int64_t k = 0; k < std::min<int64_t>(cols, 128); ++k) xf[(size_t)k] = (k & 1) ? -0.0f : 0.0f;
    if (m > 1) xf[(size_t)(1 * rs + cols / 2)] = NAN;
    if (m > 2) xf[(size_t)(2 * rs + cols - 1)] = INFINITY;

    std::vector<uint8_t> xb(xf.size() * (dt == DSK_DTYPE_F32 ? 4 : 2));
    for (size_t i = 0; i < xf.size(); ++i) {
        if (dt == DSK_DTYPE_F32) std::memcpy(&xb[i * 4], &xf[i], 4);
        else {
            const uint16_t h = f32_to_bf16(xf[i]);
            std::memcpy(&xb[i * 2], &h, 2);
        }
    }
    // CPU: the definition.
    std::vector<uint8_t> q_ref((size_t)(m * cols));
    std::vector<float> s_ref((size_t)(m * blocks));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < blocks; ++j) {
            float amax = 0.0f;
            bool nan = false;
            const int64_t k1 = std::min(cols, (j + 1) * 128);
            for (int64_t k = j * 128; k < k1; ++k) {
                const float v = xf[(size_t)(i * rs + k)];
                nan |= std::isnan(v);
                amax = std::max(amax, std::fabs(v));
            }
            const float s = nan ? NAN : amax > 0.0f ? amax / 448.0f : 1.0f;
            s_ref[(size_t)(i * blocks + j)] = s;
            for (int64_t k = j * 128; k < k1; ++k) q_ref[(size_t)(i * cols + k)] = f32_to_e4m3_sat(xf[(size_t)(i * rs + k)] / s);
        }

    uint8_t* d_x = upload(xb);
    uint8_t* d_q = upload(std::vector<uint8_t>((size_t)(m * cols), 0x5a));
    float* d_s = upload(std::vector<float>((size_t)(m * blocks), -1.0f));
    dsk_quantize_fp8_act_params p;
    std::memset(&p, 0, sizeof p);
    p.x = d_x;
    p.q = d_q;
    p.scale = d_s;
    p.m = m;
    p.cols = cols;
    p.x_row_stride = rs;
    p.act_dtype = dt;
    p.stream = stream;
    const dsk_status st = dsk_quantize_fp8_act(&p);
    bool ok = st == DSK_SUCCESS;
    int64_t bad_q = 0, bad_s = 0;
    if (ok) {
        CUDA_OK(cudaStreamSynchronize(stream));
        const auto q = download(d_q, (size_t)(m * cols));
        const auto s = download(d_s, (size_t)(m * blocks));
        // The sign of a NaN quotient (x / NaN, inf / inf) is not fixed by IEEE 754 (x86 and the GPU differ): the
        // two NaN codes 0x7f and 0xff count as equal.
        for (size_t i = 0; i < q.size(); ++i)
            if (q[i] != q_ref[i] && !((q[i] & 0x7f) == 0x7f && (q_ref[i] & 0x7f) == 0x7f)) {
                if (bad_q < 5)
                    std::printf("  quantize: q[%zu] = 0x%02x, want 0x%02x (x %.9g)\n", i, q[i], q_ref[i],
                                xf[(size_t)((int64_t)i / cols * rs + (int64_t)i % cols)]);
                ++bad_q;
            }
        for (size_t i = 0; i < s.size(); ++i)
            if (f32_bits(s[i]) != f32_bits(s_ref[i]) && !(std::isnan(s[i]) && std::isnan(s_ref[i]))) {
                if (bad_s < 5) std::printf("  quantize: scale[%zu] = %.9g, want %.9g\n", i, s[i], s_ref[i]);
                ++bad_s;
            }
        ok = bad_q == 0 && bad_s == 0;
    } else {
        std::printf("  quantize: status %d: %s\n", (int)st, dsk_last_error_message());
    }
    std::printf("%s quantize_fp8_act %s m=%lld cols=%lld pad=%lld: %lld codes, %lld scales differ\n", ok ? "ok  " : "FAIL",
                dt == DSK_DTYPE_F32 ? "f32 " : "bf16", (long long)m, (long long)cols, (long long)pad, (long long)bad_q,
                (long long)bad_s);
    if (!ok) ++g_failed;
    CUDA_OK(cudaFree(d_x));
    CUDA_OK(cudaFree(d_q));
    CUDA_OK(cudaFree(d_s));
}

// ---------------------------------------------------------------------------------------------------------
// 3. dsk_linear_fp8_w8a8

// Whether dsk_linear_fp8_w8a8's wgmma family can run here: the library holds sm_90a code and the GPU is cc 9.0. Where it
// cannot, its cases are left out with a note; on a cc 9.0 GPU under DSK_REQUIRE_GPU=1 (scripts/gpu-check.sh builds for
// 90a) that is a failure, so the Hopper path cannot go unchecked there by accident.
bool wgmma_available() {
    static int known = -1;
    if (known >= 0) return known == 1;
    void* buf = nullptr;
    CUDA_OK(cudaMalloc(&buf, 1 << 16));
    dsk_linear_fp8_w8a8_params w;
    std::memset(&w, 0, sizeof w);
    w.qx = buf;
    w.x_scale = (float*)((char*)buf + 16384);
    w.w.data = (char*)buf + 32768;
    w.w.scale = (float*)((char*)buf + 16384 + 4096);
    w.w.rows = 16;
    w.w.cols = 16;
    w.w.count = 1;
    w.w.scheme = DSK_WEIGHT_FP8_BLOCK;
    w.w.dtype = DSK_DTYPE_FP8_E4M3;
    w.w.block_rows = w.w.block_cols = 128;
    w.y = (char*)buf + 49152;
    w.m = 1;
    w.y_row_stride = 16;
    w.act_dtype = DSK_DTYPE_F32;
    w.path = DSK_W8A8_PATH_WGMMA;
    CUDA_OK(cudaMemset(buf, 0, 1 << 16));
    const dsk_status st = dsk_linear_fp8_w8a8(&w);
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaFree(buf));
    known = st == DSK_SUCCESS ? 1 : 0;
    if (!known) {
        cudaDeviceProp prop;
        CUDA_OK(cudaGetDeviceProperties(&prop, 0));
        const char* required = std::getenv("DSK_REQUIRE_GPU");
        const bool must = prop.major == 9 && prop.minor == 0 && required != nullptr && std::strcmp(required, "1") == 0;
        std::printf("%s w8a8 wgmma: not run here (%s)\n", must ? "FAIL" : "note:", dsk_last_error_message());
        if (must) {
            ++g_cases;
            ++g_failed;
        }
    }
    return known == 1;
}

const char* w8a8_path_str(int32_t path) {
    return path == DSK_W8A8_PATH_WGMMA ? "wgmma" : path == DSK_W8A8_PATH_MMA_SYNC ? "mma.sync" : "auto";
}

// One dsk_linear_fp8_w8a8 request, or with `groups` (rows per expert, after `lead` rows before expert 0 and 3 rows after
// the last) one dsk_grouped_linear_fp8_w8a8 request over a stack of groups.size() experts; `bad_offset` >= 0 then
// corrupts that offset (made larger than m) and expects the error word and no output.
void run_w8a8_case(int64_t m, int64_t in, int64_t out, int32_t dt, bool with_bias, int32_t path, cudaStream_t stream,
                   const std::vector<int>* groups = nullptr, int lead = 0, int bad_offset = -1) {
    ++g_cases;
    const int64_t count = groups != nullptr ? (int64_t)groups->size() : 1;
    std::vector<int32_t> offsets;
    if (groups != nullptr) {
        offsets.push_back(lead);
        for (int rows : *groups) offsets.push_back(offsets.back() + rows);
        m = offsets.back() + 3;
        with_bias = false;
    }
    // row i's matrix, or -1 where no expert owns it (left unwritten)
    auto matrix_of = [&](int64_t i) -> int64_t {
        if (groups == nullptr) return 0;
        for (int64_t e = 0; e < count; ++e)
            if (i >= offsets[(size_t)e] && i < offsets[(size_t)e + 1]) return e;
        return -1;
    };
    const int64_t kb = (in + 127) / 128, nb = (out + 127) / 128;
    std::vector<uint8_t> qx((size_t)(m * in)), qw((size_t)(count * out * in));
    for (auto& v : qx) v = random_e4m3();
    for (auto& v : qw) v = random_e4m3();
    std::vector<float> xs((size_t)(m * kb)), ws((size_t)(count * nb * kb)), bias;
    for (auto& v : xs) v = uniform(1e-3f, 1e-2f);
    for (auto& v : ws) v = uniform(1e-3f, 1e-2f);
    if (with_bias) {
        bias.resize((size_t)out);
        for (auto& v : bias) v = uniform(-1.0f, 1.0f);
    }
    const int64_t y_rs = out + 3;
    const size_t esize = dt == DSK_DTYPE_F32 ? 4 : 2;
    const size_t y_n = (size_t)(m * y_rs);
    std::vector<uint8_t> y0(y_n * esize, 0xff);  // NaN poison

    uint8_t* d_qx = upload(qx);
    uint8_t* d_qw = upload(qw);
    float* d_xs = upload(xs);
    float* d_ws = upload(ws);
    float* d_bias = with_bias ? upload(bias) : nullptr;
    uint8_t* d_y = upload(y0);
    std::vector<int32_t> sent = offsets;
    if (bad_offset >= 0) sent[(size_t)bad_offset] = (int32_t)m + 5;
    int32_t* d_off = groups != nullptr ? upload(sent) : nullptr;
    int32_t* d_err = groups != nullptr ? upload(std::vector<int32_t>(8, 0)) : nullptr;
    dsk_weight w;
    std::memset(&w, 0, sizeof w);
    w.data = d_qw;
    w.scale = d_ws;
    w.rows = out;
    w.cols = in;
    w.count = count;
    w.scheme = DSK_WEIGHT_FP8_BLOCK;
    w.dtype = DSK_DTYPE_FP8_E4M3;
    w.block_rows = 128;
    w.block_cols = 128;
    char label[160];
    std::snprintf(label, sizeof label, "w8a8 %-8s %s m=%-4lld in=%-4lld out=%-4lld%s%s", w8a8_path_str(path),
                  dt == DSK_DTYPE_F32 ? "f32 " : "bf16", (long long)m, (long long)in, (long long)out,
                  with_bias ? " bias" : "", groups != nullptr ? (bad_offset >= 0 ? " grouped, bad offset" : " grouped") : "");
    dsk_status st;
    if (groups == nullptr) {
        dsk_linear_fp8_w8a8_params p;
        std::memset(&p, 0, sizeof p);
        p.qx = d_qx;
        p.x_scale = d_xs;
        p.w = w;
        p.bias = d_bias;
        p.y = d_y;
        p.m = m;
        p.y_row_stride = y_rs;
        p.act_dtype = dt;
        p.path = path;
        p.stream = stream;
        st = dsk_linear_fp8_w8a8(&p);
    } else {
        dsk_grouped_linear_fp8_w8a8_params p;
        std::memset(&p, 0, sizeof p);
        p.qx = d_qx;
        p.x_scale = d_xs;
        p.expert_offsets = d_off;
        p.w = w;
        p.y = d_y;
        p.error_word = d_err;
        p.m = m;
        p.y_row_stride = y_rs;
        p.act_dtype = dt;
        p.path = path;
        p.error_site = 9;
        p.stream = stream;
        st = dsk_grouped_linear_fp8_w8a8(&p);
    }
    bool ok = st == DSK_SUCCESS;
    int bad = 0;
    int64_t outside_bad = 0;
    double err2 = 0, ref2 = 0;
    if (!ok) {
        std::printf("FAIL %s: status %d: %s\n", label, (int)st, dsk_last_error_message());
    } else if (bad_offset >= 0) {
        // the first bad offset in the header's order: the lowest index out of [0, m]; nothing but the word written
        CUDA_OK(cudaStreamSynchronize(stream));
        const auto word = download(d_err, 8);
        const auto y = download(d_y, y_n * esize);
        for (uint8_t v : y) outside_bad += v != 0xff;
        ok = word[0] == 9 && word[1] == bad_offset && word[2] == (int32_t)m + 5 && word[3] == (int32_t)m + 1 &&
             word[4] == 0 && outside_bad == 0;
        std::printf("%s %s: error word {%d, %d, %d, %d, %d}, %lld bytes of y written\n", ok ? "ok  " : "FAIL", label,
                    word[0], word[1], word[2], word[3], word[4], (long long)outside_bad);
    } else {
        CUDA_OK(cudaStreamSynchronize(stream));
        const auto y = download(d_y, y_n * esize);
        if (groups != nullptr) {
            const auto word = download(d_err, 8);
            if (word[0] != 0) {
                std::printf("  %s: error word set (%d, index %d, value %d)\n", label, word[0], word[1], word[2]);
                ++bad;
            }
        }
        std::vector<float> qxf(qx.size()), qwf(qw.size());
        for (size_t i = 0; i < qx.size(); ++i) qxf[i] = e4m3_to_f32(qx[i]);
        for (size_t i = 0; i < qw.size(); ++i) qwf[i] = e4m3_to_f32(qw[i]);
        for (int64_t i = 0; i < m; ++i) {
            const int64_t e = matrix_of(i);
            for (int64_t n = 0; n < y_rs; ++n) {
                const size_t at = (size_t)(i * y_rs + n);
                if (n >= out || e < 0) {
                    for (size_t b = 0; b < esize; ++b) outside_bad += y[at * esize + b] != 0xff;
                    continue;
                }
                double ref = with_bias ? bias[(size_t)n] : 0.0, mag = with_bias ? std::fabs(bias[(size_t)n]) : 0.0;
                for (int64_t j = 0; j < kb; ++j) {
                    double sum = 0, a = 0;
                    for (int64_t k = j * 128; k < std::min(in, (j + 1) * 128); ++k) {
                        const double t = (double)qxf[(size_t)(i * in + k)] * qwf[(size_t)((e * out + n) * in + k)];
                        sum += t;
                        a += std::fabs(t);
                    }
                    const double sc = (double)xs[(size_t)(i * kb + j)] * ws[(size_t)((e * nb + n / 128) * kb + j)];
                    ref += sc * sum;
                    mag += std::fabs(sc) * a;
                }
                double got;
                if (dt == DSK_DTYPE_F32) {
                    float f;
                    std::memcpy(&f, &y[at * 4], 4);
                    got = f;
                } else {
                    uint16_t h;
                    std::memcpy(&h, &y[at * 2], 2);
                    got = bf16_to_f32(h);
                }
                const double tol = (dt == DSK_DTYPE_F32 ? 1e-5 : std::ldexp(1.0, -7)) * std::fabs(ref) + 1e-4 * mag;
                err2 += (got - ref) * (got - ref);
                ref2 += ref * ref;
                if (!(std::fabs(got - ref) <= tol)) {
                    if (bad < 5)
                        std::printf("  %s: [i %lld, n %lld] got %.6g, want %.6g (tol %.3g)\n", label, (long long)i,
                                    (long long)n, got, ref, tol);
                    ++bad;
                }
            }
        }
        const double rel = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
        ok = bad == 0 && outside_bad == 0 && rel <= 5e-3;
        std::printf("%s %s: rel l2 %.2e, %d elements out of tolerance, %lld bytes outside the output written\n",
                    ok ? "ok  " : "FAIL", label, rel, bad, (long long)outside_bad);
    }
    if (!ok) ++g_failed;
    CUDA_OK(cudaFree(d_qx));
    CUDA_OK(cudaFree(d_qw));
    CUDA_OK(cudaFree(d_xs));
    CUDA_OK(cudaFree(d_ws));
    if (d_bias) CUDA_OK(cudaFree(d_bias));
    if (d_off) CUDA_OK(cudaFree(d_off));
    if (d_err) CUDA_OK(cudaFree(d_err));
    CUDA_OK(cudaFree(d_y));
}

// ---------------------------------------------------------------------------------------------------------
// 4. Refusals

void expect_status(const char* what, dsk_status got, dsk_status want) {
    ++g_cases;
    const bool ok = got == want;
    if (!ok) ++g_failed;
    std::printf("%s refuse %s: status %d (want %d)%s%s\n", ok ? "ok  " : "FAIL", what, (int)got, (int)want,
                got != DSK_SUCCESS ? ": " : "", got != DSK_SUCCESS ? dsk_last_error_message() : "");
}

void run_refusals(cudaStream_t stream) {
    void* buf = nullptr;
    CUDA_OK(cudaMalloc(&buf, 1 << 20));
    dsk_linear_params p;
    std::memset(&p, 0, sizeof p);
    p.x = buf;
    p.y = (char*)buf + 65536;
    p.w.data = (char*)buf + 131072;
    p.w.rows = 64;
    p.w.cols = 64;
    p.w.count = 1;
    p.w.scheme = DSK_WEIGHT_DENSE;
    p.w.dtype = DSK_DTYPE_F32;
    p.m = 16;
    p.batch = 1;
    p.x_row_stride = 64;
    p.y_row_stride = 64;
    p.x_dtype = DSK_DTYPE_F32; p.y_dtype = DSK_DTYPE_F32;
    p.path = DSK_LINEAR_PATH_MMA;
    p.stream = stream;
    expect_status("linear MMA with F32 activations", dsk_linear(&p), DSK_ERROR_UNSUPPORTED);

    dsk_quantize_fp8_act_params q;
    std::memset(&q, 0, sizeof q);
    q.x = buf;
    q.q = (char*)buf + 65536;
    q.scale = (float*)((char*)buf + 131072);
    q.m = 0;
    q.cols = 128;
    q.x_row_stride = 128;
    q.act_dtype = DSK_DTYPE_BF16;
    expect_status("quantize m = 0", dsk_quantize_fp8_act(&q), DSK_ERROR_INVALID_ARGUMENT);

    dsk_linear_fp8_w8a8_params w;
    std::memset(&w, 0, sizeof w);
    w.qx = buf;
    w.x_scale = (float*)buf;
    w.w.data = (char*)buf + 65536;
    w.w.scale = (float*)((char*)buf + 131072);
    w.w.rows = 128;
    w.w.cols = 128;
    w.w.count = 1;
    w.w.scheme = DSK_WEIGHT_FP8_BLOCK;
    w.w.dtype = DSK_DTYPE_FP8_E4M3;
    w.w.block_rows = 64;
    w.w.block_cols = 128;
    w.y = (char*)buf + 196608;
    w.m = 16;
    w.y_row_stride = 128;
    w.act_dtype = DSK_DTYPE_BF16;
    expect_status("w8a8 with 64 x 128 blocks", dsk_linear_fp8_w8a8(&w), DSK_ERROR_INVALID_ARGUMENT);
    w.w.block_rows = 128;
    w.w.cols = 120;
    expect_status("w8a8 with in = 120", dsk_linear_fp8_w8a8(&w), DSK_ERROR_INVALID_ARGUMENT);
    w.w.cols = 128;
    w.path = 3;
    expect_status("w8a8 with path 3", dsk_linear_fp8_w8a8(&w), DSK_ERROR_INVALID_ARGUMENT);
    if (!wgmma_available()) {
        w.path = DSK_W8A8_PATH_WGMMA;
        expect_status("w8a8 wgmma where it cannot run", dsk_linear_fp8_w8a8(&w), DSK_ERROR_UNSUPPORTED);
    }
    CUDA_OK(cudaFree(buf));
}

void run_w8a8_checks(cudaStream_t stream) {
    for (int32_t path : {DSK_W8A8_PATH_MMA_SYNC, DSK_W8A8_PATH_WGMMA}) {
        if (path == DSK_W8A8_PATH_WGMMA && !wgmma_available()) continue;
        for (int32_t dt : {DSK_DTYPE_BF16, DSK_DTYPE_F32}) {
            run_w8a8_case(16, 576, 576, dt, true, path, stream);
            run_w8a8_case(257, 96, 96, dt, false, path, stream);
            run_w8a8_case(1000, 1024, 300, dt, true, path, stream);
        }
        run_w8a8_case(64, 7168, 256, DSK_DTYPE_BF16, false, path, stream);
        run_w8a8_case(130, 272, 200, DSK_DTYPE_BF16, true, path, stream);
        // Grouped: empty experts (first, middle, last), an expert of one row, one of 200 (two row tiles, the second
        // ragged), rows before expert 0 and after the last left unwritten; ragged in and out; a bad offset.
        const std::vector<int> groups = {0, 5, 200, 0, 1, 130, 0};
        run_w8a8_case(0, 272, 200, DSK_DTYPE_BF16, false, path, stream, &groups, 2);
        run_w8a8_case(0, 128, 96, DSK_DTYPE_F32, false, path, stream, &groups, 0);
        const std::vector<int> few = {17, 3};
        run_w8a8_case(0, 256, 256, DSK_DTYPE_BF16, false, path, stream, &few, 1, 1);
    }
    run_w8a8_case(300, 640, 384, DSK_DTYPE_BF16, false, DSK_W8A8_PATH_AUTO, stream);
}

void run_checks(cudaStream_t stream) {
    // dsk_linear MMA: every scheme x epilogue on a ragged shape; the ms; batch; strides. Both paths (g_linear_path).
    for (int32_t path : {DSK_LINEAR_PATH_MMA, DSK_LINEAR_PATH_MMA_SYNC}) {
    g_linear_path = path;
    const int epis[] = {DSK_EPILOGUE_NONE, DSK_EPILOGUE_SILU_MUL, DSK_EPILOGUE_ADD};
    for (int scheme = kDense; scheme <= kInt4; ++scheme)
        for (int e : epis)
            for (int64_t m : {16, 257}) {
                const int64_t in = scheme == kFp8 ? 576 : scheme == kInt4 ? 384 : 328;
                const int64_t out = scheme == kFp8 ? 576 : 330;
                run_linear_case({scheme, m, in, out, 1, 1, e, m == 257, false, 8, 2, 128}, stream);
            }
    // FP8: ragged 96 x 96 (one partial scale block each way), tall / wide, m 64 and 1000.
    run_linear_case({kFp8, 64, 96, 96, 1, 1, DSK_EPILOGUE_NONE, true, false, 0, 0, 128}, stream);
    run_linear_case({kFp8, 1000, 576, 1536, 1, 1, DSK_EPILOGUE_NONE, false, false, 16, 4, 128}, stream);
    run_linear_case({kFp8, 1000, 1024, 96, 1, 1, DSK_EPILOGUE_ADD, true, true, 0, 6, 128}, stream);
    run_linear_case({kDense, 1000, 512, 200, 1, 1, DSK_EPILOGUE_SILU_MUL, true, false, 8, 0, 128}, stream);
    run_linear_case({kInt4, 1000, 256, 256, 1, 1, DSK_EPILOGUE_NONE, true, false, 0, 0, 128}, stream);
    run_linear_case({kInt4, 64, 96, 136, 1, 1, DSK_EPILOGUE_NONE, false, false, 8, 0, 32}, stream);
    // Odd out (the last feature column alone), and FP8 blocks that are not 128.
    run_linear_case({kDense, 64, 64, 333, 1, 1, DSK_EPILOGUE_NONE, true, false, 0, 1, 128}, stream);
    run_linear_case({kFp8, 64, 160, 100, 1, 1, DSK_EPILOGUE_NONE, false, false, 0, 0, 48}, stream);
    run_linear_case({kFp8, 64, 160, 100, 1, 1, DSK_EPILOGUE_SILU_MUL, true, false, 0, 1, 20}, stream);
    // Batch 2: a matrix per entry (HeadwiseLinear) and one shared matrix.
    for (int scheme = kDense; scheme <= kInt4; ++scheme) {
        run_linear_case({scheme, 64, 256, 192, 2, 2, DSK_EPILOGUE_NONE, true, false, 8, 2, 128}, stream);
        run_linear_case({scheme, 257, 256, 130, 2, 1, DSK_EPILOGUE_ADD, false, true, 0, 2, 128}, stream);
    }
    }
    g_linear_path = DSK_LINEAR_PATH_MMA;

    for (int32_t dt : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
        run_quant_case(5, 7168, dt, 0, stream);
        run_quant_case(33, 576, dt, 3, stream);
        run_quant_case(3, 100, dt, 5, stream);
        run_quant_case(257, 256, dt, 0, stream);
    }

    run_w8a8_checks(stream);

    run_refusals(stream);
}

// ---------------------------------------------------------------------------------------------------------
// Bench

__global__ void fill_kernel(uint8_t* p, size_t n, uint32_t seed, int kind, float scale) {
    // kind 0: bf16 in [-scale, scale); 1: finite e4m3 bytes; 2: random bytes (INT4 codes); 3: f32 = scale;
    // 4: bf16 = scale
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 0x9e3779b9u ^ seed;
        h ^= h >> 16;
        h *= 0x85ebca6bu;
        h ^= h >> 13;
        h *= 0xc2b2ae35u;
        h ^= h >> 16;
        if (kind == 0) {
            const float v = ((float)(h & 0xffffu) / 32768.0f - 1.0f) * scale;
            reinterpret_cast<uint16_t*>(p)[i] = (uint16_t)(__float_as_uint(v) >> 16);
        } else if (kind == 1) {
            p[i] = (uint8_t)(h & 0xf7u);
        } else if (kind == 2) {
            p[i] = (uint8_t)h;
        } else if (kind == 3) {
            reinterpret_cast<float*>(p)[i] = scale;
        } else {
            reinterpret_cast<uint16_t*>(p)[i] = (uint16_t)(__float_as_uint(scale) >> 16);
        }
    }
}
void fill(void* p, size_t n, int kind, float scale, uint32_t seed) {
    fill_kernel<<<1024, 256>>>(static_cast<uint8_t*>(p), n, seed, kind, scale);
    CUDA_OK(cudaGetLastError());
}

void run_bench(cudaStream_t stream) {
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    std::printf("\nbench on %s (sm_%d%d): y[M, N] = x[M, K] @ W^T, bf16 x and y; median of 20 after 3 warm-ups\n",
                prop.name, prop.major, prop.minor);
    std::printf("%-6s %-6s %-6s %-22s %10s %10s %12s\n", "M", "K", "N", "kernel", "us", "TFLOP/s", "x cuBLAS bf16");
    cublasHandle_t handle;
    CUBLAS_OK(cublasCreate(&handle));
    CUBLAS_OK(cublasSetStream(handle, stream));
    const int64_t shapes[][2] = {{7168, 18432}, {4096, 14336}};
    const int64_t max_m = 4096;
    for (const auto& s : shapes) {
        const int64_t K = s[0], N = s[1];
        void *x, *w_bf16, *w_fp8, *w_fp8_scale, *w_i4, *w_i4_scale, *w_i4_zero, *y, *qx, *xs;
        CUDA_OK(cudaMalloc(&x, (size_t)(max_m * K) * 2));
        CUDA_OK(cudaMalloc(&w_bf16, (size_t)(N * K) * 2));
        CUDA_OK(cudaMalloc(&w_fp8, (size_t)(N * K)));
        CUDA_OK(cudaMalloc(&w_fp8_scale, (size_t)(((N + 127) / 128) * ((K + 127) / 128)) * 4));
        CUDA_OK(cudaMalloc(&w_i4, (size_t)(N * K) / 2));
        CUDA_OK(cudaMalloc(&w_i4_scale, (size_t)(N * (K / 128)) * 2));
        CUDA_OK(cudaMalloc(&w_i4_zero, (size_t)(N * (K / 128)) * 2));
        CUDA_OK(cudaMalloc(&y, (size_t)(max_m * N) * 2));
        CUDA_OK(cudaMalloc(&qx, (size_t)(max_m * K)));
        CUDA_OK(cudaMalloc(&xs, (size_t)(max_m * ((K + 127) / 128)) * 4));
        fill(x, (size_t)(max_m * K), 0, 1.0f, 1);
        fill(w_bf16, (size_t)(N * K), 0, 0.05f, 2);
        fill(w_fp8, (size_t)(N * K), 1, 0, 3);
        fill(w_fp8_scale, (size_t)(((N + 127) / 128) * ((K + 127) / 128)), 3, 1e-3f, 4);
        fill(w_i4, (size_t)(N * K) / 2, 2, 0, 5);
        fill(w_i4_scale, (size_t)(N * (K / 128)), 4, 0.01f, 6);
        fill(w_i4_zero, (size_t)(N * (K / 128)), 4, 8.0f, 7);
        CUDA_OK(cudaDeviceSynchronize());
        for (int64_t M : {512, 4096}) {
            const double flop = 2.0 * (double)M * (double)N * (double)K;
            const float alpha = 1.0f, beta = 0.0f;
            const double t_cublas = median_us([&] {
                CUBLAS_OK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &alpha, w_bf16,
                                       CUDA_R_16BF, (int)K, x, CUDA_R_16BF, (int)K, &beta, y, CUDA_R_16BF, (int)N,
                                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            }, stream, 20);
            auto report = [&](const char* name, double us) {
                std::printf("%-6lld %-6lld %-6lld %-22s %10.1f %10.1f %12.2f\n", (long long)M, (long long)K,
                            (long long)N, name, us, flop / us * 1e-6, t_cublas / us);
            };
            report("cublas bf16", t_cublas);
            for (int32_t path : {DSK_LINEAR_PATH_MMA, DSK_LINEAR_PATH_MMA_SYNC})
            for (int scheme = kDense; scheme <= kInt4; ++scheme) {
                dsk_linear_params p;
                std::memset(&p, 0, sizeof p);
                p.x = x;
                p.w.data = scheme == kDense ? w_bf16 : scheme == kFp8 ? w_fp8 : w_i4;
                p.w.scale = scheme == kFp8 ? w_fp8_scale : scheme == kInt4 ? w_i4_scale : nullptr;
                p.w.zero = scheme == kInt4 ? w_i4_zero : nullptr;
                p.w.rows = N;
                p.w.cols = K;
                p.w.count = 1;
                p.w.scheme = scheme == kDense ? DSK_WEIGHT_DENSE : scheme == kFp8 ? DSK_WEIGHT_FP8_BLOCK : DSK_WEIGHT_INT4_GROUP;
                p.w.dtype = scheme == kDense ? DSK_DTYPE_BF16 : scheme == kFp8 ? DSK_DTYPE_FP8_E4M3 : DSK_DTYPE_INT4;
                p.w.block_rows = p.w.block_cols = scheme == kFp8 ? 128 : 0;
                p.w.group_size = scheme == kInt4 ? 128 : 0;
                p.y = y;
                p.m = M;
                p.batch = 1;
                p.x_row_stride = K;
                p.y_row_stride = N;
                p.x_dtype = DSK_DTYPE_BF16; p.y_dtype = DSK_DTYPE_BF16;
                p.path = path;
                p.stream = stream;
                if (dsk_linear(&p) != DSK_SUCCESS) {
                    std::printf("%-6lld %-6lld %-6lld linear %s %-11s refused: %s\n", (long long)M, (long long)K,
                                (long long)N, path == DSK_LINEAR_PATH_MMA ? "mma" : "mma.sync", scheme_str(scheme),
                                dsk_last_error_message());
                    continue;
                }
                const double us = median_us([&] { (void)dsk_linear(&p); }, stream, 20);
                char name[40];
                std::snprintf(name, sizeof name, "linear %s %s", path == DSK_LINEAR_PATH_MMA ? "mma" : "mma.sync",
                              scheme_str(scheme));
                report(name, us);
            }
            dsk_quantize_fp8_act_params q;
            std::memset(&q, 0, sizeof q);
            q.x = x;
            q.q = qx;
            q.scale = static_cast<float*>(xs);
            q.m = M;
            q.cols = K;
            q.x_row_stride = K;
            q.act_dtype = DSK_DTYPE_BF16;
            q.stream = stream;
            dsk_linear_fp8_w8a8_params w;
            std::memset(&w, 0, sizeof w);
            w.qx = qx;
            w.x_scale = static_cast<const float*>(xs);
            w.w.data = w_fp8;
            w.w.scale = w_fp8_scale;
            w.w.rows = N;
            w.w.cols = K;
            w.w.count = 1;
            w.w.scheme = DSK_WEIGHT_FP8_BLOCK;
            w.w.dtype = DSK_DTYPE_FP8_E4M3;
            w.w.block_rows = w.w.block_cols = 128;
            w.y = y;
            w.m = M;
            w.y_row_stride = N;
            w.act_dtype = DSK_DTYPE_BF16;
            w.stream = stream;
            if (dsk_quantize_fp8_act(&q) != DSK_SUCCESS) {
                std::printf("%-6lld %-6lld %-6lld w8a8 quantize refused: %s\n", (long long)M, (long long)K,
                            (long long)N, dsk_last_error_message());
                continue;
            }
            const double t_q = median_us([&] { (void)dsk_quantize_fp8_act(&q); }, stream, 20);
            for (int32_t path : {DSK_W8A8_PATH_MMA_SYNC, DSK_W8A8_PATH_WGMMA}) {
                w.path = path;
                if (dsk_linear_fp8_w8a8(&w) != DSK_SUCCESS) {
                    std::printf("%-6lld %-6lld %-6lld w8a8 %s refused: %s\n", (long long)M, (long long)K,
                                (long long)N, w8a8_path_str(path), dsk_last_error_message());
                    continue;
                }
                const double t_w = median_us([&] { (void)dsk_linear_fp8_w8a8(&w); }, stream, 20);
                char name[40];
                std::snprintf(name, sizeof name, "w8a8 %s gemm", w8a8_path_str(path));
                report(name, t_w);
                std::snprintf(name, sizeof name, "w8a8 %s quant+gemm", w8a8_path_str(path));
                report(name, t_q + t_w);
            }
        }
        for (void* ptr : {x, w_bf16, w_fp8, w_fp8_scale, w_i4, w_i4_scale, w_i4_zero, y, qx, xs}) CUDA_OK(cudaFree(ptr));
    }
    CUBLAS_OK(cublasDestroy(handle));
}

}  // namespace

int main(int argc, char** argv) {
    if (!gpu_present()) return 77;
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    if (argc > 1 && std::strcmp(argv[1], "--w8a8") == 0)
        run_w8a8_checks(stream);  // section 3 alone (the host emulation's shorter run)
    else
        run_checks(stream);
    std::printf("mma_check: %d of %d cases passed\n", g_cases - g_failed, g_cases);
    if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) run_bench(stream);
    CUDA_OK(cudaStreamDestroy(stream));
    return g_failed == 0 ? 0 : 1;
}

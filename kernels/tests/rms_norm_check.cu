// rms_norm_check.cu: dsk_rms_norm on a GPU against a CPU reference, plus an optional timing (--bench).
//
// Every case poisons the outputs (NaN bytes), then checks
//   - r bit-exactly equal to round_T(x + residual) (one fp32 add, one rounding);
//   - y within 1e-5 relative (F32) or one bf16 ulp (BF16) of the double-precision reference computed from
//     the same rounded inputs;
//   - every byte outside the [rows, cols] views unchanged (row padding, the elements before a misaligned
//     start), so nothing is written out of bounds;
//   - a NaN in one row makes that row of y all NaN and leaves the other rows alone.
// Shapes cover both paths (aligned 16-byte vectors; misaligned pointers or strides and over-wide rows take
// the scalar path), every VPT, both block-size caps, all four dtype pairs and every allowed in-place alias.
// Exits 77 (ctest: skipped) when no CUDA device is present.
//
//   dsk_rms_norm_check            run the checks
//   dsk_rms_norm_check --bench    also time a few DeepSeek shapes against a device-to-device copy
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "deepseek_kernels.h"
#include "check_common.cuh"

namespace {

using namespace check;




enum Alias { kNoAlias, kYisX, kRisX, kRisRes, kYisRes, kRisX_YisRes, kRisRes_YisX };
const char* alias_str(Alias a) {
    switch (a) {
        case kNoAlias: return "separate";
        case kYisX: return "y=x";
        case kRisX: return "r=x";
        case kRisRes: return "r=res";
        case kYisRes: return "y=res";
        case kRisX_YisRes: return "r=x,y=res";
        case kRisRes_YisX: return "r=res,y=x";
    }
    return "?";
}

struct Case {
    int32_t xt, wt;
    bool fused;
    int64_t rows, cols;
    int64_t pad;      // row stride = cols + pad (every buffer)
    int64_t offset;   // elements before each view's start (misaligns when offset * size % 16 != 0)
    int64_t w_offset; // elements before w's start
    Alias alias;
    bool nan_row;     // put a NaN into row 1
    bool use_stream;  // a created stream instead of the legacy default stream
};

std::string describe(const Case& c) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "x %s w %s %s rows %lld cols %lld pad %lld offset %lld w_offset %lld %s%s%s",
                  dtype_str(c.xt), dtype_str(c.wt), c.fused ? "fused" : "plain", (long long)c.rows,
                  (long long)c.cols, (long long)c.pad, (long long)c.offset, (long long)c.w_offset,
                  alias_str(c.alias), c.nan_row ? " nan-row" : "", c.use_stream ? " stream" : "");
    return buf;
}

int g_failed_cases = 0;
int g_cases = 0;

void run_case(const Case& c, cudaStream_t stream) {
    ++g_cases;
    const int64_t stride = c.cols + c.pad;
    const size_t n = (size_t)(c.offset + c.rows * stride);  // elements per [rows, stride] buffer
    const size_t esz = dtype_bytes(c.xt);

    // Inputs: x, residual in [-2, 2], w in [0.5, 1.5], already rounded to their dtypes; padding = poison.
    HostBuf x(c.xt, n), res(c.xt, n), w(c.wt, (size_t)(c.w_offset + c.cols));
    HostBuf y0(c.xt, n), r0(c.xt, n);  // poison (0xff bytes: NaN in both dtypes)
    for (int64_t i = 0; i < c.rows; ++i) {
        for (int64_t j = 0; j < c.cols; ++j) {
            const size_t k = (size_t)(c.offset + i * stride + j);
            x.set(k, uniform(-2.0f, 2.0f));
            res.set(k, uniform(-2.0f, 2.0f));
        }
    }
    for (int64_t j = 0; j < c.cols; ++j) w.set((size_t)(c.w_offset + j), uniform(0.5f, 1.5f));
    if (c.nan_row && c.rows > 1) x.set((size_t)(c.offset + 1 * stride + c.cols / 2), NAN);

    // Device buffers; aliases share the input's buffer.
    uint8_t *dx, *dres, *dy, *dr, *dw;
    CUDA_OK(cudaMalloc(&dx, n * esz));
    CUDA_OK(cudaMalloc(&dres, n * esz));
    CUDA_OK(cudaMalloc(&dy, n * esz));
    CUDA_OK(cudaMalloc(&dr, n * esz));
    CUDA_OK(cudaMalloc(&dw, w.bytes.size()));
    CUDA_OK(cudaMemcpy(dx, x.bytes.data(), n * esz, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dres, res.bytes.data(), n * esz, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dy, y0.bytes.data(), n * esz, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dr, r0.bytes.data(), n * esz, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dw, w.bytes.data(), w.bytes.size(), cudaMemcpyHostToDevice));
    CUDA_OK(cudaDeviceSynchronize());  // the uploads are done before a kernel on the non-blocking stream runs

    uint8_t* y_buf = dy;
    uint8_t* r_buf = dr;
    const HostBuf* y_init = &y0;
    const HostBuf* r_init = &r0;
    switch (c.alias) {
        case kNoAlias: break;
        case kYisX: y_buf = dx; y_init = &x; break;
        case kRisX: r_buf = dx; r_init = &x; break;
        case kRisRes: r_buf = dres; r_init = &res; break;
        case kYisRes: y_buf = dres; y_init = &res; break;
        case kRisX_YisRes: r_buf = dx; r_init = &x; y_buf = dres; y_init = &res; break;
        case kRisRes_YisX: r_buf = dres; r_init = &res; y_buf = dx; y_init = &x; break;
    }

    dsk_rms_norm_params p;
    std::memset(&p, 0, sizeof p);
    p.x = dx + c.offset * esz;
    p.residual = c.fused ? dres + c.offset * esz : nullptr;
    p.w = dw + c.w_offset * dtype_bytes(c.wt);
    p.y = y_buf + c.offset * esz;
    p.r = c.fused ? r_buf + c.offset * esz : nullptr;
    p.rows = c.rows;
    p.cols = c.cols;
    p.x_row_stride = p.residual_row_stride = p.y_row_stride = p.r_row_stride = stride;
    p.eps = 1e-6f;
    p.x_dtype = c.xt;
    p.w_dtype = c.wt;
    p.stream = c.use_stream ? (void*)stream : nullptr;

    const dsk_status st = dsk_rms_norm(&p);
    bool ok = st == DSK_SUCCESS;
    if (!ok) std::fprintf(stderr, "FAIL [%s]: status %d: %s\n", describe(c).c_str(), (int)st, dsk_last_error_message());
    CUDA_OK(c.use_stream ? cudaStreamSynchronize(stream) : cudaDeviceSynchronize());

    HostBuf y_out(c.xt, n), r_out(c.xt, n);
    CUDA_OK(cudaMemcpy(y_out.bytes.data(), y_buf, n * esz, cudaMemcpyDeviceToHost));
    if (c.fused) CUDA_OK(cudaMemcpy(r_out.bytes.data(), r_buf, n * esz, cudaMemcpyDeviceToHost));

    // Reference and comparison.
    int reported = 0;
    auto fail = [&](const char* what, int64_t i, int64_t j, double got, double want) {
        ok = false;
        if (reported++ < 5) {
            std::fprintf(stderr, "FAIL [%s]: %s at row %lld col %lld: got %.9g want %.9g\n", describe(c).c_str(),
                         what, (long long)i, (long long)j, got, want);
        }
    };
    std::vector<float> v((size_t)c.cols);
    for (int64_t i = 0; ok && i < c.rows; ++i) {
        double sum_sq = 0.0;
        for (int64_t j = 0; j < c.cols; ++j) {
            const size_t k = (size_t)(c.offset + i * stride + j);
            v[(size_t)j] = c.fused ? x.round(x.get(k) + res.get(k)) : x.get(k);
            sum_sq += (double)v[(size_t)j] * v[(size_t)j];
        }
        const double inv_rms = 1.0 / std::sqrt(sum_sq / (double)c.cols + (double)1e-6f);
        const bool nan_row = std::isnan(sum_sq);
        for (int64_t j = 0; j < c.cols; ++j) {
            const size_t k = (size_t)(c.offset + i * stride + j);
            if (c.fused) {
                const float got = r_out.get(k);
                const float want = v[(size_t)j];
                if (!(got == want || (std::isnan(got) && std::isnan(want)))) fail("r", i, j, got, want);
            }
            const double want = (double)v[(size_t)j] * inv_rms * (double)w.get((size_t)(c.w_offset + j));
            const double got = y_out.get(k);
            if (nan_row) {
                if (!std::isnan(got)) fail("y (NaN row)", i, j, got, want);
                continue;
            }
            const double tol = c.xt == DSK_DTYPE_F32 ? 1e-5 * std::fabs(want) + 1e-6
                                                     : std::ldexp(1.0, -7) * std::fabs(want) + 1e-30;
            if (!(std::fabs(got - want) <= tol)) fail("y", i, j, got, want);
        }
    }
    // Nothing outside the views changed: compare every non-view element with the buffer's initial bytes.
    auto check_untouched = [&](const HostBuf& out, const HostBuf& init, const char* name) {
        for (size_t k = 0; k < n && ok; ++k) {
            const int64_t rel = (int64_t)k - c.offset;
            const bool in_view = rel >= 0 && rel % stride < c.cols && rel / stride < c.rows;
            if (!in_view && std::memcmp(&out.bytes[k * esz], &init.bytes[k * esz], esz) != 0) {
                fail(name, rel >= 0 ? rel / stride : -1, rel >= 0 ? rel % stride : rel, out.get(k), init.get(k));
            }
        }
    };
    check_untouched(y_out, *y_init, "y outside the view");
    if (c.fused) check_untouched(r_out, *r_init, "r outside the view");

    CUDA_OK(cudaFree(dx));
    CUDA_OK(cudaFree(dres));
    CUDA_OK(cudaFree(dy));
    CUDA_OK(cudaFree(dr));
    CUDA_OK(cudaFree(dw));
    if (!ok) ++g_failed_cases;
}

void run_checks(cudaStream_t stream) {
    const int32_t dts[2] = {DSK_DTYPE_BF16, DSK_DTYPE_F32};
    // (rows, cols): tiny; every VPT under both caps; DeepSeek widths (512 kv_lora, 1536 q_lora, 7168 hidden);
    // many rows with VPT 8 at 512 threads (bf16 24576); over-wide rows (scalar path).
    const int64_t shapes[][2] = {{1, 1},      {3, 7},      {2, 8},      {5, 64},     {1, 100},   {33, 512},
                                 {4, 1536},   {1, 7168},   {64, 7168},  {300, 7168}, {2, 16384}, {300, 16384},
                                 {260, 24576}, {2, 32768}, {1, 40000},  {257, 4096}};
    for (int32_t xt : dts) {
        for (int32_t wt : dts) {
            for (int fused = 0; fused < 2; ++fused) {
                for (const auto& s : shapes) {
                    const bool big = s[0] * s[1] > 1000000;
                    Case base{xt, wt, fused != 0, s[0], s[1], 0, 0, 0, kNoAlias, false, false};
                    run_case(base, stream);  // aligned: the fast path where cols allows
                    Case padded = base;      // strides a whole number of vectors larger, row NaN
                    padded.pad = 8;
                    padded.nan_row = true;
                    padded.use_stream = true;
                    run_case(padded, stream);
                    Case misaligned = base;  // scalar path: views start one element in, odd stride
                    misaligned.offset = 1;
                    misaligned.pad = 3;
                    run_case(misaligned, stream);
                    if (big) continue;
                    Case w_misaligned = base;  // scalar path through w alone
                    w_misaligned.w_offset = 1;
                    run_case(w_misaligned, stream);
                    const Alias aliases_plain[] = {kYisX};
                    const Alias aliases_fused[] = {kYisX, kRisX, kRisRes, kYisRes, kRisX_YisRes, kRisRes_YisX};
                    const Alias* aliases = fused ? aliases_fused : aliases_plain;
                    const int num_aliases = fused ? 6 : 1;
                    for (int a = 0; a < num_aliases; ++a) {
                        Case in_place = base;
                        in_place.alias = aliases[a];
                        run_case(in_place, stream);
                        in_place.offset = 1;  // and on the scalar path
                        run_case(in_place, stream);
                    }
                }
            }
        }
    }
}


void run_bench(cudaStream_t stream) {
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    std::printf("bench on %s (bf16 x, bf16 w; GB/s = bytes read + written / median time)\n", prop.name);
    std::printf("%-8s %-8s %-6s %10s %10s %10s %8s\n", "rows", "cols", "mode", "us", "GB/s", "copy GB/s", "x copy");
    const int64_t shapes[][2] = {{1, 7168}, {64, 7168}, {4096, 7168}, {16384, 7168}, {4096, 1536}, {4096, 512}};
    for (const auto& s : shapes) {
        const int64_t rows = s[0], cols = s[1];
        const size_t bytes = (size_t)(rows * cols) * 2;
        void *x, *res, *y, *r, *w;
        CUDA_OK(cudaMalloc(&x, bytes));
        CUDA_OK(cudaMalloc(&res, bytes));
        CUDA_OK(cudaMalloc(&y, bytes));
        CUDA_OK(cudaMalloc(&r, bytes));
        CUDA_OK(cudaMalloc(&w, (size_t)cols * 2));
        CUDA_OK(cudaMemset(x, 0x3f, bytes));
        CUDA_OK(cudaMemset(res, 0x3c, bytes));
        CUDA_OK(cudaMemset(w, 0x3f, (size_t)cols * 2));
        CUDA_OK(cudaDeviceSynchronize());
        for (int fused = 0; fused < 2; ++fused) {
            dsk_rms_norm_params p;
            std::memset(&p, 0, sizeof p);
            p.x = x;
            p.residual = fused ? res : nullptr;
            p.w = w;
            p.y = y;
            p.r = fused ? r : nullptr;
            p.rows = rows;
            p.cols = cols;
            p.x_row_stride = p.residual_row_stride = p.y_row_stride = p.r_row_stride = cols;
            p.eps = 1e-6f;
            p.x_dtype = DSK_DTYPE_BF16;
            p.w_dtype = DSK_DTYPE_BF16;
            p.stream = stream;
            const double us = median_us([&] {
                if (dsk_rms_norm(&p) != DSK_SUCCESS) {
                    std::fprintf(stderr, "bench: %s\n", dsk_last_error_message());
                    std::exit(2);
                }
            }, stream, 50);
            const size_t moved = bytes * (fused ? 4 : 2);
            // The same bytes moved by copies: x -> y (and residual -> r).
            const double copy_us = median_us([&] {
                CUDA_OK(cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice, stream));
                if (fused) CUDA_OK(cudaMemcpyAsync(r, res, bytes, cudaMemcpyDeviceToDevice, stream));
            }, stream, 50);
            const double gbs = (double)moved / us * 1e-3;
            const double copy_gbs = (double)moved / copy_us * 1e-3;
            std::printf("%-8lld %-8lld %-6s %10.2f %10.1f %10.1f %8.2f\n", (long long)rows, (long long)cols,
                        fused ? "fused" : "plain", us, gbs, copy_gbs, gbs / copy_gbs);
        }
        CUDA_OK(cudaFree(x));
        CUDA_OK(cudaFree(res));
        CUDA_OK(cudaFree(y));
        CUDA_OK(cudaFree(r));
        CUDA_OK(cudaFree(w));
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (!gpu_present()) return 77;
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    run_checks(stream);
    std::printf("rms_norm_check: %d of %d cases passed\n", g_cases - g_failed_cases, g_cases);
    if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) run_bench(stream);
    CUDA_OK(cudaStreamDestroy(stream));
    return g_failed_cases == 0 ? 0 : 1;
}

// linear_check.cu: dsk_linear, dsk_embedding and dsk_dequantize_fp8 on a GPU against CPU references, plus an optional
// timing of the decode shapes (--bench).
//
// dsk_linear: every weight scheme (f32, bf16, FP8 with 128 x 128 blocks on ragged shapes such as in 576 / out 96,
// FP8 with 16 x 32 and 3 x 40 blocks, INT4 with groups of 32 (non-integer zero points) and 128), act F32 and BF16,
// m in {1, 3, 16, 64, 257}, batch 1 and 3 (a stack of 3 matrices: HeadwiseLinear), transpose_w 0 and 1, padded
// row strides, with and without bias, each epilogue (ADD also in place, residual = y), each path: SIMT, AUTO, and
// MMA where the library accepts it. The reference is float64 over the exact dequantised weights (the bf16 values the
// header documents) and the act-dtype inputs; y is poisoned (NaN bytes) beforehand, and every byte outside its
// [batch, m, columns] window must be unchanged afterwards.
// Error bound per case, ||y - ref|| / ||ref|| over the window:
//   act F32:  2e-5  (fp32 sums in some order of up to ~600 products; typically ~1e-7)
//   act BF16: 8e-3  (y rounded once to bf16: at most 2^-9 relative per element, ~2^-10 on average, plus the sums)
// and no NaN where the reference is finite.
//
// dsk_embedding: dense F32 / BF16 and INT4 (g32, g128) tables into F32 / BF16 y, vector and scalar paths; outputs
// bit-exact (the table value rounded once to y's dtype); an id out of range (-1 and rows) leaves its row of y as it
// was and sets the error word to {error_site, i, id, rows} for the lowest bad i, whatever the block order.
//
// dsk_dequantize_fp8: all 256 codes (NaN codes included) under scales that take the fast path and the exact fallback
// (tiny, huge, zero, negative), block shapes 128x128, 16x32 and 3x6, vector and scalar paths: bit-exact (NaN = NaN).
//
// Exits 77 (ctest: skipped) when no CUDA device is present.
//
//   dsk_linear_check           run the checks
//   dsk_linear_check --quick   fewer linear shapes (in 256, 576, 120) and m (1, 3, 64)
//   dsk_linear_check --bench   also time M = 1 and 16 at K = 7168, N = 2048 per scheme (bf16 activations)
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
#include "check_weights.cuh"

namespace {

using namespace check;



int g_cases = 0;
int g_failed = 0;
bool g_quick = false;  // --quick: a few shapes and m only (e.g. under the host emulation, kernels/tests/emu)

// ---------------------------------------------------------------------------------------------------------
// dsk_linear (the weights and activation buffers: check_weights.cuh)

struct LinearCase {
    const WeightSpec* spec;
    int64_t in, out;
    int32_t act;
    int64_t m, batch;
    int transpose;
    int epilogue;
    bool bias;
    int64_t pad;       // extra elements per row of x, y, residual
    bool in_place;     // ADD: residual = y
    bool shared_w;     // batch > 1 with one matrix (w.count 1) instead of a stack of batch matrices
    int32_t yact = -1; // y's (and residual's) dtype; -1: act
};

int32_t y_type(const LinearCase& c) { return c.yact < 0 ? c.act : c.yact; }

std::string describe(const LinearCase& c, const char* path) {
    char buf[352];
    std::snprintf(buf, sizeof buf, "%s in %lld out %lld act %s%s m %lld batch %lld%s%s epi %s%s pad %lld%s path %s",
                  c.spec->name, (long long)c.in, (long long)c.out, c.act == DSK_DTYPE_F32 ? "f32" : "bf16",
                  y_type(c) == c.act ? "" : y_type(c) == DSK_DTYPE_F32 ? " -> y f32" : " -> y bf16", (long long)c.m, (long long)c.batch, c.shared_w ? " (one matrix)" : "", c.transpose ? " transposed" : "",
                  c.epilogue == DSK_EPILOGUE_NONE ? "none" : c.epilogue == DSK_EPILOGUE_SILU_MUL ? "silu_mul" : "add",
                  c.bias ? " bias" : "", (long long)c.pad, c.in_place ? " in-place" : "", path);
    return buf;
}

// Runs one configuration on every path and compares with the float64 reference.
void run_linear_case(const LinearCase& c, cudaStream_t stream) {
    const int64_t w_rows = c.transpose ? c.in : c.out, w_cols = c.transpose ? c.out : c.in;
    const HostWeight hw = make_weight(*c.spec, w_rows, w_cols, c.shared_w ? 1 : c.batch);
    const DevWeight dw(hw);

    const bool silu = c.epilogue == DSK_EPILOGUE_SILU_MUL, add = c.epilogue == DSK_EPILOGUE_ADD;
    const int64_t y_cols = silu ? c.out / 2 : c.out;
    const int64_t x_row = c.in + c.pad, y_row = y_cols + c.pad, r_row = c.out + c.pad;
    const int64_t x_batch = c.m * x_row + c.pad, y_batch = c.m * y_row + c.pad, r_batch = c.m * r_row + c.pad;
    const size_t nx = (size_t)(c.batch * x_batch), ny = (size_t)(c.batch * y_batch), nr = (size_t)(c.batch * r_batch);

    HostBuf x(c.act, nx), y0(y_type(c), ny), res(y_type(c), nr);
    for (int64_t b = 0; b < c.batch; ++b)
        for (int64_t i = 0; i < c.m; ++i)
            for (int64_t k = 0; k < c.in; ++k) x.set((size_t)(b * x_batch + i * x_row + k), uniform(-1.0f, 1.0f));
    std::vector<float> bias((size_t)c.out);
    for (auto& v : bias) v = uniform(-0.5f, 0.5f);
    if (add) {
        HostBuf& r = c.in_place ? y0 : res;  // in place: the residual lives in y's window (y's strides)
        const int64_t rr = c.in_place ? y_row : r_row, rb = c.in_place ? y_batch : r_batch;
        for (int64_t b = 0; b < c.batch; ++b)
            for (int64_t i = 0; i < c.m; ++i)
                for (int64_t n = 0; n < c.out; ++n) r.set((size_t)(b * rb + i * rr + n), uniform(-1.0f, 1.0f));
    }

    // Reference (float64), [batch, m, y_cols].
    std::vector<double> ref((size_t)(c.batch * c.m * y_cols));
    std::vector<double> acc((size_t)c.out);
    for (int64_t b = 0; b < c.batch; ++b) {
        const float* wm = hw.value.data() + (size_t)((c.shared_w ? 0 : b) * w_rows * w_cols);
        for (int64_t i = 0; i < c.m; ++i) {
            for (int64_t n = 0; n < c.out; ++n) {
                double s = 0.0;
                for (int64_t k = 0; k < c.in; ++k) {
                    const double wv = c.transpose ? wm[k * w_cols + n] : wm[n * w_cols + k];
                    s += (double)x.get((size_t)(b * x_batch + i * x_row + k)) * wv;
                }
                acc[(size_t)n] = s + (c.bias ? (double)bias[(size_t)n] : 0.0);
            }
            for (int64_t j = 0; j < y_cols; ++j) {
                double v = acc[(size_t)j];
                if (silu) v = v / (1.0 + std::exp(-v)) * acc[(size_t)(c.out / 2 + j)];
                if (add) {
                    v += c.in_place ? y0.get((size_t)(b * y_batch + i * y_row + j))
                                    : res.get((size_t)(b * r_batch + i * r_row + j));
                }
                ref[(size_t)((b * c.m + i) * y_cols + j)] = v;
            }
        }
    }

    DevBuf dx(x.bytes.size()), dy(y0.bytes.size()), dres(res.bytes.size()), dbias(bias.size() * 4);
    dx.upload(x.bytes.data());
    dres.upload(res.bytes.data());
    dbias.upload(bias.data());

    const int paths[3] = {DSK_LINEAR_PATH_SIMT, DSK_LINEAR_PATH_AUTO, DSK_LINEAR_PATH_MMA};
    const char* path_names[3] = {"SIMT", "AUTO", "MMA"};
    for (int pi = 0; pi < 3; ++pi) {
        dy.upload(y0.bytes.data());
        CUDA_OK(cudaDeviceSynchronize());
        dsk_linear_params p;
        std::memset(&p, 0, sizeof p);
        p.x = dx.d;
        p.w = dw.w;
        p.bias = c.bias ? static_cast<const float*>(dbias.d) : nullptr;
        p.residual = add ? (c.in_place ? dy.d : dres.d) : nullptr;
        p.y = dy.d;
        p.m = c.m;
        p.batch = c.batch;
        p.x_row_stride = x_row;
        p.x_batch_stride = x_batch;
        p.y_row_stride = y_row;
        p.y_batch_stride = y_batch;
        p.residual_row_stride = c.in_place ? y_row : r_row;
        p.residual_batch_stride = c.in_place ? y_batch : r_batch;
        p.x_dtype = c.act;
        p.y_dtype = y_type(c);
        p.transpose_w = c.transpose;
        p.epilogue = c.epilogue;
        p.path = paths[pi];
        p.stream = stream;
        const dsk_status st = dsk_linear(&p);
        if (paths[pi] == DSK_LINEAR_PATH_MMA && st == DSK_ERROR_UNSUPPORTED) continue;  // not this family's request
        ++g_cases;
        const std::string name = describe(c, path_names[pi]);
        if (st != DSK_SUCCESS) {
            std::fprintf(stderr, "FAIL [%s]: status %d: %s\n", name.c_str(), (int)st, dsk_last_error_message());
            ++g_failed;
            continue;
        }
        CUDA_OK(cudaStreamSynchronize(stream));
        HostBuf y(y_type(c), ny);
        dy.download(y.bytes.data());

        bool ok = true;
        double err2 = 0.0, ref2 = 0.0;
        int64_t nan_at = -1;
        for (int64_t b = 0; b < c.batch; ++b)
            for (int64_t i = 0; i < c.m; ++i)
                for (int64_t j = 0; j < y_cols; ++j) {
                    const double want = ref[(size_t)((b * c.m + i) * y_cols + j)];
                    const double got = y.get((size_t)(b * y_batch + i * y_row + j));
                    if (!std::isfinite(got) && nan_at < 0) nan_at = (b * c.m + i) * y_cols + j;
                    err2 += (got - want) * (got - want);
                    ref2 += want * want;
                }
        const double rel = std::sqrt(err2 / (ref2 > 0 ? ref2 : 1.0));
        const double tol = c.act == DSK_DTYPE_F32 && y_type(c) == DSK_DTYPE_F32 ? 2e-5 : 8e-3;
        if (nan_at >= 0 || !(rel <= tol)) {
            std::fprintf(stderr, "FAIL [%s]: ||y-ref||/||ref|| = %.3g (tol %.1g)%s\n", name.c_str(), rel, tol,
                         nan_at >= 0 ? ", non-finite output" : "");
            ok = false;
        }
        // Nothing outside the window changed.
        const size_t esz = dtype_bytes(y_type(c));
        for (size_t e = 0; e < ny && ok; ++e) {
            const int64_t b = (int64_t)e / y_batch, rem = (int64_t)e % y_batch;
            const bool in_window = rem < c.m * y_row && rem % y_row < y_cols;
            (void)b;
            if (!in_window && std::memcmp(&y.bytes[e * esz], &y0.bytes[e * esz], esz) != 0) {
                std::fprintf(stderr, "FAIL [%s]: y element %zu outside the window was written\n", name.c_str(), e);
                ok = false;
            }
        }
        if (!ok) ++g_failed;
    }
}

const WeightSpec kSpecs[] = {
    {"f32", kF32, 0, 0, 0, false},
    {"bf16", kBF16, 0, 0, 0, false},
    {"fp8-128x128", kFP8, 128, 128, 0, false},
    {"fp8-16x32", kFP8, 16, 32, 0, false},
    {"fp8-3x40", kFP8, 3, 40, 0, false},  // blocks not whole 16-byte chunks: the tiled kernel
    {"int4-g32", kINT4, 0, 0, 32, false},  // non-integer zero points: the exact fallback of the INT4 decoder
    {"int4-g128", kINT4, 0, 0, 128, true},
};

void run_linear_checks(cudaStream_t stream) {
    struct Shape {
        int spec;
        int64_t in, out;
    };
    // Per scheme a chunk-aligned shape (GEMV) and, where the scheme allows, a misaligned or ragged one (tiled).
    // INT4 needs the stored cols (in, or out when transposed) to be multiples of the group.
    const Shape shapes[] = {
        {0, 256, 96}, {0, 102, 38}, {1, 256, 96}, {1, 100, 38}, {2, 576, 96}, {2, 136, 260},
        {3, 96, 48},  {3, 200, 34}, {4, 120, 46}, {5, 96, 64},  {6, 256, 128},
    };
    const int64_t ms[] = {1, 3, 16, 64, 257};
    const int32_t acts[] = {DSK_DTYPE_BF16, DSK_DTYPE_F32};
    int variant = 0;
    for (const Shape& s : shapes) {
        if (g_quick && s.in != 256 && s.in != 576 && s.in != 120) continue;  // bf16, f32 and int4 aligned, fp8 ragged
        for (int32_t act : acts) {
            for (int64_t m : ms) {
                if (g_quick && (m == 16 || m == 257)) continue;
                for (int epi = 0; epi < 3; ++epi) {
                    for (int transpose = 0; transpose < 2; ++transpose) {
                        for (int64_t batch : {1, 3}) {
                            ++variant;
                            LinearCase c{&kSpecs[s.spec], s.in, s.out, act, m, batch, transpose, epi,
                                         variant % 2 == 0, (variant / 2) % 3 == 0 ? 0 : 8, (variant / 3) % 2 == 0,
                                         batch > 1 && (variant / 5) % 2 == 0};
                            if (epi == DSK_EPILOGUE_SILU_MUL && c.out % 2 != 0) continue;
                            if (m == 257 && batch == 3 && s.in * s.out > 40000) continue;  // keep the reference fast
                            run_linear_case(c, stream);
                        }
                    }
                }
            }
        }
    }
    // x and y of different dtypes (a bf16 layer writing f32 logits, and the reverse), every scheme, both families.
    for (const Shape& s : shapes) {
        for (int64_t m : {1, 64, 257}) {
            for (int32_t act : acts) {
                ++variant;
                LinearCase c{&kSpecs[s.spec], s.in, s.out, act, m, 1, 0, variant % 3, variant % 2 == 0, 0, false, false};
                c.yact = act == DSK_DTYPE_BF16 ? DSK_DTYPE_F32 : DSK_DTYPE_BF16;
                if (c.epilogue == DSK_EPILOGUE_SILU_MUL && c.out % 2 != 0) c.epilogue = DSK_EPILOGUE_NONE;
                run_linear_case(c, stream);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// dsk_embedding

void run_embedding_case(const WeightSpec& spec, int64_t rows, int64_t cols, int32_t y_dt, int64_t y_offset,
                        cudaStream_t stream) {
    ++g_cases;
    const HostWeight hw = make_weight(spec, rows, cols, 1);
    const DevWeight dw(hw);
    const int64_t n = 7, y_row = cols + 3;
    std::vector<int32_t> ids = {3, 0, (int32_t)rows - 1, -1, 5, (int32_t)rows, 3};  // two bad ids: i = 3 and i = 5
    HostBuf y0(y_dt, (size_t)(y_offset + n * y_row));
    for (size_t e = 0; e < y0.bytes.size() / dtype_bytes(y_dt); ++e) y0.set(e, -7.0f);  // "left as it was" marker
    DevBuf dids(ids.size() * 4), dy(y0.bytes.size()), dword(32);
    dids.upload(ids.data());
    dy.upload(y0.bytes.data());
    CUDA_OK(cudaMemset(dword.d, 0, 32));
    CUDA_OK(cudaDeviceSynchronize());

    dsk_embedding_params p;
    std::memset(&p, 0, sizeof p);
    p.ids = static_cast<const int32_t*>(dids.d);
    p.table = dw.w;
    p.y = static_cast<uint8_t*>(dy.d) + y_offset * dtype_bytes(y_dt);
    p.error_word = static_cast<int32_t*>(dword.d);
    p.n = n;
    p.y_row_stride = y_row;
    p.y_dtype = y_dt;
    p.error_site = 42;
    p.stream = stream;
    char name[160];
    std::snprintf(name, sizeof name, "embedding %s rows %lld cols %lld y %s offset %lld", spec.name, (long long)rows,
                  (long long)cols, y_dt == DSK_DTYPE_F32 ? "f32" : "bf16", (long long)y_offset);
    const dsk_status st = dsk_embedding(&p);
    if (st != DSK_SUCCESS) {
        std::fprintf(stderr, "FAIL [%s]: status %d: %s\n", name, (int)st, dsk_last_error_message());
        ++g_failed;
        return;
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    HostBuf y(y_dt, y0.bytes.size() / dtype_bytes(y_dt));
    dy.download(y.bytes.data());
    int32_t word[8];
    dword.download(word);

    bool ok = true;
    // The report is the first bad id, i = 3 (-1), whatever order the blocks ran in.
    if (word[0] != 42 || word[1] != 3 || word[2] != -1 || word[3] != (int32_t)rows) {
        std::fprintf(stderr, "FAIL [%s]: error word {%d, %d, %d, %d}, want {42, 3, -1, %lld}\n", name,
                     word[0], word[1], word[2], word[3], (long long)rows);
        ok = false;
    }
    for (int64_t i = 0; i < n && ok; ++i) {
        const int32_t id = ids[(size_t)i];
        const bool bad = id < 0 || id >= rows;
        for (int64_t c = 0; c < cols && ok; ++c) {
            const size_t e = (size_t)(y_offset + i * y_row + c);
            const float want = bad ? -7.0f : (y_dt == DSK_DTYPE_F32 ? hw.value[(size_t)(id * cols + c)]
                                                                    : round_bf16(hw.value[(size_t)(id * cols + c)]));
            const float got = y.get(e);
            if (!(got == want)) {
                std::fprintf(stderr, "FAIL [%s]: y[%lld, %lld] = %.9g, want %.9g%s\n", name, (long long)i, (long long)c,
                             got, want, bad ? " (bad id: row must be left as it was)" : "");
                ok = false;
            }
        }
    }
    // Padding untouched.
    for (size_t e = 0; e < y.bytes.size() / dtype_bytes(y_dt) && ok; ++e) {
        const int64_t rel = (int64_t)e - y_offset;
        const bool in_view = rel >= 0 && rel % y_row < cols;
        if (!in_view && y.get(e) != -7.0f) {
            std::fprintf(stderr, "FAIL [%s]: y element %zu outside the rows was written\n", name, e);
            ok = false;
        }
    }
    if (!ok) ++g_failed;
}

void run_embedding_checks(cudaStream_t stream) {
    const int32_t dts[2] = {DSK_DTYPE_BF16, DSK_DTYPE_F32};
    for (int32_t dt : dts) {
        for (int64_t off : {0, 1}) {  // offset 1: misaligned y, the scalar path
            run_embedding_case(kSpecs[0], 9, 64, dt, off, stream);
            run_embedding_case(kSpecs[0], 9, 37, dt, off, stream);
            run_embedding_case(kSpecs[1], 9, 64, dt, off, stream);
            run_embedding_case(kSpecs[1], 9, 37, dt, off, stream);
            run_embedding_case(kSpecs[5], 9, 96, dt, off, stream);
            run_embedding_case(kSpecs[6], 9, 256, dt, off, stream);
            run_embedding_case(kSpecs[1], 9, 7168, dt, off, stream);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// dsk_dequantize_fp8

void run_dequantize_case(int64_t rows, int64_t cols, int64_t count, int block_rows, int block_cols, cudaStream_t stream) {
    ++g_cases;
    const int64_t srows = (rows + block_rows - 1) / block_rows, scols = (cols + block_cols - 1) / block_cols;
    const int64_t n = count * rows * cols;
    std::vector<uint8_t> codes((size_t)n);
    for (int64_t e = 0; e < n; ++e) codes[(size_t)e] = (uint8_t)(e * 37 + e / 256);  // every code, shuffled
    std::vector<float> scale((size_t)(count * srows * scols));
    const float special[] = {1.0f, 0.0f, -0.75f, 1e-40f, 3e-39f, 1.5e-30f, 300.0f, 3e36f, 1e38f, 0.0078125f};
    for (size_t s = 0; s < scale.size(); ++s) {
        scale[s] = s < sizeof special / sizeof special[0] ? special[s] : uniform(1e-4f, 1e-2f);
    }
    DevBuf dcodes(codes.size()), dscale(scale.size() * 4), dy((size_t)n * 4);
    dcodes.upload(codes.data());
    dscale.upload(scale.data());
    CUDA_OK(cudaMemset(dy.d, 0xff, dy.bytes));
    CUDA_OK(cudaDeviceSynchronize());

    dsk_dequantize_fp8_params p;
    std::memset(&p, 0, sizeof p);
    p.w.data = dcodes.d;
    p.w.scale = dscale.d;
    p.w.rows = rows;
    p.w.cols = cols;
    p.w.count = count;
    p.w.scheme = DSK_WEIGHT_FP8_BLOCK;
    p.w.dtype = DSK_DTYPE_FP8_E4M3;
    p.w.block_rows = block_rows;
    p.w.block_cols = block_cols;
    p.y = static_cast<float*>(dy.d);
    p.stream = stream;
    char name[128];
    std::snprintf(name, sizeof name, "dequantize_fp8 %lldx%lld x%lld blocks %dx%d", (long long)rows, (long long)cols,
                  (long long)count, block_rows, block_cols);
    const dsk_status st = dsk_dequantize_fp8(&p);
    if (st != DSK_SUCCESS) {
        std::fprintf(stderr, "FAIL [%s]: status %d: %s\n", name, (int)st, dsk_last_error_message());
        ++g_failed;
        return;
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    std::vector<float> y((size_t)n);
    dy.download(y.data());
    for (int64_t e = 0; e < n; ++e) {
        const int64_t m = e / (rows * cols), r = e / cols % rows, c = e % cols;
        const float s = scale[(size_t)((m * srows + r / block_rows) * scols + c / block_cols)];
        const float want = round_bf16(e4m3_to_f32(codes[(size_t)e]) * s);
        const float got = y[(size_t)e];
        uint32_t gb, wb;
        std::memcpy(&gb, &got, 4);
        std::memcpy(&wb, &want, 4);
        if (!(gb == wb || (std::isnan(got) && std::isnan(want)))) {
            std::fprintf(stderr, "FAIL [%s]: element %lld (code 0x%02x, scale %g) = %.9g (0x%08x), want %.9g (0x%08x)\n",
                         name, (long long)e, codes[(size_t)e], (double)s, got, gb, want, wb);
            ++g_failed;
            return;
        }
    }
}

void run_dequantize_checks(cudaStream_t stream) {
    run_dequantize_case(40, 300, 2, 128, 128, stream);  // vector path
    run_dequantize_case(40, 301, 2, 128, 128, stream);  // scalar path
    run_dequantize_case(64, 256, 1, 16, 32, stream);
    run_dequantize_case(17, 30, 3, 3, 6, stream);       // blocks not multiples of 4: scalar path
    run_dequantize_case(5, 1024, 1, 1, 4, stream);      // a scale per 4 codes: every special scale on the vector path
}

// ---------------------------------------------------------------------------------------------------------
// Benchmark: M = 1 and 16 at K = 7168, N = 2048, bf16 activations, each scheme; weights rotated through > 128 MiB
// so every launch streams from HBM. GB/s counts the weight bytes (data + scales + zeros) per launch.


void run_bench(cudaStream_t stream) {
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    const int64_t K = 7168, N = 2048;
    const size_t pool = (size_t)256 << 20;  // rotate through 256 MiB of weights
    void* big;
    CUDA_OK(cudaMalloc(&big, pool));
    CUDA_OK(cudaMemset(big, 0x3a, pool));  // FP8 0x3a = 1.25, bf16 0x3a3a ~ 7e-4, INT4 codes 10 and 3
    void* copy_dst;
    CUDA_OK(cudaMalloc(&copy_dst, pool));
    const double copy_us = median_us([&](int) {
        CUDA_OK(cudaMemcpyAsync(copy_dst, big, pool, cudaMemcpyDeviceToDevice, stream));
    }, stream, 20);
    const double copy_gbs = 2.0 * (double)pool / copy_us * 1e-3;  // bytes read + written
    std::printf("bench on %s: K %lld N %lld, bf16 x and y; copy %.0f GB/s (read + write)\n", prop.name, (long long)K,
                (long long)N, copy_gbs);
    std::printf("%-12s %4s %6s %10s %10s %8s\n", "scheme", "M", "path", "us", "GB/s", "x copy");

    void *x, *y;
    CUDA_OK(cudaMalloc(&x, (size_t)16 * K * 2));
    CUDA_OK(cudaMalloc(&y, (size_t)16 * N * 2));
    CUDA_OK(cudaMemset(x, 0x3c, (size_t)16 * K * 2));
    for (int si : {1, 2, 6}) {  // bf16, fp8 128x128, int4 g128
        const WeightSpec& spec = kSpecs[si];
        dsk_weight w;
        std::memset(&w, 0, sizeof w);
        w.rows = N;
        w.cols = K;
        w.count = 1;
        size_t data_bytes = 0, scale_bytes = 0, zero_bytes = 0;
        switch (spec.scheme) {
            case kBF16: w.scheme = DSK_WEIGHT_DENSE; w.dtype = DSK_DTYPE_BF16; data_bytes = (size_t)(N * K * 2); break;
            case kFP8:
                w.scheme = DSK_WEIGHT_FP8_BLOCK;
                w.dtype = DSK_DTYPE_FP8_E4M3;
                w.block_rows = w.block_cols = 128;
                data_bytes = (size_t)(N * K);
                scale_bytes = (size_t)((N / 128) * (K / 128) * 4);
                break;
            default:
                w.scheme = DSK_WEIGHT_INT4_GROUP;
                w.dtype = DSK_DTYPE_INT4;
                w.group_size = 128;
                data_bytes = (size_t)(N * K / 2);
                scale_bytes = zero_bytes = (size_t)(N * (K / 128) * 2);
                break;
        }
        const size_t per = (data_bytes + scale_bytes + zero_bytes + 255) / 256 * 256;
        const int copies = (int)(pool / per);
        for (int64_t M : {1, 16}) {
            for (int path : {DSK_LINEAR_PATH_SIMT, DSK_LINEAR_PATH_AUTO}) {
                dsk_linear_params p;
                std::memset(&p, 0, sizeof p);
                p.x = x;
                p.y = y;
                p.m = M;
                p.batch = 1;
                p.x_row_stride = K;
                p.y_row_stride = N;
                p.x_dtype = DSK_DTYPE_BF16;
                p.y_dtype = DSK_DTYPE_BF16;
                p.path = path;
                p.stream = stream;
                const double us = median_us([&](int i) {
                    uint8_t* base = static_cast<uint8_t*>(big) + (size_t)(i % copies) * per;
                    p.w = w;
                    p.w.data = base;
                    if (scale_bytes) p.w.scale = base + data_bytes;
                    if (zero_bytes) p.w.zero = base + data_bytes + scale_bytes;
                    if (dsk_linear(&p) != DSK_SUCCESS) {
                        std::fprintf(stderr, "bench: %s\n", dsk_last_error_message());
                        std::exit(2);
                    }
                }, stream, 100);
                const double gbs = (double)(data_bytes + scale_bytes + zero_bytes) / us * 1e-3;
                std::printf("%-12s %4lld %6s %10.2f %10.1f %8.2f\n", spec.name, (long long)M,
                            path == DSK_LINEAR_PATH_SIMT ? "SIMT" : "AUTO", us, gbs, gbs / copy_gbs);
            }
        }
    }
    CUDA_OK(cudaFree(x));
    CUDA_OK(cudaFree(y));
    CUDA_OK(cudaFree(copy_dst));
    CUDA_OK(cudaFree(big));
}

}  // namespace

int main(int argc, char** argv) {
    if (!gpu_present()) return 77;
    bool bench = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--bench") == 0) bench = true;
        if (std::strcmp(argv[i], "--quick") == 0) g_quick = true;
    }
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    run_dequantize_checks(stream);
    run_embedding_checks(stream);
    run_linear_checks(stream);
    std::printf("linear_check: %d of %d cases passed\n", g_cases - g_failed, g_cases);
    if (bench) run_bench(stream);
    CUDA_OK(cudaStreamDestroy(stream));
    return g_failed == 0 ? 0 : 1;
}

// grouped_linear_check.cu: dsk_grouped_linear (the experts' grouped GEMM) on a GPU against a CPU reference, plus an
// optional timing of DeepSeek-V3's expert shapes against a per-expert cuBLAS loop and a copy (--bench).
//
// Cases: every weight scheme (f32, bf16, FP8 with 128 x 128 blocks on ragged shapes (in 200 / out 136), 16 x 32 and 3 x 40
// blocks, INT4 g32 with non-integer zero points and g128), x and y F32 / BF16 (also mixed), epilogues NONE and SILU_MUL,
// padded row strides, paths SIMT, AUTO, MMA (wgmma on Hopper with an sm_90a build) and MMA_SYNC (where the library
// accepts them), and row distributions: experts with no
// rows, all rows to one expert, one row per expert, decode (8 rows on 8 of 64 experts: GEMV tiles of one row), many rows
// per expert (several row tiles of one expert),
// more than 32 experts (the device scan's second chunk), rows before offsets[0] and after offsets[count] (never
// written). The reference is float64 over the exact dequantised weights; y is poisoned with NaN bytes first and every
// element outside the experts' rows and columns must be unchanged.
// Bad offsets (out of range: negative and > m; decreasing; in the first and a later chunk of 32): the call succeeds,
// y is left as it was, and the error word is {site, lowest bad index of the first kind, its value, bound, kind} with
// range errors (bound m + 1, kind 0) before order errors (bound count + 1, kind 1); an error recorded before is kept.
// Error bound per case, ||y - ref|| / ||ref|| over the rows: 2e-5 with f32 x and y, 8e-3 otherwise; no NaN.
//
// Exits 77 (ctest: skipped) when no CUDA device is present.
//
//   dsk_grouped_linear_check           run the checks
//   dsk_grouped_linear_check --quick   fewer schemes and distributions (e.g. under the host emulation)
//   dsk_grouped_linear_check --bench   also time DeepSeek-V3's experts (256 experts, top-8; fused gate|up [4096, 7168]
//                                      with SILU_MUL and down [7168, 2048]) at 8, 128, 1024 and 32768 rows, bf16 / FP8 /
//                                      INT4 weights, against a per-expert cublasGemmEx loop (bf16) and a copy of the
//                                      used experts' weight bytes
#include <cuda_runtime.h>
#include <cublas_v2.h>

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
bool g_quick = false;

// ---------------------------------------------------------------------------------------------------------
// Weights: check_weights.cuh (shared with linear_check.cu).

const WeightSpec kSpecs[] = {
    {"f32", kF32, 0, 0, 0, false},
    {"bf16", kBF16, 0, 0, 0, false},
    {"fp8-128x128", kFP8, 128, 128, 0, false},
    {"fp8-16x32", kFP8, 16, 32, 0, false},
    {"fp8-3x40", kFP8, 3, 40, 0, false},    // blocks not whole 16-byte chunks: the tiled SIMT kernel
    {"int4-g32", kINT4, 0, 0, 32, false},   // non-integer zero points
    {"int4-g128", kINT4, 0, 0, 128, true},
};

// ---------------------------------------------------------------------------------------------------------
// Good offsets

struct GroupedCase {
    const WeightSpec* spec;
    int64_t in, out;         // per expert: w [out, in]
    std::vector<int32_t> offsets;  // [experts + 1]
    int64_t m;               // rows of x and y
    int32_t xt, yt;          // x and y dtypes
    int epilogue;
    int64_t pad;             // extra elements per row of x and y
    const char* dist;        // what the row distribution tests
};

const char* dt_name(int32_t dt) { return dt == DSK_DTYPE_F32 ? "f32" : "bf16"; }

dsk_grouped_linear_params base_params(const void* x, const void* offsets, const dsk_weight& w, void* y, void* word,
                                      int64_t m, int64_t x_row, int64_t y_row, int32_t xt, int32_t yt, int epi,
                                      int path, cudaStream_t stream) {
    dsk_grouped_linear_params p;
    std::memset(&p, 0, sizeof p);
    p.x = x;
    p.expert_offsets = static_cast<const int32_t*>(offsets);
    p.w = w;
    p.y = y;
    p.error_word = static_cast<int32_t*>(word);
    p.m = m;
    p.x_row_stride = x_row;
    p.y_row_stride = y_row;
    p.x_dtype = xt;
    p.y_dtype = yt;
    p.epilogue = epi;
    p.path = path;
    p.error_site = 17;
    p.stream = stream;
    return p;
}

void run_case(const GroupedCase& c, cudaStream_t stream) {
    const int64_t experts = (int64_t)c.offsets.size() - 1;
    const HostWeight hw = make_weight(*c.spec, c.out, c.in, experts);
    const DevWeight dw(hw);
    const bool silu = c.epilogue == DSK_EPILOGUE_SILU_MUL;
    const int64_t y_cols = silu ? c.out / 2 : c.out;
    const int64_t x_row = c.in + c.pad, y_row = y_cols + c.pad;
    HostBuf x(c.xt, (size_t)(c.m * x_row)), y0(c.yt, (size_t)(c.m * y_row));
    for (int64_t i = 0; i < c.m; ++i)
        for (int64_t k = 0; k < c.in; ++k) x.set((size_t)(i * x_row + k), uniform(-1.0f, 1.0f));

    // Reference: rows of expert e times matrix e; other rows stay NaN (poison).
    std::vector<double> ref((size_t)(c.m * y_cols), std::nan(""));
    std::vector<double> acc((size_t)c.out);
    for (int64_t e = 0; e < experts; ++e) {
        const float* wm = hw.value.data() + (size_t)(e * c.out * c.in);
        for (int64_t i = c.offsets[(size_t)e]; i < c.offsets[(size_t)e + 1]; ++i) {
            for (int64_t n = 0; n < c.out; ++n) {
                double s = 0.0;
                for (int64_t k = 0; k < c.in; ++k) s += (double)x.get((size_t)(i * x_row + k)) * wm[n * c.in + k];
                acc[(size_t)n] = s;
            }
            for (int64_t j = 0; j < y_cols; ++j) {
                double v = acc[(size_t)j];
                if (silu) v = v / (1.0 + std::exp(-v)) * acc[(size_t)(c.out / 2 + j)];
                ref[(size_t)(i * y_cols + j)] = v;
            }
        }
    }
    const int64_t lo = c.offsets.front(), hi = c.offsets.back();

    DevBuf dx(x.bytes.size()), dy(y0.bytes.size()), doff(c.offsets.size() * 4), dword(32);
    dx.upload(x.bytes.data());
    doff.upload(c.offsets.data());
    // MMA is Hopper's wgmma where the library holds sm_90a code and the GPU is cc 9.0 (else mma.sync); MMA_SYNC mma.sync.
    const int paths[4] = {DSK_LINEAR_PATH_SIMT, DSK_LINEAR_PATH_AUTO, DSK_LINEAR_PATH_MMA, DSK_LINEAR_PATH_MMA_SYNC};
    const char* path_names[4] = {"SIMT", "AUTO", "MMA", "MMA_SYNC"};
    for (int pi = 0; pi < 4; ++pi) {
        dy.upload(y0.bytes.data());
        CUDA_OK(cudaMemset(dword.d, 0, 32));
        CUDA_OK(cudaDeviceSynchronize());
        const dsk_grouped_linear_params p = base_params(dx.d, doff.d, dw.w, dy.d, dword.d, c.m, x_row, y_row, c.xt,
                                                        c.yt, c.epilogue, paths[pi], stream);
        const dsk_status st = dsk_grouped_linear(&p);
        if ((paths[pi] == DSK_LINEAR_PATH_MMA || paths[pi] == DSK_LINEAR_PATH_MMA_SYNC) && st == DSK_ERROR_UNSUPPORTED) continue;
        ++g_cases;
        char name[320];
        std::snprintf(name, sizeof name, "%s in %lld out %lld experts %lld m %lld (%s) x %s y %s epi %s pad %lld path %s",
                      c.spec->name, (long long)c.in, (long long)c.out, (long long)experts, (long long)c.m, c.dist,
                      dt_name(c.xt), dt_name(c.yt), silu ? "silu_mul" : "none", (long long)c.pad, path_names[pi]);
        if (st != DSK_SUCCESS) {
            std::fprintf(stderr, "FAIL [%s]: status %d: %s\n", name, (int)st, dsk_last_error_message());
            ++g_failed;
            continue;
        }
        CUDA_OK(cudaStreamSynchronize(stream));
        HostBuf y(c.yt, y0.bytes.size() / dtype_bytes(c.yt));
        dy.download(y.bytes.data());
        int32_t word[8];
        dword.download(word);
        bool ok = true;
        if (word[0] != 0) {
            std::fprintf(stderr, "FAIL [%s]: error word set {%d, %d, %d, %d, %d} for good offsets\n", name, word[0],
                         word[1], word[2], word[3], word[4]);
            ok = false;
        }
        double err2 = 0.0, ref2 = 0.0;
        bool nan = false;
        for (int64_t i = lo; i < hi; ++i)
            for (int64_t j = 0; j < y_cols; ++j) {
                const double want = ref[(size_t)(i * y_cols + j)];
                const double got = y.get((size_t)(i * y_row + j));
                if (!std::isfinite(got)) nan = true;
                err2 += (got - want) * (got - want);
                ref2 += want * want;
            }
        const double rel = std::sqrt(err2 / (ref2 > 0 ? ref2 : 1.0));
        const double tol = c.xt == DSK_DTYPE_F32 && c.yt == DSK_DTYPE_F32 ? 2e-5 : 8e-3;
        if (nan || !(rel <= tol)) {
            std::fprintf(stderr, "FAIL [%s]: ||y-ref||/||ref|| = %.3g (tol %.1g)%s\n", name, rel, tol,
                         nan ? ", non-finite output" : "");
            ok = false;
        }
        const size_t esz = dtype_bytes(c.yt);
        for (size_t e = 0; e < y.bytes.size() / esz && ok; ++e) {
            const int64_t row = (int64_t)e / y_row, col = (int64_t)e % y_row;
            const bool in_window = row >= lo && row < hi && col < y_cols;
            if (!in_window && std::memcmp(&y.bytes[e * esz], &y0.bytes[e * esz], esz) != 0) {
                std::fprintf(stderr, "FAIL [%s]: y element %zu (row %lld, col %lld) outside the experts' rows was written\n",
                             name, e, (long long)row, (long long)col);
                ok = false;
            }
        }
        if (!ok) ++g_failed;
    }
}

// Offsets of `counts` rows per expert starting at row `first`.
std::vector<int32_t> offsets_of(int32_t first, const std::vector<int32_t>& counts) {
    std::vector<int32_t> o(1, first);
    for (int32_t c : counts) o.push_back(o.back() + c);
    return o;
}

void run_good_checks(cudaStream_t stream) {
    struct Shape {
        int spec;
        int64_t in, out;
    };
    // Per scheme a chunk-aligned shape (the GEMV, MMA) and where the scheme allows a misaligned / ragged one (tiled SIMT).
    const Shape shapes[] = {
        {0, 64, 32},  {0, 50, 22}, {1, 64, 48},  {1, 100, 38}, {2, 200, 136}, {3, 96, 48},
        {4, 120, 46}, {5, 96, 32}, {6, 256, 64},
    };
    struct Dist {
        const char* name;
        int64_t m;
        std::vector<int32_t> offsets;
    };
    const std::vector<Dist> dists = {
        // 5 experts, two with no rows, rows 0-1 before offsets[0] and the last 2 after offsets[5].
        {"mixed, empty experts, rows outside", 24, offsets_of(2, {3, 0, 9, 0, 8})},
        {"all rows to one expert", 19, offsets_of(0, {0, 0, 19, 0})},
        {"one row per expert", 6, offsets_of(0, {1, 1, 1, 1, 1, 1})},
        // decode: 8 rows on 8 of 64 experts (GEMV tiles of one row), the last expert included
        {"decode, 8 of 64 experts", 8, offsets_of(0, {0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0,
                                                      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1})},
    };
    const std::vector<Dist> extra = {
        // 40 experts (two chunks of the device scan), many empty; one expert with 3 row tiles of the GEMV.
        {"40 experts", 36, offsets_of(1, {2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20, 0, 3, 0, 0, 8})},
        {"two experts, many rows", 40, offsets_of(0, {21, 19})},
    };
    int variant = 0;
    for (const Shape& s : shapes) {
        if (g_quick && s.spec != 1 && s.spec != 2 && s.spec != 4 && s.spec != 6) continue;
        for (size_t di = 0; di < dists.size() + extra.size(); ++di) {
            const Dist& d = di < dists.size() ? dists[di] : extra[di - dists.size()];
            if (g_quick && di >= dists.size() && s.spec != 1) continue;
            ++variant;
            const int32_t xt = variant % 3 == 0 ? DSK_DTYPE_F32 : DSK_DTYPE_BF16;
            const int32_t yt = variant % 4 == 1 ? (xt == DSK_DTYPE_F32 ? DSK_DTYPE_BF16 : DSK_DTYPE_F32) : xt;
            for (int epi : {DSK_EPILOGUE_NONE, DSK_EPILOGUE_SILU_MUL}) {
                if (epi == DSK_EPILOGUE_SILU_MUL && s.out % 2 != 0) continue;
                if (g_quick && (variant + epi) % 2 == 1 && di != 0) continue;
                GroupedCase c{&kSpecs[s.spec], s.in, s.out, d.offsets, d.m, xt, yt, epi, (variant + epi) % 2 ? 8 : 0,
                              d.name};
                run_case(c, stream);
            }
        }
    }
    // Both dtypes of x with bf16 and fp8 weights on every distribution of the first list (quick: the first one).
    for (int32_t xt : {DSK_DTYPE_F32, DSK_DTYPE_BF16}) {
        for (int si : {1, 2}) {
            const Shape& s = si == 1 ? shapes[2] : shapes[4];
            GroupedCase c{&kSpecs[si], s.in, s.out, dists[0].offsets, dists[0].m, xt, xt, DSK_EPILOGUE_SILU_MUL, 0,
                          dists[0].name};
            run_case(c, stream);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Bad offsets: y untouched, the error word as the header states.

void run_bad_case(const char* what, int64_t m, const std::vector<int32_t>& offsets, const int32_t want[5],
                  bool pre_recorded, cudaStream_t stream) {
    const int64_t experts = (int64_t)offsets.size() - 1;
    const HostWeight hw = make_weight(kSpecs[1], 32, 64, experts);
    const DevWeight dw(hw);
    const int64_t in = 64, out = 32;
    HostBuf x(DSK_DTYPE_BF16, (size_t)(m * in)), y0(DSK_DTYPE_BF16, (size_t)(m * out));
    for (size_t i = 0; i < (size_t)(m * in); ++i) x.set(i, uniform(-1.0f, 1.0f));
    DevBuf dx(x.bytes.size()), dy(y0.bytes.size()), doff(offsets.size() * 4), dword(32);
    dx.upload(x.bytes.data());
    doff.upload(offsets.data());
    // MMA is Hopper's wgmma where the library holds sm_90a code and the GPU is cc 9.0 (else mma.sync); MMA_SYNC mma.sync.
    const int paths[4] = {DSK_LINEAR_PATH_SIMT, DSK_LINEAR_PATH_AUTO, DSK_LINEAR_PATH_MMA, DSK_LINEAR_PATH_MMA_SYNC};
    const char* path_names[4] = {"SIMT", "AUTO", "MMA", "MMA_SYNC"};
    for (int pi = 0; pi < 4; ++pi) {
        dy.upload(y0.bytes.data());
        int32_t init[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (pre_recorded) {
            init[0] = 99;
            init[1] = 7;
        }
        dword.upload(init);
        CUDA_OK(cudaDeviceSynchronize());
        const dsk_grouped_linear_params p = base_params(dx.d, doff.d, dw.w, dy.d, dword.d, m, in, out, DSK_DTYPE_BF16,
                                                        DSK_DTYPE_BF16, DSK_EPILOGUE_NONE, paths[pi], stream);
        const dsk_status st = dsk_grouped_linear(&p);
        if ((paths[pi] == DSK_LINEAR_PATH_MMA || paths[pi] == DSK_LINEAR_PATH_MMA_SYNC) && st == DSK_ERROR_UNSUPPORTED) continue;
        ++g_cases;
        char name[200];
        std::snprintf(name, sizeof name, "bad offsets: %s (experts %lld, m %lld) path %s", what, (long long)experts,
                      (long long)m, path_names[pi]);
        if (st != DSK_SUCCESS) {
            std::fprintf(stderr, "FAIL [%s]: status %d: %s\n", name, (int)st, dsk_last_error_message());
            ++g_failed;
            continue;
        }
        CUDA_OK(cudaStreamSynchronize(stream));
        std::vector<uint8_t> y(y0.bytes.size());
        dy.download(y.data());
        int32_t word[8];
        dword.download(word);
        bool ok = true;
        const int32_t* expect = pre_recorded ? init : want;
        if (std::memcmp(word, expect, 5 * sizeof(int32_t)) != 0) {
            std::fprintf(stderr, "FAIL [%s]: error word {%d, %d, %d, %d, %d}, want {%d, %d, %d, %d, %d}\n", name, word[0],
                         word[1], word[2], word[3], word[4], expect[0], expect[1], expect[2], expect[3], expect[4]);
            ok = false;
        }
        if (y != y0.bytes) {
            std::fprintf(stderr, "FAIL [%s]: y was written\n", name);
            ok = false;
        }
        if (!ok) ++g_failed;
    }
}

void run_bad_checks(cudaStream_t stream) {
    const int64_t m = 20;
    {   // out of range (index 2: 23 > m) and decreasing (index 3): the range error wins
        const int32_t want[5] = {17, 2, 23, 21, 0};
        run_bad_case("above m before a decrease", m, {0, 4, 23, 5, 20}, want, false, stream);
    }
    {   // negative at index 3, decreasing at index 1
        const int32_t want[5] = {17, 3, -1, 21, 0};
        run_bad_case("negative after a decrease", m, {0, 9, 4, -1, 20}, want, false, stream);
    }
    {   // decreasing only: the first i with offsets[i] < offsets[i - 1]
        const int32_t want[5] = {17, 2, 3, 6, 1};
        run_bad_case("decreasing", m, {0, 5, 3, 8, 6, 20}, want, false, stream);
    }
    {   // an error recorded before the call is kept
        const int32_t want[5] = {17, 2, 3, 6, 1};
        run_bad_case("decreasing, earlier error kept", m, {0, 5, 3, 8, 6, 20}, want, true, stream);
    }
    // 40 experts: the bad offsets in the scan's second chunk of 32.
    std::vector<int32_t> o(41);
    for (int i = 0; i <= 40; ++i) o[(size_t)i] = i / 2;
    {
        std::vector<int32_t> bad = o;
        bad[37] = 15;  // 37 / 2 = 18 before: decreasing at 37 (15 < bad[36] = 18)
        const int32_t want[5] = {17, 37, 15, 41, 1};
        run_bad_case("decreasing in the second chunk", m, bad, want, false, stream);
        bad[39] = 21;  // and above m at 39
        const int32_t want2[5] = {17, 39, 21, 21, 0};
        run_bad_case("above m in the second chunk", m, bad, want2, false, stream);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Benchmark: DeepSeek-V3's routed experts.

__global__ void fill_bytes_kernel(uint8_t* p, size_t n, uint32_t seed, uint8_t mask) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 0x9e3779b9u ^ seed;
        h ^= h >> 15;
        h *= 0x2c1b3c6du;
        h ^= h >> 12;
        p[i] = (uint8_t)h & mask;
    }
}
__global__ void fill_u32_kernel(uint32_t* p, size_t n, uint32_t v) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) p[i] = v;
}

struct BenchWeight {
    dsk_weight w{};
    size_t data_bytes = 0, scale_bytes = 0, zero_bytes = 0;
    size_t expert_bytes() const { return (data_bytes + scale_bytes + zero_bytes) / (size_t)w.count; }
};

// A stack of `experts` [rows, cols] matrices in the scheme (bf16, fp8 128x128, int4 g128), filled on the device.
BenchWeight bench_weight(Scheme s, int64_t rows, int64_t cols, int64_t experts) {
    BenchWeight b;
    b.w.rows = rows;
    b.w.cols = cols;
    b.w.count = experts;
    const size_t n = (size_t)(experts * rows * cols);
    void *d = nullptr, *sc = nullptr, *z = nullptr;
    if (s == kBF16) {
        b.w.scheme = DSK_WEIGHT_DENSE;
        b.w.dtype = DSK_DTYPE_BF16;
        b.data_bytes = n * 2;
        CUDA_OK(cudaMalloc(&d, b.data_bytes));
        fill_bf16(d, n, 0.05f, 11);
    } else if (s == kFP8) {
        b.w.scheme = DSK_WEIGHT_FP8_BLOCK;
        b.w.dtype = DSK_DTYPE_FP8_E4M3;
        b.w.block_rows = b.w.block_cols = 128;
        b.data_bytes = n;
        b.scale_bytes = (size_t)(experts * ((rows + 127) / 128) * ((cols + 127) / 128)) * 4;
        CUDA_OK(cudaMalloc(&d, b.data_bytes));
        CUDA_OK(cudaMalloc(&sc, b.scale_bytes));
        fill_bytes_kernel<<<1024, 256>>>(static_cast<uint8_t*>(d), n, 12, 0xb7);  // no NaN codes
        fill_u32_kernel<<<256, 256>>>(static_cast<uint32_t*>(sc), b.scale_bytes / 4, 0x3a83126fu);  // 1e-3f
    } else {
        b.w.scheme = DSK_WEIGHT_INT4_GROUP;
        b.w.dtype = DSK_DTYPE_INT4;
        b.w.group_size = 128;
        b.data_bytes = n / 2;
        b.scale_bytes = b.zero_bytes = (size_t)(experts * rows * (cols / 128)) * 2;
        CUDA_OK(cudaMalloc(&d, b.data_bytes));
        CUDA_OK(cudaMalloc(&sc, b.scale_bytes));
        CUDA_OK(cudaMalloc(&z, b.zero_bytes));
        fill_bytes_kernel<<<1024, 256>>>(static_cast<uint8_t*>(d), b.data_bytes, 13, 0xff);
        fill_u32_kernel<<<256, 256>>>(static_cast<uint32_t*>(sc), b.scale_bytes / 4, 0x3c233c23u);  // bf16 0.01 pairs
        fill_u32_kernel<<<256, 256>>>(static_cast<uint32_t*>(z), b.zero_bytes / 4, 0x41004100u);     // bf16 8.0 pairs
    }
    CUDA_OK(cudaGetLastError());
    b.w.data = d;
    b.w.scale = sc;
    b.w.zero = z;
    return b;
}

void free_weight(BenchWeight& b) {
    cudaFree(const_cast<void*>(b.w.data));
    if (b.w.scale) cudaFree(const_cast<void*>(b.w.scale));
    if (b.w.zero) cudaFree(const_cast<void*>(b.w.zero));
}

void run_bench(cudaStream_t stream) {
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    const int64_t E = 256, top_k = 8, hidden = 7168, inter = 2048;
    const int64_t row_counts[] = {8, 128, 1024, 32768};
    const int64_t max_rows = 32768;
    constexpr int kRoutings = 4;  // routings rotated per launch, so small launches do not run from L2
    cublasHandle_t handle;
    CUBLAS_OK(cublasCreate(&handle));
    CUBLAS_OK(cublasSetStream(handle, stream));

    void *x, *y, *copy_dst;
    CUDA_OK(cudaMalloc(&x, (size_t)(max_rows * hidden) * 2));
    CUDA_OK(cudaMalloc(&y, (size_t)(max_rows * 2 * inter) * 2));
    fill_bf16(x, (size_t)(max_rows * hidden), 1.0f, 1);
    const size_t copy_max = (size_t)E * (size_t)(2 * inter * hidden) * 2;  // every gate|up expert in bf16
    CUDA_OK(cudaMalloc(&copy_dst, copy_max));
    CUDA_OK(cudaDeviceSynchronize());

    std::printf("\nbench on %s: DeepSeek-V3 routed experts (%lld experts, top-%lld), bf16 x and y; median of 20\n",
                prop.name, (long long)E, (long long)top_k);
    std::printf("%-7s %-9s %-6s %5s %9s %10s %9s %9s %8s %9s %8s\n", "rows", "proj", "scheme", "used", "MB used",
                "us", "GB/s", "TFLOP/s", "x copy", "cuBLAS us", "x cuBLAS");
    for (int proj = 0; proj < 2; ++proj) {
        const int64_t out = proj == 0 ? 2 * inter : hidden, in = proj == 0 ? hidden : inter;
        const int epi = proj == 0 ? DSK_EPILOGUE_SILU_MUL : DSK_EPILOGUE_NONE;
        const int64_t y_cols = proj == 0 ? inter : hidden;
        BenchWeight ws[3] = {bench_weight(kBF16, out, in, E), bench_weight(kFP8, out, in, E), bench_weight(kINT4, out, in, E)};
        CUDA_OK(cudaDeviceSynchronize());
        for (int64_t rows : row_counts) {
            const int64_t tokens = rows / top_k;
            // Routings: each token's top_k distinct experts from a hash; offsets and host counts per routing.
            std::vector<std::vector<int32_t>> counts(kRoutings, std::vector<int32_t>((size_t)E, 0));
            std::vector<int32_t*> d_off(kRoutings);
            std::vector<int64_t> used(kRoutings, 0);
            for (int r = 0; r < kRoutings; ++r) {
                g_rng = 0x1234567ull + (uint64_t)r * 7919u + (uint64_t)rows;
                for (int64_t t = 0; t < tokens; ++t) {
                    std::vector<int32_t> chosen;
                    while ((int64_t)chosen.size() < top_k) {
                        const int32_t e = (int32_t)(next_u32() % (uint32_t)E);
                        if (std::find(chosen.begin(), chosen.end(), e) == chosen.end()) chosen.push_back(e);
                    }
                    for (int32_t e : chosen) ++counts[(size_t)r][(size_t)e];
                }
                std::vector<int32_t> off = offsets_of(0, counts[(size_t)r]);
                d_off[(size_t)r] = upload(off);
                for (int32_t c : counts[(size_t)r]) used[(size_t)r] += c > 0;
            }
            int32_t* word;
            CUDA_OK(cudaMalloc(&word, 32));
            CUDA_OK(cudaMemset(word, 0, 32));
            const double flop = 2.0 * (double)rows * (double)out * (double)in;
            // The per-expert cuBLAS loop (bf16 weights), host-known counts.
            const float alpha = 1.0f, beta = 0.0f;
            const double t_cublas = median_us([&](int i) {
                const int r = i % kRoutings;
                int64_t row0 = 0;
                for (int64_t e = 0; e < E; ++e) {
                    const int n = counts[(size_t)r][(size_t)e];
                    if (n == 0) continue;
                    const uint8_t* we = static_cast<const uint8_t*>(ws[0].w.data) + (size_t)e * (size_t)(out * in) * 2;
                    CUBLAS_OK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)out, n, (int)in, &alpha, we,
                                           CUDA_R_16BF, (int)in, static_cast<const uint8_t*>(x) + (size_t)(row0 * in) * 2,
                                           CUDA_R_16BF, (int)in, &beta,
                                           static_cast<uint8_t*>(y) + (size_t)(row0 * out) * 2, CUDA_R_16BF, (int)out,
                                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
                    row0 += n;
                }
            }, stream, 20);
            for (int si = 0; si < 3; ++si) {
                const BenchWeight& bw = ws[si];
                const double used_bytes = (double)used[0] * (double)bw.expert_bytes();
                const size_t copy_bytes = std::min(copy_max, (size_t)used_bytes);
                const double t_copy = median_us([&] {
                    CUDA_OK(cudaMemcpyAsync(copy_dst, bw.w.data, copy_bytes, cudaMemcpyDeviceToDevice, stream));
                }, stream, 20);
                const double us = median_us([&](int i) {
                    dsk_grouped_linear_params p = base_params(x, d_off[(size_t)(i % kRoutings)], bw.w, y, word, rows,
                                                              in, y_cols, DSK_DTYPE_BF16, DSK_DTYPE_BF16, epi,
                                                              DSK_LINEAR_PATH_AUTO, stream);
                    if (dsk_grouped_linear(&p) != DSK_SUCCESS) {
                        std::fprintf(stderr, "bench: %s\n", dsk_last_error_message());
                        std::exit(2);
                    }
                }, stream, 20);
                const char* scheme = si == 0 ? "bf16" : si == 1 ? "fp8" : "int4";
                std::printf("%-7lld %-9s %-6s %5lld %9.1f %10.1f %9.0f %9.1f %8.2f %9.1f %8.2f\n", (long long)rows,
                            proj == 0 ? "gate|up" : "down", scheme, (long long)used[0], used_bytes * 1e-6, us,
                            used_bytes / us * 1e-3, flop / us * 1e-6, t_copy / us, t_cublas, t_cublas / us);
            }
            int32_t h_word[8];
            CUDA_OK(cudaMemcpy(h_word, word, 32, cudaMemcpyDeviceToHost));
            if (h_word[0] != 0) std::fprintf(stderr, "bench: error word set (%d, %d)\n", h_word[0], h_word[1]);
            CUDA_OK(cudaFree(word));
            for (int32_t* d : d_off) CUDA_OK(cudaFree(d));
        }
        for (BenchWeight& b : ws) free_weight(b);
    }
    CUBLAS_OK(cublasDestroy(handle));
    CUDA_OK(cudaFree(x));
    CUDA_OK(cudaFree(y));
    CUDA_OK(cudaFree(copy_dst));
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
    run_bad_checks(stream);
    run_good_checks(stream);
    std::printf("grouped_linear_check: %d of %d cases passed\n", g_cases - g_failed, g_cases);
    if (bench) run_bench(stream);
    CUDA_OK(cudaStreamDestroy(stream));
    return g_failed == 0 ? 0 : 1;
}

// attention_mma_check.cu: dsk_paged_attention's bf16 tensor-core family (paged_attention_mma.cu) on a GPU against a CPU
// reference, plus an optional timing (--bench). Every case runs twice: path MMA (on a cc 9.0 GPU with a library built for
// sm_90a, the wgmma variant, paged_attention_wgmma.cu; the host emulation is such a GPU) and path MMA_SYNC.
//
// Cases: single sequences (prefill from scratch, n = L) of 1, 2, 63, 64, 65, 130, a few hundred and 2500 keys; a chunk
// of 600 queries continuing a cache of 2500 keys; mixed batches
// (prefill from scratch, a chunk continuing a cache, single decode tokens, a sequence without queries, query rows
// before the first and after the last sequence); page sizes 16 and 64 with the pages of every sequence at random
// places of a pool (out of order); GQA 1:1, 4:1, 7:1; head_dim 64 and 128; q f32 / bf16; out f32 / bf16. Unused
// pages, the slots past L of a sequence's last page, and block-table entries past ceil(L / page_size) (set to
// out-of-range values) must never be read: pages hold NaN there, and a read table entry would skip the sequence.
// A batch with one out-of-range table entry: that sequence is skipped, the others are right, the error word names
// the block-table site. Reference: float64, with the q values as given (f32 or bf16) and the bf16 pages; each output
// element must be within 1e-2 * mag (mag = max over d of sum_j softmax_j |V[j, d]|: room for q and P rounded to bf16
// and a bf16 output) and finite; rows outside every sequence and the guard after out stay poisoned (NaN bytes).
// Refusals: f32 pages, head_dim 96, head_dim != v_head_dim (DSK_ERROR_UNSUPPORTED).
// Exits 77 (ctest: skipped) when no CUDA device is present.
//
//   dsk_attention_mma_check            run the checks
//   dsk_attention_mma_check --quick    a smaller set (the host emulation: EMU_CHECK=attention_mma tests/emu/run.sh)
//   dsk_attention_mma_check --bench    also time (both paths) causal prefill, 32 q / 8 kv heads x 128, page 64, bf16 q and out:
//                                      one sequence of 8192 tokens and a varlen batch of 16 x 1024, in TFLOP/s over
//                                      the unmasked half (4 * sum_i (p_i + 1) * head_dim per q head) against cuBLAS
//                                      bf16 GEMM 8192^3 (cublasGemmEx) measured in the same run; median of 20.
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

int g_cases = 0;
int g_failed = 0;

constexpr int kErrorSiteTable = 11, kErrorSiteLengths = 12, kErrorSiteStarts = 13;

struct Seq {
    int n, L;  // queries, keys (n <= L)
};

struct AttnCase {
    const char* name;
    std::vector<Seq> seqs;
    int page_size;
    int q_heads, kv_heads, head_dim;
    int q_dtype, out_dtype;
    int lead, tail;   // query rows before the first sequence and after the last (never written)
    int bad_seq;      // >= 0: this sequence gets an out-of-range block-table entry (skipped; error word set)
};

const char* dt_str(int d) { return d == DSK_DTYPE_F32 ? "f32" : "bf16"; }

int32_t g_path = DSK_ATTENTION_PATH_MMA;  // MMA (wgmma where the GPU and the build have it) or MMA_SYNC
const char* path_str(int32_t path) { return path == DSK_ATTENTION_PATH_MMA ? "MMA" : "MMA_SYNC"; }

template <class T> T* to_device(const std::vector<T>& v) {
    T* d = nullptr;
    CUDA_OK(cudaMalloc(&d, v.size() * sizeof(T) + 16));
    CUDA_OK(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

void fill_params(dsk_paged_attention_params& p) {
    std::memset(&p, 0, sizeof p);
    p.error_site_block_table = kErrorSiteTable;
    p.error_site_lengths = kErrorSiteLengths;
    p.error_site_query_starts = kErrorSiteStarts;
    p.path = g_path;
}

void run_case(const AttnCase& c, cudaStream_t stream) {
    ++g_cases;
    const int batch = (int)c.seqs.size(), ps = c.page_size, H = c.q_heads, KH = c.kv_heads, D = c.head_dim;
    std::vector<int32_t> starts(batch + 1);
    starts[0] = c.lead;
    for (int b = 0; b < batch; ++b) starts[b + 1] = starts[b] + c.seqs[b].n;
    const int tokens = starts[batch] + c.tail;
    // Pages: each sequence's ceil(L / ps) pages at random places of a pool with 3 spare pages (left NaN).
    int max_pages = 1, used = 0;
    for (const Seq& s : c.seqs) {
        max_pages = std::max(max_pages, (s.L + ps - 1) / ps + 1);
        used += (s.L + ps - 1) / ps;
    }
    const int pool = used + 3;
    std::vector<int32_t> perm(pool);
    for (int i = 0; i < pool; ++i) perm[i] = i;
    for (int i = pool - 1; i > 0; --i) std::swap(perm[i], perm[next_u32() % (uint32_t)(i + 1)]);
    std::vector<int32_t> table((size_t)batch * max_pages);
    for (auto& t : table) t = (int32_t)(pool + 1000 + (next_u32() & 1023));  // never read
    int next = 0;
    for (int b = 0; b < batch; ++b)
        for (int j = 0; j < (c.seqs[b].L + ps - 1) / ps; ++j) table[(size_t)b * max_pages + j] = perm[next++];
    const int64_t row = (int64_t)KH * D;  // elements per slot
    const uint16_t nan16 = 0x7fc0;
    std::vector<uint16_t> kp((size_t)pool * ps * row, nan16), vp(kp.size(), nan16);
    for (int b = 0; b < batch; ++b)
        for (int j = 0; j < c.seqs[b].L; ++j) {
            const int64_t slot = (int64_t)table[(size_t)b * max_pages + j / ps] * ps + j % ps;
            for (int64_t e = 0; e < row; ++e) {
                kp[(size_t)(slot * row + e)] = f32_to_bf16(uniform(-1.0f, 1.0f));
                vp[(size_t)(slot * row + e)] = f32_to_bf16(uniform(-1.0f, 1.0f));
            }
        }
    if (c.bad_seq >= 0) table[(size_t)c.bad_seq * max_pages + (c.seqs[c.bad_seq].L - 1) / ps] = pool + 5;
    // q: [tokens, H, D]; values as the kernel sees them (bf16 rounded for a bf16 q).
    std::vector<float> qv((size_t)tokens * H * D);
    std::vector<uint16_t> q16(qv.size());
    for (size_t i = 0; i < qv.size(); ++i) {
        const float v = uniform(-2.0f, 2.0f);
        q16[i] = f32_to_bf16(v);
        qv[i] = c.q_dtype == DSK_DTYPE_BF16 ? bf16_to_f32(q16[i]) : v;
    }
    std::vector<int32_t> lengths(batch);
    for (int b = 0; b < batch; ++b) lengths[b] = c.seqs[b].L;

    void* d_q = c.q_dtype == DSK_DTYPE_F32 ? (void*)to_device(qv) : (void*)to_device(q16);
    uint16_t* d_k = to_device(kp);
    uint16_t* d_v = to_device(vp);
    int32_t* d_table = to_device(table);
    int32_t* d_len = to_device(lengths);
    int32_t* d_starts = to_device(starts);
    const size_t out_elem = c.out_dtype == DSK_DTYPE_F32 ? 4 : 2;
    const size_t out_bytes = (size_t)tokens * H * D * out_elem, guard = 256;
    void* d_out = nullptr;
    CUDA_OK(cudaMalloc(&d_out, out_bytes + guard));
    CUDA_OK(cudaMemset(d_out, 0xff, out_bytes + guard));
    int32_t* d_err = nullptr;
    CUDA_OK(cudaMalloc(&d_err, 32));
    CUDA_OK(cudaMemset(d_err, 0, 32));

    dsk_paged_attention_params p;
    fill_params(p);
    p.q = d_q;
    p.key_pages = d_k;
    p.value_pages = d_v;
    p.block_table = d_table;
    p.sequence_lengths = d_len;
    p.query_starts = d_starts;
    p.out = d_out;
    p.error_word = d_err;
    p.tokens = tokens;
    p.batch = batch;
    p.max_pages = max_pages;
    p.pages = pool;
    p.page_size = ps;
    p.q_heads = H;
    p.kv_heads = KH;
    p.head_dim = D;
    p.v_head_dim = D;
    p.scale = 1.0f / std::sqrt((float)D);
    p.q_dtype = c.q_dtype;
    p.page_dtype = DSK_DTYPE_BF16;
    p.out_dtype = c.out_dtype;
    p.stream = stream;
    int64_t ws = 0;
    bool ok = true;
    void* d_ws = nullptr;
    if (dsk_paged_attention_workspace_size(&p, &ws) != DSK_SUCCESS) {
        std::printf("FAIL %s: workspace_size: %s\n", c.name, dsk_last_error_message());
        ok = false;
    } else {
        CUDA_OK(cudaMalloc(&d_ws, (size_t)ws));
        CUDA_OK(cudaMemset(d_ws, 0xab, (size_t)ws));  // the plan must not depend on the workspace's old contents
        p.workspace = d_ws;
        p.workspace_bytes = ws;
        if (dsk_paged_attention(&p) != DSK_SUCCESS) {
            std::printf("FAIL %s: dsk_paged_attention: %s\n", c.name, dsk_last_error_message());
            ok = false;
        }
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    std::vector<uint8_t> got(out_bytes + guard);
    CUDA_OK(cudaMemcpy(got.data(), d_out, got.size(), cudaMemcpyDeviceToHost));
    int32_t err[8];
    CUDA_OK(cudaMemcpy(err, d_err, 32, cudaMemcpyDeviceToHost));

    auto out_at = [&](size_t i) -> float {
        if (out_elem == 4) {
            float f;
            std::memcpy(&f, got.data() + 4 * i, 4);
            return f;
        }
        uint16_t h;
        std::memcpy(&h, got.data() + 2 * i, 2);
        return bf16_to_f32(h);
    };
    double worst = 0.0;  // largest |out - ref| / tolerance
    long bad_elems = 0;
    if (ok) {
        std::vector<double> sc, w;
        for (int b = 0; b < batch; ++b) {
            if (b == c.bad_seq) continue;
            const Seq s = c.seqs[b];
            for (int i = 0; i < s.n; ++i) {
                const int pos = s.L - s.n + i, t = starts[b] + i;
                for (int h = 0; h < H; ++h) {
                    const int kh = h / (H / KH);
                    const float* qrow = &qv[((size_t)t * H + h) * D];
                    sc.assign(pos + 1, 0.0);
                    double mx = -1e300;
                    for (int j = 0; j <= pos; ++j) {
                        const int64_t slot = (int64_t)table[(size_t)b * max_pages + j / ps] * ps + j % ps;
                        const uint16_t* krow = &kp[(size_t)(slot * row + (int64_t)kh * D)];
                        double dot = 0.0;
                        for (int d = 0; d < D; ++d) dot += (double)qrow[d] * bf16_to_f32(krow[d]);
                        sc[j] = dot * p.scale;
                        mx = std::max(mx, sc[j]);
                    }
                    double sum = 0.0;
                    w.assign(pos + 1, 0.0);
                    for (int j = 0; j <= pos; ++j) sum += (w[j] = std::exp(sc[j] - mx));
                    std::vector<double> ref(D, 0.0), mag(D, 0.0);
                    for (int j = 0; j <= pos; ++j) {
                        const int64_t slot = (int64_t)table[(size_t)b * max_pages + j / ps] * ps + j % ps;
                        const uint16_t* vrow = &vp[(size_t)(slot * row + (int64_t)kh * D)];
                        for (int d = 0; d < D; ++d) {
                            const double v = bf16_to_f32(vrow[d]);
                            ref[d] += w[j] / sum * v;
                            mag[d] += w[j] / sum * std::fabs(v);
                        }
                    }
                    const double m = *std::max_element(mag.begin(), mag.end());
                    const double tol = 1e-2 * m + 1e-6;
                    for (int d = 0; d < D; ++d) {
                        const float o = out_at(((size_t)t * H + h) * D + d);
                        const double e = std::fabs((double)o - ref[d]);
                        if (!std::isfinite(o) || e > tol) {
                            if (bad_elems++ < 3)
                                std::printf("  %s: seq %d row %d head %d d %d: got %g want %g (tol %g)\n", c.name, b, i, h,
                                            d, (double)o, ref[d], tol);
                        } else {
                            worst = std::max(worst, e / tol);
                        }
                    }
                }
            }
        }
        // Rows outside every sequence and the guard: still the poison bytes.
        auto poisoned = [&](size_t from, size_t to) {
            for (size_t i = from; i < to; ++i)
                if (got[i] != 0xff) return false;
            return true;
        };
        const size_t row_bytes = (size_t)H * D * out_elem;
        if (!poisoned(0, (size_t)c.lead * row_bytes) || !poisoned((size_t)starts[batch] * row_bytes, got.size())) {
            std::printf("  %s: a row outside every sequence, or the guard after out, was written\n", c.name);
            ++bad_elems;
        }
        if (c.bad_seq >= 0 ? err[0] != kErrorSiteTable : err[0] != 0) {
            std::printf("  %s: error word %d %d %d %d (want site %d)\n", c.name, err[0], err[1], err[2], err[3],
                        c.bad_seq >= 0 ? kErrorSiteTable : 0);
            ++bad_elems;
        }
        ok = bad_elems == 0;
    }
    std::printf("%s %-8s %-34s batch %d tokens %4d ps %2d heads %d/%d d %3d q %-4s out %-4s  worst %.3f of tol\n",
                ok ? "ok  " : "FAIL", path_str(g_path), c.name, batch, tokens, ps, H, KH, D, dt_str(c.q_dtype),
                dt_str(c.out_dtype), worst);
    if (!ok) ++g_failed;
    for (void* ptr : {d_q, (void*)d_k, (void*)d_v, (void*)d_table, (void*)d_len, (void*)d_starts, d_out, (void*)d_err, d_ws})
        CUDA_OK(cudaFree(ptr));
}

// Requests the family must refuse with DSK_ERROR_UNSUPPORTED (host checks only: nothing runs).
void run_refusals() {
    struct R {
        const char* name;
        int page_dtype;
        int head_dim, v_head_dim;
    } rs[] = {{"f32 pages", DSK_DTYPE_F32, 128, 128}, {"head_dim 96", DSK_DTYPE_BF16, 96, 96},
              {"head_dim != v_head_dim", DSK_DTYPE_BF16, 128, 64}};
    for (const R& r : rs) {
        ++g_cases;
        dsk_paged_attention_params p;
        fill_params(p);
        p.tokens = 4;
        p.batch = 1;
        p.max_pages = 1;
        p.pages = 1;
        p.page_size = 16;
        p.q_heads = 2;
        p.kv_heads = 1;
        p.head_dim = r.head_dim;
        p.v_head_dim = r.v_head_dim;
        p.scale = 0.1f;
        p.q_dtype = DSK_DTYPE_BF16;
        p.page_dtype = r.page_dtype;
        p.out_dtype = DSK_DTYPE_BF16;
        int64_t ws = 0;
        const dsk_status st = dsk_paged_attention_workspace_size(&p, &ws);
        const bool ok = st == DSK_ERROR_UNSUPPORTED && std::strstr(dsk_last_error_message(), "path MMA") != nullptr;
        std::printf("%s %-8s refuse %-27s status %d: %s\n", ok ? "ok  " : "FAIL", path_str(g_path), r.name, (int)st,
                    dsk_last_error_message());
        if (!ok) ++g_failed;
    }
}

void run_checks(cudaStream_t stream, bool quick) {
    const int F = DSK_DTYPE_F32, B = DSK_DTYPE_BF16;
    const std::vector<Seq> mixed = {{130, 130}, {70, 300}, {1, 65}, {1, 1}, {0, 50}, {2, 200}};
    std::vector<AttnCase> cases = {
        {"prefill L=1", {{1, 1}}, 16, 2, 2, 64, B, B, 0, 0, -1},
        {"prefill L=65", {{65, 65}}, 16, 4, 1, 128, F, F, 0, 0, -1},
        {"prefill L=130", {{130, 130}}, 64, 7, 1, 64, B, F, 0, 0, -1},
        {"mixed batch", mixed, 16, 4, 2, 128, F, B, 1, 2, -1},
        {"bad table entry (seq 1 skipped)", {{20, 40}, {30, 100}, {1, 17}}, 16, 2, 1, 64, B, B, 0, 0, 1},
    };
    if (!quick) {
        const std::vector<AttnCase> more = {
            {"prefill L=2", {{2, 2}}, 16, 1, 1, 128, F, B, 0, 0, -1},
            {"prefill L=63", {{63, 63}}, 64, 4, 1, 64, F, F, 0, 0, -1},
            {"prefill L=64", {{64, 64}}, 64, 7, 1, 128, B, B, 0, 0, -1},
            {"prefill L=65 ps 64", {{65, 65}}, 64, 2, 2, 64, B, F, 0, 0, -1},
            {"prefill L=130 d128", {{130, 130}}, 16, 4, 1, 128, F, F, 0, 0, -1},
            {"prefill L=300", {{300, 300}}, 16, 4, 1, 128, B, B, 0, 0, -1},
            {"prefill L=520", {{520, 520}}, 64, 2, 1, 64, F, B, 0, 0, -1},
            {"chunk n=129 of L=457", {{129, 457}}, 16, 7, 1, 128, B, F, 0, 0, -1},
            {"mixed batch ps 64 d64", mixed, 64, 7, 1, 64, B, B, 3, 0, -1},
            {"mixed batch ps 16 d64 1:1", mixed, 16, 3, 3, 64, F, F, 0, 5, -1},
            {"decode tokens only", {{1, 33}, {1, 64}, {1, 129}, {1, 1}}, 16, 4, 1, 128, B, B, 0, 0, -1},
            {"prefill L=2500", {{2500, 2500}}, 64, 2, 1, 64, B, B, 0, 0, -1},
            {"chunk n=600 of L=2500 + decode", {{600, 2500}, {1, 1000}}, 16, 4, 2, 128, F, F, 0, 0, -1},
        };
        cases.insert(cases.end(), more.begin(), more.end());
    }
    for (const AttnCase& c : cases) run_case(c, stream);
    run_refusals();
}

// ---------------------------------------------------------------------------------------------------------
// Bench

void run_bench(cudaStream_t stream) {
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    std::printf("\nbench on %s (sm_%d%d): causal paged prefill, bf16 q / pages / out, 32 q / 8 kv heads x 128, page 64;"
                " median of 20 after 3 warm-ups\n", prop.name, prop.major, prop.minor);
    // cuBLAS bf16 GEMM 8192^3, the ceiling.
    cublasHandle_t handle;
    CUBLAS_OK(cublasCreate(&handle));
    CUBLAS_OK(cublasSetStream(handle, stream));
    const int n = 8192;
    void *ga, *gb, *gc;
    CUDA_OK(cudaMalloc(&ga, (size_t)n * n * 2));
    CUDA_OK(cudaMalloc(&gb, (size_t)n * n * 2));
    CUDA_OK(cudaMalloc(&gc, (size_t)n * n * 2));
    fill_bf16(ga, (size_t)n * n, 1.0f, 1);
    fill_bf16(gb, (size_t)n * n, 1.0f, 2);
    const float alpha = 1.0f, beta = 0.0f;
    const double t_gemm = median_us([&] {
        CUBLAS_OK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, ga, CUDA_R_16BF, n, gb, CUDA_R_16BF, n,
                               &beta, gc, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }, stream, 20);
    const double gemm_tflops = 2.0 * n * (double)n * n / t_gemm * 1e-6;
    std::printf("%-28s %10.1f us %8.1f TFLOP/s\n", "cublas bf16 gemm 8192^3", t_gemm, gemm_tflops);
    for (void* ptr : {ga, gb, gc}) CUDA_OK(cudaFree(ptr));
    CUBLAS_OK(cublasDestroy(handle));

    const int H = 32, KH = 8, D = 128, ps = 64;
    struct Shape {
        const char* name;
        int batch, len;
    } shapes[] = {{"causal 1 x 8192", 1, 8192}, {"varlen 16 x 1024", 16, 1024}};
    for (int32_t path : {DSK_ATTENTION_PATH_MMA, DSK_ATTENTION_PATH_MMA_SYNC})
    for (const Shape& s : shapes) {
        g_path = path;
        const int tokens = s.batch * s.len, pages_per = (s.len + ps - 1) / ps, pages = s.batch * pages_per;
        std::vector<int32_t> table((size_t)pages), lengths(s.batch, s.len), starts(s.batch + 1);
        for (int i = 0; i < pages; ++i) table[i] = i;
        for (int b = 0; b <= s.batch; ++b) starts[b] = b * s.len;
        void *q, *k, *v, *out, *ws;
        int32_t *d_table, *d_len, *d_starts, *d_err;
        CUDA_OK(cudaMalloc(&q, (size_t)tokens * H * D * 2));
        CUDA_OK(cudaMalloc(&k, (size_t)pages * ps * KH * D * 2));
        CUDA_OK(cudaMalloc(&v, (size_t)pages * ps * KH * D * 2));
        CUDA_OK(cudaMalloc(&out, (size_t)tokens * H * D * 2));
        fill_bf16(q, (size_t)tokens * H * D, 1.0f, 3);
        fill_bf16(k, (size_t)pages * ps * KH * D, 1.0f, 4);
        fill_bf16(v, (size_t)pages * ps * KH * D, 1.0f, 5);
        d_table = to_device(table);
        d_len = to_device(lengths);
        d_starts = to_device(starts);
        CUDA_OK(cudaMalloc(&d_err, 32));
        CUDA_OK(cudaMemset(d_err, 0, 32));
        dsk_paged_attention_params p;
        fill_params(p);
        p.q = q;
        p.key_pages = k;
        p.value_pages = v;
        p.block_table = d_table;
        p.sequence_lengths = d_len;
        p.query_starts = d_starts;
        p.out = out;
        p.error_word = d_err;
        p.tokens = tokens;
        p.batch = s.batch;
        p.max_pages = pages_per;
        p.pages = pages;
        p.page_size = ps;
        p.q_heads = H;
        p.kv_heads = KH;
        p.head_dim = D;
        p.v_head_dim = D;
        p.scale = 1.0f / std::sqrt((float)D);
        p.q_dtype = DSK_DTYPE_BF16;
        p.page_dtype = DSK_DTYPE_BF16;
        p.out_dtype = DSK_DTYPE_BF16;
        p.stream = stream;
        int64_t bytes = 0;
        if (dsk_paged_attention_workspace_size(&p, &bytes) != DSK_SUCCESS) {
            std::printf("%-8s %-28s refused: %s\n", path_str(path), s.name, dsk_last_error_message());
            continue;
        }
        CUDA_OK(cudaMalloc(&ws, (size_t)bytes));
        p.workspace = ws;
        p.workspace_bytes = bytes;
        if (dsk_paged_attention(&p) != DSK_SUCCESS) {
            std::printf("%-8s %-28s refused: %s\n", path_str(path), s.name, dsk_last_error_message());
        } else {
            const double us = median_us([&] { (void)dsk_paged_attention(&p); }, stream, 20);
            const double flop = 4.0 * H * D * (double)s.batch * ((double)s.len * (s.len + 1) / 2);  // sum_i (p_i + 1)
            const double tflops = flop / us * 1e-6;
            std::printf("%-8s %-28s %10.1f us %8.1f TFLOP/s %6.1f%% of cublas\n", path_str(path), s.name, us, tflops,
                        100.0 * tflops / gemm_tflops);
        }
        for (void* ptr : {q, k, v, out, ws, (void*)d_table, (void*)d_len, (void*)d_starts, (void*)d_err}) CUDA_OK(cudaFree(ptr));
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (!gpu_present()) return 77;
    bool quick = false, bench = false;
    for (int i = 1; i < argc; ++i) {
        quick = quick || std::strcmp(argv[i], "--quick") == 0;
        bench = bench || std::strcmp(argv[i], "--bench") == 0;
    }
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    for (int32_t path : {DSK_ATTENTION_PATH_MMA, DSK_ATTENTION_PATH_MMA_SYNC}) {
        g_path = path;
        run_checks(stream, quick);
    }
    std::printf("attention_mma_check: %d of %d cases passed\n", g_cases - g_failed, g_cases);
    if (bench) run_bench(stream);
    CUDA_OK(cudaStreamDestroy(stream));
    return g_failed == 0 ? 0 : 1;
}

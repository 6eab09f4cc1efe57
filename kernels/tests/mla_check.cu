// mla_check.cu: dsk_paged_mla_attention's tensor-core family on a GPU against a CPU reference, plus an optional timing
// (--bench). Every case runs twice: path MMA (on a cc 9.0 GPU with a library built for sm_90a, the wgmma variant; the host
// emulation is such a GPU) and path MMA_SYNC (the mma.sync variant everywhere).
//
//   Every case: DeepSeek's latent cache (head_dim 576 = 512 latent + 64 rope, v_head_dim 512, one kv head), bf16 pages
//   handed out in a shuffled order from a pool whose unused pages, and the slots past each sequence's length, hold
//   NaN; block-table entries past a sequence's pages hold out-of-range values (never read); one query row after the
//   last sequence's rows belongs to no sequence (must stay poisoned); out is NaN-poisoned with a 64-element guard.
//   Reference: float64, q as given (the kernel rounds q and P to bf16), causal positions p = L - n + i. Each row must
//   be within 1e-2 * max|ref row| of the reference (element-wise), rows outside every sequence and the guard unchanged,
//   the error word 0 (or, for the bad-table case, the block-table site, with the other sequences still right).
//   Cases: heads 16, 20, 128; decode batches of lengths 1, 2, 63, 64, 65 and hundreds to thousands; prefill chunks of
//   several queries per sequence; page size 64 and 16; q f32 / bf16; out f32 / bf16; forced single split. Refusals:
//   f32 pages and v_head_dim 256 on either path (DSK_ERROR_UNSUPPORTED).
// Exits 77 (ctest: skipped) when no CUDA device is present.
//
//   dsk_mla_check [--quick]  run the checks (--quick: the small cases only, for the host emulation)
//   dsk_mla_check --bench    also time both paths at 128 and 16 heads, page 64, batch 1 / 32 / 128 at context 4096 (bf16 q and out):
//                            us, TFLOP/s (2 * heads * L * (576 + 512) per token) vs cuBLAS bf16 GEMM 8192^3, and
//                            GB/s (cache + q + out bytes) vs a device-to-device copy, all measured in this run
//                            (CUDA events, median of 30 after 3 warm-ups, cache pages rotated over 600 MB).
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

constexpr int kD = 576, kDV = 512;
constexpr int kSiteTable = 11, kSiteLengths = 12, kSiteStarts = 13;
constexpr size_t kGuard = 64;

int g_cases = 0;
int g_failed = 0;
int32_t g_path = DSK_ATTENTION_PATH_MMA;  // MMA (wgmma where the GPU and the build have it) or MMA_SYNC

const char* path_str(int32_t path) { return path == DSK_ATTENTION_PATH_MMA ? "MMA" : "MMA_SYNC"; }

const char* dt_str(int32_t d) { return d == DSK_DTYPE_F32 ? "f32" : "bf16"; }

struct MlaCase {
    const char* name;
    int heads;
    int page_size;
    std::vector<int> lens;     // L per sequence
    std::vector<int> queries;  // n per sequence (empty: 1 each, decode)
    int32_t q_dtype, out_dtype;
    float scale;
    int max_splits;  // 0: the library's choice
    int bad_seq;     // -1, or a sequence whose last used table entry points outside the pool
};

void run_case(const MlaCase& c, cudaStream_t stream) {
    ++g_cases;
    const int64_t batch = (int64_t)c.lens.size(), H = c.heads, ps = c.page_size;
    std::vector<int> n(c.lens.size(), 1);
    if (!c.queries.empty()) n = c.queries;
    std::vector<int32_t> starts(batch + 1, 0);
    for (int64_t b = 0; b < batch; ++b) starts[b + 1] = starts[b] + n[b];
    const int64_t tokens = starts[batch] + 1;  // one trailing row in no sequence
    int64_t max_pages = 1, used_pages = 0;
    std::vector<int64_t> seq_pages(batch);
    for (int64_t b = 0; b < batch; ++b) {
        seq_pages[b] = (c.lens[b] + ps - 1) / ps;
        used_pages += seq_pages[b];
        max_pages = std::max(max_pages, seq_pages[b] + 1);
    }
    const int64_t pages = used_pages + 3;  // three pages nobody uses (NaN)
    std::vector<int32_t> order(pages);
    for (int64_t i = 0; i < pages; ++i) order[i] = (int32_t)i;
    for (int64_t i = pages - 1; i > 0; --i) std::swap(order[i], order[next_u32() % (uint32_t)(i + 1)]);
    std::vector<int32_t> table(batch * max_pages);
    int64_t next = 0;
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t j = 0; j < max_pages; ++j)
            table[b * max_pages + j] = j < seq_pages[b] ? order[next++] : (j % 2 ? -7 : (int32_t)pages + 100);
    if (c.bad_seq >= 0) table[c.bad_seq * max_pages + seq_pages[c.bad_seq] - 1] = (int32_t)pages;

    // Pool: NaN everywhere, then each sequence's L key rows.
    std::vector<uint16_t> pool((size_t)(pages * ps * kD), 0x7fc0u);
    std::vector<std::vector<float>> keys(batch);  // [L][576] exact bf16 values
    for (int64_t b = 0; b < batch; ++b) {
        keys[b].resize((size_t)c.lens[b] * kD);
        for (int64_t j = 0; j < c.lens[b]; ++j) {
            const int64_t page = table[b * max_pages + j / ps];
            for (int d = 0; d < kD; ++d) {
                const uint16_t v = f32_to_bf16(uniform(-1.0f, 1.0f));
                keys[b][(size_t)(j * kD + d)] = bf16_to_f32(v);
                if (page < pages) pool[(size_t)((page * ps + j % ps) * kD + d)] = v;  // the bad entry's keys go nowhere
            }
        }
    }
    // q [tokens, H, 576]: values as the dtype holds them.
    std::vector<float> qv((size_t)(tokens * H * kD));
    for (auto& v : qv) v = uniform(-1.0f, 1.0f);
    if (c.q_dtype == DSK_DTYPE_BF16)
        for (auto& v : qv) v = round_bf16(v);
    std::vector<uint16_t> q16;
    if (c.q_dtype == DSK_DTYPE_BF16) {
        q16.resize(qv.size());
        for (size_t i = 0; i < qv.size(); ++i) q16[i] = f32_to_bf16(qv[i]);
    }
    const size_t out_n = (size_t)(tokens * H * kDV);
    const size_t out_bytes = (out_n + kGuard) * (c.out_dtype == DSK_DTYPE_F32 ? 4 : 2);
    std::vector<uint8_t> poison(out_bytes);
    for (size_t i = 0; i < out_bytes; i += 4) {
        const uint32_t nan = 0x7fc07fc0u;
        std::memcpy(&poison[i], &nan, std::min<size_t>(4, out_bytes - i));
    }

    void* d_q = c.q_dtype == DSK_DTYPE_BF16 ? (void*)upload(q16) : (void*)upload(qv);
    uint16_t* d_pool = upload(pool);
    int32_t* d_table = upload(table);
    std::vector<int32_t> lens32(c.lens.begin(), c.lens.end());
    int32_t* d_lens = upload(lens32);
    int32_t* d_starts = upload(starts);
    uint8_t* d_out = upload(poison);
    int32_t* d_err = upload(std::vector<int32_t>(8, 0));

    dsk_paged_attention_params p;
    std::memset(&p, 0, sizeof p);
    p.q = d_q;
    p.key_pages = d_pool;
    p.block_table = d_table;
    p.sequence_lengths = d_lens;
    p.query_starts = d_starts;
    p.out = d_out;
    p.error_word = d_err;
    p.tokens = tokens;
    p.batch = batch;
    p.max_pages = max_pages;
    p.pages = pages;
    p.page_size = ps;
    p.q_heads = H;
    p.kv_heads = 1;
    p.head_dim = kD;
    p.v_head_dim = kDV;
    p.scale = c.scale;
    p.q_dtype = c.q_dtype;
    p.page_dtype = DSK_DTYPE_BF16;
    p.out_dtype = c.out_dtype;
    p.path = g_path;
    p.max_splits = c.max_splits;
    p.error_site_block_table = kSiteTable;
    p.error_site_lengths = kSiteLengths;
    p.error_site_query_starts = kSiteStarts;
    p.stream = stream;
    int64_t ws_bytes = 0;
    void* d_ws = nullptr;
    dsk_status st = dsk_paged_mla_attention_workspace_size(&p, &ws_bytes);
    if (st == DSK_SUCCESS) {
        CUDA_OK(cudaMalloc(&d_ws, (size_t)ws_bytes));
        p.workspace = d_ws;
        p.workspace_bytes = ws_bytes;
        st = dsk_paged_mla_attention(&p);
    }
    CUDA_OK(cudaStreamSynchronize(stream));

    char label[160];
    std::snprintf(label, sizeof label, "%s %s (heads %d, page %d, batch %lld, q %s, out %s, splits<=%d)", path_str(g_path),
                  c.name, c.heads, c.page_size, (long long)batch, dt_str(c.q_dtype), dt_str(c.out_dtype), c.max_splits);
    if (st != DSK_SUCCESS) {
        ++g_failed;
        std::printf("FAIL %s: status %d: %s\n", label, (int)st, dsk_last_error_message());
    } else {
        const std::vector<uint8_t> out = download(d_out, out_bytes);
        const std::vector<int32_t> err = download(d_err, 8);
        auto get = [&](size_t i) -> float {
            if (c.out_dtype == DSK_DTYPE_F32) {
                float f;
                std::memcpy(&f, &out[i * 4], 4);
                return f;
            }
            uint16_t h;
            std::memcpy(&h, &out[i * 2], 2);
            return bf16_to_f32(h);
        };
        double worst = 0.0;  // max over rows of max|out - ref| / max|ref|
        int bad_rows = 0;
        std::vector<double> s, ref(kDV);
        for (int64_t b = 0; b < batch; ++b) {
            if (b == c.bad_seq) continue;
            const int L = c.lens[b];
            for (int i = 0; i < n[b]; ++i) {
                const int pos = L - n[b] + i;
                for (int64_t h = 0; h < H; ++h) {
                    const int64_t row = (int64_t)(starts[b] + i) * H + h;
                    const float* qr = &qv[(size_t)(row * kD)];
                    s.assign((size_t)pos + 1, 0.0);
                    double mx = -1e300;
                    for (int j = 0; j <= pos; ++j) {
                        const float* kr = &keys[b][(size_t)j * kD];
                        double acc = 0.0;
                        for (int d = 0; d < kD; ++d) acc += (double)qr[d] * kr[d];
                        s[j] = acc * c.scale;
                        mx = std::max(mx, s[j]);
                    }
                    double sum = 0.0;
                    for (int j = 0; j <= pos; ++j) sum += (s[j] = std::exp(s[j] - mx));
                    std::fill(ref.begin(), ref.end(), 0.0);
                    for (int j = 0; j <= pos; ++j) {
                        const float* kr = &keys[b][(size_t)j * kD];
                        for (int d = 0; d < kDV; ++d) ref[d] += s[j] / sum * kr[d];
                    }
                    double rmax = 0.0, emax = 0.0;
                    for (int d = 0; d < kDV; ++d) {
                        rmax = std::max(rmax, std::fabs(ref[d]));
                        const float o = get((size_t)(row * kDV + d));
                        const double e = std::isfinite(o) ? std::fabs(o - ref[d]) : INFINITY;
                        emax = std::max(emax, e);
                    }
                    const double rel = emax / std::max(rmax, 1e-30);
                    worst = std::max(worst, rel);
                    if (!(rel <= 1e-2)) {
                        if (bad_rows < 3)
                            std::printf("  %s: seq %lld query %d head %lld: max err %.3g, max |ref| %.3g\n", c.name,
                                        (long long)b, i, (long long)h, emax, rmax);
                        ++bad_rows;
                    }
                }
            }
        }
        // Rows of no sequence (the trailing token) and the guard stay poisoned, byte for byte.
        const size_t esz = c.out_dtype == DSK_DTYPE_F32 ? 4 : 2;
        const size_t tail_from = (size_t)(starts[batch] * H * kDV) * esz;
        const bool tail_ok = std::memcmp(&out[tail_from], &poison[tail_from], out_bytes - tail_from) == 0;
        const int32_t want_err = c.bad_seq >= 0 ? kSiteTable : 0;
        const bool ok = bad_rows == 0 && tail_ok && err[0] == want_err;
        if (!ok) ++g_failed;
        std::printf("%s %s: worst row error %.2e of max|ref|%s%s, error word %d\n", ok ? "ok  " : "FAIL", label, worst,
                    bad_rows ? " (rows out of tolerance)" : "", tail_ok ? "" : " (rows outside the sequences written)",
                    err[0]);
    }
    for (void* ptr : {d_q, (void*)d_pool, (void*)d_table, (void*)d_lens, (void*)d_starts, (void*)d_out, (void*)d_err, d_ws})
        if (ptr != nullptr) CUDA_OK(cudaFree(ptr));
}

// Requests path MMA must refuse with DSK_ERROR_UNSUPPORTED.
void run_refusals(cudaStream_t stream) {
    void* buf = nullptr;
    CUDA_OK(cudaMalloc(&buf, 1 << 22));
    int32_t* meta = nullptr;
    CUDA_OK(cudaMalloc(&meta, 256));
    CUDA_OK(cudaMemset(meta, 0, 256));
    dsk_paged_attention_params p;
    std::memset(&p, 0, sizeof p);
    p.q = buf;
    p.key_pages = (char*)buf + (1 << 20);
    p.out = (char*)buf + (2 << 20);
    p.workspace = (char*)buf + (3 << 20);
    p.workspace_bytes = 1 << 20;
    p.block_table = meta;
    p.sequence_lengths = meta + 4;
    p.query_starts = meta + 8;
    p.error_word = meta + 16;
    p.tokens = p.batch = p.max_pages = p.pages = 1;
    p.page_size = 16;
    p.q_heads = 16;
    p.kv_heads = 1;
    p.head_dim = kD;
    p.v_head_dim = kDV;
    p.scale = 0.1f;
    p.q_dtype = p.out_dtype = DSK_DTYPE_BF16;
    p.page_dtype = DSK_DTYPE_F32;
    p.path = g_path;
    p.error_site_block_table = kSiteTable;
    p.error_site_lengths = kSiteLengths;
    p.error_site_query_starts = kSiteStarts;
    p.stream = stream;
    auto expect = [&](const char* what) {
        ++g_cases;
        const dsk_status st = dsk_paged_mla_attention(&p);
        const bool ok = st == DSK_ERROR_UNSUPPORTED;
        if (!ok) ++g_failed;
        std::printf("%s refusal: %s on path %s: status %d (%s)\n", ok ? "ok  " : "FAIL", what, path_str(g_path), (int)st,
                    dsk_last_error_message());
    };
    expect("f32 pages");
    p.page_dtype = DSK_DTYPE_BF16;
    p.v_head_dim = 256;
    expect("v_head_dim 256");
    CUDA_OK(cudaStreamSynchronize(stream));
    CUDA_OK(cudaFree(buf));
    CUDA_OK(cudaFree(meta));
}

void run_checks(bool quick, cudaStream_t stream) {
    const int32_t F = DSK_DTYPE_F32, B = DSK_DTYPE_BF16;
    // Small: a handful of blocks each (the host emulation runs these).
    run_case({"decode", 16, 64, {1, 2, 63, 64, 65, 300}, {}, B, F, 0.07f, 0, -1}, stream);
    run_case({"decode", 128, 16, {1, 65, 130}, {}, F, B, 0.25f, 0, -1}, stream);
    run_case({"prefill chunks", 20, 16, {70, 3, 129}, {5, 3, 1}, B, B, 0.1f, 0, -1}, stream);
    run_case({"prefill one split", 128, 64, {64, 2}, {2, 2}, F, F, 0.2f, 1, -1}, stream);
    run_case({"causal across splits", 16, 64, {200, 1}, {100, 1}, B, F, 0.3f, 0, -1}, stream);
    run_case({"bad table entry", 16, 64, {100, 80, 40}, {}, B, F, 0.1f, 0, 1}, stream);
    run_refusals(stream);
    if (quick) return;
    // Larger: long contexts, many splits, full prefill chunks.
    run_case({"decode", 128, 64, {1, 2, 63, 64, 65, 700, 2500}, {}, B, F, 0.1f, 0, -1}, stream);
    run_case({"decode", 128, 64, {1, 2, 63, 64, 65, 700, 2500}, {}, B, B, 0.1f, 3, -1}, stream);
    run_case({"decode", 20, 16, {3000, 5, 64, 129, 1000}, {}, F, F, 0.3f, 0, -1}, stream);
    run_case({"decode", 16, 64, {4096}, {}, B, B, 0.07f, 0, -1}, stream);
    run_case({"prefill", 128, 64, {600, 64, 1}, {16, 64, 1}, B, F, 0.1f, 0, -1}, stream);
    run_case({"prefill", 16, 16, {1000, 40}, {40, 40}, F, B, 0.15f, 0, -1}, stream);
    run_case({"prefill", 20, 64, {500, 130}, {7, 130}, B, F, 0.1f, 0, -1}, stream);
}

// ---------------------------------------------------------------------------------------------------------
// Bench

void run_bench(cudaStream_t stream) {
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    std::printf("\nbench on %s (sm_%d%d): MLA decode, 576/512, page 64, context 4096, bf16 q/pages/out, paths MMA and MMA_SYNC\n",
                prop.name, prop.major, prop.minor);
    // Ceilings: cuBLAS bf16 GEMM 8192^3 and a 1 GiB device-to-device copy.
    cublasHandle_t handle;
    CUBLAS_OK(cublasCreate(&handle));
    CUBLAS_OK(cublasSetStream(handle, stream));
    const int64_t G = 8192;
    void *a, *bm, *cm;
    CUDA_OK(cudaMalloc(&a, (size_t)(G * G) * 2));
    CUDA_OK(cudaMalloc(&bm, (size_t)(G * G) * 2));
    CUDA_OK(cudaMalloc(&cm, (size_t)(G * G) * 2));
    fill_bf16(a, (size_t)(G * G), 1.0f, 1);
    fill_bf16(bm, (size_t)(G * G), 1.0f, 2);
    const float alpha = 1.0f, beta = 0.0f;
    const double t_gemm = median_us([&](int) {
        CUBLAS_OK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)G, (int)G, (int)G, &alpha, a, CUDA_R_16BF, (int)G,
                               bm, CUDA_R_16BF, (int)G, &beta, cm, CUDA_R_16BF, (int)G, CUBLAS_COMPUTE_32F,
                               CUBLAS_GEMM_DEFAULT));
    }, stream, 20);
    const double gemm_tflops = 2.0 * G * G * G / t_gemm * 1e-6;
    for (void* ptr : {a, bm, cm}) CUDA_OK(cudaFree(ptr));
    const size_t copy_bytes = (size_t)1 << 30;
    void *src, *dst;
    CUDA_OK(cudaMalloc(&src, copy_bytes));
    CUDA_OK(cudaMalloc(&dst, copy_bytes));
    const double t_copy = median_us([&](int) {
        CUDA_OK(cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice, stream));
    }, stream, 20);
    const double copy_gbs = 2.0 * (double)copy_bytes / t_copy * 1e-3;
    CUDA_OK(cudaFree(src));
    CUDA_OK(cudaFree(dst));
    std::printf("ceilings: cuBLAS bf16 GEMM 8192^3 %.1f TFLOP/s; device-to-device copy %.0f GB/s (read + write)\n",
                gemm_tflops, copy_gbs);
    std::printf("%-9s %-6s %-6s %-7s %10s %10s %10s %10s %10s\n", "path", "heads", "batch", "splits", "us", "TFLOP/s",
                "x cuBLAS", "GB/s", "x copy");

    // One pool of 128 sequences x 4096 keys (604 MB); smaller batches rotate through it.
    const int64_t L = 4096, ps = 64, pages_per_seq = L / ps, pool_seqs = 128;
    const int64_t pages = pool_seqs * pages_per_seq;
    void* pool;
    CUDA_OK(cudaMalloc(&pool, (size_t)(pages * ps * 576) * 2));
    fill_bf16(pool, (size_t)(pages * ps * 576), 1.0f, 3);
    int32_t* err;
    CUDA_OK(cudaMalloc(&err, 32));
    CUDA_OK(cudaMemset(err, 0, 32));
    for (int32_t path : {DSK_ATTENTION_PATH_MMA, DSK_ATTENTION_PATH_MMA_SYNC})
    for (int heads : {128, 16})
        for (int64_t batch : {1, 32, 128}) {
            const int rotations = (int)(pool_seqs / batch);
            std::vector<int32_t> table((size_t)(rotations * batch * pages_per_seq));
            for (size_t i = 0; i < table.size(); ++i) table[i] = (int32_t)i;  // rotation r, sequence b: its own pages
            std::vector<int32_t> lens((size_t)batch, (int32_t)L), starts((size_t)batch + 1);
            for (int64_t b = 0; b <= batch; ++b) starts[b] = (int32_t)b;
            int32_t* d_table = upload(table);
            int32_t* d_lens = upload(lens);
            int32_t* d_starts = upload(starts);
            void *q, *out;
            CUDA_OK(cudaMalloc(&q, (size_t)(batch * heads * 576) * 2));
            CUDA_OK(cudaMalloc(&out, (size_t)(batch * heads * 512) * 2));
            fill_bf16(q, (size_t)(batch * heads * 576), 1.0f, 4);
            dsk_paged_attention_params p;
            std::memset(&p, 0, sizeof p);
            p.q = q;
            p.key_pages = pool;
            p.block_table = d_table;
            p.sequence_lengths = d_lens;
            p.query_starts = d_starts;
            p.out = out;
            p.error_word = err;
            p.tokens = batch;
            p.batch = batch;
            p.max_pages = pages_per_seq;
            p.pages = pages;
            p.page_size = ps;
            p.q_heads = heads;
            p.kv_heads = 1;
            p.head_dim = 576;
            p.v_head_dim = 512;
            p.scale = 0.0722f;
            p.q_dtype = p.page_dtype = p.out_dtype = DSK_DTYPE_BF16;
            p.path = path;
            p.error_site_block_table = kSiteTable;
            p.error_site_lengths = kSiteLengths;
            p.error_site_query_starts = kSiteStarts;
            p.stream = stream;
            int64_t ws_bytes = 0;
            void* ws = nullptr;
            if (dsk_paged_mla_attention_workspace_size(&p, &ws_bytes) != DSK_SUCCESS) {
                std::printf("%-9s %-6d %-6lld refused: %s\n", path_str(path), heads, (long long)batch, dsk_last_error_message());
                continue;
            }
            CUDA_OK(cudaMalloc(&ws, (size_t)ws_bytes));
            p.workspace = ws;
            p.workspace_bytes = ws_bytes;
            const int64_t split_bytes = ws_bytes - 256 - (batch + 1) * 4;  // 0 without splits (approximately)
            const double us = median_us([&](int i) {
                p.block_table = d_table + (size_t)(i % rotations) * batch * pages_per_seq;
                if (dsk_paged_mla_attention(&p) != DSK_SUCCESS) {
                    std::fprintf(stderr, "dsk_paged_mla_attention: %s\n", dsk_last_error_message());
                    std::exit(2);
                }
            }, stream, 30);
            const double flop = 2.0 * (double)batch * heads * L * (576 + 512);
            const double bytes = (double)batch * (L * 576 * 2 + heads * (576 + 512) * 2);
            const long long splits = split_bytes > 64 ? (long long)(split_bytes / (batch * heads * 513 * 4)) : 1;
            std::printf("%-9s %-6d %-6lld %-7lld %10.1f %10.1f %10.2f %10.0f %10.2f\n", path_str(path), heads, (long long)batch, splits, us,
                        flop / us * 1e-6, flop / us * 1e-6 / gemm_tflops, bytes / us * 1e-3, bytes / us * 1e-3 / copy_gbs);
            for (void* ptr : {q, out, ws, (void*)d_table, (void*)d_lens, (void*)d_starts}) CUDA_OK(cudaFree(ptr));
        }
    std::vector<int32_t> err_h = download(err, 8);
    if (err_h[0] != 0) std::printf("bench: error word %d (unexpected)\n", err_h[0]);
    CUDA_OK(cudaFree(pool));
    CUDA_OK(cudaFree(err));
    CUBLAS_OK(cublasDestroy(handle));
}

}  // namespace

int main(int argc, char** argv) {
    if (!gpu_present()) return 77;
    bool quick = false, bench = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) quick = true;
        if (std::strcmp(argv[i], "--bench") == 0) bench = true;
    }
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    for (int32_t path : {DSK_ATTENTION_PATH_MMA, DSK_ATTENTION_PATH_MMA_SYNC}) {
        g_path = path;
        run_checks(quick, stream);
    }
    std::printf("mla_check: %d of %d cases passed\n", g_cases - g_failed, g_cases);
    if (bench) run_bench(stream);
    CUDA_OK(cudaStreamDestroy(stream));
    return g_failed == 0 ? 0 : 1;
}

// moe_check.cu: dsk_moe_route, dsk_moe_permute and dsk_moe_combine on a GPU against CPU references, plus an optional
// timing at DeepSeek-V3's shapes (--bench).
//
// dsk_moe_route: DeepSeek-V3 (256 experts, 8 groups, keep 4, top 8, sigmoid, NOAUX_TC, bias, normalised, x2.5) at
// tokens 1..64, DeepSeek-V2's softmax GROUP_LIMITED_GREEDY, greedy over 8/16/64/256/1024 experts, groups 1/4/8, top_k
// 1..8 (and 40: more picks than lanes), ties (equal logits: the lower index wins), NaN / -inf / +inf logits, bf16
// logits. The reference follows the kernel's arithmetic (the softmax sum in the warp's butterfly order, expf, the
// weights' sum in k order), so ids must be equal and weights equal within 16 ulp (the GPU's expf is not glibc's). Outputs
// are poisoned (NaN bytes) with a guard after them that must stay poisoned.
//
// dsk_moe_permute: random ids with empty experts, one expert taking every slot, up to 4096 slots, f32 / bf16 rows on the
// vector and scalar paths with padded strides; exact offsets, slot_rows and rows (bit for bit), guards untouched. Bad
// ids (-1 and experts): nothing but the error word written, the lowest slot reported; an earlier error is kept.
//
// dsk_moe_combine: f32 / bf16 expert rows into f32 / bf16 y, accumulate on and off, hidden 1, 17, 64, 65 (scalar and
// vector paths), padded strides; bit-exact against the same fmaf order; a token with a bad row left as it was, the
// lowest flat index reported.
//
// Exits 77 (ctest: skipped) when no CUDA device is present.
//
//   dsk_moe_check           run the checks
//   dsk_moe_check --quick   fewer tokens and shapes (the host emulation, kernels/tests/emu)
//   dsk_moe_check --bench   also time routing, permutation and combine at DeepSeek-V3's shapes
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

int g_cases = 0;
int g_failed = 0;
bool g_quick = false;

constexpr int kGuard = 16;      // poisoned elements after each output
constexpr int kSite = 7;        // error site the checks pass

void fail(const std::string& name, const char* what) {
    ++g_failed;
    std::printf("FAIL %s: %s\n", name.c_str(), what);
}

// ---------------------------------------------------------------------------------------------------------
// Routing

bool greater(float x, float y) { return std::isnan(x) ? !std::isnan(y) : x > y; }
bool beats(float v, int i, float bv, int bi) { return greater(v, bv) || (!greater(bv, v) && i < bi); }

// Index of the best value not yet picked (the kernel's order: NaN first, ties to the lower index).
int best_of(const std::vector<float>& v, const std::vector<char>& picked) {
    int b = -1;
    for (int i = 0; i < (int)v.size(); ++i) {
        if (picked[i]) continue;
        if (b < 0 || beats(v[i], i, v[b], b)) b = i;
    }
    if (b < 0) {  // every entry taken: the cases never ask for more than there are (and GCC 12 -O3 warns without this)
        std::fprintf(stderr, "moe_check: best_of over %zu entries, all picked\n", v.size());
        std::abort();
    }
    return b;
}

// The warp's butterfly sum of per-lane sequential partial sums over e = lane + 32 j.
float butterfly_sum(const std::vector<float>& x) {
    float lane[32];
    for (int l = 0; l < 32; ++l) {
        lane[l] = 0.0f;
        for (size_t e = l; e < x.size(); e += 32) lane[l] += x[e];
    }
    for (int off = 16; off > 0; off >>= 1) {
        float next[32];
        for (int l = 0; l < 32; ++l) next[l] = lane[l] + lane[l ^ off];
        std::memcpy(lane, next, sizeof lane);
    }
    return lane[0];
}

struct RouteCase {
    std::string name;
    int tokens, experts, top_k, groups, top_k_groups, scoring, method, normalize;
    float scaling;
    bool bias;
    int dtype;
    int special;  // 0 random, 1 ties (few distinct values), 2 NaN / -inf / +inf sprinkled, 3 all equal
};

void route_reference(const RouteCase& c, const std::vector<float>& logits, const std::vector<float>& bias,
                     std::vector<int>& ids, std::vector<float>& weights) {
    const int E = c.experts;
    const bool grouped = c.method != DSK_MOE_METHOD_GREEDY;
    for (int t = 0; t < c.tokens; ++t) {
        std::vector<float> s(E), choice(E);
        const float* row = &logits[(size_t)t * E];
        if (c.scoring == DSK_MOE_SCORING_SOFTMAX) {
            float mx = -INFINITY;
            for (int e = 0; e < E; ++e) mx = std::fmax(mx, row[e]);
            for (int e = 0; e < E; ++e) s[e] = std::exp(row[e] - mx);
            const float sum = butterfly_sum(s);
            for (int e = 0; e < E; ++e) s[e] = s[e] / sum;
        } else {
            for (int e = 0; e < E; ++e) s[e] = 1.0f / (1.0f + std::exp(-row[e]));
        }
        for (int e = 0; e < E; ++e) choice[e] = c.bias ? s[e] + bias[e] : s[e];
        if (grouped) {
            const int per = E / c.groups;
            std::vector<float> gs(c.groups);
            for (int g = 0; g < c.groups; ++g) {
                std::vector<float> m(choice.begin() + g * per, choice.begin() + (g + 1) * per);
                std::vector<char> pk(per, 0);
                const int b1 = best_of(m, pk);
                if (c.method == DSK_MOE_METHOD_GROUP_LIMITED_GREEDY) {
                    gs[g] = m[b1];
                } else {
                    pk[b1] = 1;
                    gs[g] = m[b1] + m[best_of(m, pk)];
                }
            }
            std::vector<char> kept(c.groups, 0);
            for (int r = 0; r < c.top_k_groups; ++r) kept[best_of(gs, kept)] = 1;
            for (int e = 0; e < E; ++e)
                if (!kept[e / per]) choice[e] = 0.0f;
        }
        std::vector<char> picked(E, 0);
        float sum = 0.0f;
        for (int k = 0; k < c.top_k; ++k) {
            const int id = best_of(choice, picked);
            picked[id] = 1;
            ids[(size_t)t * c.top_k + k] = id;
            sum += s[id];
        }
        for (int k = 0; k < c.top_k; ++k) {
            float w = s[ids[(size_t)t * c.top_k + k]];
            if (c.normalize) w = w / (sum + 1e-20f);
            weights[(size_t)t * c.top_k + k] = w * c.scaling;
        }
    }
}

bool close_ulps(float a, float b, int ulps) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    if (a == b) return true;
    const float tol = ulps * std::ldexp(1.0f, std::ilogb(std::fmax(std::fabs(a), std::fabs(b))) - 23);
    return std::fabs(a - b) <= tol;
}

void run_route(const RouteCase& c) {
    ++g_cases;
    const size_t n_logits = (size_t)c.tokens * c.experts, n_out = (size_t)c.tokens * c.top_k;
    std::vector<float> logits(n_logits), bias(c.experts);
    for (auto& v : logits) {
        v = uniform(-4.0f, 4.0f);
        if (c.special == 1) v = std::floor(v);               // 8 distinct values: many ties
        if (c.special == 3) v = 0.5f;
    }
    if (c.special == 2) {
        for (size_t i = 0; i < n_logits; ++i) {
            const uint32_t r = next_u32() % 16;
            if (r == 0) logits[i] = -INFINITY;
            else if (r == 1 && i % 7 == 0) logits[i] = NAN;
            else if (r == 2 && i % 5 == 0) logits[i] = INFINITY;
        }
    }
    for (auto& v : bias) v = c.special == 1 ? 0.0f : uniform(-0.1f, 0.1f);
    std::vector<uint16_t> logits16(n_logits);
    if (c.dtype == DSK_DTYPE_BF16) {
        for (size_t i = 0; i < n_logits; ++i) {
            logits16[i] = f32_to_bf16(logits[i]);
            logits[i] = bf16_to_f32(logits16[i]);
        }
    }
    std::vector<int> ref_ids(n_out);
    std::vector<float> ref_w(n_out);
    route_reference(c, logits, bias, ref_ids, ref_w);

    DevBuf d_logits(n_logits * (c.dtype == DSK_DTYPE_F32 ? 4 : 2)), d_bias(c.experts * 4);
    DevBuf d_ids((n_out + kGuard) * 4), d_w((n_out + kGuard) * 4);
    if (c.dtype == DSK_DTYPE_F32) d_logits.upload(logits.data()); else d_logits.upload(logits16.data());
    d_bias.upload(bias.data());
    CUDA_OK(cudaMemset(d_ids.d, 0xff, d_ids.bytes));
    CUDA_OK(cudaMemset(d_w.d, 0xff, d_w.bytes));
    dsk_moe_route_params p{};
    p.logits = d_logits.d;
    p.bias = c.bias ? static_cast<const float*>(d_bias.d) : nullptr;
    p.expert_ids = static_cast<int32_t*>(d_ids.d);
    p.expert_weights = static_cast<float*>(d_w.d);
    p.tokens = c.tokens;
    p.experts = c.experts;
    p.top_k = c.top_k;
    p.groups = c.groups;
    p.top_k_groups = c.top_k_groups;
    p.scoring = c.scoring;
    p.method = c.method;
    p.normalize = c.normalize;
    p.logits_dtype = c.dtype;
    p.routed_scaling_factor = c.scaling;
    const dsk_status st = dsk_moe_route(&p);
    if (st != DSK_SUCCESS) {
        fail(c.name, dsk_last_error_message());
        return;
    }
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<int> ids(n_out + kGuard);
    std::vector<float> w(n_out + kGuard);
    d_ids.download(ids.data());
    d_w.download(w.data());
    for (size_t i = 0; i < n_out; ++i) {
        if (ids[i] != ref_ids[i]) {
            std::printf("  %s: ids[%zu] = %d, expected %d\n", c.name.c_str(), i, ids[i], ref_ids[i]);
            return fail(c.name, "expert ids differ");
        }
        if (!close_ulps(w[i], ref_w[i], 16)) {
            std::printf("  %s: weights[%zu] = %.9g, expected %.9g\n", c.name.c_str(), i, w[i], ref_w[i]);
            return fail(c.name, "weights differ");
        }
    }
    for (size_t i = n_out; i < n_out + kGuard; ++i) {
        if (ids[i] != -1 || !std::isnan(w[i])) return fail(c.name, "a guard element after the outputs was written");
    }
}

void route_checks() {
    std::vector<RouteCase> cases;
    const int v3_tokens_full[] = {1, 2, 3, 7, 16, 33, 64};
    const int v3_tokens_quick[] = {1, 5, 64};
    const int* v3 = g_quick ? v3_tokens_quick : v3_tokens_full;
    const int nv3 = g_quick ? 3 : 7;
    for (int i = 0; i < nv3; ++i) {
        cases.push_back({"v3 tokens " + std::to_string(v3[i]), v3[i], 256, 8, 8, 4, DSK_MOE_SCORING_SIGMOID,
                         DSK_MOE_METHOD_NOAUX_TC, 1, 2.5f, true, DSK_DTYPE_F32, 0});
    }
    cases.push_back({"v3 bf16 logits", 9, 256, 8, 8, 4, DSK_MOE_SCORING_SIGMOID, DSK_MOE_METHOD_NOAUX_TC, 1, 2.5f, true,
                     DSK_DTYPE_BF16, 0});
    cases.push_back({"v3 ties", 6, 256, 8, 8, 4, DSK_MOE_SCORING_SIGMOID, DSK_MOE_METHOD_NOAUX_TC, 1, 2.5f, true,
                     DSK_DTYPE_F32, 1});
    cases.push_back({"v3 all equal", 2, 256, 8, 8, 4, DSK_MOE_SCORING_SIGMOID, DSK_MOE_METHOD_NOAUX_TC, 1, 1.0f, false,
                     DSK_DTYPE_F32, 3});
    cases.push_back({"v3 NaN/inf", 8, 256, 8, 8, 4, DSK_MOE_SCORING_SIGMOID, DSK_MOE_METHOD_NOAUX_TC, 1, 2.5f, true,
                     DSK_DTYPE_F32, 2});
    cases.push_back({"v2 softmax group-limited", 7, 64, 6, 8, 3, DSK_MOE_SCORING_SOFTMAX,
                     DSK_MOE_METHOD_GROUP_LIMITED_GREEDY, 0, 16.0f, false, DSK_DTYPE_F32, 0});
    cases.push_back({"v2 160 experts bf16", 3, 160, 6, 8, 3, DSK_MOE_SCORING_SOFTMAX,
                     DSK_MOE_METHOD_GROUP_LIMITED_GREEDY, 0, 16.0f, false, DSK_DTYPE_BF16, 0});
    cases.push_back({"softmax NaN/inf", 6, 64, 4, 1, 1, DSK_MOE_SCORING_SOFTMAX, DSK_MOE_METHOD_GREEDY, 1, 1.0f, false,
                     DSK_DTYPE_F32, 2});
    cases.push_back({"softmax ties", 4, 16, 5, 1, 1, DSK_MOE_SCORING_SOFTMAX, DSK_MOE_METHOD_GREEDY, 1, 1.0f, false,
                     DSK_DTYPE_F32, 1});
    const int experts_set[] = {8, 16, 64, 256};
    for (int E : experts_set) {
        for (int k = 1; k <= 8; k += (g_quick ? 3 : 1)) {
            for (int scoring = 0; scoring < 2; ++scoring) {
                cases.push_back({"greedy E " + std::to_string(E) + " k " + std::to_string(k) + (scoring ? " sigmoid" : " softmax"),
                                 3, E, k, 1, 1, scoring, DSK_MOE_METHOD_GREEDY, k % 2, 1.5f, scoring == 1, DSK_DTYPE_F32, 0});
            }
        }
    }
    const int group_set[] = {1, 4, 8};
    for (int G : group_set) {
        for (int method = 1; method <= 2; ++method) {
            const int keep = G == 1 ? 1 : G / 2;
            cases.push_back({"grouped E 64 G " + std::to_string(G) + (method == 1 ? " max" : " top2"), 5, 64, 4, G, keep,
                             method == 1 ? DSK_MOE_SCORING_SOFTMAX : DSK_MOE_SCORING_SIGMOID, method, 1, 1.0f, method == 2,
                             DSK_DTYPE_F32, 0});
            cases.push_back({"grouped E 64 G " + std::to_string(G) + (method == 1 ? " max" : " top2") + " ties", 3, 64, 4, G,
                             keep, DSK_MOE_SCORING_SIGMOID, method, 1, 1.0f, false, DSK_DTYPE_F32, 1});
        }
    }
    cases.push_back({"1024 experts top 40", 2, 1024, 40, 1, 1, DSK_MOE_SCORING_SOFTMAX, DSK_MOE_METHOD_GREEDY, 1, 1.0f,
                     true, DSK_DTYPE_F32, 0});
    cases.push_back({"1024 experts 1024 groups", 2, 1024, 7, 1024, 37, DSK_MOE_SCORING_SIGMOID,
                     DSK_MOE_METHOD_GROUP_LIMITED_GREEDY, 1, 1.0f, true, DSK_DTYPE_BF16, 2});
    cases.push_back({"1 expert", 3, 1, 1, 1, 1, DSK_MOE_SCORING_SOFTMAX, DSK_MOE_METHOD_GREEDY, 1, 1.0f, false,
                     DSK_DTYPE_F32, 0});
    for (const auto& c : cases) run_route(c);
}

// ---------------------------------------------------------------------------------------------------------
// Permutation

struct PermuteCase {
    std::string name;
    int tokens, top_k, experts, hidden, x_pad, p_pad, dtype;
    int pattern;  // 0 random over experts - 1 (the last empty), 1 all to one expert, 2 bad ids
};

void run_permute(const PermuteCase& c) {
    ++g_cases;
    const int S = c.tokens * c.top_k;
    const int esz = c.dtype == DSK_DTYPE_F32 ? 4 : 2;
    const int64_t xs = c.hidden + c.x_pad, ps = c.hidden + c.p_pad;
    std::vector<int> ids(S);
    for (int s = 0; s < S; ++s) {
        ids[s] = c.pattern == 1 ? c.experts / 2 : (int)(next_u32() % (uint32_t)std::max(1, c.experts - 1));
    }
    if (c.pattern == 2) {
        ids[S - 1] = -1;
        ids[S / 2] = c.experts;
        ids[S / 2 + 1] = -5;
    }
    const size_t x_bytes = (size_t)c.tokens * xs * esz, p_bytes = ((size_t)S * ps + kGuard) * esz;
    std::vector<unsigned char> x(x_bytes);
    for (auto& b : x) b = (unsigned char)next_u32();
    DevBuf d_x(x_bytes), d_ids(S * 4), d_p(p_bytes), d_off((c.experts + 1 + kGuard) * 4), d_rows((S + kGuard) * 4), d_word(32);
    d_x.upload(x.data());
    d_ids.upload(ids.data());
    CUDA_OK(cudaMemset(d_p.d, 0xff, p_bytes));
    CUDA_OK(cudaMemset(d_off.d, 0xff, d_off.bytes));
    CUDA_OK(cudaMemset(d_rows.d, 0xff, d_rows.bytes));
    CUDA_OK(cudaMemset(d_word.d, 0, 32));
    dsk_moe_permute_params p{};
    p.x = d_x.d;
    p.expert_ids = static_cast<const int32_t*>(d_ids.d);
    p.permuted = d_p.d;
    p.expert_offsets = static_cast<int32_t*>(d_off.d);
    p.slot_rows = static_cast<int32_t*>(d_rows.d);
    p.error_word = static_cast<int32_t*>(d_word.d);
    p.tokens = c.tokens;
    p.top_k = c.top_k;
    p.hidden = c.hidden;
    p.experts = c.experts;
    p.x_row_stride = xs;
    p.permuted_row_stride = ps;
    p.x_dtype = c.dtype;
    p.error_site = kSite;
    int64_t ws_bytes = 0;
    if (dsk_moe_permute_workspace_size(&p, &ws_bytes) != DSK_SUCCESS) return fail(c.name, dsk_last_error_message());
    DevBuf d_ws((size_t)ws_bytes);
    CUDA_OK(cudaMemset(d_ws.d, 0x5a, d_ws.bytes));  // garbage: the kernels must not rely on it
    p.workspace = d_ws.d;
    p.workspace_bytes = ws_bytes;
    if (dsk_moe_permute(&p) != DSK_SUCCESS) return fail(c.name, dsk_last_error_message());
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<unsigned char> perm(p_bytes);
    std::vector<int> off(c.experts + 1 + kGuard), rows(S + kGuard), word(8);
    d_p.download(perm.data());
    d_off.download(off.data());
    d_rows.download(rows.data());
    d_word.download(word.data());
    if (c.pattern == 2) {
        const int first = S / 2;
        if (word[0] != kSite || word[1] != first || word[2] != c.experts || word[3] != c.experts || word[4] != 0) {
            std::printf("  %s: word {%d, %d, %d, %d, %d}, expected {%d, %d, %d, %d, 0}\n", c.name.c_str(), word[0], word[1],
                        word[2], word[3], word[4], kSite, first, c.experts, c.experts);
            return fail(c.name, "the error word is not the lowest bad slot");
        }
        for (auto b : perm) if (b != 0xff) return fail(c.name, "permuted was written despite a bad id");
        for (int v : off) if (v != -1) return fail(c.name, "expert_offsets was written despite a bad id");
        for (int v : rows) if (v != -1) return fail(c.name, "slot_rows was written despite a bad id");
        // An earlier error is kept: run again with the word already set.
        CUDA_OK(cudaMemset(d_ws.d, 0x5a, d_ws.bytes));
        const int32_t earlier[8] = {3, 11, 12, 13, 0, 0, 0, 0};
        CUDA_OK(cudaMemcpy(d_word.d, earlier, 32, cudaMemcpyHostToDevice));
        if (dsk_moe_permute(&p) != DSK_SUCCESS) return fail(c.name, dsk_last_error_message());
        CUDA_OK(cudaDeviceSynchronize());
        d_word.download(word.data());
        if (std::memcmp(word.data(), earlier, 32) != 0) return fail(c.name, "an earlier error was overwritten");
        return;
    }
    if (word[0] != 0) return fail(c.name, "the error word was set for valid ids");
    std::vector<int> ref_off(c.experts + 1, 0), ref_rows(S);
    for (int s = 0; s < S; ++s) ref_off[ids[s] + 1]++;
    for (int e = 0; e < c.experts; ++e) ref_off[e + 1] += ref_off[e];
    std::vector<int> cursor(ref_off.begin(), ref_off.end() - 1);
    for (int s = 0; s < S; ++s) ref_rows[s] = cursor[ids[s]]++;
    for (int e = 0; e <= c.experts; ++e) if (off[e] != ref_off[e]) return fail(c.name, "expert_offsets differ");
    for (int s = 0; s < S; ++s) if (rows[s] != ref_rows[s]) return fail(c.name, "slot_rows differ");
    for (int i = 0; i < kGuard; ++i) {
        if (off[c.experts + 1 + i] != -1 || rows[S + i] != -1) return fail(c.name, "a guard after offsets / slot_rows was written");
    }
    std::vector<char> expect_written((size_t)S * ps + kGuard, 0);
    for (int s = 0; s < S; ++s) {
        const unsigned char* src = &x[(size_t)(s / c.top_k) * xs * esz];
        const unsigned char* dst = &perm[(size_t)ref_rows[s] * ps * esz];
        if (std::memcmp(src, dst, (size_t)c.hidden * esz) != 0) return fail(c.name, "a permuted row differs from its x row");
        for (int i = 0; i < c.hidden; ++i) expect_written[(size_t)ref_rows[s] * ps + i] = 1;
    }
    for (size_t i = 0; i < expect_written.size(); ++i) {
        if (expect_written[i]) continue;
        for (int b = 0; b < esz; ++b)
            if (perm[i * esz + b] != 0xff) return fail(c.name, "padding or the guard of permuted was written");
    }
}

void permute_checks() {
    std::vector<PermuteCase> cases = {
        {"1 slot f32", 1, 1, 3, 1, 0, 0, DSK_DTYPE_F32, 0},
        {"7x2 E5 f32 h33", 7, 2, 5, 33, 0, 0, DSK_DTYPE_F32, 0},
        {"17x3 E8 f32 h65 padded", 17, 3, 8, 65, 3, 5, DSK_DTYPE_F32, 0},
        {"64x8 E256 bf16 h64 (vector)", 64, 8, 256, 64, 0, 8, DSK_DTYPE_BF16, 0},
        {"40x6 E64 f32 h8 (vector)", 40, 6, 64, 8, 4, 0, DSK_DTYPE_F32, 0},
        {"one expert takes all", 50, 8, 16, 16, 0, 0, DSK_DTYPE_BF16, 1},
        {"bad ids", 9, 4, 6, 8, 0, 0, DSK_DTYPE_F32, 2},
        {"bad ids bf16 across chunks", 100, 8, 32, 8, 0, 0, DSK_DTYPE_BF16, 2},
        {"300x8 E256 bf16 h16 (2400 slots)", 300, 8, 256, 16, 0, 0, DSK_DTYPE_BF16, 0},
        {"E1 all", 5, 2, 1, 3, 0, 0, DSK_DTYPE_BF16, 1},
    };
    if (!g_quick) {
        cases.push_back({"512x8 E256 bf16 h8 (4096 slots)", 512, 8, 256, 8, 0, 0, DSK_DTYPE_BF16, 0});
        cases.push_back({"70x8 E2000 f32 h5", 70, 8, 2000, 5, 1, 2, DSK_DTYPE_F32, 0});
    }
    for (const auto& c : cases) run_permute(c);
}

// ---------------------------------------------------------------------------------------------------------
// Combine

struct CombineCase {
    std::string name;
    int tokens, top_k, hidden, out_pad, y_pad, out_dtype, y_dtype, accumulate;
    int bad;  // 0 none; 1 bad rows at two tokens
};

float load_elem(const std::vector<unsigned char>& b, size_t i, int dtype) {
    if (dtype == DSK_DTYPE_F32) {
        float f;
        std::memcpy(&f, &b[i * 4], 4);
        return f;
    }
    uint16_t h;
    std::memcpy(&h, &b[i * 2], 2);
    return bf16_to_f32(h);
}
void store_elem(std::vector<unsigned char>& b, size_t i, int dtype, float v) {
    if (dtype == DSK_DTYPE_F32) {
        std::memcpy(&b[i * 4], &v, 4);
    } else {
        const uint16_t h = f32_to_bf16(v);
        std::memcpy(&b[i * 2], &h, 2);
    }
}

void run_combine(const CombineCase& c) {
    ++g_cases;
    const int S = c.tokens * c.top_k;
    const int oes = c.out_dtype == DSK_DTYPE_F32 ? 4 : 2, yes = c.y_dtype == DSK_DTYPE_F32 ? 4 : 2;
    const int64_t os = c.hidden + c.out_pad, ys = c.hidden + c.y_pad;
    std::vector<int> rows(S);
    for (int s = 0; s < S; ++s) rows[s] = s;
    for (int s = S - 1; s > 0; --s) std::swap(rows[s], rows[next_u32() % (uint32_t)(s + 1)]);
    int first_bad = -1;
    if (c.bad) {
        rows[S - 1] = -1;
        first_bad = c.top_k + (c.top_k > 1 ? 1 : 0);  // token 1 (or 1's only slot)
        if (c.tokens > 1) rows[first_bad] = S;
        else first_bad = S - 1;
    }
    std::vector<float> w(S);
    for (auto& v : w) v = uniform(-1.0f, 1.0f);
    std::vector<unsigned char> out((size_t)S * os * oes), y0((size_t)(c.tokens * ys + kGuard) * yes);
    for (size_t i = 0; i < (size_t)S * os; ++i) store_elem(out, i, c.out_dtype, uniform(-2.0f, 2.0f));
    std::memset(y0.data(), 0xff, y0.size());
    if (c.accumulate) {
        for (int t = 0; t < c.tokens; ++t)
            for (int i = 0; i < c.hidden; ++i) store_elem(y0, (size_t)t * ys + i, c.y_dtype, uniform(-1.0f, 1.0f));
    }
    std::vector<unsigned char> ref = y0;
    for (int t = 0; t < c.tokens; ++t) {
        bool bad = false;
        for (int k = 0; k < c.top_k; ++k) bad |= rows[t * c.top_k + k] < 0 || rows[t * c.top_k + k] >= S;
        if (bad) continue;
        for (int i = 0; i < c.hidden; ++i) {
            float acc = 0.0f;
            for (int k = 0; k < c.top_k; ++k) {
                acc = std::fmaf(w[t * c.top_k + k], load_elem(out, (size_t)rows[t * c.top_k + k] * os + i, c.out_dtype), acc);
            }
            if (c.accumulate) acc = load_elem(y0, (size_t)t * ys + i, c.y_dtype) + acc;
            store_elem(ref, (size_t)t * ys + i, c.y_dtype, acc);
        }
    }
    DevBuf d_out(out.size()), d_rows(S * 4), d_w(S * 4), d_y(y0.size()), d_word(32);
    d_out.upload(out.data());
    d_rows.upload(rows.data());
    d_w.upload(w.data());
    d_y.upload(y0.data());
    CUDA_OK(cudaMemset(d_word.d, 0, 32));
    dsk_moe_combine_params p{};
    p.expert_output = d_out.d;
    p.slot_rows = static_cast<const int32_t*>(d_rows.d);
    p.expert_weights = static_cast<const float*>(d_w.d);
    p.y = d_y.d;
    p.error_word = static_cast<int32_t*>(d_word.d);
    p.tokens = c.tokens;
    p.top_k = c.top_k;
    p.hidden = c.hidden;
    p.expert_output_row_stride = os;
    p.y_row_stride = ys;
    p.expert_output_dtype = c.out_dtype;
    p.y_dtype = c.y_dtype;
    p.accumulate = c.accumulate;
    p.error_site = kSite;
    if (dsk_moe_combine(&p) != DSK_SUCCESS) return fail(c.name, dsk_last_error_message());
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<unsigned char> y(y0.size());
    std::vector<int> word(8);
    d_y.download(y.data());
    d_word.download(word.data());
    if (y != ref) {
        for (size_t i = 0; i < y.size() / yes; ++i) {
            if (std::memcmp(&y[i * yes], &ref[i * yes], yes) != 0) {
                std::printf("  %s: y element %zu = %.9g, expected %.9g\n", c.name.c_str(), i, load_elem(y, i, c.y_dtype),
                            load_elem(ref, i, c.y_dtype));
                break;
            }
        }
        return fail(c.name, "y differs from the reference (bit for bit; padding, guard and bad tokens untouched)");
    }
    if (c.bad) {
        if (word[0] != kSite || word[1] != first_bad || word[2] != rows[first_bad] || word[3] != S)
            return fail(c.name, "the error word is not the lowest bad index");
    } else if (word[0] != 0) {
        return fail(c.name, "the error word was set for valid rows");
    }
}

void combine_checks() {
    std::vector<CombineCase> cases;
    const int hiddens[] = {1, 17, 64, 65};
    for (int h : hiddens) {
        for (int od = 0; od < 2; ++od) {
            for (int yd = 0; yd < 2; ++yd) {
                for (int acc = 0; acc < 2; ++acc) {
                    if (g_quick && (od != yd) && h != 64) continue;
                    cases.push_back({"h" + std::to_string(h) + (od ? " bf16" : " f32") + "->" + (yd ? "bf16" : "f32") +
                                         (acc ? " accumulate" : ""),
                                     5, 3, h, 0, 0, od, yd, acc, 0});
                }
            }
        }
    }
    cases.push_back({"v3 decode shape slice h512 bf16", 4, 8, 512, 0, 8, DSK_DTYPE_BF16, DSK_DTYPE_BF16, 1, 0});
    cases.push_back({"padded strides f32 h40", 6, 2, 40, 8, 4, DSK_DTYPE_F32, DSK_DTYPE_F32, 0, 0});
    cases.push_back({"odd strides bf16 h64 (scalar)", 3, 4, 64, 3, 1, DSK_DTYPE_BF16, DSK_DTYPE_F32, 1, 0});
    cases.push_back({"1 token top 1", 1, 1, 8, 0, 0, DSK_DTYPE_F32, DSK_DTYPE_BF16, 0, 0});
    cases.push_back({"bad rows", 5, 3, 17, 0, 0, DSK_DTYPE_F32, DSK_DTYPE_F32, 1, 1});
    cases.push_back({"bad rows bf16 vector", 7, 2, 64, 0, 0, DSK_DTYPE_BF16, DSK_DTYPE_BF16, 0, 1});
    cases.push_back({"bad rows one token", 1, 4, 9, 0, 0, DSK_DTYPE_F32, DSK_DTYPE_F32, 0, 1});
    for (const auto& c : cases) run_combine(c);
}

// ---------------------------------------------------------------------------------------------------------
// Benchmarks (a real GPU): DeepSeek-V3's routing, permutation and combine, against a device copy of the same bytes.

void bench() {
    cudaStream_t st;
    CUDA_OK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    const int E = 256, K = 8, H = 7168;
    const int token_set[] = {1, 16, 64, 512, 4096};
    std::printf("\nbench (median of 200, CUDA events)\n");
    std::printf("%-8s %12s %12s %12s %12s %14s\n", "tokens", "route us", "permute us", "combine us", "copy us", "perm+comb GB/s");
    for (int T : token_set) {
        const size_t S = (size_t)T * K;
        DevBuf logits((size_t)T * E * 4), bias(E * 4), ids(S * 4), w(S * 4), x((size_t)T * H * 2), perm(S * H * 2),
            off((E + 1) * 4), rows(S * 4), y((size_t)T * H * 2), word(32), cp_src(S * H * 2), cp_dst(S * H * 2);
        std::vector<float> hl((size_t)T * E), hb(E);
        for (auto& v : hl) v = uniform(-4, 4);
        for (auto& v : hb) v = uniform(-0.1f, 0.1f);
        logits.upload(hl.data());
        bias.upload(hb.data());
        fill_bf16(x.d, (size_t)T * H, 1.0f, 1);
        CUDA_OK(cudaMemset(word.d, 0, 32));
        dsk_moe_route_params r{};
        r.logits = logits.d;
        r.bias = static_cast<const float*>(bias.d);
        r.expert_ids = static_cast<int32_t*>(ids.d);
        r.expert_weights = static_cast<float*>(w.d);
        r.tokens = T;
        r.experts = E;
        r.top_k = K;
        r.groups = 8;
        r.top_k_groups = 4;
        r.scoring = DSK_MOE_SCORING_SIGMOID;
        r.method = DSK_MOE_METHOD_NOAUX_TC;
        r.normalize = 1;
        r.logits_dtype = DSK_DTYPE_F32;
        r.routed_scaling_factor = 2.5f;
        r.stream = st;
        const double t_route = median_us([&] { dsk_moe_route(&r); }, st, 200);
        dsk_moe_permute_params p{};
        p.x = x.d;
        p.expert_ids = static_cast<const int32_t*>(ids.d);
        p.permuted = perm.d;
        p.expert_offsets = static_cast<int32_t*>(off.d);
        p.slot_rows = static_cast<int32_t*>(rows.d);
        p.error_word = static_cast<int32_t*>(word.d);
        p.tokens = T;
        p.top_k = K;
        p.hidden = H;
        p.experts = E;
        p.x_row_stride = H;
        p.permuted_row_stride = H;
        p.x_dtype = DSK_DTYPE_BF16;
        p.error_site = kSite;
        p.stream = st;
        int64_t wsb = 0;
        dsk_moe_permute_workspace_size(&p, &wsb);
        DevBuf ws((size_t)wsb);
        p.workspace = ws.d;
        p.workspace_bytes = wsb;
        const double t_perm = median_us([&] { dsk_moe_permute(&p); }, st, 200);
        dsk_moe_combine_params c{};
        c.expert_output = perm.d;
        c.slot_rows = static_cast<const int32_t*>(rows.d);
        c.expert_weights = static_cast<const float*>(w.d);
        c.y = y.d;
        c.error_word = static_cast<int32_t*>(word.d);
        c.tokens = T;
        c.top_k = K;
        c.hidden = H;
        c.expert_output_row_stride = H;
        c.y_row_stride = H;
        c.expert_output_dtype = DSK_DTYPE_BF16;
        c.y_dtype = DSK_DTYPE_BF16;
        c.accumulate = 1;
        c.error_site = kSite;
        c.stream = st;
        const double t_comb = median_us([&] { dsk_moe_combine(&c); }, st, 200);
        const double t_copy =
            median_us([&] { CUDA_OK(cudaMemcpyAsync(cp_dst.d, cp_src.d, S * H * 2, cudaMemcpyDeviceToDevice, st)); }, st, 200);
        // Fewest bytes: permute reads T*H and writes S*H; combine reads S*H and y, writes y (bf16).
        const double bytes = 2.0 * ((double)T * H + S * H) + 2.0 * ((double)S * H + 2.0 * T * H);
        std::printf("%-8d %12.2f %12.2f %12.2f %12.2f %14.0f\n", T, t_route, t_perm, t_comb, t_copy,
                    bytes / ((t_perm + t_comb) * 1e3));
        int32_t hw[8];
        CUDA_OK(cudaMemcpy(hw, word.d, 32, cudaMemcpyDeviceToHost));
        if (hw[0] != 0) fail("bench", "the error word was set");
    }
    CUDA_OK(cudaStreamDestroy(st));
}

}  // namespace

int main(int argc, char** argv) {
    bool do_bench = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) g_quick = true;
        if (std::strcmp(argv[i], "--bench") == 0) do_bench = true;
    }
    if (!gpu_present()) return 77;
    route_checks();
    std::printf("routing: %d cases, %d failed\n", g_cases, g_failed);
    const int route_cases = g_cases, route_failed = g_failed;
    permute_checks();
    std::printf("permutation: %d cases, %d failed\n", g_cases - route_cases, g_failed - route_failed);
    const int perm_cases = g_cases, perm_failed = g_failed;
    combine_checks();
    std::printf("combine: %d cases, %d failed\n", g_cases - perm_cases, g_failed - perm_failed);
    if (do_bench) bench();
    std::printf("%s: %d cases, %d failed\n", g_failed ? "FAILED" : "PASSED", g_cases, g_failed);
    return g_failed ? 1 : 0;
}

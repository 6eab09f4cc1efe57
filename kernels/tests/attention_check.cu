// attention_check.cu: dsk_rope, dsk_kv_append, dsk_paged_attention and dsk_paged_mla_attention on a GPU against CPU
// references, plus an optional timing of the decode shapes (--bench).
//
// dsk_rope: both layouts, F32 and BF16, a rotary part at an offset inside a wider head with padded rows (the vector
// path) and misaligned / odd shapes (the scalar path); the reference is float64 over the stored values, rounded once to
// x's dtype (tolerance: one bf16 step, or 4e-7 relative for f32, for the fp32 evaluation order and FMA contraction);
// every element outside the rotary parts, and every token with a bad position, must keep its bits; bad positions (-1
// and max_positions) set the error word to {site, lowest t, position, max_positions, 0}.
//
// dsk_kv_append: the 16 dtype combinations of keys / key pages / values / value pages (and MLA: no values), padded row
// strides, widths on the vector and the scalar path, pools poisoned with NaN bytes: the mapped slots hold the row
// (bit-exact for same-dtype pairs and bf16 -> f32, round-to-nearest-even for f32 -> bf16), every other byte of the pools
// is unchanged; bad slots (-1, slots) skip their token and set the error word to {site, lowest t, slot, slots, 0}.
//
// Paged attention through the public entry points with path SIMT and AUTO: decode batches of lengths 1, 2, 63, 64, 65,
// a long sequence (split-K + combine, also with max_splits 1 and 3), a mixed batch (a prefill chunk continuing a cache,
// a whole prefill, decode tokens), page sizes 16 and 64, pages out of order, every slot past a sequence's length and
// every unused page NaN, block-table entries past a sequence's pages garbage, GQA 1:1, 4:1, 7:1, 8:1, head_dim 64 and
// 128 (and 100 / 72: the scalar loads), bf16 and f32 pages, q and out f32 / bf16, MLA 576/512 with 4 and 16 heads.
// The reference is float64 over the stored values; error ||out - ref|| / ||ref|| per case: 2e-5 with f32 q, pages and
// out on SIMT; 8e-3 with a bf16 out; 1.5e-2 on AUTO (a tensor-core family rounds q and the weights to bf16). Rows
// outside every sequence must keep their poison. Bad metadata: each error site (a query offset out of range, out of
// order, a length below n, above the capacity, a block-table entry out of range, several at once) must give exactly the
// word the header states, and the valid sequences of such a step must still be right.
//
// Exits 77 (ctest: skipped) when no CUDA device is present.
//
//   dsk_attention_check           run the checks
//   dsk_attention_check --quick   fewer and smaller cases (the host emulation, kernels/tests/emu)
//   dsk_attention_check --bench   also time the decode shapes (32 q / 8 kv heads x 128, bf16) against a copy
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


bool check_word(const char* name, const int32_t* word, int32_t w0, int32_t w1, int32_t w2, int32_t w3, int32_t w4) {
    if (word[0] == w0 && word[1] == w1 && word[2] == w2 && word[3] == w3 && word[4] == w4) return true;
    std::fprintf(stderr, "FAIL [%s]: error word {%d, %d, %d, %d, %d}, want {%d, %d, %d, %d, %d}\n", name, word[0], word[1],
                 word[2], word[3], word[4], w0, w1, w2, w3, w4);
    return false;
}

// ---------------------------------------------------------------------------------------------------------
// dsk_rope

void run_rope_case(int32_t dt, int32_t layout, int64_t tokens, int64_t heads, int64_t head_stride, int64_t offset,
                   int64_t rot, int64_t row_pad, int64_t x_shift, bool bad, cudaStream_t stream) {
    ++g_cases;
    char name[200];
    std::snprintf(name, sizeof name, "rope %s %s tokens %lld heads %lld head_stride %lld offset %lld rotary %lld pad %lld shift %lld%s",
                  dtype_str(dt), layout == DSK_ROPE_HALF_SPLIT ? "half-split" : "interleaved", (long long)tokens, (long long)heads,
                  (long long)head_stride, (long long)offset, (long long)rot, (long long)row_pad, (long long)x_shift,
                  bad ? " bad positions" : "");
    const int64_t row = heads * head_stride + row_pad, half = rot / 2, maxpos = 50;
    HostBuf x0(dt, (size_t)(x_shift + tokens * row));
    for (size_t e = 0; e < x0.size(); ++e) x0.set(e, uniform(-2.0f, 2.0f));
    std::vector<float> cs((size_t)(maxpos * half)), sn(cs.size());
    for (int64_t pos = 0; pos < maxpos; ++pos)
        for (int64_t i = 0; i < half; ++i) {
            const double ang = pos * std::pow(10000.0, -2.0 * i / rot);
            cs[(size_t)(pos * half + i)] = (float)(1.1 * std::cos(ang));  // an attention factor folded in
            sn[(size_t)(pos * half + i)] = (float)(1.1 * std::sin(ang));
        }
    std::vector<int32_t> pos((size_t)tokens);
    for (auto& v : pos) v = (int32_t)(next_u32() % maxpos);
    if (bad && tokens >= 4) {
        pos[(size_t)(tokens - 1)] = -1;
        pos[2] = (int32_t)maxpos;  // the lowest bad t
    }
    DevBuf dx(x0.bytes.size()), dcos(cs.size() * 4), dsin(sn.size() * 4), dpos(pos.size() * 4), dword(32);
    dx.upload(x0.bytes.data());
    dcos.upload(cs.data());
    dsin.upload(sn.data());
    dpos.upload(pos.data());
    CUDA_OK(cudaMemset(dword.d, 0, 32));
    dsk_rope_params p;
    std::memset(&p, 0, sizeof p);
    p.x = static_cast<uint8_t*>(dx.d) + x_shift * dtype_bytes(dt);
    p.positions = static_cast<const int32_t*>(dpos.d);
    p.cos = static_cast<const float*>(dcos.d);
    p.sin = static_cast<const float*>(dsin.d);
    p.error_word = static_cast<int32_t*>(dword.d);
    p.tokens = tokens;
    p.heads = heads;
    p.head_stride = head_stride;
    p.x_row_stride = row;
    p.rope_offset = offset;
    p.rotary_dim = rot;
    p.max_positions = maxpos;
    p.x_dtype = dt;
    p.layout = layout;
    p.error_site = 17;
    p.stream = stream;
    const dsk_status st = dsk_rope(&p);
    if (st != DSK_SUCCESS) {
        std::fprintf(stderr, "FAIL [%s]: status %d: %s\n", name, (int)st, dsk_last_error_message());
        ++g_failed;
        return;
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    HostBuf x(dt, x0.size());
    dx.download(x.bytes.data());
    int32_t word[8];
    dword.download(word);
    bool ok = bad && tokens >= 4 ? check_word(name, word, 17, 2, (int32_t)maxpos, (int32_t)maxpos, 0)
                                 : check_word(name, word, 0, 0, 0, 0, 0);
    std::vector<bool> rotated(x0.size(), false);
    for (int64_t t = 0; t < tokens && ok; ++t) {
        const int32_t ps = pos[(size_t)t];
        if (ps < 0 || ps >= maxpos) continue;
        for (int64_t h = 0; h < heads && ok; ++h) {
            const size_t hb = (size_t)(x_shift + t * row + h * head_stride + offset);
            for (int64_t i = 0; i < half && ok; ++i) {
                const size_t ia = hb + (size_t)(layout == DSK_ROPE_HALF_SPLIT ? i : 2 * i);
                const size_t ib = hb + (size_t)(layout == DSK_ROPE_HALF_SPLIT ? i + half : 2 * i + 1);
                const double c = cs[(size_t)(ps * half + i)], s = sn[(size_t)(ps * half + i)];
                const double a = x0.get(ia), b = x0.get(ib);
                const double want[2] = {a * c - b * s, b * c + a * s};
                const size_t at[2] = {ia, ib};
                for (int k = 0; k < 2; ++k) {
                    rotated[at[k]] = true;
                    const double got = x.get(at[k]);
                    const double tol = dt == DSK_DTYPE_F32 ? 4e-7 * (std::fabs(a) + std::fabs(b)) * 1.1 + 1e-30
                                                           : std::fabs(want[k]) * (1.0 / 256) + 1e-6;
                    if (!(std::fabs(got - want[k]) <= tol)) {
                        std::fprintf(stderr, "FAIL [%s]: x[t %lld, h %lld, pair %lld] = %.9g, want %.9g\n", name,
                                     (long long)t, (long long)h, (long long)i, got, want[k]);
                        ok = false;
                    }
                }
            }
        }
    }
    for (size_t e = 0; e < x0.size() && ok; ++e) {
        if (!rotated[e] && !x.same_bits(x0, e)) {
            std::fprintf(stderr, "FAIL [%s]: element %zu outside the rotated parts changed\n", name, e);
            ok = false;
        }
    }
    if (!ok) ++g_failed;
}

void run_rope_checks(cudaStream_t stream) {
    for (int32_t dt : {DSK_DTYPE_BF16, DSK_DTYPE_F32}) {
        for (int32_t layout : {DSK_ROPE_HALF_SPLIT, DSK_ROPE_INTERLEAVED}) {
            run_rope_case(dt, layout, 7, 4, 128, 0, 128, 0, 0, false, stream);     // vector path, whole head
            run_rope_case(dt, layout, 9, 3, 192, 128, 64, 8, 0, true, stream);     // DeepSeek: rope part after nope
            run_rope_case(dt, layout, 5, 2, 72, 8, 64, 0, 0, false, stream);
            run_rope_case(dt, layout, 6, 3, 40, 3, 36, 5, 1, true, stream);        // scalar path: odd offset, shift
            run_rope_case(dt, layout, 40, 2, 16, 2, 6, 0, 0, true, stream);        // half = 3; tokens > 32
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// dsk_kv_append

void run_kv_case(int32_t kdt, int32_t kpdt, int32_t vdt, int32_t vpdt, bool values, int64_t kw, int64_t vw, int64_t pad,
                 bool bad, cudaStream_t stream) {
    ++g_cases;
    char name[200];
    std::snprintf(name, sizeof name, "kv_append keys %s -> %s%s%s%s width %lld / %lld pad %lld%s", dtype_str(kdt), dtype_str(kpdt),
                  values ? ", values " : " (no values)", values ? dtype_str(vdt) : "", values ? (vpdt == DSK_DTYPE_F32 ? " -> f32" : " -> bf16") : "",
                  (long long)kw, (long long)vw, (long long)pad, bad ? " bad slots" : "");
    const int64_t tokens = 37, slots = 5 * 16, krow = kw + pad, vrow = vw + pad;
    HostBuf keys(kdt, (size_t)(tokens * krow)), vals(vdt, (size_t)(tokens * vrow));
    for (size_t e = 0; e < keys.size(); ++e) keys.set(e, uniform(-3.0f, 3.0f));
    for (size_t e = 0; e < vals.size(); ++e) vals.set(e, uniform(-3.0f, 3.0f));
    std::vector<int32_t> slot((size_t)tokens);
    std::vector<int32_t> perm((size_t)slots);
    for (int64_t i = 0; i < slots; ++i) perm[(size_t)i] = (int32_t)i;
    for (int64_t i = slots - 1; i > 0; --i) std::swap(perm[(size_t)i], perm[(size_t)(next_u32() % (i + 1))]);
    for (int64_t t = 0; t < tokens; ++t) slot[(size_t)t] = perm[(size_t)t];
    if (bad) {
        slot[33] = -1;
        slot[5] = (int32_t)slots;  // lowest bad t
        slot[20] = (int32_t)slots + 1000;
    }
    HostBuf kp0(kpdt, (size_t)(slots * kw)), vp0(vpdt, (size_t)(slots * vw));  // NaN bytes
    DevBuf dk(keys.bytes.size()), dv(vals.bytes.size()), ds(slot.size() * 4), dkp(kp0.bytes.size()), dvp(vp0.bytes.size()),
        dword(32);
    dk.upload(keys.bytes.data());
    dv.upload(vals.bytes.data());
    ds.upload(slot.data());
    dkp.upload(kp0.bytes.data());
    dvp.upload(vp0.bytes.data());
    CUDA_OK(cudaMemset(dword.d, 0, 32));
    dsk_kv_append_params p;
    std::memset(&p, 0, sizeof p);
    p.keys = dk.d;
    p.values = values ? dv.d : nullptr;
    p.slot_mapping = static_cast<const int32_t*>(ds.d);
    p.key_pages = dkp.d;
    p.value_pages = values ? dvp.d : nullptr;
    p.error_word = static_cast<int32_t*>(dword.d);
    p.tokens = tokens;
    p.slots = slots;
    p.key_width = kw;
    p.value_width = values ? vw : 0;
    p.keys_row_stride = krow;
    p.values_row_stride = vrow;
    p.key_dtype = kdt;
    p.value_dtype = vdt;
    p.key_page_dtype = kpdt;
    p.value_page_dtype = vpdt;
    p.error_site = 23;
    p.stream = stream;
    const dsk_status st = dsk_kv_append(&p);
    if (st != DSK_SUCCESS) {
        std::fprintf(stderr, "FAIL [%s]: status %d: %s\n", name, (int)st, dsk_last_error_message());
        ++g_failed;
        return;
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    HostBuf kp(kpdt, kp0.size()), vp(vpdt, vp0.size());
    dkp.download(kp.bytes.data());
    dvp.download(vp.bytes.data());
    int32_t word[8];
    dword.download(word);
    bool ok = bad ? check_word(name, word, 23, 5, (int32_t)slots, (int32_t)slots, 0) : check_word(name, word, 0, 0, 0, 0, 0);
    // Expected pools: poison, then each good token's rows.
    HostBuf kwant = kp0, vwant = vp0;
    for (int64_t t = 0; t < tokens; ++t) {
        const int32_t s = slot[(size_t)t];
        if (s < 0 || s >= slots) continue;
        for (int64_t c = 0; c < kw; ++c) kwant.set((size_t)(s * kw + c), keys.get((size_t)(t * krow + c)));
        if (values)
            for (int64_t c = 0; c < vw; ++c) vwant.set((size_t)(s * vw + c), vals.get((size_t)(t * vrow + c)));
    }
    for (size_t e = 0; e < kp.size() && ok; ++e) {
        if (!kp.same_bits(kwant, e)) {
            std::fprintf(stderr, "FAIL [%s]: key pool element %zu = %.9g, want %.9g\n", name, e, kp.get(e), kwant.get(e));
            ok = false;
        }
    }
    for (size_t e = 0; e < vp.size() && ok; ++e) {
        if (!vp.same_bits(vwant, e)) {
            std::fprintf(stderr, "FAIL [%s]: value pool element %zu = %.9g, want %.9g\n", name, e, vp.get(e), vwant.get(e));
            ok = false;
        }
    }
    if (!ok) ++g_failed;
}

void run_kv_checks(cudaStream_t stream) {
    const int32_t dts[2] = {DSK_DTYPE_BF16, DSK_DTYPE_F32};
    int v = 0;
    for (int32_t kdt : dts)
        for (int32_t kpdt : dts)
            for (int32_t vdt : dts)
                for (int32_t vpdt : dts) {
                    ++v;
                    if (g_quick && v % 3 != 1) continue;
                    run_kv_case(kdt, kpdt, vdt, vpdt, true, 128, 64, v % 2 ? 0 : 8, v % 4 == 1, stream);
                    run_kv_case(kdt, kpdt, vdt, vpdt, true, 37, 20, 3, v % 4 == 2, stream);  // scalar path
                }
    run_kv_case(DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16, false, 576, 0, 0, true, stream);  // MLA
    run_kv_case(DSK_DTYPE_F32, DSK_DTYPE_BF16, DSK_DTYPE_BF16, DSK_DTYPE_BF16, false, 576, 0, 16, false, stream);
}

// ---------------------------------------------------------------------------------------------------------
// Paged attention

struct AttnCase {
    std::string name;
    std::vector<int32_t> n, L;  // queries and keys per sequence
    int64_t page_size, q_heads, kv_heads, D, Dv;
    int32_t page_dt, q_dt, out_dt;
    bool mla;
    int32_t max_splits = 0;
};

// Which metadata fault to plant (the expected word is computed in the case).
enum Fault { kNone, kStartRange, kStartOrder, kLenShort, kLenLong, kTable, kSeveral };

struct AttnSetup {
    int64_t tokens = 0, max_pages = 0, pages = 0, lead = 1;  // `lead` rows before the first sequence, one after
    std::vector<int32_t> qs, lens, table;
    HostBuf q, kp, vp;
    AttnSetup() : q(DSK_DTYPE_F32, 0), kp(DSK_DTYPE_F32, 0), vp(DSK_DTYPE_F32, 0) {}
};

void build(const AttnCase& c, AttnSetup& s) {
    const int64_t batch = (int64_t)c.n.size();
    int64_t total = 0, used_pages = 0;
    for (int64_t b = 0; b < batch; ++b) {
        total += c.n[(size_t)b];
        const int64_t pg = (c.L[(size_t)b] + c.page_size - 1) / c.page_size;
        used_pages += pg;
        s.max_pages = std::max<int64_t>(s.max_pages, pg);
    }
    s.max_pages += 1;  // an entry past every sequence's pages (garbage, never read)
    s.tokens = total + 2 * s.lead;
    s.pages = used_pages + 3;  // three unused pages (NaN)
    s.qs.assign((size_t)batch + 1, 0);
    s.qs[0] = (int32_t)s.lead;
    for (int64_t b = 0; b < batch; ++b) s.qs[(size_t)b + 1] = s.qs[(size_t)b] + c.n[(size_t)b];
    s.lens = c.L;
    std::vector<int32_t> perm((size_t)s.pages);
    for (int64_t i = 0; i < s.pages; ++i) perm[(size_t)i] = (int32_t)i;
    for (int64_t i = s.pages - 1; i > 0; --i) std::swap(perm[(size_t)i], perm[(size_t)(next_u32() % (i + 1))]);
    s.table.assign((size_t)(batch * s.max_pages), 0);
    int64_t next = 0;
    for (int64_t b = 0; b < batch; ++b) {
        const int64_t pg = (c.L[(size_t)b] + c.page_size - 1) / c.page_size;
        for (int64_t j = 0; j < s.max_pages; ++j)
            s.table[(size_t)(b * s.max_pages + j)] = j < pg ? perm[(size_t)next++] : (int32_t)(0x40000000 + j);
    }
    const int64_t krow = c.kv_heads * c.D, vrow = c.kv_heads * c.Dv;
    s.q = HostBuf(c.q_dt, (size_t)(s.tokens * c.q_heads * c.D));
    for (size_t e = 0; e < s.q.size(); ++e) s.q.set(e, uniform(-1.0f, 1.0f));
    s.kp = HostBuf(c.page_dt, (size_t)(s.pages * c.page_size * krow));  // NaN everywhere
    s.vp = HostBuf(c.page_dt, c.mla ? 1 : (size_t)(s.pages * c.page_size * vrow));
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t j = 0; j < c.L[(size_t)b]; ++j) {
            const int64_t slot = (int64_t)s.table[(size_t)(b * s.max_pages + j / c.page_size)] * c.page_size + j % c.page_size;
            for (int64_t e = 0; e < krow; ++e) s.kp.set((size_t)(slot * krow + e), uniform(-1.0f, 1.0f));
            if (!c.mla)
                for (int64_t e = 0; e < vrow; ++e) s.vp.set((size_t)(slot * vrow + e), uniform(-1.0f, 1.0f));
        }
}

// float64 reference of one sequence's rows: out[row, h, :] for rows of sequence b.
void reference(const AttnCase& c, const AttnSetup& s, float scale, int64_t b, std::vector<double>& out) {
    const int64_t G = c.q_heads / c.kv_heads, krow = c.kv_heads * c.D, vrow = c.kv_heads * c.Dv;
    const int64_t n = c.n[(size_t)b], L = c.L[(size_t)b];
    std::vector<double> sc((size_t)L);
    for (int64_t i = 0; i < n; ++i) {
        const int64_t row = s.qs[(size_t)b] + i, pos = L - n + i;
        for (int64_t h = 0; h < c.q_heads; ++h) {
            const int64_t g = h / G;
            double mx = -INFINITY;
            for (int64_t j = 0; j <= pos; ++j) {
                const int64_t slot = (int64_t)s.table[(size_t)(b * s.max_pages + j / c.page_size)] * c.page_size + j % c.page_size;
                double d = 0.0;
                for (int64_t e = 0; e < c.D; ++e)
                    d += (double)s.q.get((size_t)((row * c.q_heads + h) * c.D + e)) * s.kp.get((size_t)(slot * krow + g * c.D + e));
                sc[(size_t)j] = d * scale;
                mx = std::max(mx, sc[(size_t)j]);
            }
            double sum = 0.0;
            for (int64_t j = 0; j <= pos; ++j) {
                sc[(size_t)j] = std::exp(sc[(size_t)j] - mx);
                sum += sc[(size_t)j];
            }
            for (int64_t e = 0; e < c.Dv; ++e) {
                double acc = 0.0;
                for (int64_t j = 0; j <= pos; ++j) {
                    const int64_t slot = (int64_t)s.table[(size_t)(b * s.max_pages + j / c.page_size)] * c.page_size + j % c.page_size;
                    const double v = c.mla ? s.kp.get((size_t)(slot * krow + e)) : s.vp.get((size_t)(slot * vrow + g * c.Dv + e));
                    acc += sc[(size_t)j] * v;
                }
                out[(size_t)((row * c.q_heads + h) * c.Dv + e)] = acc / sum;
            }
        }
    }
}

// Runs a case on one path with an optional fault; returns false on failure (message printed).
bool run_attention(const AttnCase& c, AttnSetup& s, int32_t path, Fault fault, cudaStream_t stream) {
    const int64_t batch = (int64_t)c.n.size();
    const float scale = 1.0f / std::sqrt((float)c.D);
    std::vector<int32_t> qs = s.qs, lens = s.lens, table = s.table;
    int32_t want[5] = {0, 0, 0, 0, 0};
    std::vector<bool> seq_ok((size_t)batch, true);
    const int32_t cap = (int32_t)(s.max_pages * c.page_size);
    switch (fault) {
        case kNone: break;
        case kStartRange:  // query_starts[1] past tokens (bound tokens + 1)
            qs[1] = (int32_t)s.tokens + 5;
            want[0] = 31; want[1] = 1; want[2] = qs[1]; want[3] = (int32_t)s.tokens + 1;
            break;
        case kStartOrder:  // query_starts[2] < query_starts[1] (bound batch + 1), with a length error later
            qs[2] = qs[1] - 1;
            lens[(size_t)batch - 1] = cap + 1;
            want[0] = 31; want[1] = 2; want[2] = qs[2]; want[3] = (int32_t)batch + 1; want[4] = 1;
            break;
        case kLenShort:  // sequence 1: L < n
            lens[1] = c.n[1] - 1;
            seq_ok[1] = false;
            want[0] = 32; want[1] = 1; want[2] = lens[1]; want[3] = cap + 1;
            break;
        case kLenLong:  // sequence 0: L above the capacity
            lens[0] = cap + 3;
            seq_ok[0] = false;
            want[0] = 32; want[1] = 0; want[2] = lens[0]; want[3] = cap + 1;
            break;
        case kTable: {  // sequence 1's last used entry = pages
            const int64_t j = (c.L[1] - 1) / c.page_size;
            table[(size_t)(1 * s.max_pages + j)] = (int32_t)s.pages;
            seq_ok[1] = false;
            want[0] = 33; want[1] = (int32_t)(1 * s.max_pages + j); want[2] = (int32_t)s.pages; want[3] = (int32_t)s.pages;
            break;
        }
        case kSeveral: {  // sequence 0: a negative table entry; sequence 1: L too long; reported: sequence 0's entry
            table[0] = -4;
            lens[1] = cap + 1;
            seq_ok[0] = seq_ok[1] = false;
            want[0] = 33; want[1] = 0; want[2] = -4; want[3] = (int32_t)s.pages;
            break;
        }
    }
    const bool starts_bad = fault == kStartRange || fault == kStartOrder;
    DevBuf dq(s.q.bytes.size()), dkp(s.kp.bytes.size()), dvp(s.vp.bytes.size()), dtab(table.size() * 4), dlen(lens.size() * 4),
        dqs(qs.size() * 4), dout((size_t)(s.tokens * c.q_heads * c.Dv) * dtype_bytes(c.out_dt)), dword(32);
    dq.upload(s.q.bytes.data());
    dkp.upload(s.kp.bytes.data());
    dvp.upload(s.vp.bytes.data());
    dtab.upload(table.data());
    dlen.upload(lens.data());
    dqs.upload(qs.data());
    CUDA_OK(cudaMemset(dout.d, 0xff, dout.bytes));
    CUDA_OK(cudaMemset(dword.d, 0, 32));
    dsk_paged_attention_params p;
    std::memset(&p, 0, sizeof p);
    p.q = dq.d;
    p.key_pages = dkp.d;
    p.value_pages = c.mla ? nullptr : dvp.d;
    p.block_table = static_cast<const int32_t*>(dtab.d);
    p.sequence_lengths = static_cast<const int32_t*>(dlen.d);
    p.query_starts = static_cast<const int32_t*>(dqs.d);
    p.out = dout.d;
    p.error_word = static_cast<int32_t*>(dword.d);
    p.tokens = s.tokens;
    p.batch = batch;
    p.max_pages = s.max_pages;
    p.pages = s.pages;
    p.page_size = c.page_size;
    p.q_heads = c.q_heads;
    p.kv_heads = c.kv_heads;
    p.head_dim = c.D;
    p.v_head_dim = c.Dv;
    p.scale = scale;
    p.q_dtype = c.q_dt;
    p.page_dtype = c.page_dt;
    p.out_dtype = c.out_dt;
    p.path = path;
    p.max_splits = c.max_splits;
    p.error_site_query_starts = 31;
    p.error_site_lengths = 32;
    p.error_site_block_table = 33;
    p.stream = stream;
    char name[300];
    std::snprintf(name, sizeof name, "%s path %s%s", c.name.c_str(), path == DSK_ATTENTION_PATH_SIMT ? "SIMT" : "AUTO",
                  fault == kNone ? "" : fault == kStartRange ? " fault: query offset range" : fault == kStartOrder ? " fault: query offset order"
                  : fault == kLenShort ? " fault: L < n" : fault == kLenLong ? " fault: L > capacity" : fault == kTable ? " fault: table entry" : " fault: several");
    int64_t ws = 0;
    dsk_status st = c.mla ? dsk_paged_mla_attention_workspace_size(&p, &ws) : dsk_paged_attention_workspace_size(&p, &ws);
    if (st != DSK_SUCCESS) {
        std::fprintf(stderr, "FAIL [%s]: workspace size: status %d: %s\n", name, (int)st, dsk_last_error_message());
        return false;
    }
    DevBuf dws((size_t)ws);
    CUDA_OK(cudaMemset(dws.d, 0xff, dws.bytes));  // the family must not rely on a cleared workspace
    p.workspace = dws.d;
    p.workspace_bytes = ws;
    st = c.mla ? dsk_paged_mla_attention(&p) : dsk_paged_attention(&p);
    if (st != DSK_SUCCESS) {
        std::fprintf(stderr, "FAIL [%s]: status %d: %s\n", name, (int)st, dsk_last_error_message());
        return false;
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    HostBuf out(c.out_dt, (size_t)(s.tokens * c.q_heads * c.Dv));
    dout.download(out.bytes.data());
    int32_t word[8];
    dword.download(word);
    bool ok = check_word(name, word, want[0], want[1], want[2], want[3], want[4]);
    if (starts_bad) return ok;  // rows are undefined with bad offsets; the word is what is checked
    const HostBuf poison(c.out_dt, out.size());
    std::vector<double> ref(out.size(), 0.0);
    double err2 = 0.0, ref2 = 0.0;
    bool nonfinite = false;
    for (int64_t b = 0; b < batch && ok; ++b) {
        if (!seq_ok[(size_t)b]) continue;
        reference(c, s, scale, b, ref);
        for (int64_t i = 0; i < c.n[(size_t)b]; ++i)
            for (int64_t e = 0; e < c.q_heads * c.Dv; ++e) {
                const size_t at = (size_t)((s.qs[(size_t)b] + i) * c.q_heads * c.Dv + e);
                const double got = out.get(at), w = ref[at];
                if (!std::isfinite(got)) nonfinite = true;
                err2 += (got - w) * (got - w);
                ref2 += w * w;
            }
    }
    const double rel = std::sqrt(err2 / (ref2 > 0 ? ref2 : 1.0));
    const bool all_f32 = c.q_dt == DSK_DTYPE_F32 && c.page_dt == DSK_DTYPE_F32 && c.out_dt == DSK_DTYPE_F32;
    const double tol = path == DSK_ATTENTION_PATH_AUTO ? 1.5e-2 : c.out_dt == DSK_DTYPE_BF16 ? 8e-3 : all_f32 ? 2e-5 : 3e-5;
    if (ok && (nonfinite || !(rel <= tol))) {
        std::fprintf(stderr, "FAIL [%s]: ||out-ref||/||ref|| = %.3g (tol %.1g)%s\n", name, rel, tol, nonfinite ? ", non-finite output" : "");
        ok = false;
    }
    // Rows outside every sequence keep their poison.
    const int64_t width = c.q_heads * c.Dv;
    for (int64_t r = 0; r < s.tokens && ok; ++r) {
        if (r >= s.lead && r < s.tokens - s.lead) continue;
        for (int64_t e = 0; e < width; ++e)
            if (!out.same_bits(poison, (size_t)(r * width + e))) {
                std::fprintf(stderr, "FAIL [%s]: row %lld outside every sequence was written\n", name, (long long)r);
                ok = false;
                break;
            }
    }
    return ok;
}

void run_case(const AttnCase& c, cudaStream_t stream, bool faults = false) {
    AttnSetup s;
    build(c, s);
    for (int32_t path : {DSK_ATTENTION_PATH_SIMT, DSK_ATTENTION_PATH_AUTO}) {
        ++g_cases;
        if (!run_attention(c, s, path, kNone, stream)) ++g_failed;
    }
    if (faults) {
        for (Fault f : {kStartRange, kStartOrder, kLenShort, kLenLong, kTable, kSeveral}) {
            ++g_cases;
            if (!run_attention(c, s, DSK_ATTENTION_PATH_SIMT, f, stream)) ++g_failed;
        }
    }
}

AttnCase gqa(const char* name, std::vector<int32_t> n, std::vector<int32_t> L, int64_t ps, int64_t qh, int64_t kvh, int64_t D,
             int64_t Dv, int32_t page_dt, int32_t q_dt, int32_t out_dt, int32_t max_splits = 0) {
    AttnCase c;
    char buf[200];
    std::snprintf(buf, sizeof buf, "%s page %lld heads %lld/%lld dims %lld/%lld pages %s q %s out %s%s", name, (long long)ps,
                  (long long)qh, (long long)kvh, (long long)D, (long long)Dv, dtype_str(page_dt), dtype_str(q_dt), dtype_str(out_dt),
                  max_splits ? (" max_splits " + std::to_string(max_splits)).c_str() : "");
    c.name = buf;
    c.n = n;
    c.L = L;
    c.page_size = ps;
    c.q_heads = qh;
    c.kv_heads = kvh;
    c.D = D;
    c.Dv = Dv;
    c.page_dt = page_dt;
    c.q_dt = q_dt;
    c.out_dt = out_dt;
    c.mla = false;
    c.max_splits = max_splits;
    return c;
}

void run_attention_checks(cudaStream_t stream) {
    const int32_t BF = DSK_DTYPE_BF16, F = DSK_DTYPE_F32;
    const std::vector<int32_t> dec_n = {1, 1, 1, 1, 1}, dec_L = {1, 2, 63, 64, 65};
    // Decode: the swept lengths, GQA 4:1, head_dim 128 and 64, both page sizes and dtypes.
    run_case(gqa("decode", dec_n, dec_L, 16, 8, 2, 128, 128, BF, BF, BF), stream, true);
    run_case(gqa("decode", dec_n, dec_L, 64, 8, 2, 128, 128, F, F, F), stream);
    run_case(gqa("decode", dec_n, dec_L, 16, 3, 3, 64, 64, F, BF, F), stream);          // MHA 1:1
    run_case(gqa("decode", {1, 1, 1}, {63, 2, 65}, 16, 14, 2, 128, 128, BF, F, BF), stream);  // 7:1
    run_case(gqa("decode", {1, 1, 1}, {64, 1, 30}, 64, 8, 1, 64, 64, BF, BF, F), stream);     // 8:1
    // A mixed batch: a prefill chunk continuing a cache, a decode token, a whole prefill.
    run_case(gqa("mixed", {5, 1, 17}, {70, 33, 17}, 16, 8, 2, 128, 128, BF, BF, BF), stream, true);
    run_case(gqa("mixed", {4, 1, 9, 1}, {9, 65, 9, 2}, 16, 3, 3, 64, 64, F, F, F), stream);   // 1:1, tiles of 4 queries
    run_case(gqa("mixed", {3, 1, 2}, {66, 40, 2}, 64, 16, 2, 64, 64, BF, BF, F), stream);    // 8:1 prefill rows
    // Odd dims (scalar loads), wide heads.
    run_case(gqa("decode", {1, 2}, {37, 50}, 16, 4, 2, 100, 72, BF, BF, F), stream);
    run_case(gqa("decode", {1, 1}, {20, 70}, 16, 2, 1, 256, 256, F, F, F), stream);
    // A long sequence: split-K and the combine, the library's choice, max_splits 1 and 3.
    const int32_t long_L = g_quick ? 1500 : 3000;
    run_case(gqa("long", {1}, {long_L}, 64, 8, 2, 128, 128, BF, BF, BF), stream);
    run_case(gqa("long", {1}, {long_L}, 16, 4, 1, 64, 64, F, F, F, 1), stream);
    run_case(gqa("long", {1, 1}, {long_L, 5}, 16, 4, 1, 64, 64, F, F, F, 3), stream);
    if (!g_quick) {
        run_case(gqa("decode", dec_n, dec_L, 64, 32, 8, 128, 128, BF, BF, BF), stream);
        run_case(gqa("long", {1, 2}, {4100, 2000}, 16, 7, 1, 128, 128, BF, BF, F), stream);
    }
    // MLA: 576 / 512 latent rows, page 64.
    for (int64_t heads : {4, 16}) {
        if (g_quick && heads == 16) continue;
        AttnCase c = gqa("mla decode", {1, 1, 1}, {65, 1, 130}, 64, heads, 1, 576, 512, BF, BF, BF);
        c.mla = true;
        c.name = "MLA " + c.name;
        run_case(c, stream, heads == 4);
    }
    {
        AttnCase c = gqa("mla mixed", {3, 1}, {67, 64}, 64, 4, 1, 576, 512, F, F, F);
        c.mla = true;
        c.name = "MLA " + c.name;
        run_case(c, stream);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Benchmark: paged GQA decode, 32 q / 8 kv heads x 128, bf16 pages, q and out; pages shuffled. GB/s counts the KV bytes
// read per call; the copy moves the same number of bytes (device to device, read + write counted).


void run_bench(cudaStream_t stream) {
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    const int64_t qh = 32, kvh = 8, D = 128;
    struct Shape { int64_t batch, L; };
    const Shape shapes[] = {{1, 32768}, {16, 4096}, {64, 2048}};
    std::printf("bench on %s: paged decode, %lld q / %lld kv heads x %lld, bf16\n", prop.name, (long long)qh, (long long)kvh,
                (long long)D);
    std::printf("%6s %6s %5s %6s %10s %10s %10s %8s\n", "batch", "L", "page", "path", "us", "GB/s", "copy GB/s", "% copy");
    for (int64_t ps : {16, 64}) {
        for (const Shape& sh : shapes) {
            const int64_t per_seq = sh.L / ps, pages = sh.batch * per_seq;
            const size_t pool = (size_t)(pages * ps * kvh * D * 2);
            std::vector<int32_t> table((size_t)pages), lens((size_t)sh.batch, (int32_t)sh.L), qs((size_t)sh.batch + 1);
            for (int64_t i = 0; i < pages; ++i) table[(size_t)i] = (int32_t)i;
            for (int64_t i = pages - 1; i > 0; --i) std::swap(table[(size_t)i], table[(size_t)(next_u32() % (i + 1))]);
            for (int64_t b = 0; b <= sh.batch; ++b) qs[(size_t)b] = (int32_t)b;
            DevBuf kp(pool), vp(pool), copy_dst(2 * pool), dtab(table.size() * 4), dlen(lens.size() * 4), dqs(qs.size() * 4),
                dq((size_t)(sh.batch * qh * D * 2)), dout((size_t)(sh.batch * qh * D * 2)), dword(32);
            CUDA_OK(cudaMemset(kp.d, 0x3c, pool));
            CUDA_OK(cudaMemset(vp.d, 0x3c, pool));
            CUDA_OK(cudaMemset(dq.d, 0x3c, dq.bytes));
            CUDA_OK(cudaMemset(dword.d, 0, 32));
            dtab.upload(table.data());
            dlen.upload(lens.data());
            dqs.upload(qs.data());
            const double copy_us = median_us([&] {
                CUDA_OK(cudaMemcpyAsync(copy_dst.d, kp.d, pool, cudaMemcpyDeviceToDevice, stream));
                CUDA_OK(cudaMemcpyAsync(static_cast<uint8_t*>(copy_dst.d) + pool, vp.d, pool, cudaMemcpyDeviceToDevice, stream));
            }, stream, 20);
            const double copy_gbs = 4.0 * (double)pool / copy_us * 1e-3;  // read + write
            for (int32_t path : {DSK_ATTENTION_PATH_SIMT, DSK_ATTENTION_PATH_AUTO}) {
                dsk_paged_attention_params p;
                std::memset(&p, 0, sizeof p);
                p.q = dq.d;
                p.key_pages = kp.d;
                p.value_pages = vp.d;
                p.block_table = static_cast<const int32_t*>(dtab.d);
                p.sequence_lengths = static_cast<const int32_t*>(dlen.d);
                p.query_starts = static_cast<const int32_t*>(dqs.d);
                p.out = dout.d;
                p.error_word = static_cast<int32_t*>(dword.d);
                p.tokens = sh.batch;
                p.batch = sh.batch;
                p.max_pages = per_seq;
                p.pages = pages;
                p.page_size = ps;
                p.q_heads = qh;
                p.kv_heads = kvh;
                p.head_dim = D;
                p.v_head_dim = D;
                p.scale = 0.088f;
                p.q_dtype = p.page_dtype = p.out_dtype = DSK_DTYPE_BF16;
                p.path = path;
                p.error_site_query_starts = p.error_site_lengths = p.error_site_block_table = 1;
                p.stream = stream;
                int64_t ws = 0;
                if (dsk_paged_attention_workspace_size(&p, &ws) != DSK_SUCCESS) {
                    std::fprintf(stderr, "bench: %s\n", dsk_last_error_message());
                    std::exit(2);
                }
                DevBuf dws((size_t)ws);
                p.workspace = dws.d;
                p.workspace_bytes = ws;
                const double us = median_us([&] {
                    if (dsk_paged_attention(&p) != DSK_SUCCESS) {
                        std::fprintf(stderr, "bench: %s\n", dsk_last_error_message());
                        std::exit(2);
                    }
                }, stream, 50);
                const double gbs = 2.0 * (double)pool / us * 1e-3;
                std::printf("%6lld %6lld %5lld %6s %10.2f %10.1f %10.1f %8.1f\n", (long long)sh.batch, (long long)sh.L,
                            (long long)ps, path == DSK_ATTENTION_PATH_SIMT ? "SIMT" : "AUTO", us, gbs, copy_gbs,
                            100.0 * gbs / copy_gbs);
            }
            int32_t word[8];
            dword.download(word);
            if (word[0] != 0) std::printf("bench: error word set (%d, %d, %d)\n", word[0], word[1], word[2]);
        }
    }
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
    run_rope_checks(stream);
    std::printf("rope: %d of %d cases passed so far\n", g_cases - g_failed, g_cases);
    run_kv_checks(stream);
    std::printf("kv_append: %d of %d cases passed so far\n", g_cases - g_failed, g_cases);
    std::fflush(stdout);
    run_attention_checks(stream);
    std::printf("attention_check: %d of %d cases passed\n", g_cases - g_failed, g_cases);
    if (bench) run_bench(stream);
    CUDA_OK(cudaStreamDestroy(stream));
    return g_failed == 0 ? 0 : 1;
}

// paged_attention.cuh: the internal interface between the paged-attention entry points (paged_attention.cu:
// validation, the device metadata check, the family choice, the workspace) and the kernel families:
//
//   paged_attention_simt.cu  CUDA cores, every request (GQA and MLA, f32 or bf16 pages, any head dims): one block per
//                            (sequence, kv head, context split), the group's query heads and the sequence's queries
//                            against the split's keys with an online softmax; a combine kernel merges the splits by
//                            their log-sum-exp (FlashDecoding).
//   paged_attention_mma.cu   bf16 tensor cores for GQA prefill (FlashAttention-2 over pages: a block per 64 query rows
//                            of one sequence and q head, K/V tiles through shared memory, online softmax in registers).
//   paged_mla_mma.cu         bf16 tensor cores for MLA (FlashMLA's shape: one latent kv head shared by all query heads,
//                            so query heads x queries form the M dimension of every tile; split-K + combine) on
//                            mma.sync, or on Hopper's wgmma through paged_mla_wgmma.cu (shared: paged_mla.cuh).
//
// The entry point has checked every host field (see deepseek_kernels.h) and enqueued the metadata check before any
// family runs on the same stream; the check reports the first bad value to the error word. Families still guard every
// read themselves (never out of bounds) through load_sequence / page_of below, and skip a bad sequence silently.
#pragma once

#include "common.cuh"

namespace dsk {

// Bytes at the front of the workspace that the entry point's metadata check owns; a family's scratch starts after them.
constexpr int64_t kPagedCheckBytes = 256;

// One sequence of the step, as a family sees it (after checking it the same way the metadata check does).
struct PagedSequence {
    int32_t q0;  // first query row in q / out
    int32_t n;   // queries (0: nothing to do)
    int32_t L;   // keys
    bool ok;     // query offsets in [0, tokens] and ordered, n <= L <= max_pages * page_size
};

__device__ __forceinline__ PagedSequence load_sequence(const dsk_paged_attention_params& p, int64_t b) {
    PagedSequence s;
    const int32_t a = __ldg(p.query_starts + b), e = __ldg(p.query_starts + b + 1), L = __ldg(p.sequence_lengths + b);
    s.q0 = a;
    s.n = e - a;
    s.L = L;
    s.ok = a >= 0 && e >= a && (int64_t)e <= p.tokens && L >= e - a && (int64_t)L <= p.max_pages * p.page_size;
    if (!s.ok) s.n = 0;
    return s;
}

// The pool page of key position j of sequence b, or -1 when the block-table entry is outside [0, pages).
__device__ __forceinline__ int32_t page_of(const dsk_paged_attention_params& p, int64_t b, int32_t j) {
    const int32_t page = __ldg(p.block_table + b * p.max_pages + j / p.page_size);
    return (page >= 0 && (int64_t)page < p.pages) ? page : -1;
}

// ---- CUDA-core family (paged_attention_simt.cu): every valid request with head dims up to 768. --------------------
// Whether the family runs the request; when not, `why` (if non-NULL) gets a short reason.
bool paged_simt_supports(const dsk_paged_attention_params& p, const char** why);
// Scratch bytes for these params (split-K partial outputs and log-sum-exps), 0 when no split is needed.
int64_t paged_simt_workspace_bytes(const dsk_paged_attention_params& p, bool mla);
// Runs the request; `workspace` has paged_simt_workspace_bytes bytes (16-byte aligned). DSK_SUCCESS or DSK_ERROR_CUDA.
dsk_status paged_simt(const char* op, const dsk_paged_attention_params& p, bool mla, void* workspace);

// ---- bf16 tensor cores, GQA prefill (paged_attention_mma.cu). -----------------------------------------------------
// Whether the family runs the request on the current device; when not, `why` (if non-NULL) gets a short reason.
bool paged_mma_supports(const dsk_paged_attention_params& p, const char** why);
int64_t paged_mma_workspace_bytes(const dsk_paged_attention_params& p);
dsk_status paged_mma(const char* op, const dsk_paged_attention_params& p, void* workspace);

// ---- bf16 tensor cores, MLA (paged_mla_mma.cu; its Hopper variant paged_mla_wgmma.cu). ------------------------------
bool paged_mla_mma_supports(const dsk_paged_attention_params& p, const char** why);
int64_t paged_mla_mma_workspace_bytes(const dsk_paged_attention_params& p);
dsk_status paged_mla_mma(const char* op, const dsk_paged_attention_params& p, void* workspace);

}  // namespace dsk

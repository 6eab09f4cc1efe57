// moe_permute.cu: groups the MoE slots by expert (dsk_moe_permute), a stable counting sort of s = t * top_k + k by
// e(s) = expert_ids[s]:
//   expert_offsets[e] = #slots with an expert below e;   slot_rows[s] = expert_offsets[e(s)] + #{s' < s : e(s') = e(s)}
//   permuted[slot_rows[s], :] = x[s / top_k, :]   (bit for bit)
// Deterministic (no atomic decides an order) and capturable (grids from the sizes only). Three kernels over chunks of
// kChunk = 256 slots:
//   1. count: one block per chunk; its histogram [experts] into the workspace (global atomics: a count, no order), and the
//      chunk's lowest bad slot (or INT32_MAX) into bad[chunk]
//   2. scan: one block; the lowest bad slot of all chunks: if there is one, it is reported through the error word and
//      status = 1 (nothing else written); else expert_offsets and, per (chunk, expert), the first row of that chunk's
//      slots of that expert: offsets[e] + the expert's slots in earlier chunks
//   3. scatter + copy: one block per slot (grid-stride); the block ranks the slot inside its chunk (the earlier slots of
//      the chunk with the same expert, two __syncthreads_count rounds), row = base[chunk, e] + rank, slot_rows[s] = row;
//      the block copies x's row (16-byte vectors where aligned)
// Workspace (int32): hist [chunks, experts] | bad [chunks] | status, from tokens, top_k and experts only.
// Cost: the copy moves slots * hidden elements twice (read, write); the sort touches slots ids a few times and
// chunks * experts counters three times (DeepSeek-V3 decode, 64 tokens: 512 slots, 2 chunks x 256 experts).
#include "common.cuh"
#include "weight_check.cuh"

namespace dsk {
namespace {

constexpr const char* kOp = "dsk_moe_permute";
constexpr const char* kOpSize = "dsk_moe_permute_workspace_size";
constexpr int kChunk = 256;      // slots per chunk (count kernel: one thread each)
constexpr int kScanThreads = 1024;
constexpr int kCopyThreads = 128;

struct PermuteArgs {
    const void* x;               // [tokens, hidden], rows x_stride apart
    const int32_t* ids;          // [slots]
    void* permuted;              // [slots, hidden], rows p_stride apart
    int32_t* offsets;            // [experts + 1]
    int32_t* slot_rows;          // [slots]
    int32_t* hist;               // workspace: [chunks, experts]
    int32_t* bad;                // workspace: [chunks]
    int32_t* status;             // workspace: [1]
    int32_t* error_word;
    int64_t slots, top_k, hidden, experts, x_stride, p_stride;
    int32_t chunks;
    int32_t error_site;
    int32_t vec;                 // 16-byte vectors: rows aligned, row bytes a multiple of 16
};

int64_t chunks_of(int64_t slots) { return (slots + kChunk - 1) / kChunk; }

// Workspace int32s: hist, bad, status; rounded to whole 16-byte units.
int64_t workspace_ints(int64_t slots, int64_t experts) {
    const int64_t chunks = chunks_of(slots);
    return (chunks * experts + chunks + 1 + 3) / 4 * 4;
}

// 1. Per chunk: histogram of its ids and its lowest bad slot.
__global__ void __launch_bounds__(kChunk) moe_count_kernel(const PermuteArgs a) {
    __shared__ unsigned warp_min[kChunk / 32];
    const int64_t c = blockIdx.x;
    int32_t* h = a.hist + c * a.experts;
    for (int64_t e = threadIdx.x; e < a.experts; e += kChunk) h[e] = 0;
    __syncthreads();
    const int64_t s = c * kChunk + threadIdx.x;
    unsigned first = 0xffffffffu;
    if (s < a.slots) {
        const int32_t id = __ldg(a.ids + s);
        if (id < 0 || (int64_t)id >= a.experts) {
            first = (unsigned)s;
        } else {
            atomicAdd(reinterpret_cast<unsigned*>(h + id), 1u);
        }
    }
    first = __reduce_min_sync(0xffffffffu, first);
    if ((threadIdx.x & 31) == 0) warp_min[threadIdx.x >> 5] = first;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned m = warp_min[0];
        for (int w = 1; w < kChunk / 32; ++w) m = warp_min[w] < m ? warp_min[w] : m;
        a.bad[c] = m == 0xffffffffu ? INT32_MAX : (int32_t)m;
    }
}

// Exclusive scan of `v` over the block (kScanThreads threads); `total` gets the block's sum. `scratch`: kScanThreads ints.
__device__ __forceinline__ int32_t block_exclusive_scan(int32_t v, int32_t* scratch, int32_t& total) {
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (int off = 1; off < kScanThreads; off <<= 1) {
        const int32_t add = threadIdx.x >= (unsigned)off ? scratch[threadIdx.x - off] : 0;
        __syncthreads();
        scratch[threadIdx.x] += add;
        __syncthreads();
    }
    const int32_t inclusive = scratch[threadIdx.x];
    total = scratch[kScanThreads - 1];
    __syncthreads();  // scratch is free again
    return inclusive - v;
}

// 2. One block: the error check, then the offsets and the per-(chunk, expert) base rows.
__global__ void __launch_bounds__(kScanThreads) moe_scan_kernel(const PermuteArgs a) {
    __shared__ int32_t scratch[kScanThreads];
    __shared__ unsigned warp_min[kScanThreads / 32];
    // The lowest bad slot over the chunks.
    unsigned first = 0xffffffffu;
    for (int c = threadIdx.x; c < a.chunks; c += kScanThreads) {
        const int32_t b = a.bad[c];
        if (b != INT32_MAX && (unsigned)b < first) first = (unsigned)b;
    }
    first = __reduce_min_sync(0xffffffffu, first);
    if ((threadIdx.x & 31) == 0) warp_min[threadIdx.x >> 5] = first;
    __syncthreads();
    first = warp_min[0];
    for (int w = 1; w < kScanThreads / 32; ++w) first = warp_min[w] < first ? warp_min[w] : first;
    if (first != 0xffffffffu) {
        if (threadIdx.x == 0) {
            *a.status = 1;
            if (atomicCAS(a.error_word, 0, a.error_site) == 0) {
                a.error_word[1] = (int32_t)first;
                a.error_word[2] = a.ids[first];
                a.error_word[3] = (int32_t)a.experts;
                a.error_word[4] = 0;
            }
        }
        return;
    }
    if (threadIdx.x == 0) *a.status = 0;
    // Tiles of kScanThreads experts: each thread sums its expert's column over the chunks, the block scans the sums, then
    // the column becomes its running base rows.
    int32_t carry = 0;
    for (int64_t e0 = 0; e0 < a.experts; e0 += kScanThreads) {
        const int64_t e = e0 + threadIdx.x;
        int32_t count = 0;
        if (e < a.experts) {
            for (int c = 0; c < a.chunks; ++c) count += a.hist[c * a.experts + e];
        }
        int32_t total;
        const int32_t offset = carry + block_exclusive_scan(count, scratch, total);
        if (e < a.experts) {
            a.offsets[e] = offset;
            int32_t run = offset;
            for (int c = 0; c < a.chunks; ++c) {
                int32_t* h = a.hist + c * a.experts + e;
                const int32_t n = *h;
                *h = run;
                run += n;
            }
        }
        carry += total;
    }
    if (threadIdx.x == 0) a.offsets[a.experts] = carry;
}

// 3. One block per slot: its row (stable rank inside its chunk + the chunk's base), then the row copy. The rank counts the
// chunk's earlier slots with the same expert: at most 255, so two __syncthreads_count rounds of the 128 threads.
template <typename T> __global__ void __launch_bounds__(kCopyThreads) moe_scatter_copy_kernel(const PermuteArgs a) {
    static_assert(kChunk == 2 * kCopyThreads, "two counting rounds cover a chunk");
    if (*a.status != 0) return;  // a bad id: nothing but the error word is written
    for (int64_t s = blockIdx.x; s < a.slots; s += gridDim.x) {
        const int32_t id = __ldg(a.ids + s);
        const int64_t c = s / kChunk;
        const int64_t i0 = c * kChunk + threadIdx.x, i1 = i0 + kCopyThreads;
        const int rank = __syncthreads_count(i0 < s && __ldg(a.ids + i0) == id) +
                         __syncthreads_count(i1 < s && __ldg(a.ids + i1) == id);
        const int64_t row = a.hist[c * a.experts + id] + rank;
        if (threadIdx.x == 0) a.slot_rows[s] = (int32_t)row;
        const T* src = static_cast<const T*>(a.x) + (s / a.top_k) * a.x_stride;
        T* dst = static_cast<T*>(a.permuted) + row * a.p_stride;
        if (a.vec) {
            constexpr int kN = Vec16<T>::kN;
            for (int64_t i = threadIdx.x * kN; i < a.hidden; i += kCopyThreads * kN) st16(dst + i, ld16_ro(src + i));
        } else {
            for (int64_t i = threadIdx.x; i < a.hidden; i += kCopyThreads) dst[i] = src[i];
        }
    }
}

// The size checks shared by the size query and the op: tokens, top_k, experts.
dsk_status check_sizes(const char* op, const dsk_moe_permute_params* p) {
    DSK_CHECK_MIN(op, p->tokens, 1, "tokens");
    DSK_CHECK_MIN(op, p->top_k, 1, "top_k");
    DSK_CHECK_ARG(op, p->top_k <= INT32_MAX / p->tokens, "tokens * top_k must be < 2^31 (got %lld * %lld)",
                  (long long)p->tokens, (long long)p->top_k);
    DSK_CHECK_ARG(op, p->experts >= 1 && p->experts <= INT32_MAX, "experts must be in [1, 2^31) (got %lld)",
                  (long long)p->experts);
    return DSK_SUCCESS;
}

}  // namespace
}  // namespace dsk

extern "C" DSK_API dsk_status dsk_moe_permute_workspace_size(const dsk_moe_permute_params* p, int64_t* bytes) {
    using namespace dsk;
    DSK_CHECK_NOT_NULL(kOpSize, p, "p");
    DSK_CHECK_NOT_NULL(kOpSize, bytes, "bytes");
    const dsk_status s = check_sizes(kOpSize, p);
    if (s != DSK_SUCCESS) return s;
    *bytes = workspace_ints(p->tokens * p->top_k, p->experts) * 4;
    return DSK_SUCCESS;
}

extern "C" DSK_API dsk_status dsk_moe_permute(const dsk_moe_permute_params* p) {
    using namespace dsk;

    // Every argument is checked before anything touches the GPU; the dtype last (DSK_ERROR_UNSUPPORTED).
    DSK_CHECK_NOT_NULL(kOp, p, "p");
    DSK_CHECK_NOT_NULL(kOp, p->x, "x");
    DSK_CHECK_NOT_NULL(kOp, p->expert_ids, "expert_ids");
    DSK_CHECK_NOT_NULL(kOp, p->permuted, "permuted");
    DSK_CHECK_NOT_NULL(kOp, p->expert_offsets, "expert_offsets");
    DSK_CHECK_NOT_NULL(kOp, p->slot_rows, "slot_rows");
    DSK_CHECK_NOT_NULL(kOp, p->workspace, "workspace");
    DSK_CHECK_NOT_NULL(kOp, p->error_word, "error_word");
    const dsk_status sizes = check_sizes(kOp, p);
    if (sizes != DSK_SUCCESS) return sizes;
    DSK_CHECK_MIN(kOp, p->hidden, 1, "hidden");
    DSK_CHECK_ARG(kOp, p->x_row_stride >= p->hidden, "x_row_stride must be >= hidden (got %lld, hidden %lld)",
                  (long long)p->x_row_stride, (long long)p->hidden);
    DSK_CHECK_ARG(kOp, p->permuted_row_stride >= p->hidden, "permuted_row_stride must be >= hidden (got %lld, hidden %lld)",
                  (long long)p->permuted_row_stride, (long long)p->hidden);
    DSK_CHECK_ARG(kOp, p->error_site > 0, "error_site must be > 0 (got %d)", (int)p->error_site);
    const int64_t slots = p->tokens * p->top_k;
    const int64_t needed = workspace_ints(slots, p->experts) * 4;
    DSK_CHECK_ARG(kOp, p->workspace_bytes >= needed,
                  "workspace_bytes must be >= %lld (dsk_moe_permute_workspace_size) (got %lld)", (long long)needed,
                  (long long)p->workspace_bytes);
    DSK_CHECK_ARG(kOp, is_aligned_16(p->workspace), "workspace must be 16-byte aligned");

    // Overlaps (an unsupported dtype's size is taken as 2 here; the dtype is refused below).
    const int64_t esz = p->x_dtype == DSK_DTYPE_F32 ? 4 : 2;
    const ByteRange x = view_bytes(p->x, 1, p->tokens, p->hidden, 0, p->x_row_stride, esz);
    const ByteRange ids = bytes_of(p->expert_ids, slots * 4);
    const ByteRange perm = view_bytes(p->permuted, 1, slots, p->hidden, 0, p->permuted_row_stride, esz);
    const ByteRange offs = bytes_of(p->expert_offsets, (p->experts + 1) * 4);
    const ByteRange rows = bytes_of(p->slot_rows, slots * 4);
    const ByteRange ws = bytes_of(p->workspace, needed);
    const ByteRange word = bytes_of(p->error_word, 32);
    const ByteRange outs[4] = {perm, offs, rows, ws};
    const char* out_names[4] = {"permuted", "expert_offsets", "slot_rows", "workspace"};
    for (int i = 0; i < 4; ++i) {
        DSK_CHECK_ARG(kOp, !overlaps(outs[i], x), "%s must not overlap x", out_names[i]);
        DSK_CHECK_ARG(kOp, !overlaps(outs[i], ids), "%s must not overlap expert_ids", out_names[i]);
        DSK_CHECK_ARG(kOp, !overlaps(outs[i], word), "%s must not overlap error_word", out_names[i]);
        for (int j = i + 1; j < 4; ++j) {
            DSK_CHECK_ARG(kOp, !overlaps(outs[i], outs[j]), "%s must not overlap %s", out_names[i], out_names[j]);
        }
    }

    if (p->x_dtype != DSK_DTYPE_F32 && p->x_dtype != DSK_DTYPE_BF16) {
        DSK_UNSUPPORTED(kOp, "x_dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->x_dtype), (int)p->x_dtype);
    }

    PermuteArgs a{};
    a.x = p->x;
    a.ids = p->expert_ids;
    a.permuted = p->permuted;
    a.offsets = p->expert_offsets;
    a.slot_rows = p->slot_rows;
    const int64_t chunks = chunks_of(slots);
    a.hist = static_cast<int32_t*>(p->workspace);
    a.bad = a.hist + chunks * p->experts;
    a.status = a.bad + chunks;
    a.error_word = p->error_word;
    a.slots = slots;
    a.top_k = p->top_k;
    a.hidden = p->hidden;
    a.experts = p->experts;
    a.x_stride = p->x_row_stride;
    a.p_stride = p->permuted_row_stride;
    a.chunks = (int32_t)chunks;
    a.error_site = p->error_site;
    a.vec = (p->hidden * esz) % 16 == 0 && is_aligned_16(p->x) && is_aligned_16(p->permuted) &&
            (p->tokens == 1 || (p->x_row_stride * esz) % 16 == 0) && (slots == 1 || (p->permuted_row_stride * esz) % 16 == 0);

    const cudaStream_t st = static_cast<cudaStream_t>(p->stream);
    moe_count_kernel<<<(unsigned)chunks, kChunk, 0, st>>>(a);
    DSK_CHECK_LAUNCH(kOp);
    moe_scan_kernel<<<1, kScanThreads, 0, st>>>(a);
    DSK_CHECK_LAUNCH(kOp);
    const unsigned grid = (unsigned)(slots < 65535 * 16 ? slots : 65535 * 16);  // the kernel loops over the rest
    if (p->x_dtype == DSK_DTYPE_F32) {
        moe_scatter_copy_kernel<float><<<grid, kCopyThreads, 0, st>>>(a);
    } else {
        moe_scatter_copy_kernel<__nv_bfloat16><<<grid, kCopyThreads, 0, st>>>(a);
    }
    DSK_CHECK_LAUNCH(kOp);
    return DSK_SUCCESS;
}

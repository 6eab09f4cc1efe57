// paged_attention.cu: the entry points of paged attention (dsk_paged_attention, dsk_paged_mla_attention and their
// workspace-size calls): every host field checked, the device metadata checked by one small kernel that reports the
// first bad value in the header's order, then one kernel family runs the attention (paged_attention.cuh).
//
// Host checks, in order (the first failure is reported): pointers, sizes, head counts, flags and error sites, overlaps;
// then dtypes (q, pages, out: F32 or BF16; DSK_ERROR_UNSUPPORTED), then the family (path MMA that cannot run the request:
// DSK_ERROR_UNSUPPORTED with the family's reason), then the workspace size.
//
// Families. AUTO: MLA takes the tensor-core family whenever it accepts the request (at 128 heads MLA decode is
// compute-bound); GQA takes it when some sequence has more than one query (tokens > batch: prefill or a mixed batch)
// and the CUDA-core split-K family otherwise (decode is memory-bound: it streams each sequence's K/V once).
//
// Workspace: [0, kPagedCheckBytes) belongs to the metadata check (cleared by a memset each call), the family's scratch
// follows. Its size depends only on the sizes, dtypes, path, max_splits and the GPU (the split count follows its SM
// count and occupancy), never on device data.
//
// The metadata check: one block per sequence b (plus one for query_starts[batch]); every bad value gets its rank in the
// header's order (query offsets out of range: i; out of order: batch + 1 + i; then per sequence b the length, then its
// table entries), blocks publish the smallest rank with a 64-bit atomicMax of ~rank, and the last block to finish
// (a counter in the workspace) writes that value to the error word with atomicCAS(0 -> site), so the report does not
// depend on which block runs first.
#include "paged_attention.cuh"
#include "weight_check.cuh"

#include <cmath>

namespace dsk {
namespace {

constexpr int kCheckThreads = 128;

enum class Family { kSimt, kMma };

struct CheckScratch {
    unsigned long long best;  // ~rank of the first bad value so far; 0 = none
    unsigned int done;        // blocks finished
};

__device__ __forceinline__ void publish(CheckScratch* s, unsigned long long rank) { atomicMax(&s->best, ~rank); }

__global__ void __launch_bounds__(kCheckThreads) paged_metadata_check(const dsk_paged_attention_params p,
                                                                        CheckScratch* scratch) {
    const int64_t b = blockIdx.x;  // 0 .. batch (block batch checks only query_starts[batch])
    const unsigned long long batch1 = (unsigned long long)p.batch + 1;
    __shared__ unsigned long long local;  // ~rank, block-wide
    if (threadIdx.x == 0) local = 0;
    __syncthreads();

    // Query offsets: range then order (ranks i and batch + 1 + i).
    bool starts_ok = true;
    if (threadIdx.x == 0) {
        const int32_t qs = __ldg(p.query_starts + b);
        if (qs < 0 || (int64_t)qs > p.tokens) {
            atomicMax(&local, ~(unsigned long long)b);
        } else if (b > 0 && qs < __ldg(p.query_starts + b - 1)) {
            atomicMax(&local, ~(batch1 + (unsigned long long)b));
        }
    }
    if (b < p.batch) {
        const int32_t a = __ldg(p.query_starts + b), e = __ldg(p.query_starts + b + 1);
        starts_ok = a >= 0 && e >= a && (int64_t)e <= p.tokens;
    }
    // Sequence b: its length (rank base), then its table entries (base + 1 + j); only with valid offsets (otherwise an
    // offset error, which ranks first, is reported anyway), and the table only for a valid length and n > 0.
    if (b < p.batch && starts_ok) {
        const int32_t n = __ldg(p.query_starts + b + 1) - __ldg(p.query_starts + b);
        const int32_t L = __ldg(p.sequence_lengths + b);
        const int64_t capacity = p.max_pages * p.page_size;
        const unsigned long long base = 2 * batch1 + (unsigned long long)b * ((unsigned long long)p.max_pages + 1);
        if (L < n || (int64_t)L > capacity) {
            if (threadIdx.x == 0) atomicMax(&local, ~base);
        } else if (n > 0) {
            const int64_t used = ((int64_t)L + p.page_size - 1) / p.page_size;
            for (int64_t j = threadIdx.x; j < used; j += kCheckThreads) {
                const int32_t page = __ldg(p.block_table + b * p.max_pages + j);
                if (page < 0 || (int64_t)page >= p.pages) {
                    atomicMax(&local, ~(base + 1 + (unsigned long long)j));
                    break;  // a later j of this thread ranks after this one
                }
            }
        }
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    if (local != 0) publish(scratch, ~local);
    __threadfence();
    if (atomicAdd(&scratch->done, 1u) != (unsigned)gridDim.x - 1) return;

    // The last block: decode the smallest rank and report it (an error recorded earlier is kept by the CAS).
    const unsigned long long best = atomicAdd(&scratch->best, 0ull);
    if (best == 0) return;
    const unsigned long long rank = ~best;
    int32_t site, index, value, bound, order = 0;
    if (rank < batch1) {
        site = p.error_site_query_starts;
        index = (int32_t)rank;
        value = p.query_starts[rank];
        bound = (int32_t)(p.tokens + 1);
    } else if (rank < 2 * batch1) {
        site = p.error_site_query_starts;
        index = (int32_t)(rank - batch1);
        value = p.query_starts[index];
        bound = (int32_t)batch1;
        order = 1;
    } else {
        const unsigned long long r = rank - 2 * batch1, width = (unsigned long long)p.max_pages + 1;
        const int64_t sb = (int64_t)(r / width), j = (int64_t)(r % width) - 1;
        if (j < 0) {
            site = p.error_site_lengths;
            index = (int32_t)sb;
            value = p.sequence_lengths[sb];
            bound = (int32_t)(p.max_pages * p.page_size + 1);
        } else {
            site = p.error_site_block_table;
            index = (int32_t)(sb * p.max_pages + j);
            value = p.block_table[sb * p.max_pages + j];
            bound = (int32_t)p.pages;
        }
    }
    if (atomicCAS(p.error_word, 0, site) == 0) {
        p.error_word[1] = index;
        p.error_word[2] = value;
        p.error_word[3] = bound;
        p.error_word[4] = order;
    }
}

bool is_act_dtype(int32_t d) { return d == DSK_DTYPE_F32 || d == DSK_DTYPE_BF16; }
int64_t esize(int32_t d) { return d == DSK_DTYPE_F32 ? 4 : 2; }  // unsupported dtypes are reported separately

// Sizes, head counts, flags and dtypes: what the workspace-size calls need (no pointers).
dsk_status check_sizes(const char* op, const dsk_paged_attention_params* p, bool mla) {
    DSK_CHECK_NOT_NULL(op, p, "p");
    DSK_CHECK_MIN(op, p->tokens, 1, "tokens");
    DSK_CHECK_MIN(op, p->batch, 1, "batch");
    DSK_CHECK_MIN(op, p->max_pages, 1, "max_pages");
    DSK_CHECK_MIN(op, p->pages, 1, "pages");
    DSK_CHECK_MIN(op, p->page_size, 1, "page_size");
    DSK_CHECK_MIN(op, p->q_heads, 1, "q_heads");
    DSK_CHECK_MIN(op, p->kv_heads, 1, "kv_heads");
    DSK_CHECK_MIN(op, p->head_dim, 1, "head_dim");
    DSK_CHECK_MIN(op, p->v_head_dim, 1, "v_head_dim");
    DSK_CHECK_ARG(op, p->tokens < INT32_MAX, "tokens must be < 2^31 - 1 (got %lld): query offsets are int32",
                  (long long)p->tokens);
    DSK_CHECK_ARG(op, p->batch < INT32_MAX, "batch must be < 2^31 - 1 (got %lld)", (long long)p->batch);
    DSK_CHECK_ARG(op, p->pages <= INT32_MAX / p->page_size,
                  "pages * page_size must be < 2^31 (got %lld * %lld): slots are int32", (long long)p->pages,
                  (long long)p->page_size);
    DSK_CHECK_ARG(op, p->max_pages <= INT32_MAX / p->page_size,
                  "max_pages * page_size must be < 2^31 (got %lld * %lld): sequence lengths are int32",
                  (long long)p->max_pages, (long long)p->page_size);
    DSK_CHECK_ARG(op, p->q_heads % p->kv_heads == 0, "q_heads (%lld) must be a multiple of kv_heads (%lld)",
                  (long long)p->q_heads, (long long)p->kv_heads);
    DSK_CHECK_ARG(op, p->q_heads <= 65535 && p->head_dim <= 65535 && p->v_head_dim <= 65535,
                  "q_heads, head_dim and v_head_dim must be <= 65535 (got %lld, %lld, %lld)", (long long)p->q_heads,
                  (long long)p->head_dim, (long long)p->v_head_dim);
    if (mla) {
        DSK_CHECK_ARG(op, p->kv_heads == 1, "kv_heads must be 1 for MLA (one latent head; got %lld)",
                      (long long)p->kv_heads);
        DSK_CHECK_ARG(op, p->v_head_dim <= p->head_dim,
                      "v_head_dim (the latent width, %lld) must be <= head_dim (latent + rope, %lld) for MLA",
                      (long long)p->v_head_dim, (long long)p->head_dim);
    }
    DSK_CHECK_ARG(op, std::isfinite(p->scale), "scale must be finite (got %g)", (double)p->scale);
    DSK_CHECK_ARG(op, p->path >= DSK_ATTENTION_PATH_AUTO && p->path <= DSK_ATTENTION_PATH_MMA_SYNC,
                  "path must be AUTO (0), SIMT (1), MMA (2) or MMA_SYNC (3) (got %d)", (int)p->path);
    DSK_CHECK_MIN(op, p->max_splits, 0, "max_splits");
    DSK_CHECK_ARG(op, p->reserved == 0, "reserved must be 0 (got %d)", (int)p->reserved);
    return DSK_SUCCESS;
}

dsk_status check_dtypes(const char* op, const dsk_paged_attention_params* p) {
    if (!is_act_dtype(p->q_dtype))
        DSK_UNSUPPORTED(op, "q_dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->q_dtype), (int)p->q_dtype);
    if (!is_act_dtype(p->page_dtype))
        DSK_UNSUPPORTED(op, "page_dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->page_dtype),
                        (int)p->page_dtype);
    if (!is_act_dtype(p->out_dtype))
        DSK_UNSUPPORTED(op, "out_dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->out_dtype),
                        (int)p->out_dtype);
    return DSK_SUCCESS;
}

// The family for a request whose sizes and dtypes passed.
dsk_status choose_family(const char* op, const dsk_paged_attention_params& p, bool mla, Family* family) {
    const char *why = nullptr, *simt_why = nullptr;
    const bool mma = mla ? paged_mla_mma_supports(p, &why) : paged_mma_supports(p, &why);
    const bool simt = paged_simt_supports(p, &simt_why);
    if (why == nullptr) why = "(no reason given)";
    if (simt_why == nullptr) simt_why = "(no reason given)";
    switch (p.path) {
        case DSK_ATTENTION_PATH_SIMT:
            if (!simt) DSK_UNSUPPORTED(op, "path SIMT cannot run this request: %s", simt_why);
            *family = Family::kSimt;
            return DSK_SUCCESS;
        case DSK_ATTENTION_PATH_MMA:
        case DSK_ATTENTION_PATH_MMA_SYNC:
            if (!mma) DSK_UNSUPPORTED(op, "path %s cannot run this request: %s", p.path == DSK_ATTENTION_PATH_MMA ? "MMA" : "MMA_SYNC", why);
            *family = Family::kMma;
            return DSK_SUCCESS;
        default:
            if (!mma && !simt) DSK_UNSUPPORTED(op, "no kernel family runs this request: %s; %s", why, simt_why);
            *family = mma && (mla || p.tokens > p.batch || !simt) ? Family::kMma : Family::kSimt;
            return DSK_SUCCESS;
    }
}

int64_t family_bytes(const dsk_paged_attention_params& p, bool mla, Family f) {
    if (f == Family::kSimt) return paged_simt_workspace_bytes(p, mla);
    return mla ? paged_mla_mma_workspace_bytes(p) : paged_mma_workspace_bytes(p);
}

int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

dsk_status workspace_size(const char* op, const dsk_paged_attention_params* p, bool mla, int64_t* bytes) {
    DSK_CHECK_NOT_NULL(op, bytes, "bytes");
    dsk_status st = check_sizes(op, p, mla);
    if (st == DSK_SUCCESS) st = check_dtypes(op, p);
    Family f;
    if (st == DSK_SUCCESS) st = choose_family(op, *p, mla, &f);
    if (st != DSK_SUCCESS) return st;
    *bytes = kPagedCheckBytes + round16(family_bytes(*p, mla, f));
    return DSK_SUCCESS;
}

dsk_status run(const char* op, const dsk_paged_attention_params* p, bool mla) {
    DSK_CHECK_NOT_NULL(op, p, "p");
    DSK_CHECK_NOT_NULL(op, p->q, "q");
    DSK_CHECK_NOT_NULL(op, p->key_pages, "key_pages");
    if (mla) {
        DSK_CHECK_ARG(op, p->value_pages == nullptr, "value_pages must be NULL for MLA (values are the latent part of the key rows)");
    } else {
        DSK_CHECK_NOT_NULL(op, p->value_pages, "value_pages");
    }
    DSK_CHECK_NOT_NULL(op, p->block_table, "block_table");
    DSK_CHECK_NOT_NULL(op, p->sequence_lengths, "sequence_lengths");
    DSK_CHECK_NOT_NULL(op, p->query_starts, "query_starts");
    DSK_CHECK_NOT_NULL(op, p->out, "out");
    DSK_CHECK_NOT_NULL(op, p->error_word, "error_word");
    dsk_status st = check_sizes(op, p, mla);
    if (st != DSK_SUCCESS) return st;
    DSK_CHECK_MIN(op, p->error_site_block_table, 1, "error_site_block_table");
    DSK_CHECK_MIN(op, p->error_site_lengths, 1, "error_site_lengths");
    DSK_CHECK_MIN(op, p->error_site_query_starts, 1, "error_site_query_starts");
    DSK_CHECK_MIN(op, p->workspace_bytes, 0, "workspace_bytes");

    // Overlaps: out and the workspace are written; neither may touch an input or each other.
    const int64_t slots = p->pages * p->page_size;
    const ByteRange out = bytes_of(p->out, p->tokens * p->q_heads * p->v_head_dim * esize(p->out_dtype));
    const ByteRange work = bytes_of(p->workspace, p->workspace != nullptr ? p->workspace_bytes : 0);
    const ByteRange inputs[] = {
        bytes_of(p->q, p->tokens * p->q_heads * p->head_dim * esize(p->q_dtype)),
        bytes_of(p->key_pages, slots * p->kv_heads * p->head_dim * esize(p->page_dtype)),
        bytes_of(p->value_pages, p->value_pages != nullptr ? slots * p->kv_heads * p->v_head_dim * esize(p->page_dtype) : 0),
        bytes_of(p->block_table, p->batch * p->max_pages * 4),
        bytes_of(p->sequence_lengths, p->batch * 4),
        bytes_of(p->query_starts, (p->batch + 1) * 4),
        bytes_of(p->error_word, 32),
    };
    const char* names[] = {"q", "key_pages", "value_pages", "block_table", "sequence_lengths", "query_starts", "error_word"};
    for (int i = 0; i < 7; ++i) {
        DSK_CHECK_ARG(op, !overlaps(out, inputs[i]), "out must not overlap %s", names[i]);
        if (i < 6) DSK_CHECK_ARG(op, !overlaps(work, inputs[i]), "workspace must not overlap %s", names[i]);
    }
    DSK_CHECK_ARG(op, !overlaps(work, inputs[6]), "workspace must not overlap error_word");
    DSK_CHECK_ARG(op, !overlaps(out, work), "out must not overlap the workspace");

    st = check_dtypes(op, p);
    if (st != DSK_SUCCESS) return st;
    Family f;
    st = choose_family(op, *p, mla, &f);
    if (st != DSK_SUCCESS) return st;
    const int64_t need = kPagedCheckBytes + round16(family_bytes(*p, mla, f));
    DSK_CHECK_NOT_NULL(op, p->workspace, "workspace");
    DSK_CHECK_ARG(op, is_aligned_16(p->workspace), "workspace must be 16-byte aligned");
    DSK_CHECK_ARG(op, p->workspace_bytes >= need,
                  "workspace_bytes must be >= %lld for this request (got %lld; ask the *_workspace_size call)",
                  (long long)need, (long long)p->workspace_bytes);

    const cudaStream_t stream = static_cast<cudaStream_t>(p->stream);
    auto* scratch = static_cast<CheckScratch*>(p->workspace);
    const cudaError_t me = cudaMemsetAsync(scratch, 0, sizeof(CheckScratch), stream);
    if (me != cudaSuccess) {
        set_error(op, "CUDA error %s (%s) clearing the workspace", cudaGetErrorName(me), cudaGetErrorString(me));
        return DSK_ERROR_CUDA;
    }
    paged_metadata_check<<<(unsigned)(p->batch + 1), kCheckThreads, 0, stream>>>(*p, scratch);
    DSK_CHECK_LAUNCH(op);

    void* family_workspace = static_cast<char*>(p->workspace) + kPagedCheckBytes;
    if (f == Family::kSimt) return paged_simt(op, *p, mla, family_workspace);
    return mla ? paged_mla_mma(op, *p, family_workspace) : paged_mma(op, *p, family_workspace);
}

}  // namespace
}  // namespace dsk

extern "C" DSK_API dsk_status dsk_paged_attention_workspace_size(const dsk_paged_attention_params* p, int64_t* bytes) {
    return dsk::workspace_size("dsk_paged_attention_workspace_size", p, false, bytes);
}

extern "C" DSK_API dsk_status dsk_paged_attention(const dsk_paged_attention_params* p) {
    return dsk::run("dsk_paged_attention", p, false);
}

extern "C" DSK_API dsk_status dsk_paged_mla_attention_workspace_size(const dsk_paged_attention_params* p, int64_t* bytes) {
    return dsk::workspace_size("dsk_paged_mla_attention_workspace_size", p, true, bytes);
}

extern "C" DSK_API dsk_status dsk_paged_mla_attention(const dsk_paged_attention_params* p) {
    return dsk::run("dsk_paged_mla_attention", p, true);
}

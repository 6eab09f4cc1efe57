// kv_append.cu: new keys / values into their cache pages through the slot mapping (dsk_kv_append, vLLM's
// reshape_and_cache):   key_pages[slot_mapping[t], :] = keys[t, :],  value_pages[slot_mapping[t], :] = values[t, :].
// A row of the page dtype is copied bit for bit; other pairs widen exactly and round once (bf16: nearest even).
// Memory-bound: each row is read once and written once.
//
// The slots are device data: a slot outside [0, slots) skips its token (neither row written); the first such token
// (lowest t, found by one warp of block 0, each lane scanning a stride) claims error_word[0] with atomicCAS(0 -> error_site) and writes
// word[1] = t, word[2] = the slot, word[3] = slots, word[4] = 0.
//
// One kernel, one block per token (grid-stride), templated on the four dtypes (rows and pages of keys and values); per
// operand a runtime flag picks 8-element vector accesses (16-byte loads and stores) where rows are aligned.
#include <type_traits>

#include "common.cuh"
#include "weight_check.cuh"

namespace dsk {
namespace {

constexpr const char* kOp = "dsk_kv_append";
constexpr int kThreads = 128;

struct KvAppendArgs {
    const void* keys;    // [tokens, key_width], rows keys_stride apart
    const void* values;  // [tokens, value_width], or NULL
    const int32_t* slots_of;
    void* key_pages;     // [slots, key_width]
    void* value_pages;   // [slots, value_width]
    int32_t* error_word;
    int64_t tokens, slots, key_width, value_width, keys_stride, values_stride;
    int32_t error_site;
    int32_t key_vec, value_vec;  // 8-element accesses for that operand
};

// One row of `width` elements from src (S) to dst (D) by the block's threads.
template <typename S, typename D>
__device__ __forceinline__ void copy_row(const S* src, D* dst, int64_t width, bool vec) {
    if constexpr (sizeof(S) == sizeof(D)) {
        // Same dtype: raw bits (NaN payloads kept).
        if (vec) {
            constexpr int kN = Vec16<S>::kN;
            for (int64_t c = threadIdx.x * kN; c < width; c += kThreads * kN) st16(dst + c, ld16_ro(src + c));
        } else {
            using Bits = typename std::conditional<sizeof(S) == 4, uint32_t, uint16_t>::type;
            const Bits* s = reinterpret_cast<const Bits*>(src);
            Bits* d = reinterpret_cast<Bits*>(dst);
            for (int64_t c = threadIdx.x; c < width; c += kThreads) d[c] = __ldg(s + c);
        }
    } else if (vec) {
        for (int64_t c = threadIdx.x * 8; c < width; c += kThreads * 8) {
            float f[8];
            load_ro_widen<S, 8>(src + c, f);
            if constexpr (sizeof(D) == 4) {
                st16(dst + c, pack16<float>({f[0], f[1], f[2], f[3]}));
                st16(dst + c + 4, pack16<float>({f[4], f[5], f[6], f[7]}));
            } else {
                st16(dst + c, pack16<__nv_bfloat16>(f));
            }
        }
    } else {
        for (int64_t c = threadIdx.x; c < width; c += kThreads) dst[c] = from_float<D>(to_float(load_ro(src + c)));
    }
}

// Writes every token's key row (and value row) into its slot (one block per token).
template <typename KS, typename KD, typename VS, typename VD>
__global__ void __launch_bounds__(kThreads) kv_append_kernel(const KvAppendArgs a) {
    // Block 0 reports the first bad slot (lowest t), whatever the block order; the other blocks do not wait for it.
    if (blockIdx.x == 0 && threadIdx.x < 32) report_first_out_of_range(a.slots_of, a.tokens, a.slots, a.error_word, a.error_site);
    for (int64_t t = blockIdx.x; t < a.tokens; t += gridDim.x) {
        const int32_t slot = __ldg(a.slots_of + t);
        if (slot < 0 || (int64_t)slot >= a.slots) continue;  // skipped (reported above)
        copy_row<KS, KD>(static_cast<const KS*>(a.keys) + t * a.keys_stride,
                         static_cast<KD*>(a.key_pages) + (int64_t)slot * a.key_width, a.key_width, a.key_vec != 0);
        if (a.values != nullptr) {
            copy_row<VS, VD>(static_cast<const VS*>(a.values) + t * a.values_stride,
                             static_cast<VD*>(a.value_pages) + (int64_t)slot * a.value_width, a.value_width,
                             a.value_vec != 0);
        }
    }
}

// Host dispatch over the four dtypes, one at a time.
template <typename... Ts> struct Dispatch {
    static void run(const KvAppendArgs& a, const int32_t* dts, cudaStream_t st) {
        if constexpr (sizeof...(Ts) == 4) {
            (void)dts;
            const unsigned grid = (unsigned)(a.tokens < 65535 * 16 ? a.tokens : 65535 * 16);
            kv_append_kernel<Ts...><<<grid, kThreads, 0, st>>>(a);
        } else {
            if (dts[0] == DSK_DTYPE_F32) {
                Dispatch<Ts..., float>::run(a, dts + 1, st);
            } else {
                Dispatch<Ts..., __nv_bfloat16>::run(a, dts + 1, st);
            }
        }
    }
};

bool is_row_dtype(int32_t dt) { return dt == DSK_DTYPE_F32 || dt == DSK_DTYPE_BF16; }
int64_t dtype_bytes(int32_t dt) { return dt == DSK_DTYPE_F32 ? 4 : 2; }

}  // namespace
}  // namespace dsk

extern "C" DSK_API dsk_status dsk_kv_append(const dsk_kv_append_params* p) {
    using namespace dsk;

    // Every argument is checked before anything touches the GPU; dtypes last (DSK_ERROR_UNSUPPORTED).
    DSK_CHECK_NOT_NULL(kOp, p, "p");
    DSK_CHECK_NOT_NULL(kOp, p->keys, "keys");
    DSK_CHECK_NOT_NULL(kOp, p->slot_mapping, "slot_mapping");
    DSK_CHECK_NOT_NULL(kOp, p->key_pages, "key_pages");
    DSK_CHECK_NOT_NULL(kOp, p->error_word, "error_word");
    const bool has_values = p->values != nullptr;
    DSK_CHECK_ARG(kOp, (p->value_pages != nullptr) == has_values,
                  "value_pages must be NULL exactly when values is NULL (values %s, value_pages %s)",
                  has_values ? "set" : "NULL", p->value_pages != nullptr ? "set" : "NULL");
    DSK_CHECK_MIN(kOp, p->tokens, 1, "tokens");
    DSK_CHECK_ARG(kOp, p->slots >= 1 && p->slots <= INT32_MAX, "slots must be in [1, 2^31) (got %lld)",
                  (long long)p->slots);
    DSK_CHECK_MIN(kOp, p->key_width, 1, "key_width");
    if (has_values) {
        DSK_CHECK_MIN(kOp, p->value_width, 1, "value_width");
    } else {
        DSK_CHECK_ARG(kOp, p->value_width == 0, "value_width must be 0 without values (got %lld)",
                      (long long)p->value_width);
    }
    DSK_CHECK_ARG(kOp, p->keys_row_stride >= p->key_width, "keys_row_stride must be >= key_width (got %lld, key_width %lld)",
                  (long long)p->keys_row_stride, (long long)p->key_width);
    if (has_values) {
        DSK_CHECK_ARG(kOp, p->values_row_stride >= p->value_width,
                      "values_row_stride must be >= value_width (got %lld, value_width %lld)",
                      (long long)p->values_row_stride, (long long)p->value_width);
    }
    DSK_CHECK_ARG(kOp, p->error_site > 0, "error_site must be > 0 (got %d)", (int)p->error_site);
    DSK_CHECK_ARG(kOp, p->reserved == 0, "reserved must be 0 (got %d)", (int)p->reserved);

    // Overlaps (an unsupported dtype's size is taken as 2 here; the dtype is refused below).
    const int64_t k_esz = dtype_bytes(p->key_dtype), kp_esz = dtype_bytes(p->key_page_dtype);
    const int64_t v_esz = dtype_bytes(p->value_dtype), vp_esz = dtype_bytes(p->value_page_dtype);
    const ByteRange kp = bytes_of(p->key_pages, p->slots * p->key_width * kp_esz);
    const ByteRange keys = view_bytes(p->keys, 1, p->tokens, p->key_width, 0, p->keys_row_stride, k_esz);
    const ByteRange slots = bytes_of(p->slot_mapping, p->tokens * 4);
    const ByteRange word = bytes_of(p->error_word, 32);
    DSK_CHECK_ARG(kOp, !overlaps(kp, keys), "key_pages must not overlap keys");
    DSK_CHECK_ARG(kOp, !overlaps(kp, slots), "key_pages must not overlap slot_mapping");
    DSK_CHECK_ARG(kOp, !overlaps(kp, word), "key_pages must not overlap error_word");
    if (has_values) {
        const ByteRange vp = bytes_of(p->value_pages, p->slots * p->value_width * vp_esz);
        const ByteRange values = view_bytes(p->values, 1, p->tokens, p->value_width, 0, p->values_row_stride, v_esz);
        DSK_CHECK_ARG(kOp, !overlaps(kp, values), "key_pages must not overlap values");
        DSK_CHECK_ARG(kOp, !overlaps(vp, keys), "value_pages must not overlap keys");
        DSK_CHECK_ARG(kOp, !overlaps(vp, values), "value_pages must not overlap values");
        DSK_CHECK_ARG(kOp, !overlaps(vp, slots), "value_pages must not overlap slot_mapping");
        DSK_CHECK_ARG(kOp, !overlaps(vp, word), "value_pages must not overlap error_word");
        DSK_CHECK_ARG(kOp, !overlaps(kp, vp), "key_pages must not overlap value_pages");
    }

    const int32_t dts[4] = {p->key_dtype, p->key_page_dtype, has_values ? p->value_dtype : DSK_DTYPE_BF16,
                            has_values ? p->value_page_dtype : DSK_DTYPE_BF16};
    const char* names[4] = {"key_dtype", "key_page_dtype", "value_dtype", "value_page_dtype"};
    for (int i = 0; i < 4; ++i) {
        if (!is_row_dtype(dts[i])) {
            DSK_UNSUPPORTED(kOp, "%s %s (%d) is not supported (F32 or BF16)", names[i], dtype_name(dts[i]), (int)dts[i]);
        }
    }

    KvAppendArgs a{};
    a.keys = p->keys;
    a.values = p->values;
    a.slots_of = p->slot_mapping;
    a.key_pages = p->key_pages;
    a.value_pages = p->value_pages;
    a.error_word = p->error_word;
    a.tokens = p->tokens;
    a.slots = p->slots;
    a.key_width = p->key_width;
    a.value_width = has_values ? p->value_width : 0;
    a.keys_stride = p->keys_row_stride;
    a.values_stride = p->values_row_stride;
    a.error_site = p->error_site;
    // Vector path per operand: 8 elements a step (16 or 32 bytes of each side), so widths multiples of 8, and every
    // row of the source and of the pages 16-byte aligned.
    a.key_vec = p->key_width % 8 == 0 && is_aligned_16(p->keys) && is_aligned_16(p->key_pages) &&
                (p->tokens == 1 || (p->keys_row_stride * k_esz) % 16 == 0);
    a.value_vec = has_values && p->value_width % 8 == 0 && is_aligned_16(p->values) && is_aligned_16(p->value_pages) &&
                  (p->tokens == 1 || (p->values_row_stride * v_esz) % 16 == 0);

    Dispatch<>::run(a, dts, static_cast<cudaStream_t>(p->stream));
    DSK_CHECK_LAUNCH(kOp);
    return DSK_SUCCESS;
}

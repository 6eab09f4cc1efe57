// embedding.cu: row gather (dsk_embedding):  y[i, :] = table[ids[i], :]  for i < n.
//
// The table is a dense F32 / BF16 or an INT4_GROUP dsk_weight with count 1; INT4 rows are dequantised to their exact
// bf16 values (weight_decode.cuh). Values are widened exactly and rounded once to y_dtype; a dense table of y's dtype
// is copied bit for bit. Cost: read one table row and write one row of y per id (memory-bound; hidden 7168 bf16:
// 28 KiB per id).
//
// The ids are device data, checked on the device: an id outside [0, rows) leaves its row of y untouched; the first
// such id (lowest i, found by one warp of block 0, each lane scanning a stride) claims error_word[0] with atomicCAS(0 -> error_site)
// and then writes word[1] = i, word[2] = id, word[3] = rows (an error recorded earlier is kept).
//
// One kernel, one block per id (grid-stride over ids), templated on the table's kind and y's dtype; a runtime flag
// picks 8-element vector accesses (16-byte loads and stores where aligned) or the scalar loop.
#include "common.cuh"
#include "weight_check.cuh"
#include "weight_decode.cuh"

namespace dsk {
namespace {

constexpr const char* kOp = "dsk_embedding";
constexpr int kThreads = 128;

enum TableKind : int { kTableF32 = 0, kTableBF16 = 1, kTableINT4 = 2 };

struct EmbeddingArgs {
    const int32_t* ids;
    const void* table;   // [rows, cols]
    const __nv_bfloat16* scale;  // INT4: [rows, cols / group]
    const __nv_bfloat16* zero;
    void* y;             // [n, cols], rows y_stride apart
    int32_t* error_word;
    int64_t n, rows, cols, y_stride;
    int32_t group;
    int32_t error_site;
    int32_t vec;         // 8-element accesses: table row, y row aligned; cols % 8 == 0
};

// Elements [c, c + 8) of table row `row`, as floats (vector path: aligned and in one INT4 group).
template <int TK> __device__ __forceinline__ void load8(const EmbeddingArgs& a, int64_t row, int64_t c, float (&f)[8]) {
    if constexpr (TK == kTableF32) {
        load_ro_widen<float, 8>(static_cast<const float*>(a.table) + row * a.cols + c, f);
    } else if constexpr (TK == kTableBF16) {
        load_ro_widen<__nv_bfloat16, 8>(static_cast<const __nv_bfloat16*>(a.table) + row * a.cols + c, f);
    } else {
        const uint32_t word = __ldg(reinterpret_cast<const uint32_t*>(static_cast<const unsigned char*>(a.table) +
                                                                       (row * a.cols + c) / 2));
        const int64_t g = row * (a.cols / a.group) + c / a.group;
        dequant_int4x8(word, to_float(load_ro(a.scale + g)), to_float(load_ro(a.zero + g)), f);
    }
}

// Element c of table row `row`, as a float.
template <int TK> __device__ __forceinline__ float load1(const EmbeddingArgs& a, int64_t row, int64_t c) {
    if constexpr (TK == kTableF32) {
        return load_ro(static_cast<const float*>(a.table) + row * a.cols + c);
    } else if constexpr (TK == kTableBF16) {
        return to_float(load_ro(static_cast<const __nv_bfloat16*>(a.table) + row * a.cols + c));
    } else {
        const uint32_t byte = __ldg(static_cast<const unsigned char*>(a.table) + (row * a.cols + c) / 2);
        const int64_t g = row * (a.cols / a.group) + c / a.group;
        return dequant_int4((c & 1) ? byte >> 4 : byte, to_float(load_ro(a.scale + g)), to_float(load_ro(a.zero + g)));
    }
}

// Gathers table rows into y (one block per id). A dense table of y's own dtype is copied as raw 16-byte vectors
// (or elements), so every bit (NaN payloads included) is kept; other pairs widen and round once.
template <int TK, typename Y> __global__ void __launch_bounds__(kThreads) embedding_kernel(const EmbeddingArgs a) {
    constexpr bool kRawCopy = (TK == kTableF32 && sizeof(Y) == 4) || (TK == kTableBF16 && sizeof(Y) == 2);
    // Block 0 reports the first bad id (the lowest i), so the report does not depend on which block runs first; the CAS
    // keeps an error an earlier op recorded.
    if (blockIdx.x == 0 && threadIdx.x < 32) report_first_out_of_range(a.ids, a.n, a.rows, a.error_word, a.error_site);
    for (int64_t i = blockIdx.x; i < a.n; i += gridDim.x) {
        const int32_t id = __ldg(a.ids + i);
        if (id < 0 || (int64_t)id >= a.rows) continue;  // the row of y is left as it was (reported above)
        Y* y_row = static_cast<Y*>(a.y) + i * a.y_stride;
        if constexpr (kRawCopy) {
            const Y* t_row = static_cast<const Y*>(a.table) + id * a.cols;
            if (a.vec) {
                constexpr int kN = Vec16<Y>::kN;
                for (int64_t c = threadIdx.x * kN; c < a.cols; c += kThreads * kN) st16(y_row + c, ld16_ro(t_row + c));
            } else {
                for (int64_t c = threadIdx.x; c < a.cols; c += kThreads) y_row[c] = t_row[c];
            }
        } else if (a.vec) {
            for (int64_t c = threadIdx.x * 8; c < a.cols; c += kThreads * 8) {
                float f[8];
                load8<TK>(a, id, c, f);
                if constexpr (sizeof(Y) == 4) {
                    st16(y_row + c, pack16<float>({f[0], f[1], f[2], f[3]}));
                    st16(y_row + c + 4, pack16<float>({f[4], f[5], f[6], f[7]}));
                } else {
                    st16(y_row + c, pack16<__nv_bfloat16>(f));
                }
            }
        } else {
            for (int64_t c = threadIdx.x; c < a.cols; c += kThreads) y_row[c] = from_float<Y>(load1<TK>(a, id, c));
        }
    }
}

template <int TK> void launch(const EmbeddingArgs& a, int32_t y_dtype, cudaStream_t st) {
    const unsigned grid = (unsigned)(a.n < 65535 * 16 ? a.n : 65535 * 16);  // the kernel loops over the rest
    if (y_dtype == DSK_DTYPE_F32) {
        embedding_kernel<TK, float><<<grid, kThreads, 0, st>>>(a);
    } else {
        embedding_kernel<TK, __nv_bfloat16><<<grid, kThreads, 0, st>>>(a);
    }
}

}  // namespace
}  // namespace dsk

extern "C" DSK_API dsk_status dsk_embedding(const dsk_embedding_params* p) {
    using namespace dsk;

    // Every argument is checked before anything touches the GPU; dtypes last (DSK_ERROR_UNSUPPORTED).
    DSK_CHECK_NOT_NULL(kOp, p, "p");
    DSK_CHECK_NOT_NULL(kOp, p->ids, "ids");
    DSK_CHECK_NOT_NULL(kOp, p->y, "y");
    DSK_CHECK_NOT_NULL(kOp, p->error_word, "error_word");
    DSK_CHECK_MIN(kOp, p->n, 1, "n");
    const dsk_status ws = check_weight(kOp, p->table, "table");
    if (ws != DSK_SUCCESS) return ws;
    const dsk_weight& t = p->table;
    DSK_CHECK_ARG(kOp, t.count == 1, "table.count must be 1 (got %lld)", (long long)t.count);
    DSK_CHECK_ARG(kOp, t.rows <= INT32_MAX, "table.rows must be < 2^31 (got %lld): ids are int32", (long long)t.rows);
    DSK_CHECK_ARG(kOp, p->y_row_stride >= t.cols, "y_row_stride must be >= table.cols (got %lld, cols %lld)",
                  (long long)p->y_row_stride, (long long)t.cols);
    DSK_CHECK_ARG(kOp, p->error_site > 0, "error_site must be > 0 (got %d)", (int)p->error_site);
    const int64_t esz = p->y_dtype == DSK_DTYPE_F32 ? 4 : 2;  // an unsupported y_dtype is reported below
    const ByteRange y_range = view_bytes(p->y, 1, p->n, t.cols, 0, p->y_row_stride, esz);
    DSK_CHECK_ARG(kOp, !weight_overlaps(t, y_range), "y must not overlap the table (table.data, table.scale, table.zero)");
    DSK_CHECK_ARG(kOp, !overlaps(y_range, bytes_of(p->ids, p->n * 4)), "y must not overlap ids");
    DSK_CHECK_ARG(kOp, !overlaps(y_range, bytes_of(p->error_word, 32)), "y must not overlap error_word");

    if (t.scheme == DSK_WEIGHT_FP8_BLOCK) {
        DSK_UNSUPPORTED(kOp, "table.scheme FP8_BLOCK is not supported (DENSE F32 / BF16 or INT4_GROUP)");
    }
    const dsk_status ds = weight_dtype_supported(kOp, t, "table");
    if (ds != DSK_SUCCESS) return ds;
    if (p->y_dtype != DSK_DTYPE_F32 && p->y_dtype != DSK_DTYPE_BF16) {
        DSK_UNSUPPORTED(kOp, "y_dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->y_dtype), (int)p->y_dtype);
    }

    EmbeddingArgs a{};
    a.ids = p->ids;
    a.table = t.data;
    a.scale = static_cast<const __nv_bfloat16*>(t.scale);
    a.zero = static_cast<const __nv_bfloat16*>(t.zero);
    a.y = p->y;
    a.error_word = p->error_word;
    a.n = p->n;
    a.rows = t.rows;
    a.cols = t.cols;
    a.y_stride = p->y_row_stride;
    a.group = t.group_size;
    a.error_site = p->error_site;
    const int kind = t.scheme == DSK_WEIGHT_INT4_GROUP ? kTableINT4 : t.dtype == DSK_DTYPE_F32 ? kTableF32 : kTableBF16;

    // Vector path: 8 elements at a time. Table rows: 16-byte aligned (dense) or 4-byte aligned (INT4: 8 codes);
    // y rows 16-byte aligned. The raw copy of a dense table into its own dtype moves 16 bytes at a time, so it
    // needs the same; a row of 8 f32 or 8 bf16 is a whole number of 16-byte vectors.
    const int64_t t_esz = kind == kTableF32 ? 4 : 2;
    const bool table_ok = kind == kTableINT4 ? (reinterpret_cast<uintptr_t>(t.data) & 3u) == 0
                                             : is_aligned_16(t.data) && (t.cols * t_esz) % 16 == 0;
    a.vec = t.cols % 8 == 0 && table_ok && is_aligned_16(p->y) && (p->n == 1 || (p->y_row_stride * esz) % 16 == 0);

    const cudaStream_t st = static_cast<cudaStream_t>(p->stream);
    switch (kind) {
        case kTableF32: launch<kTableF32>(a, p->y_dtype, st); break;
        case kTableBF16: launch<kTableBF16>(a, p->y_dtype, st); break;
        default: launch<kTableINT4>(a, p->y_dtype, st); break;
    }
    DSK_CHECK_LAUNCH(kOp);
    return DSK_SUCCESS;
}

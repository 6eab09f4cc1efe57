// weight_check.cuh: host-side checks shared by the entry points that read a dsk_weight (dsk_linear, dsk_embedding,
// dsk_dequantize_fp8): the fields of the weight, its byte extents, and byte-range overlap of strided views.
// Messages name the op and the field with the caller's prefix ("w.", "table."), e.g.
// "dsk_linear: w.group_size must be a positive multiple of 32 (got 48)".
#pragma once

#include <cstdint>

#include "common.cuh"

namespace dsk {

inline const char* scheme_name(int32_t scheme) {
    switch (scheme) {
        case DSK_WEIGHT_DENSE: return "DENSE";
        case DSK_WEIGHT_FP8_BLOCK: return "FP8_BLOCK";
        case DSK_WEIGHT_INT4_GROUP: return "INT4_GROUP";
        default: return "unknown";
    }
}

// Every field of a weight that must hold whatever the op (DSK_ERROR_INVALID_ARGUMENT otherwise). A dense weight's
// dtype is not checked here: F32 / BF16 is the op's support question (weight_dtype_supported), asked after the
// other arguments.
inline dsk_status check_weight(const char* op, const dsk_weight& w, const char* name) {
    DSK_CHECK_ARG(op, w.data != nullptr, "%s.data must not be NULL", name);
    DSK_CHECK_ARG(op, w.rows >= 1, "%s.rows must be >= 1 (got %lld)", name, (long long)w.rows);
    DSK_CHECK_ARG(op, w.cols >= 1, "%s.cols must be >= 1 (got %lld)", name, (long long)w.cols);
    DSK_CHECK_ARG(op, w.count >= 1, "%s.count must be >= 1 (got %lld)", name, (long long)w.count);
    DSK_CHECK_ARG(op, w.reserved == 0, "%s.reserved must be 0 (got %d)", name, (int)w.reserved);
    switch (w.scheme) {
        case DSK_WEIGHT_DENSE:
            DSK_CHECK_ARG(op, w.scale == nullptr, "%s.scale must be NULL for a DENSE weight", name);
            DSK_CHECK_ARG(op, w.zero == nullptr, "%s.zero must be NULL for a DENSE weight", name);
            break;
        case DSK_WEIGHT_FP8_BLOCK:
            DSK_CHECK_ARG(op, w.dtype == DSK_DTYPE_FP8_E4M3, "%s.dtype must be FP8_E4M3 for an FP8_BLOCK weight (got %s (%d))",
                          name, dtype_name(w.dtype), (int)w.dtype);
            DSK_CHECK_ARG(op, w.block_rows >= 1, "%s.block_rows must be >= 1 (got %d)", name, (int)w.block_rows);
            DSK_CHECK_ARG(op, w.block_cols >= 1, "%s.block_cols must be >= 1 (got %d)", name, (int)w.block_cols);
            DSK_CHECK_ARG(op, w.scale != nullptr, "%s.scale must not be NULL for an FP8_BLOCK weight", name);
            DSK_CHECK_ARG(op, w.zero == nullptr, "%s.zero must be NULL for an FP8_BLOCK weight", name);
            break;
        case DSK_WEIGHT_INT4_GROUP:
            DSK_CHECK_ARG(op, w.dtype == DSK_DTYPE_INT4, "%s.dtype must be INT4 for an INT4_GROUP weight (got %s (%d))",
                          name, dtype_name(w.dtype), (int)w.dtype);
            DSK_CHECK_ARG(op, w.group_size >= 32 && w.group_size % 32 == 0,
                          "%s.group_size must be a positive multiple of 32 (got %d)", name, (int)w.group_size);
            DSK_CHECK_ARG(op, w.cols % w.group_size == 0,
                          "%s.cols must be a multiple of %s.group_size (got cols %lld, group_size %d)", name, name,
                          (long long)w.cols, (int)w.group_size);
            DSK_CHECK_ARG(op, w.scale != nullptr, "%s.scale must not be NULL for an INT4_GROUP weight", name);
            DSK_CHECK_ARG(op, w.zero != nullptr, "%s.zero must not be NULL for an INT4_GROUP weight", name);
            break;
        default:
            DSK_CHECK_ARG(op, false, "%s.scheme must be DENSE (0), FP8_BLOCK (1) or INT4_GROUP (2) (got %d)", name,
                          (int)w.scheme);
    }
    return DSK_SUCCESS;
}

// A checked weight's dtype is one the kernels read: a DENSE weight must be F32 or BF16 (else DSK_ERROR_UNSUPPORTED);
// the quantised schemes' dtypes were fixed by check_weight.
inline dsk_status weight_dtype_supported(const char* op, const dsk_weight& w, const char* name) {
    if (w.scheme == DSK_WEIGHT_DENSE && w.dtype != DSK_DTYPE_F32 && w.dtype != DSK_DTYPE_BF16) {
        DSK_UNSUPPORTED(op, "%s.dtype %s (%d) is not supported for a DENSE weight (F32 or BF16)", name,
                        dtype_name(w.dtype), (int)w.dtype);
    }
    return DSK_SUCCESS;
}

// Half-open byte range [lo, hi) of a buffer.
struct ByteRange {
    uintptr_t lo;
    uintptr_t hi;
};

inline bool overlaps(ByteRange a, ByteRange b) { return a.lo < b.hi && b.lo < a.hi; }

inline ByteRange bytes_of(const void* p, int64_t n_bytes) {
    const uintptr_t lo = reinterpret_cast<uintptr_t>(p);
    return {lo, lo + (uintptr_t)n_bytes};
}

// Bytes a strided view [batch, rows, width] spans (non-negative strides, in elements of `elem_bytes`).
inline ByteRange view_bytes(const void* p, int64_t batch, int64_t rows, int64_t width, int64_t batch_stride,
                            int64_t row_stride, int64_t elem_bytes) {
    const int64_t last = (batch - 1) * batch_stride + (rows - 1) * row_stride + width;
    return bytes_of(p, last * elem_bytes);
}

// Bytes of a checked weight's data, and of its scale and zero tensors (0 when absent).
inline int64_t weight_data_bytes(const dsk_weight& w) {
    const int64_t elems = w.count * w.rows * w.cols;
    switch (w.dtype) {
        case DSK_DTYPE_F32: return elems * 4;
        case DSK_DTYPE_BF16: return elems * 2;
        case DSK_DTYPE_INT4: return elems / 2;
        default: return elems;  // FP8
    }
}
inline int64_t weight_scale_bytes(const dsk_weight& w) {
    if (w.scheme == DSK_WEIGHT_FP8_BLOCK) {
        return w.count * ((w.rows + w.block_rows - 1) / w.block_rows) * ((w.cols + w.block_cols - 1) / w.block_cols) * 4;
    }
    if (w.scheme == DSK_WEIGHT_INT4_GROUP) return w.count * w.rows * (w.cols / w.group_size) * 2;
    return 0;
}

// Whether any of a weight's buffers overlaps `r`.
inline bool weight_overlaps(const dsk_weight& w, ByteRange r) {
    if (overlaps(bytes_of(w.data, weight_data_bytes(w)), r)) return true;
    if (w.scale != nullptr && overlaps(bytes_of(w.scale, weight_scale_bytes(w)), r)) return true;
    return w.zero != nullptr && overlaps(bytes_of(w.zero, weight_scale_bytes(w)), r);
}

}  // namespace dsk

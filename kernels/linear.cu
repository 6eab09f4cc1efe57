// linear.cu: the dsk_linear entry point: checks every field of the params, then dispatches to a kernel family
// (linear_simt.cu: CUDA-core GEMV / skinny GEMM, any request; linear_mma.cu: bf16 tensor cores for prefill).
//
//   acc[b, i, n] = sum_k x[b, i, k] * w[b', n, k] (+ bias[n]);  y = round_y(epilogue(acc))
//
// The checks (check_linear_args, check_linear_dtypes, shared with grouped_linear.cu), in order (the first failure is reported): pointers, sizes, the weight's fields, the epilogue and its
// operands, strides, flags, overlaps; then dtypes (x_dtype and y_dtype F32 / BF16, a dense weight F32 / BF16), which return
// DSK_ERROR_UNSUPPORTED. Path AUTO: MMA from kLinearMmaMinRows rows per batch entry up when that family accepts the
// request, SIMT otherwise; path SIMT or MMA forces the family (MMA: DSK_ERROR_UNSUPPORTED with its reason when it
// cannot run the request).
#include "linear.cuh"
#include "weight_check.cuh"

namespace dsk {

// The width of a row of each operand: x has `in`, y has out (out / 2 with SILU_MUL), residual has out.
// Shared with dsk_grouped_linear (grouped_linear.cu), which passes its request as batch 1 and `stacked`.
dsk_status check_linear_args(const char* op, const dsk_linear_params& params, bool stacked) {
    const dsk_linear_params* p = &params;
    DSK_CHECK_NOT_NULL(op, p->x, "x");
    DSK_CHECK_NOT_NULL(op, p->y, "y");
    DSK_CHECK_MIN(op, p->m, 1, "m");
    DSK_CHECK_MIN(op, p->batch, 1, "batch");
    const dsk_status ws = check_weight(op, p->w, "w");
    if (ws != DSK_SUCCESS) return ws;
    DSK_CHECK_ARG(op, stacked || p->w.count == 1 || p->w.count == p->batch,
                  "w.count must be 1 or batch (got %lld, batch %lld)", (long long)p->w.count, (long long)p->batch);
    DSK_CHECK_ARG(op, p->transpose_w == 0 || p->transpose_w == 1, "transpose_w must be 0 or 1 (got %d)",
                  (int)p->transpose_w);
    DSK_CHECK_ARG(op, p->path >= DSK_LINEAR_PATH_AUTO && p->path <= DSK_LINEAR_PATH_MMA_SYNC,
                  "path must be AUTO (0), SIMT (1), MMA (2) or MMA_SYNC (3) (got %d)", (int)p->path);

    const int64_t in = linear_in(*p);
    const int64_t out = linear_out(*p);
    switch (p->epilogue) {
        case DSK_EPILOGUE_NONE:
        case DSK_EPILOGUE_ADD: break;
        case DSK_EPILOGUE_SILU_MUL:
            DSK_CHECK_ARG(op, out % 2 == 0, "out must be even with epilogue SILU_MUL (got out %lld)", (long long)out);
            break;
        default:
            DSK_CHECK_ARG(op, false, "epilogue must be NONE (0), SILU_MUL (1) or ADD (2) (got %d)", (int)p->epilogue);
    }
    const bool add = p->epilogue == DSK_EPILOGUE_ADD;
    if (add) {
        DSK_CHECK_ARG(op, p->residual != nullptr, "residual must not be NULL with epilogue ADD");
    } else {
        DSK_CHECK_ARG(op, p->residual == nullptr, "residual must be NULL unless epilogue is ADD");
    }
    const int64_t y_cols = linear_y_cols(*p);

    // Strides: rows at least as wide as the row; batch strides (used only when batch > 1) not negative.
    DSK_CHECK_ARG(op, p->x_row_stride >= in, "x_row_stride must be >= in (got %lld, in %lld)",
                  (long long)p->x_row_stride, (long long)in);
    DSK_CHECK_ARG(op, p->y_row_stride >= y_cols, "y_row_stride must be >= the columns of y (got %lld, columns %lld)",
                  (long long)p->y_row_stride, (long long)y_cols);
    if (add) {
        DSK_CHECK_ARG(op, p->residual_row_stride >= out, "residual_row_stride must be >= out (got %lld, out %lld)",
                      (long long)p->residual_row_stride, (long long)out);
    }
    if (p->batch > 1) {
        DSK_CHECK_MIN(op, p->x_batch_stride, 0, "x_batch_stride");
        DSK_CHECK_ARG(op, p->y_batch_stride >= y_cols,
                      "y_batch_stride must be >= the columns of y (got %lld, columns %lld)",
                      (long long)p->y_batch_stride, (long long)y_cols);
        if (add) DSK_CHECK_MIN(op, p->residual_batch_stride, 0, "residual_batch_stride");
    }

    // Overlaps (byte ranges from the strides). The element sizes are 4 or 2; an unsupported dtype is reported
    // below, so take 2 bytes for it here (the smallest range, never a false overlap).
    const int64_t x_esz = p->x_dtype == DSK_DTYPE_F32 ? 4 : 2;
    const int64_t esz = p->y_dtype == DSK_DTYPE_F32 ? 4 : 2;  // y and residual
    const int64_t xb = p->batch > 1 ? p->x_batch_stride : 0;
    const int64_t yb = p->batch > 1 ? p->y_batch_stride : 0;
    const int64_t rb = p->batch > 1 ? p->residual_batch_stride : 0;
    const ByteRange y_range = view_bytes(p->y, p->batch, p->m, y_cols, yb, p->y_row_stride, esz);
    DSK_CHECK_ARG(op, !overlaps(y_range, view_bytes(p->x, p->batch, p->m, in, xb, p->x_row_stride, x_esz)),
                  "y must not overlap x");
    DSK_CHECK_ARG(op, !weight_overlaps(p->w, y_range), "y must not overlap the weight (w.data, w.scale, w.zero)");
    DSK_CHECK_ARG(op, p->bias == nullptr || !overlaps(y_range, bytes_of(p->bias, out * 4)), "y must not overlap bias");
    if (add && p->residual != p->y) {
        DSK_CHECK_ARG(op, !overlaps(y_range, view_bytes(p->residual, p->batch, p->m, out, rb, p->residual_row_stride, esz)),
                      "residual must equal y exactly or not overlap it");
    }
    if (add && p->residual == p->y) {
        DSK_CHECK_ARG(op, p->residual_row_stride == p->y_row_stride && (p->batch == 1 || rb == yb),
                      "residual equal to y must have y's strides (residual_row_stride %lld, y_row_stride %lld)",
                      (long long)p->residual_row_stride, (long long)p->y_row_stride);
    }
    return DSK_SUCCESS;
}

// dtypes last.
dsk_status check_linear_dtypes(const char* op, const dsk_linear_params& params) {
    const dsk_linear_params* p = &params;
    if (p->x_dtype != DSK_DTYPE_F32 && p->x_dtype != DSK_DTYPE_BF16) {
        DSK_UNSUPPORTED(op, "x_dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->x_dtype), (int)p->x_dtype);
    }
    if (p->y_dtype != DSK_DTYPE_F32 && p->y_dtype != DSK_DTYPE_BF16) {
        DSK_UNSUPPORTED(op, "y_dtype %s (%d) is not supported (F32 or BF16)", dtype_name(p->y_dtype), (int)p->y_dtype);
    }
    return weight_dtype_supported(op, p->w, "w");
}

}  // namespace dsk

extern "C" DSK_API dsk_status dsk_linear(const dsk_linear_params* p) {
    using namespace dsk;
    constexpr const char* kOp = "dsk_linear";
    DSK_CHECK_NOT_NULL(kOp, p, "p");
    dsk_status st = check_linear_args(kOp, *p, false);
    if (st == DSK_SUCCESS) st = check_linear_dtypes(kOp, *p);
    if (st != DSK_SUCCESS) return st;

    switch (p->path) {
        case DSK_LINEAR_PATH_SIMT: return linear_simt(kOp, *p);
        case DSK_LINEAR_PATH_MMA:
        case DSK_LINEAR_PATH_MMA_SYNC: {
            const char* why = nullptr;
            if (!linear_mma_supports(*p, &why)) {
                DSK_UNSUPPORTED(kOp, "path %s cannot run this request: %s", p->path == DSK_LINEAR_PATH_MMA ? "MMA" : "MMA_SYNC",
                                why != nullptr ? why : "(no reason given)");
            }
            return linear_mma(kOp, *p, nullptr, p->path == DSK_LINEAR_PATH_MMA);
        }
        default:  // AUTO
            if (p->m >= kLinearMmaMinRows && linear_mma_supports(*p, nullptr)) return linear_mma(kOp, *p);
            return linear_simt(kOp, *p);
    }
}

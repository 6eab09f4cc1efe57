// grouped_linear.cu: the dsk_grouped_linear entry point (the experts' projections of a mixture of experts): checks the
// params, then runs dsk_linear's kernel families (linear_simt.cu, linear_mma.cu) with a grouped row source.
//
//   for e < w.count, r in offsets[e] .. offsets[e + 1]:  acc[r, n] = sum_k x[r, k] * w[e, n, k];  y = round_y(epilogue(acc))
//
// No second GEMM: the request becomes a dsk_linear request (batch 1, x [m, in], y [m, y columns], the expert stack as w)
// plus a RowTiles source (linear.cuh). The same kernel bodies run it; each block finds its expert and first row from the
// offsets on the device (a warp prefix sum over ceil(rows_e / TM) per expert), the weight, scale and zero pointers offset
// by matrix e as dsk_linear's batch mode does. Grids depend on m and w.count only (CUDA-graph capturable): row tiles are
// bounded by min(m, (m + min(m, count) * (TM - 1)) / TM), and blocks past the last tile exit.
//
// Checks, in order (the first failure is reported): p, expert_offsets, error_word, the epilogue (NONE or SILU_MUL),
// error_site, reserved, m and w.count below 2^31 - 1, then dsk_linear's shared checks (x, y, m >= 1, the weight, path,
// strides, overlaps of y with x and the weight: check_linear_args), y against the offsets; dtypes last
// (check_linear_dtypes).
// The offsets are device data: every block checks all of them as it scans (each in [0, m], then not decreasing) and
// exits when one is bad, so nothing but the error word is written; block 0 reports the first bad one in that order.
//
// Path AUTO: the tensor-core family when the mean rows of a used expert (linear.cuh, grouped_rows_per_expert: from m and
// the expert count only) reach kGroupedMmaMinRows and that family accepts the request; otherwise the SIMT family, whose
// GEMV takes tiles of about as many rows as the mean used expert has (decode: one row each), so that each used expert's
// weight is streamed once (experts with more rows than the tile stream it once per tile).
#include <climits>

#include "linear.cuh"
#include "weight_check.cuh"

namespace dsk {
namespace {

constexpr const char* kOp = "dsk_grouped_linear";

// AUTO: MMA from this many rows per used expert up. Below it the tensor cores would multiply 128-row
// tiles that are mostly padding, and the SIMT GEMV streams each used expert's weight once at the same bytes.
constexpr int64_t kGroupedMmaMinRows = 8;

// The grouped request as dsk_linear's families read it: batch 1, x and y [m, ...], the expert stack as w.
dsk_linear_params as_linear(const dsk_grouped_linear_params& p) {
    dsk_linear_params lp{};
    lp.x = p.x;
    lp.w = p.w;
    lp.y = p.y;
    lp.m = p.m;
    lp.batch = 1;
    lp.x_row_stride = p.x_row_stride;
    lp.y_row_stride = p.y_row_stride;
    lp.x_dtype = p.x_dtype;
    lp.y_dtype = p.y_dtype;
    lp.epilogue = p.epilogue;
    lp.path = p.path;
    lp.stream = p.stream;
    return lp;
}

dsk_status check_grouped_linear(const dsk_grouped_linear_params* p, const dsk_linear_params& lp) {
    DSK_CHECK_NOT_NULL(kOp, p->expert_offsets, "expert_offsets");
    DSK_CHECK_NOT_NULL(kOp, p->error_word, "error_word");
    DSK_CHECK_ARG(kOp, p->epilogue == DSK_EPILOGUE_NONE || p->epilogue == DSK_EPILOGUE_SILU_MUL,
                  "epilogue must be NONE (0) or SILU_MUL (1) (got %d)", (int)p->epilogue);
    DSK_CHECK_ARG(kOp, p->error_site > 0, "error_site must be > 0 (got %d)", (int)p->error_site);
    DSK_CHECK_ARG(kOp, p->reserved == 0, "reserved must be 0 (got %d)", (int)p->reserved);
    DSK_CHECK_ARG(kOp, p->m < INT32_MAX, "m must be < 2^31 - 1 (got %lld)", (long long)p->m);
    DSK_CHECK_ARG(kOp, p->w.count < INT32_MAX, "w.count must be < 2^31 - 1 (got %lld)", (long long)p->w.count);
    const dsk_status st = check_linear_args(kOp, lp, true);
    if (st != DSK_SUCCESS) return st;
    const int64_t y_cols = linear_y_cols(lp);
    const int64_t esz = p->y_dtype == DSK_DTYPE_F32 ? 4 : 2;
    const ByteRange y_range = view_bytes(p->y, 1, p->m, y_cols, 0, p->y_row_stride, esz);
    DSK_CHECK_ARG(kOp, !overlaps(y_range, bytes_of(p->expert_offsets, (p->w.count + 1) * 4)),
                  "y must not overlap expert_offsets");
    return check_linear_dtypes(kOp, lp);
}

}  // namespace
}  // namespace dsk

extern "C" DSK_API dsk_status dsk_grouped_linear(const dsk_grouped_linear_params* p) {
    using namespace dsk;
    DSK_CHECK_NOT_NULL(kOp, p, "p");
    const dsk_linear_params lp = as_linear(*p);
    const dsk_status st = check_grouped_linear(p, lp);
    if (st != DSK_SUCCESS) return st;

    RowTiles rt{};
    rt.offsets = p->expert_offsets;
    rt.error_word = p->error_word;
    rt.count = (int32_t)p->w.count;
    rt.error_site = p->error_site;
    switch (p->path) {
        case DSK_LINEAR_PATH_SIMT: return linear_simt(kOp, lp, &rt);
        case DSK_LINEAR_PATH_MMA:
        case DSK_LINEAR_PATH_MMA_SYNC: {
            const char* why = nullptr;
            if (!linear_mma_supports(lp, &why)) {
                DSK_UNSUPPORTED(kOp, "path %s cannot run this request: %s", p->path == DSK_LINEAR_PATH_MMA ? "MMA" : "MMA_SYNC",
                                why != nullptr ? why : "(no reason given)");
            }
            return linear_mma(kOp, lp, &rt, p->path == DSK_LINEAR_PATH_MMA);
        }
        default: {  // AUTO
            const double rows_per_expert = grouped_rows_per_expert(p->m, p->w.count);
            if (rows_per_expert >= kGroupedMmaMinRows && linear_mma_supports(lp, nullptr)) return linear_mma(kOp, lp, &rt);
            return linear_simt(kOp, lp, &rt);
        }
    }
}

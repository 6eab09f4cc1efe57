/*
 * abi_check.c: GPU-free checks of libdeepseek_kernels' C ABI.
 *
 *  - the header compiles as C11, and the struct layouts and enum values are the ones the C# bindings mirror;
 *  - dsk_abi_version() matches the header; the status entry points answer without a GPU;
 *  - every invalid dsk_rms_norm, dsk_linear, dsk_grouped_linear, dsk_embedding, dsk_dequantize_fp8, dsk_rope, dsk_kv_append,
 *    dsk_paged_(mla_)attention, dsk_moe_*, dsk_silu_and_mul, dsk_copy_columns, dsk_elementwise and dsk_softmax request is
 *    refused with the
 *    right status and a message naming the op and the field. Every request here is invalid, so nothing is ever launched: it runs the same with or
 *    without a GPU. (Fake, never-dereferenced device pointers stand in for buffers.)
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "deepseek_kernels.h"

/* Layout of the params struct on LP64 targets (what the C# StructLayout(Sequential) declaration gives). */
_Static_assert(sizeof(void*) == 8, "64-bit targets only");
_Static_assert(offsetof(dsk_rms_norm_params, x) == 0, "x");
_Static_assert(offsetof(dsk_rms_norm_params, residual) == 8, "residual");
_Static_assert(offsetof(dsk_rms_norm_params, w) == 16, "w");
_Static_assert(offsetof(dsk_rms_norm_params, y) == 24, "y");
_Static_assert(offsetof(dsk_rms_norm_params, r) == 32, "r");
_Static_assert(offsetof(dsk_rms_norm_params, rows) == 40, "rows");
_Static_assert(offsetof(dsk_rms_norm_params, cols) == 48, "cols");
_Static_assert(offsetof(dsk_rms_norm_params, x_row_stride) == 56, "x_row_stride");
_Static_assert(offsetof(dsk_rms_norm_params, residual_row_stride) == 64, "residual_row_stride");
_Static_assert(offsetof(dsk_rms_norm_params, y_row_stride) == 72, "y_row_stride");
_Static_assert(offsetof(dsk_rms_norm_params, r_row_stride) == 80, "r_row_stride");
_Static_assert(offsetof(dsk_rms_norm_params, eps) == 88, "eps");
_Static_assert(offsetof(dsk_rms_norm_params, x_dtype) == 92, "x_dtype");
_Static_assert(offsetof(dsk_rms_norm_params, w_dtype) == 96, "w_dtype");
_Static_assert(offsetof(dsk_rms_norm_params, stream) == 104, "stream");
_Static_assert(sizeof(dsk_rms_norm_params) == 112, "sizeof(dsk_rms_norm_params)");
/* dsk_weight and the params of the weight-reading ops (ABI v2). */
_Static_assert(offsetof(dsk_weight, data) == 0, "weight.data");
_Static_assert(offsetof(dsk_weight, scale) == 8, "weight.scale");
_Static_assert(offsetof(dsk_weight, zero) == 16, "weight.zero");
_Static_assert(offsetof(dsk_weight, rows) == 24, "weight.rows");
_Static_assert(offsetof(dsk_weight, cols) == 32, "weight.cols");
_Static_assert(offsetof(dsk_weight, count) == 40, "weight.count");
_Static_assert(offsetof(dsk_weight, scheme) == 48, "weight.scheme");
_Static_assert(offsetof(dsk_weight, dtype) == 52, "weight.dtype");
_Static_assert(offsetof(dsk_weight, block_rows) == 56, "weight.block_rows");
_Static_assert(offsetof(dsk_weight, block_cols) == 60, "weight.block_cols");
_Static_assert(offsetof(dsk_weight, group_size) == 64, "weight.group_size");
_Static_assert(offsetof(dsk_weight, reserved) == 68, "weight.reserved");
_Static_assert(sizeof(dsk_weight) == 72, "sizeof(dsk_weight)");

_Static_assert(offsetof(dsk_linear_params, x) == 0, "linear.x");
_Static_assert(offsetof(dsk_linear_params, w) == 8, "linear.w");
_Static_assert(offsetof(dsk_linear_params, bias) == 80, "linear.bias");
_Static_assert(offsetof(dsk_linear_params, residual) == 88, "linear.residual");
_Static_assert(offsetof(dsk_linear_params, y) == 96, "linear.y");
_Static_assert(offsetof(dsk_linear_params, m) == 104, "linear.m");
_Static_assert(offsetof(dsk_linear_params, batch) == 112, "linear.batch");
_Static_assert(offsetof(dsk_linear_params, x_row_stride) == 120, "linear.x_row_stride");
_Static_assert(offsetof(dsk_linear_params, x_batch_stride) == 128, "linear.x_batch_stride");
_Static_assert(offsetof(dsk_linear_params, y_row_stride) == 136, "linear.y_row_stride");
_Static_assert(offsetof(dsk_linear_params, y_batch_stride) == 144, "linear.y_batch_stride");
_Static_assert(offsetof(dsk_linear_params, residual_row_stride) == 152, "linear.residual_row_stride");
_Static_assert(offsetof(dsk_linear_params, residual_batch_stride) == 160, "linear.residual_batch_stride");
_Static_assert(offsetof(dsk_linear_params, x_dtype) == 168, "linear.x_dtype");
_Static_assert(offsetof(dsk_linear_params, transpose_w) == 172, "linear.transpose_w");
_Static_assert(offsetof(dsk_linear_params, epilogue) == 176, "linear.epilogue");
_Static_assert(offsetof(dsk_linear_params, path) == 180, "linear.path");
_Static_assert(offsetof(dsk_linear_params, y_dtype) == 184, "linear.y_dtype");
_Static_assert(offsetof(dsk_linear_params, reserved) == 188, "linear.reserved");
_Static_assert(offsetof(dsk_linear_params, stream) == 192, "linear.stream");
_Static_assert(sizeof(dsk_linear_params) == 200, "sizeof(dsk_linear_params)");

_Static_assert(offsetof(dsk_embedding_params, ids) == 0, "embedding.ids");
_Static_assert(offsetof(dsk_embedding_params, table) == 8, "embedding.table");
_Static_assert(offsetof(dsk_embedding_params, y) == 80, "embedding.y");
_Static_assert(offsetof(dsk_embedding_params, error_word) == 88, "embedding.error_word");
_Static_assert(offsetof(dsk_embedding_params, n) == 96, "embedding.n");
_Static_assert(offsetof(dsk_embedding_params, y_row_stride) == 104, "embedding.y_row_stride");
_Static_assert(offsetof(dsk_embedding_params, y_dtype) == 112, "embedding.y_dtype");
_Static_assert(offsetof(dsk_embedding_params, error_site) == 116, "embedding.error_site");
_Static_assert(offsetof(dsk_embedding_params, stream) == 120, "embedding.stream");
_Static_assert(sizeof(dsk_embedding_params) == 128, "sizeof(dsk_embedding_params)");

_Static_assert(offsetof(dsk_dequantize_fp8_params, w) == 0, "dequantize_fp8.w");
_Static_assert(offsetof(dsk_dequantize_fp8_params, y) == 72, "dequantize_fp8.y");
_Static_assert(offsetof(dsk_dequantize_fp8_params, stream) == 80, "dequantize_fp8.stream");
_Static_assert(sizeof(dsk_dequantize_fp8_params) == 88, "sizeof(dsk_dequantize_fp8_params)");

_Static_assert(offsetof(dsk_quantize_fp8_act_params, x) == 0, "quantize_fp8_act.x");
_Static_assert(offsetof(dsk_quantize_fp8_act_params, q) == 8, "quantize_fp8_act.q");
_Static_assert(offsetof(dsk_quantize_fp8_act_params, scale) == 16, "quantize_fp8_act.scale");
_Static_assert(offsetof(dsk_quantize_fp8_act_params, m) == 24, "quantize_fp8_act.m");
_Static_assert(offsetof(dsk_quantize_fp8_act_params, cols) == 32, "quantize_fp8_act.cols");
_Static_assert(offsetof(dsk_quantize_fp8_act_params, x_row_stride) == 40, "quantize_fp8_act.x_row_stride");
_Static_assert(offsetof(dsk_quantize_fp8_act_params, act_dtype) == 48, "quantize_fp8_act.act_dtype");
_Static_assert(offsetof(dsk_quantize_fp8_act_params, reserved) == 52, "quantize_fp8_act.reserved");
_Static_assert(offsetof(dsk_quantize_fp8_act_params, stream) == 56, "quantize_fp8_act.stream");
_Static_assert(sizeof(dsk_quantize_fp8_act_params) == 64, "sizeof(dsk_quantize_fp8_act_params)");

_Static_assert(offsetof(dsk_linear_fp8_w8a8_params, qx) == 0, "w8a8.qx");
_Static_assert(offsetof(dsk_linear_fp8_w8a8_params, x_scale) == 8, "w8a8.x_scale");
_Static_assert(offsetof(dsk_linear_fp8_w8a8_params, w) == 16, "w8a8.w");
_Static_assert(offsetof(dsk_linear_fp8_w8a8_params, bias) == 88, "w8a8.bias");
_Static_assert(offsetof(dsk_linear_fp8_w8a8_params, y) == 96, "w8a8.y");
_Static_assert(offsetof(dsk_linear_fp8_w8a8_params, m) == 104, "w8a8.m");
_Static_assert(offsetof(dsk_linear_fp8_w8a8_params, y_row_stride) == 112, "w8a8.y_row_stride");
_Static_assert(offsetof(dsk_linear_fp8_w8a8_params, act_dtype) == 120, "w8a8.act_dtype");
_Static_assert(offsetof(dsk_linear_fp8_w8a8_params, path) == 124, "w8a8.path");
_Static_assert(offsetof(dsk_linear_fp8_w8a8_params, stream) == 128, "w8a8.stream");
_Static_assert(sizeof(dsk_linear_fp8_w8a8_params) == 136, "sizeof(dsk_linear_fp8_w8a8_params)");
/* dsk_grouped_linear_fp8_w8a8_params (ABI 4): dsk_weight at 24, 72 bytes. */
_Static_assert(offsetof(dsk_grouped_linear_fp8_w8a8_params, qx) == 0, "gw8a8.qx");
_Static_assert(offsetof(dsk_grouped_linear_fp8_w8a8_params, x_scale) == 8, "gw8a8.x_scale");
_Static_assert(offsetof(dsk_grouped_linear_fp8_w8a8_params, expert_offsets) == 16, "gw8a8.expert_offsets");
_Static_assert(offsetof(dsk_grouped_linear_fp8_w8a8_params, w) == 24, "gw8a8.w");
_Static_assert(offsetof(dsk_grouped_linear_fp8_w8a8_params, y) == 96, "gw8a8.y");
_Static_assert(offsetof(dsk_grouped_linear_fp8_w8a8_params, error_word) == 104, "gw8a8.error_word");
_Static_assert(offsetof(dsk_grouped_linear_fp8_w8a8_params, m) == 112, "gw8a8.m");
_Static_assert(offsetof(dsk_grouped_linear_fp8_w8a8_params, y_row_stride) == 120, "gw8a8.y_row_stride");
_Static_assert(offsetof(dsk_grouped_linear_fp8_w8a8_params, act_dtype) == 128, "gw8a8.act_dtype");
_Static_assert(offsetof(dsk_grouped_linear_fp8_w8a8_params, path) == 132, "gw8a8.path");
_Static_assert(offsetof(dsk_grouped_linear_fp8_w8a8_params, error_site) == 136, "gw8a8.error_site");
_Static_assert(offsetof(dsk_grouped_linear_fp8_w8a8_params, reserved) == 140, "gw8a8.reserved");
_Static_assert(offsetof(dsk_grouped_linear_fp8_w8a8_params, stream) == 144, "gw8a8.stream");
_Static_assert(sizeof(dsk_grouped_linear_fp8_w8a8_params) == 152, "sizeof(dsk_grouped_linear_fp8_w8a8_params)");

/* The small activation ops (ABI 4). */
_Static_assert(offsetof(dsk_silu_and_mul_params, x) == 0, "silu_and_mul.x");
_Static_assert(offsetof(dsk_silu_and_mul_params, y) == 8, "silu_and_mul.y");
_Static_assert(offsetof(dsk_silu_and_mul_params, rows) == 16, "silu_and_mul.rows");
_Static_assert(offsetof(dsk_silu_and_mul_params, intermediate) == 24, "silu_and_mul.intermediate");
_Static_assert(offsetof(dsk_silu_and_mul_params, x_row_stride) == 32, "silu_and_mul.x_row_stride");
_Static_assert(offsetof(dsk_silu_and_mul_params, y_row_stride) == 40, "silu_and_mul.y_row_stride");
_Static_assert(offsetof(dsk_silu_and_mul_params, dtype) == 48, "silu_and_mul.dtype");
_Static_assert(offsetof(dsk_silu_and_mul_params, reserved) == 52, "silu_and_mul.reserved");
_Static_assert(offsetof(dsk_silu_and_mul_params, stream) == 56, "silu_and_mul.stream");
_Static_assert(sizeof(dsk_silu_and_mul_params) == 64, "sizeof(dsk_silu_and_mul_params)");

_Static_assert(offsetof(dsk_copy_columns_params, x) == 0, "copy_columns.x");
_Static_assert(offsetof(dsk_copy_columns_params, y) == 8, "copy_columns.y");
_Static_assert(offsetof(dsk_copy_columns_params, rows) == 16, "copy_columns.rows");
_Static_assert(offsetof(dsk_copy_columns_params, width) == 24, "copy_columns.width");
_Static_assert(offsetof(dsk_copy_columns_params, x_offset) == 32, "copy_columns.x_offset");
_Static_assert(offsetof(dsk_copy_columns_params, y_offset) == 40, "copy_columns.y_offset");
_Static_assert(offsetof(dsk_copy_columns_params, x_row_stride) == 48, "copy_columns.x_row_stride");
_Static_assert(offsetof(dsk_copy_columns_params, y_row_stride) == 56, "copy_columns.y_row_stride");
_Static_assert(offsetof(dsk_copy_columns_params, dtype) == 64, "copy_columns.dtype");
_Static_assert(offsetof(dsk_copy_columns_params, reserved) == 68, "copy_columns.reserved");
_Static_assert(offsetof(dsk_copy_columns_params, stream) == 72, "copy_columns.stream");
_Static_assert(sizeof(dsk_copy_columns_params) == 80, "sizeof(dsk_copy_columns_params)");

_Static_assert(offsetof(dsk_elementwise_params, x) == 0, "elementwise.x");
_Static_assert(offsetof(dsk_elementwise_params, y) == 8, "elementwise.y");
_Static_assert(offsetof(dsk_elementwise_params, z) == 16, "elementwise.z");
_Static_assert(offsetof(dsk_elementwise_params, n) == 24, "elementwise.n");
_Static_assert(offsetof(dsk_elementwise_params, factor) == 32, "elementwise.factor");
_Static_assert(offsetof(dsk_elementwise_params, op) == 36, "elementwise.op");
_Static_assert(offsetof(dsk_elementwise_params, dtype) == 40, "elementwise.dtype");
_Static_assert(offsetof(dsk_elementwise_params, reserved) == 44, "elementwise.reserved");
_Static_assert(offsetof(dsk_elementwise_params, stream) == 48, "elementwise.stream");
_Static_assert(sizeof(dsk_elementwise_params) == 56, "sizeof(dsk_elementwise_params)");
_Static_assert(sizeof(dsk_elementwise_op) == 4 && DSK_ELEMENTWISE_ADD == 0 && DSK_ELEMENTWISE_SCALE == 1, "dsk_elementwise_op");

_Static_assert(offsetof(dsk_softmax_params, x) == 0, "softmax.x");
_Static_assert(offsetof(dsk_softmax_params, y) == 8, "softmax.y");
_Static_assert(offsetof(dsk_softmax_params, rows) == 16, "softmax.rows");
_Static_assert(offsetof(dsk_softmax_params, row_length) == 24, "softmax.row_length");
_Static_assert(offsetof(dsk_softmax_params, dtype) == 32, "softmax.dtype");
_Static_assert(offsetof(dsk_softmax_params, reserved) == 36, "softmax.reserved");
_Static_assert(offsetof(dsk_softmax_params, stream) == 40, "softmax.stream");
_Static_assert(sizeof(dsk_softmax_params) == 48, "sizeof(dsk_softmax_params)");
/* dsk_grouped_linear_params (ABI 4): dsk_weight at 16, 72 bytes. */
_Static_assert(offsetof(dsk_grouped_linear_params, x) == 0, "grouped.x");
_Static_assert(offsetof(dsk_grouped_linear_params, expert_offsets) == 8, "grouped.expert_offsets");
_Static_assert(offsetof(dsk_grouped_linear_params, w) == 16, "grouped.w");
_Static_assert(offsetof(dsk_grouped_linear_params, y) == 88, "grouped.y");
_Static_assert(offsetof(dsk_grouped_linear_params, error_word) == 96, "grouped.error_word");
_Static_assert(offsetof(dsk_grouped_linear_params, m) == 104, "grouped.m");
_Static_assert(offsetof(dsk_grouped_linear_params, x_row_stride) == 112, "grouped.x_row_stride");
_Static_assert(offsetof(dsk_grouped_linear_params, y_row_stride) == 120, "grouped.y_row_stride");
_Static_assert(offsetof(dsk_grouped_linear_params, x_dtype) == 128, "grouped.x_dtype");
_Static_assert(offsetof(dsk_grouped_linear_params, y_dtype) == 132, "grouped.y_dtype");
_Static_assert(offsetof(dsk_grouped_linear_params, epilogue) == 136, "grouped.epilogue");
_Static_assert(offsetof(dsk_grouped_linear_params, path) == 140, "grouped.path");
_Static_assert(offsetof(dsk_grouped_linear_params, error_site) == 144, "grouped.error_site");
_Static_assert(offsetof(dsk_grouped_linear_params, reserved) == 148, "grouped.reserved");
_Static_assert(offsetof(dsk_grouped_linear_params, stream) == 152, "grouped.stream");
_Static_assert(sizeof(dsk_grouped_linear_params) == 160, "sizeof(dsk_grouped_linear_params)");

_Static_assert(sizeof(dsk_status) == 4 && sizeof(dsk_dtype) == 4, "enums are 32-bit");
_Static_assert(sizeof(dsk_weight_scheme) == 4 && sizeof(dsk_linear_path) == 4 && sizeof(dsk_linear_epilogue) == 4,
               "enums are 32-bit");
_Static_assert(DSK_WEIGHT_DENSE == 0 && DSK_WEIGHT_FP8_BLOCK == 1 && DSK_WEIGHT_INT4_GROUP == 2, "dsk_weight_scheme values");
_Static_assert(DSK_LINEAR_PATH_AUTO == 0 && DSK_LINEAR_PATH_SIMT == 1 && DSK_LINEAR_PATH_MMA == 2, "dsk_linear_path values");
_Static_assert(DSK_EPILOGUE_NONE == 0 && DSK_EPILOGUE_SILU_MUL == 1 && DSK_EPILOGUE_ADD == 2, "dsk_linear_epilogue values");
_Static_assert(DSK_SUCCESS == 0 && DSK_ERROR_INVALID_ARGUMENT == 1 && DSK_ERROR_UNSUPPORTED == 2 &&
                   DSK_ERROR_CUDA == 3,
               "dsk_status values");
_Static_assert(DSK_DTYPE_F32 == 0 && DSK_DTYPE_BF16 == 1 && DSK_DTYPE_F16 == 2 && DSK_DTYPE_FP8_E4M3 == 3 &&
                   DSK_DTYPE_INT4 == 4 && DSK_DTYPE_I32 == 5,
               "dsk_dtype values");

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        ++g_checks;                                                                                          \
        if (!(cond)) {                                                                                       \
            ++g_failures;                                                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                             \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
        }                                                                                                    \
    } while (0)

static const char* status_name(dsk_status s) {
    switch (s) {
        case DSK_SUCCESS: return "DSK_SUCCESS";
        case DSK_ERROR_INVALID_ARGUMENT: return "DSK_ERROR_INVALID_ARGUMENT";
        case DSK_ERROR_UNSUPPORTED: return "DSK_ERROR_UNSUPPORTED";
        case DSK_ERROR_CUDA: return "DSK_ERROR_CUDA";
    }
    return "(unknown status)";
}

/* A request that would be valid with real buffers: bf16 [4, 8], plain RMSNorm. Never launched as is. */
static dsk_rms_norm_params base_params(void) {
    dsk_rms_norm_params p;
    memset(&p, 0, sizeof p);
    p.x = (const void*)(uintptr_t)0x10000;
    p.w = (const void*)(uintptr_t)0x20000;
    p.y = (void*)(uintptr_t)0x30000;
    p.rows = 4;
    p.cols = 8;
    p.x_row_stride = 8;
    p.residual_row_stride = 8;
    p.y_row_stride = 8;
    p.r_row_stride = 8;
    p.eps = 1e-6f;
    p.x_dtype = DSK_DTYPE_BF16;
    p.w_dtype = DSK_DTYPE_BF16;
    p.stream = NULL;
    return p;
}

/* The fused variant of base_params. */
static dsk_rms_norm_params fused_params(void) {
    dsk_rms_norm_params p = base_params();
    p.residual = (const void*)(uintptr_t)0x40000;
    p.r = (void*)(uintptr_t)0x50000;
    return p;
}

/* Calls dsk_rms_norm(p) and checks the status and that the message contains `expected`. */
static void expect(const char* name, const dsk_rms_norm_params* p, dsk_status want, const char* expected) {
    const dsk_status got = dsk_rms_norm(p);
    const char* msg = dsk_last_error_message();
    CHECK(got == want, "%s: status %s, want %s (message: %s)", name, status_name(got), status_name(want),
          msg != NULL ? msg : "(null)");
    CHECK(msg != NULL, "%s: dsk_last_error_message() returned NULL", name);
    if (msg == NULL) return;
    CHECK(strncmp(msg, "dsk_rms_norm: ", 14) == 0, "%s: message does not start with the op: \"%s\"", name, msg);
    CHECK(strstr(msg, expected) != NULL, "%s: message \"%s\" lacks \"%s\"", name, msg, expected);
}

/* Checks a status and that the message starts with "<op>: " and contains `expected`. */
static void expect_op(const char* op, const char* name, dsk_status got, dsk_status want, const char* expected) {
    const char* msg = dsk_last_error_message();
    const size_t op_len = strlen(op);
    CHECK(got == want, "%s %s: status %s, want %s (message: %s)", op, name, status_name(got), status_name(want),
          msg != NULL ? msg : "(null)");
    CHECK(msg != NULL, "%s %s: dsk_last_error_message() returned NULL", op, name);
    if (msg == NULL) return;
    CHECK(strncmp(msg, op, op_len) == 0 && strncmp(msg + op_len, ": ", 2) == 0,
          "%s %s: message does not start with the op: \"%s\"", op, name, msg);
    CHECK(strstr(msg, expected) != NULL, "%s %s: message \"%s\" lacks \"%s\"", op, name, msg, expected);
}

/* Fake, never-dereferenced device addresses, far apart (no accidental overlaps). */
#define FAKE(addr) ((void*)(uintptr_t)(addr))

/* A dense bf16 weight [16, 32] (valid). */
static dsk_weight dense_weight(void) {
    dsk_weight w;
    memset(&w, 0, sizeof w);
    w.data = FAKE(0x200000);
    w.rows = 16;
    w.cols = 32;
    w.count = 1;
    w.scheme = DSK_WEIGHT_DENSE;
    w.dtype = DSK_DTYPE_BF16;
    return w;
}

static dsk_weight fp8_weight(void) {
    dsk_weight w = dense_weight();
    w.scale = FAKE(0x210000);
    w.scheme = DSK_WEIGHT_FP8_BLOCK;
    w.dtype = DSK_DTYPE_FP8_E4M3;
    w.block_rows = 128;
    w.block_cols = 128;
    return w;
}

static dsk_weight int4_weight(void) {
    dsk_weight w = dense_weight();
    w.scale = FAKE(0x210000);
    w.zero = FAKE(0x220000);
    w.scheme = DSK_WEIGHT_INT4_GROUP;
    w.dtype = DSK_DTYPE_INT4;
    w.group_size = 32;
    return w;
}

/* A request that would be valid with real buffers: bf16 x [4, 32] @ w[16, 32]^T -> y [4, 16]. Never launched as is. */
static dsk_linear_params linear_params(void) {
    dsk_linear_params p;
    memset(&p, 0, sizeof p);
    p.x = FAKE(0x100000);
    p.w = dense_weight();
    p.y = FAKE(0x300000);
    p.m = 4;
    p.batch = 1;
    p.x_row_stride = 32;
    p.y_row_stride = 16;
    p.residual_row_stride = 16;
    p.x_dtype = DSK_DTYPE_BF16;
    p.y_dtype = DSK_DTYPE_BF16;
    p.path = DSK_LINEAR_PATH_SIMT;
    return p;
}

static void expect_linear(const char* name, const dsk_linear_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_linear", name, dsk_linear(p), want, expected);
}

static void check_linear(void) {
    dsk_linear_params p;
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT;

    expect_linear("p NULL", NULL, INV, "dsk_linear: p must not be NULL");
    p = linear_params(); p.x = NULL;
    expect_linear("x NULL", &p, INV, "x must not be NULL");
    p = linear_params(); p.y = NULL;
    expect_linear("y NULL", &p, INV, "y must not be NULL");
    p = linear_params(); p.m = 0;
    expect_linear("m 0", &p, INV, "m must be >= 1 (got 0)");
    p = linear_params(); p.batch = -1;
    expect_linear("batch -1", &p, INV, "batch must be >= 1 (got -1)");

    /* The weight's fields. */
    p = linear_params(); p.w.data = NULL;
    expect_linear("w.data NULL", &p, INV, "w.data must not be NULL");
    p = linear_params(); p.w.rows = 0;
    expect_linear("w.rows 0", &p, INV, "w.rows must be >= 1 (got 0)");
    p = linear_params(); p.w.cols = -4;
    expect_linear("w.cols -4", &p, INV, "w.cols must be >= 1 (got -4)");
    p = linear_params(); p.w.count = 0;
    expect_linear("w.count 0", &p, INV, "w.count must be >= 1 (got 0)");
    p = linear_params(); p.w.reserved = 1;
    expect_linear("w.reserved", &p, INV, "w.reserved must be 0 (got 1)");
    p = linear_params(); p.w.scheme = 7;
    expect_linear("w.scheme 7", &p, INV, "w.scheme must be DENSE (0), FP8_BLOCK (1) or INT4_GROUP (2) (got 7)");
    p = linear_params(); p.w.scale = FAKE(0x210000);
    expect_linear("dense with scale", &p, INV, "w.scale must be NULL for a DENSE weight");
    p = linear_params(); p.w.zero = FAKE(0x220000);
    expect_linear("dense with zero", &p, INV, "w.zero must be NULL for a DENSE weight");
    p = linear_params(); p.w = fp8_weight(); p.w.dtype = DSK_DTYPE_BF16;
    expect_linear("fp8 dtype", &p, INV, "w.dtype must be FP8_E4M3 for an FP8_BLOCK weight (got BF16 (1))");
    p = linear_params(); p.w = fp8_weight(); p.w.block_rows = 0;
    expect_linear("fp8 block_rows 0", &p, INV, "w.block_rows must be >= 1 (got 0)");
    p = linear_params(); p.w = fp8_weight(); p.w.block_cols = -2;
    expect_linear("fp8 block_cols -2", &p, INV, "w.block_cols must be >= 1 (got -2)");
    p = linear_params(); p.w = fp8_weight(); p.w.scale = NULL;
    expect_linear("fp8 scale NULL", &p, INV, "w.scale must not be NULL for an FP8_BLOCK weight");
    p = linear_params(); p.w = fp8_weight(); p.w.zero = FAKE(0x220000);
    expect_linear("fp8 zero set", &p, INV, "w.zero must be NULL for an FP8_BLOCK weight");
    p = linear_params(); p.w = int4_weight(); p.w.dtype = DSK_DTYPE_FP8_E4M3;
    expect_linear("int4 dtype", &p, INV, "w.dtype must be INT4 for an INT4_GROUP weight (got FP8_E4M3 (3))");
    p = linear_params(); p.w = int4_weight(); p.w.group_size = 48;
    expect_linear("int4 group 48", &p, INV, "w.group_size must be a positive multiple of 32 (got 48)");
    p = linear_params(); p.w = int4_weight(); p.w.group_size = 0;
    expect_linear("int4 group 0", &p, INV, "w.group_size must be a positive multiple of 32 (got 0)");
    p = linear_params(); p.w = int4_weight(); p.w.group_size = 64;
    expect_linear("int4 group not dividing cols", &p, INV,
                  "w.cols must be a multiple of w.group_size (got cols 32, group_size 64)");
    p = linear_params(); p.w = int4_weight(); p.w.scale = NULL;
    expect_linear("int4 scale NULL", &p, INV, "w.scale must not be NULL for an INT4_GROUP weight");
    p = linear_params(); p.w = int4_weight(); p.w.zero = NULL;
    expect_linear("int4 zero NULL", &p, INV, "w.zero must not be NULL for an INT4_GROUP weight");
    p = linear_params(); p.batch = 3; p.w.count = 2; p.x_batch_stride = 4 * 32; p.y_batch_stride = 4 * 16;
    expect_linear("w.count vs batch", &p, INV, "w.count must be 1 or batch (got 2, batch 3)");

    /* Flags. */
    p = linear_params(); p.transpose_w = 2;
    expect_linear("transpose_w 2", &p, INV, "transpose_w must be 0 or 1 (got 2)");
    p = linear_params(); p.path = 5;
    expect_linear("path 5", &p, INV, "path must be AUTO (0), SIMT (1), MMA (2) or MMA_SYNC (3) (got 5)");
    p = linear_params(); p.epilogue = 9;
    expect_linear("epilogue 9", &p, INV, "epilogue must be NONE (0), SILU_MUL (1) or ADD (2) (got 9)");

    /* Epilogues. */
    p = linear_params(); p.w.rows = 15; p.epilogue = DSK_EPILOGUE_SILU_MUL;
    expect_linear("silu odd out", &p, INV, "out must be even with epilogue SILU_MUL (got out 15)");
    p = linear_params(); p.epilogue = DSK_EPILOGUE_ADD;
    expect_linear("add without residual", &p, INV, "residual must not be NULL with epilogue ADD");
    p = linear_params(); p.residual = FAKE(0x400000);
    expect_linear("residual without add", &p, INV, "residual must be NULL unless epilogue is ADD");

    /* Strides (transpose_w swaps in and out; SILU_MUL halves y's columns). */
    p = linear_params(); p.x_row_stride = 31;
    expect_linear("x_row_stride", &p, INV, "x_row_stride must be >= in (got 31, in 32)");
    p = linear_params(); p.transpose_w = 1; p.x_row_stride = 8; p.y_row_stride = 32;
    expect_linear("x_row_stride transposed", &p, INV, "x_row_stride must be >= in (got 8, in 16)");
    p = linear_params(); p.y_row_stride = 15;
    expect_linear("y_row_stride", &p, INV, "y_row_stride must be >= the columns of y (got 15, columns 16)");
    p = linear_params(); p.transpose_w = 1; p.y_row_stride = 31;
    expect_linear("y_row_stride transposed", &p, INV, "y_row_stride must be >= the columns of y (got 31, columns 32)");
    p = linear_params(); p.epilogue = DSK_EPILOGUE_SILU_MUL; p.y_row_stride = 7;
    expect_linear("y_row_stride silu", &p, INV, "y_row_stride must be >= the columns of y (got 7, columns 8)");
    p = linear_params(); p.epilogue = DSK_EPILOGUE_ADD; p.residual = FAKE(0x400000); p.residual_row_stride = 15;
    expect_linear("residual_row_stride", &p, INV, "residual_row_stride must be >= out (got 15, out 16)");
    p = linear_params(); p.batch = 2; p.x_batch_stride = -1; p.y_batch_stride = 64;
    expect_linear("x_batch_stride", &p, INV, "x_batch_stride must be >= 0 (got -1)");
    p = linear_params(); p.batch = 2; p.x_batch_stride = 128; p.y_batch_stride = 0;
    expect_linear("y_batch_stride", &p, INV, "y_batch_stride must be >= the columns of y (got 0, columns 16)");
    p = linear_params(); p.batch = 2; p.x_batch_stride = 128; p.y_batch_stride = 64; p.epilogue = DSK_EPILOGUE_ADD;
    p.residual = FAKE(0x400000); p.residual_batch_stride = -64;
    expect_linear("residual_batch_stride", &p, INV, "residual_batch_stride must be >= 0 (got -64)");

    /* Overlaps (byte ranges from the strides). */
    p = linear_params(); p.y = (char*)p.x + 2 * 32 * 3 + 2;  /* inside x's last row */
    expect_linear("y in x", &p, INV, "y must not overlap x");
    p = linear_params(); p.y = (char*)p.x - 2 * 16 * 3 - 2;  /* y's last row reaches into x */
    expect_linear("y before x", &p, INV, "y must not overlap x");
    p = linear_params(); p.y = (char*)p.w.data + 1000;
    expect_linear("y in w.data", &p, INV, "y must not overlap the weight");
    p = linear_params(); p.w = fp8_weight(); p.y = (void*)(uintptr_t)p.w.scale;
    expect_linear("y on w.scale", &p, INV, "y must not overlap the weight");
    p = linear_params(); p.bias = (const float*)FAKE(0x300000 + 64);
    expect_linear("y on bias", &p, INV, "y must not overlap bias");
    p = linear_params(); p.epilogue = DSK_EPILOGUE_ADD; p.residual = (char*)p.y + 2;
    expect_linear("residual partly on y", &p, INV, "residual must equal y exactly or not overlap it");
    p = linear_params(); p.epilogue = DSK_EPILOGUE_ADD; p.residual = p.y; p.residual_row_stride = 17;
    expect_linear("residual = y, other stride", &p, INV, "residual equal to y must have y's strides");

    /* dtypes, after every argument. */
    p = linear_params(); p.x_dtype = DSK_DTYPE_F16;
    expect_linear("x F16", &p, DSK_ERROR_UNSUPPORTED, "x_dtype F16 (2) is not supported (F32 or BF16)");
    p = linear_params(); p.x_dtype = 42;
    expect_linear("x 42", &p, DSK_ERROR_UNSUPPORTED, "x_dtype unknown (42) is not supported");
    p = linear_params(); p.y_dtype = DSK_DTYPE_F16;
    expect_linear("y F16", &p, DSK_ERROR_UNSUPPORTED, "y_dtype F16 (2) is not supported (F32 or BF16)");
    p = linear_params(); p.w.dtype = DSK_DTYPE_F16;
    expect_linear("dense F16", &p, DSK_ERROR_UNSUPPORTED, "w.dtype F16 (2) is not supported for a DENSE weight (F32 or BF16)");
    p = linear_params(); p.x_dtype = DSK_DTYPE_F16; p.m = 0;
    expect_linear("m 0 with F16", &p, INV, "m must be >= 1 (got 0)");
    /* Path MMA needs bf16 activations: refused with the family's reason, nothing launched. */
    p = linear_params(); p.x_dtype = DSK_DTYPE_F32; p.path = DSK_LINEAR_PATH_MMA;
    expect_linear("MMA with f32", &p, DSK_ERROR_UNSUPPORTED, "path MMA cannot run this request");
}

/* A request that would be valid with real buffers: 3 ids into a bf16 table [16, 32], y bf16 [3, 32]. */
/* A grouped request that would be valid with real buffers: bf16 x [4, 32], 3 experts of [16, 32], y [4, 16]. */
static dsk_grouped_linear_params grouped_params(void) {
    dsk_grouped_linear_params p;
    memset(&p, 0, sizeof p);
    p.x = FAKE(0x100000);
    p.expert_offsets = (const int32_t*)FAKE(0x700000);
    p.w = dense_weight();
    p.w.count = 3;
    p.y = FAKE(0x300000);
    p.error_word = (int32_t*)FAKE(0x600000);
    p.m = 4;
    p.x_row_stride = 32;
    p.y_row_stride = 16;
    p.x_dtype = DSK_DTYPE_BF16;
    p.y_dtype = DSK_DTYPE_BF16;
    p.path = DSK_LINEAR_PATH_SIMT;
    p.error_site = 5;
    return p;
}

static void expect_grouped(const char* name, const dsk_grouped_linear_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_grouped_linear", name, dsk_grouped_linear(p), want, expected);
}

/* dsk_grouped_linear shares dsk_linear's checks (weight, strides, overlaps, dtypes) and adds its own. */
static void check_grouped_linear(void) {
    dsk_grouped_linear_params p;
    expect_grouped("p NULL", NULL, DSK_ERROR_INVALID_ARGUMENT, "p must not be NULL");
    p = grouped_params(); p.expert_offsets = NULL;
    expect_grouped("offsets NULL", &p, DSK_ERROR_INVALID_ARGUMENT, "expert_offsets must not be NULL");
    p = grouped_params(); p.error_word = NULL;
    expect_grouped("error_word NULL", &p, DSK_ERROR_INVALID_ARGUMENT, "error_word must not be NULL");
    p = grouped_params(); p.epilogue = DSK_EPILOGUE_ADD;
    expect_grouped("epilogue ADD", &p, DSK_ERROR_INVALID_ARGUMENT, "epilogue must be NONE (0) or SILU_MUL (1) (got 2)");
    p = grouped_params(); p.error_site = 0;
    expect_grouped("error_site 0", &p, DSK_ERROR_INVALID_ARGUMENT, "error_site must be > 0 (got 0)");
    p = grouped_params(); p.reserved = 3;
    expect_grouped("reserved", &p, DSK_ERROR_INVALID_ARGUMENT, "reserved must be 0 (got 3)");
    p = grouped_params(); p.m = (int64_t)1 << 31;
    expect_grouped("m 2^31", &p, DSK_ERROR_INVALID_ARGUMENT, "m must be < 2^31 - 1 (got 2147483648)");
    p = grouped_params(); p.w.count = (int64_t)1 << 31;
    expect_grouped("count 2^31", &p, DSK_ERROR_INVALID_ARGUMENT, "w.count must be < 2^31 - 1");
    /* The shared checks, with dsk_grouped_linear's name. */
    p = grouped_params(); p.x = NULL;
    expect_grouped("x NULL", &p, DSK_ERROR_INVALID_ARGUMENT, "x must not be NULL");
    p = grouped_params(); p.m = 0;
    expect_grouped("m 0", &p, DSK_ERROR_INVALID_ARGUMENT, "m must be >= 1 (got 0)");
    p = grouped_params(); p.w.count = 0;
    expect_grouped("count 0", &p, DSK_ERROR_INVALID_ARGUMENT, "w.count must be >= 1 (got 0)");
    p = grouped_params(); p.w = int4_weight(); p.w.count = 3; p.w.group_size = 48;
    expect_grouped("int4 group 48", &p, DSK_ERROR_INVALID_ARGUMENT, "w.group_size must be a positive multiple of 32");
    p = grouped_params(); p.w = fp8_weight(); p.w.count = 3; p.w.scale = NULL;
    expect_grouped("fp8 no scale", &p, DSK_ERROR_INVALID_ARGUMENT, "w.scale must not be NULL");
    p = grouped_params(); p.path = 4;
    expect_grouped("path 4", &p, DSK_ERROR_INVALID_ARGUMENT, "path must be AUTO (0), SIMT (1), MMA (2) or MMA_SYNC (3) (got 4)");
    p = grouped_params(); p.epilogue = DSK_EPILOGUE_SILU_MUL; p.w.rows = 15;
    expect_grouped("silu odd out", &p, DSK_ERROR_INVALID_ARGUMENT, "out must be even with epilogue SILU_MUL (got out 15)");
    p = grouped_params(); p.epilogue = DSK_EPILOGUE_SILU_MUL; p.y_row_stride = 7;
    expect_grouped("silu y stride", &p, DSK_ERROR_INVALID_ARGUMENT, "y_row_stride must be >= the columns of y (got 7, columns 8)");
    p = grouped_params(); p.x_row_stride = 31;
    expect_grouped("x stride", &p, DSK_ERROR_INVALID_ARGUMENT, "x_row_stride must be >= in (got 31, in 32)");
    p = grouped_params(); p.y = FAKE(0x100000 + 64);
    expect_grouped("y over x", &p, DSK_ERROR_INVALID_ARGUMENT, "y must not overlap x");
    p = grouped_params(); p.y = FAKE(0x200000 + 3 * 16 * 32 * 2 - 2);  /* the last element of expert 2's matrix */
    expect_grouped("y over w", &p, DSK_ERROR_INVALID_ARGUMENT, "y must not overlap the weight");
    p = grouped_params(); p.y = FAKE(0x700000 + 12);  /* offsets[3] */
    expect_grouped("y over offsets", &p, DSK_ERROR_INVALID_ARGUMENT, "y must not overlap expert_offsets");
    p = grouped_params(); p.y = FAKE(0x700000 + 16);  /* just past offsets[3] */
    p.x_dtype = DSK_DTYPE_F16;
    expect_grouped("y after offsets, x F16", &p, DSK_ERROR_UNSUPPORTED, "x_dtype F16 (2) is not supported");
    /* dtypes last. */
    p = grouped_params(); p.y_dtype = DSK_DTYPE_I32;
    expect_grouped("y I32", &p, DSK_ERROR_UNSUPPORTED, "y_dtype I32 (5) is not supported");
    p = grouped_params(); p.w.dtype = DSK_DTYPE_F16;
    expect_grouped("dense F16 weight", &p, DSK_ERROR_UNSUPPORTED, "w.dtype F16 (2) is not supported for a DENSE weight");
    p = grouped_params(); p.x_dtype = DSK_DTYPE_F16; p.x_row_stride = 1;
    expect_grouped("stride before dtype", &p, DSK_ERROR_INVALID_ARGUMENT, "x_row_stride must be >= in");
}

static dsk_embedding_params embedding_params(void) {
    dsk_embedding_params p;
    memset(&p, 0, sizeof p);
    p.ids = (const int32_t*)FAKE(0x100000);
    p.table = dense_weight();
    p.y = FAKE(0x300000);
    p.error_word = (int32_t*)FAKE(0x500000);
    p.n = 3;
    p.y_row_stride = 32;
    p.y_dtype = DSK_DTYPE_BF16;
    p.error_site = 1;
    return p;
}

static void expect_embedding(const char* name, const dsk_embedding_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_embedding", name, dsk_embedding(p), want, expected);
}

static void check_embedding(void) {
    dsk_embedding_params p;
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT;

    expect_embedding("p NULL", NULL, INV, "dsk_embedding: p must not be NULL");
    p = embedding_params(); p.ids = NULL;
    expect_embedding("ids NULL", &p, INV, "ids must not be NULL");
    p = embedding_params(); p.y = NULL;
    expect_embedding("y NULL", &p, INV, "y must not be NULL");
    p = embedding_params(); p.error_word = NULL;
    expect_embedding("error_word NULL", &p, INV, "error_word must not be NULL");
    p = embedding_params(); p.n = 0;
    expect_embedding("n 0", &p, INV, "n must be >= 1 (got 0)");
    p = embedding_params(); p.table.data = NULL;
    expect_embedding("table.data NULL", &p, INV, "table.data must not be NULL");
    p = embedding_params(); p.table.cols = 0;
    expect_embedding("table.cols 0", &p, INV, "table.cols must be >= 1 (got 0)");
    p = embedding_params(); p.table.count = 2;
    expect_embedding("table.count 2", &p, INV, "table.count must be 1 (got 2)");
    p = embedding_params(); p.table = int4_weight(); p.table.group_size = 40;
    expect_embedding("int4 group 40", &p, INV, "table.group_size must be a positive multiple of 32 (got 40)");
    p = embedding_params(); p.y_row_stride = 31;
    expect_embedding("y_row_stride", &p, INV, "y_row_stride must be >= table.cols (got 31, cols 32)");
    p = embedding_params(); p.error_site = 0;
    expect_embedding("error_site 0", &p, INV, "error_site must be > 0 (got 0)");
    p = embedding_params(); p.y = (char*)p.table.data + 64;
    expect_embedding("y in table", &p, INV, "y must not overlap the table");
    p = embedding_params(); p.y = (char*)p.ids + 4;
    expect_embedding("y on ids", &p, INV, "y must not overlap ids");
    p = embedding_params(); p.table = fp8_weight();
    expect_embedding("fp8 table", &p, DSK_ERROR_UNSUPPORTED, "table.scheme FP8_BLOCK is not supported");
    p = embedding_params(); p.table.dtype = DSK_DTYPE_I32;
    expect_embedding("dense I32", &p, DSK_ERROR_UNSUPPORTED, "table.dtype I32 (5) is not supported for a DENSE weight");
    p = embedding_params(); p.y_dtype = DSK_DTYPE_FP8_E4M3;
    expect_embedding("y FP8", &p, DSK_ERROR_UNSUPPORTED, "y_dtype FP8_E4M3 (3) is not supported (F32 or BF16)");
    p = embedding_params(); p.y_dtype = DSK_DTYPE_F16; p.n = -1;
    expect_embedding("n -1 with F16", &p, INV, "n must be >= 1 (got -1)");
}

static dsk_dequantize_fp8_params dequantize_params(void) {
    dsk_dequantize_fp8_params p;
    memset(&p, 0, sizeof p);
    p.w = fp8_weight();
    p.y = (float*)FAKE(0x300000);
    return p;
}

static void expect_dequantize(const char* name, const dsk_dequantize_fp8_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_dequantize_fp8", name, dsk_dequantize_fp8(p), want, expected);
}

static void check_dequantize(void) {
    dsk_dequantize_fp8_params p;
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT;

    expect_dequantize("p NULL", NULL, INV, "dsk_dequantize_fp8: p must not be NULL");
    p = dequantize_params(); p.y = NULL;
    expect_dequantize("y NULL", &p, INV, "y must not be NULL");
    p = dequantize_params(); p.w.data = NULL;
    expect_dequantize("w.data NULL", &p, INV, "w.data must not be NULL");
    p = dequantize_params(); p.w.count = 0;
    expect_dequantize("w.count 0", &p, INV, "w.count must be >= 1 (got 0)");
    p = dequantize_params(); p.w.block_cols = 0;
    expect_dequantize("block_cols 0", &p, INV, "w.block_cols must be >= 1 (got 0)");
    p = dequantize_params(); p.w.scale = NULL;
    expect_dequantize("scale NULL", &p, INV, "w.scale must not be NULL for an FP8_BLOCK weight");
    p = dequantize_params(); p.w = dense_weight();
    expect_dequantize("dense", &p, INV, "w.scheme must be FP8_BLOCK (got DENSE (0))");
    p = dequantize_params(); p.w = int4_weight();
    expect_dequantize("int4", &p, INV, "w.scheme must be FP8_BLOCK (got INT4_GROUP (2))");
    p = dequantize_params(); p.y = (float*)((char*)p.w.data + 100);
    expect_dequantize("y in w.data", &p, INV, "y must not overlap the weight");
    p = dequantize_params(); p.y = (float*)((char*)p.w.scale - 16);
    expect_dequantize("y over w.scale", &p, INV, "y must not overlap the weight");
}

static dsk_linear_fp8_w8a8_params w8a8_params(void) {
    dsk_linear_fp8_w8a8_params p;
    memset(&p, 0, sizeof p);
    p.qx = FAKE(0x100000);
    p.x_scale = (const float*)FAKE(0x110000);
    p.w = fp8_weight();
    p.y = FAKE(0x300000);
    p.m = 4;
    p.y_row_stride = 16;
    p.act_dtype = DSK_DTYPE_BF16;
    return p;
}

static void expect_w8a8(const char* name, const dsk_linear_fp8_w8a8_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_linear_fp8_w8a8", name, dsk_linear_fp8_w8a8(p), want, expected);
}

/* Refused before any device query: these hold on a machine without a GPU. */
static void check_w8a8(void) {
    dsk_linear_fp8_w8a8_params p;
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT;

    p = w8a8_params(); p.qx = NULL;
    expect_w8a8("qx NULL", &p, INV, "qx must not be NULL");
    p = w8a8_params(); p.w.scale = NULL;
    expect_w8a8("w.scale NULL", &p, INV, "w.scale must not be NULL");
    p = w8a8_params(); p.w = dense_weight(); p.w.scale = FAKE(0x210000);
    expect_w8a8("dense weight", &p, INV, "w must be an FP8_BLOCK weight of FP8_E4M3");
    p = w8a8_params(); p.w.block_rows = 64;
    expect_w8a8("64 x 128 blocks", &p, INV, "w must have 128 x 128 scale blocks (got 64 x 128)");
    p = w8a8_params(); p.w.cols = 40;
    expect_w8a8("in 40", &p, INV, "in = w.cols must be a multiple of 16 (got 40)");
    p = w8a8_params(); p.act_dtype = DSK_DTYPE_I32;
    expect_w8a8("int32 output", &p, INV, "act_dtype must be F32 or BF16");
    p = w8a8_params(); p.path = 3;
    expect_w8a8("path 3", &p, INV, "path must be AUTO (0), MMA_SYNC (1) or WGMMA (2) (got 3)");
    p = w8a8_params(); p.path = -1;
    expect_w8a8("path -1", &p, INV, "path must be AUTO (0), MMA_SYNC (1) or WGMMA (2) (got -1)");
}

/* A grouped request that would be valid with real buffers: qx [4, 32], 3 FP8 experts of [16, 32], y bf16 [4, 16]. */
static dsk_grouped_linear_fp8_w8a8_params grouped_w8a8_params(void) {
    dsk_grouped_linear_fp8_w8a8_params p;
    memset(&p, 0, sizeof p);
    p.qx = FAKE(0x100000);
    p.x_scale = (const float*)FAKE(0x110000);
    p.expert_offsets = (const int32_t*)FAKE(0x700000);
    p.w = fp8_weight();
    p.w.count = 3;
    p.y = FAKE(0x300000);
    p.error_word = (int32_t*)FAKE(0x600000);
    p.m = 4;
    p.y_row_stride = 16;
    p.act_dtype = DSK_DTYPE_BF16;
    p.error_site = 5;
    return p;
}

static void expect_grouped_w8a8(const char* name, const dsk_grouped_linear_fp8_w8a8_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_grouped_linear_fp8_w8a8", name, dsk_grouped_linear_fp8_w8a8(p), want, expected);
}

/* dsk_grouped_linear_fp8_w8a8: its own fields, then dsk_linear_fp8_w8a8's checks under its name; before any device query. */
static void check_grouped_w8a8(void) {
    dsk_grouped_linear_fp8_w8a8_params p;
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT;

    expect_grouped_w8a8("p NULL", NULL, INV, "params must not be NULL");
    p = grouped_w8a8_params(); p.expert_offsets = NULL;
    expect_grouped_w8a8("offsets NULL", &p, INV, "expert_offsets must not be NULL");
    p = grouped_w8a8_params(); p.error_word = NULL;
    expect_grouped_w8a8("error_word NULL", &p, INV, "error_word must not be NULL");
    p = grouped_w8a8_params(); p.error_site = 0;
    expect_grouped_w8a8("error_site 0", &p, INV, "error_site must be > 0 (got 0)");
    p = grouped_w8a8_params(); p.reserved = 2;
    expect_grouped_w8a8("reserved", &p, INV, "reserved must be 0 (got 2)");
    p = grouped_w8a8_params(); p.m = (int64_t)1 << 31;
    expect_grouped_w8a8("m 2^31", &p, INV, "m must be < 2^31 - 1 (got 2147483648)");
    p = grouped_w8a8_params(); p.w.count = 0;
    expect_grouped_w8a8("count 0", &p, INV, "w.count must be >= 1 (got 0)");
    p = grouped_w8a8_params(); p.w.count = (int64_t)1 << 31;
    expect_grouped_w8a8("count 2^31", &p, INV, "w.count must be < 2^31 - 1");
    p = grouped_w8a8_params(); p.x_scale = NULL;
    expect_grouped_w8a8("x_scale NULL", &p, INV, "x_scale must not be NULL");
    p = grouped_w8a8_params(); p.w = dense_weight(); p.w.count = 3; p.w.scale = FAKE(0x210000);
    expect_grouped_w8a8("dense weight", &p, INV, "w must be an FP8_BLOCK weight of FP8_E4M3");
    p = grouped_w8a8_params(); p.w.block_cols = 64;
    expect_grouped_w8a8("128 x 64 blocks", &p, INV, "w must have 128 x 128 scale blocks (got 128 x 64)");
    p = grouped_w8a8_params(); p.w.cols = 40;
    expect_grouped_w8a8("in 40", &p, INV, "in = w.cols must be a multiple of 16 (got 40)");
    p = grouped_w8a8_params(); p.y_row_stride = 15;
    expect_grouped_w8a8("y stride", &p, INV, "y_row_stride must be >= 16 (got 15)");
    p = grouped_w8a8_params(); p.act_dtype = DSK_DTYPE_F16;
    expect_grouped_w8a8("f16 output", &p, INV, "act_dtype must be F32 or BF16");
    p = grouped_w8a8_params(); p.path = 3;
    expect_grouped_w8a8("path 3", &p, INV, "path must be AUTO (0), MMA_SYNC (1) or WGMMA (2) (got 3)");
    p = grouped_w8a8_params(); p.y = FAKE(0x700000 + 8);  /* offsets[2] */
    expect_grouped_w8a8("y over offsets", &p, INV, "y must not overlap expert_offsets");
    p = grouped_w8a8_params(); p.y = FAKE(0x600000 - 4 * 16 * 2 + 2);  /* the last element of y on error_word[0] */
    expect_grouped_w8a8("y over error_word", &p, INV, "y must not overlap error_word");
}

/* ---- Attention (ABI 3): dsk_rope, dsk_kv_append, dsk_paged_attention, dsk_paged_mla_attention. ---- */

/* A request that would be valid with real buffers: bf16 x [5 tokens, 4 heads, 128], rotary 64 at offset 64. */
static dsk_rope_params rope_params(void) {
    dsk_rope_params p;
    memset(&p, 0, sizeof p);
    p.x = FAKE(0x1000000);
    p.positions = (const int32_t*)FAKE(0x2000000);
    p.cos = (const float*)FAKE(0x3000000);
    p.sin = (const float*)FAKE(0x4000000);
    p.error_word = (int32_t*)FAKE(0x5000000);
    p.tokens = 5;
    p.heads = 4;
    p.head_stride = 128;
    p.x_row_stride = 512;
    p.rope_offset = 64;
    p.rotary_dim = 64;
    p.max_positions = 4096;
    p.x_dtype = DSK_DTYPE_BF16;
    p.layout = DSK_ROPE_INTERLEAVED;
    p.error_site = 3;
    return p;
}

static void expect_rope(const char* name, const dsk_rope_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_rope", name, dsk_rope(p), want, expected);
}

static void check_rope(void) {
    dsk_rope_params p;
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT, UNS = DSK_ERROR_UNSUPPORTED;
    expect_rope("p NULL", NULL, INV, "dsk_rope: p must not be NULL");
    p = rope_params(); p.x = NULL;
    expect_rope("x NULL", &p, INV, "x must not be NULL");
    p = rope_params(); p.positions = NULL;
    expect_rope("positions NULL", &p, INV, "positions must not be NULL");
    p = rope_params(); p.cos = NULL;
    expect_rope("cos NULL", &p, INV, "cos must not be NULL");
    p = rope_params(); p.sin = NULL;
    expect_rope("sin NULL", &p, INV, "sin must not be NULL");
    p = rope_params(); p.error_word = NULL;
    expect_rope("error_word NULL", &p, INV, "error_word must not be NULL");
    p = rope_params(); p.tokens = 0;
    expect_rope("tokens 0", &p, INV, "tokens must be >= 1 (got 0)");
    p = rope_params(); p.heads = -1;
    expect_rope("heads -1", &p, INV, "heads must be >= 1 (got -1)");
    p = rope_params(); p.rope_offset = -2;
    expect_rope("rope_offset -2", &p, INV, "rope_offset must be >= 0 (got -2)");
    p = rope_params(); p.rotary_dim = 63;
    expect_rope("rotary_dim odd", &p, INV, "rotary_dim must be even and >= 2 (got 63)");
    p = rope_params(); p.rotary_dim = 0;
    expect_rope("rotary_dim 0", &p, INV, "rotary_dim must be even and >= 2 (got 0)");
    p = rope_params(); p.head_stride = 127;
    expect_rope("head_stride", &p, INV, "head_stride must be >= rope_offset + rotary_dim (got 127");
    p = rope_params(); p.x_row_stride = 511;
    expect_rope("x_row_stride", &p, INV, "x_row_stride must be >= heads * head_stride (got 511");
    p = rope_params(); p.max_positions = 0;
    expect_rope("max_positions 0", &p, INV, "max_positions must be in [1, 2^31) (got 0)");
    p = rope_params(); p.max_positions = (int64_t)1 << 31;
    expect_rope("max_positions 2^31", &p, INV, "max_positions must be in [1, 2^31)");
    p = rope_params(); p.layout = 2;
    expect_rope("layout 2", &p, INV, "layout must be HALF_SPLIT (0) or INTERLEAVED (1) (got 2)");
    p = rope_params(); p.error_site = 0;
    expect_rope("error_site 0", &p, INV, "error_site must be > 0 (got 0)");
    p = rope_params(); p.reserved = 1;
    expect_rope("reserved", &p, INV, "reserved must be 0 (got 1)");
    p = rope_params(); p.cos = (const float*)((char*)p.x + 1000);
    expect_rope("cos in x", &p, INV, "x must not overlap cos");
    p = rope_params(); p.sin = (const float*)((char*)p.x - 16);
    expect_rope("sin over x", &p, INV, "x must not overlap sin");
    p = rope_params(); p.positions = (const int32_t*)((char*)p.x + 8);
    expect_rope("positions in x", &p, INV, "x must not overlap positions");
    p = rope_params(); p.error_word = (int32_t*)((char*)p.x + 5000);
    expect_rope("error_word in x", &p, INV, "x must not overlap error_word");
    p = rope_params(); p.x_dtype = DSK_DTYPE_F16;
    expect_rope("x F16", &p, UNS, "x_dtype F16 (2) is not supported (F32 or BF16)");
    p = rope_params(); p.x_dtype = DSK_DTYPE_FP8_E4M3; p.tokens = 0;
    expect_rope("tokens 0 with FP8", &p, INV, "tokens must be >= 1 (got 0)");
}

/* A request that would be valid with real buffers: 3 tokens of bf16 keys [3, 64] and values [3, 32] into f32 pools of
 * 64 slots. */
static dsk_kv_append_params kv_params(void) {
    dsk_kv_append_params p;
    memset(&p, 0, sizeof p);
    p.keys = FAKE(0x1000000);
    p.values = FAKE(0x2000000);
    p.slot_mapping = (const int32_t*)FAKE(0x3000000);
    p.key_pages = FAKE(0x4000000);
    p.value_pages = FAKE(0x5000000);
    p.error_word = (int32_t*)FAKE(0x6000000);
    p.tokens = 3;
    p.slots = 64;
    p.key_width = 64;
    p.value_width = 32;
    p.keys_row_stride = 64;
    p.values_row_stride = 40;
    p.key_dtype = DSK_DTYPE_BF16;
    p.value_dtype = DSK_DTYPE_BF16;
    p.key_page_dtype = DSK_DTYPE_F32;
    p.value_page_dtype = DSK_DTYPE_F32;
    p.error_site = 4;
    return p;
}

static void expect_kv(const char* name, const dsk_kv_append_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_kv_append", name, dsk_kv_append(p), want, expected);
}

static void check_kv_append(void) {
    dsk_kv_append_params p;
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT, UNS = DSK_ERROR_UNSUPPORTED;
    expect_kv("p NULL", NULL, INV, "dsk_kv_append: p must not be NULL");
    p = kv_params(); p.keys = NULL;
    expect_kv("keys NULL", &p, INV, "keys must not be NULL");
    p = kv_params(); p.slot_mapping = NULL;
    expect_kv("slot_mapping NULL", &p, INV, "slot_mapping must not be NULL");
    p = kv_params(); p.key_pages = NULL;
    expect_kv("key_pages NULL", &p, INV, "key_pages must not be NULL");
    p = kv_params(); p.error_word = NULL;
    expect_kv("error_word NULL", &p, INV, "error_word must not be NULL");
    p = kv_params(); p.value_pages = NULL;
    expect_kv("values without value_pages", &p, INV, "value_pages must be NULL exactly when values is NULL");
    p = kv_params(); p.values = NULL;
    expect_kv("value_pages without values", &p, INV, "value_pages must be NULL exactly when values is NULL");
    p = kv_params(); p.tokens = 0;
    expect_kv("tokens 0", &p, INV, "tokens must be >= 1 (got 0)");
    p = kv_params(); p.slots = 0;
    expect_kv("slots 0", &p, INV, "slots must be in [1, 2^31) (got 0)");
    p = kv_params(); p.slots = (int64_t)1 << 31;
    expect_kv("slots 2^31", &p, INV, "slots must be in [1, 2^31)");
    p = kv_params(); p.key_width = 0;
    expect_kv("key_width 0", &p, INV, "key_width must be >= 1 (got 0)");
    p = kv_params(); p.value_width = 0;
    expect_kv("value_width 0", &p, INV, "value_width must be >= 1 (got 0)");
    p = kv_params(); p.values = NULL; p.value_pages = NULL;
    expect_kv("value_width without values", &p, INV, "value_width must be 0 without values (got 32)");
    p = kv_params(); p.keys_row_stride = 63;
    expect_kv("keys_row_stride", &p, INV, "keys_row_stride must be >= key_width (got 63, key_width 64)");
    p = kv_params(); p.values_row_stride = 31;
    expect_kv("values_row_stride", &p, INV, "values_row_stride must be >= value_width (got 31, value_width 32)");
    p = kv_params(); p.error_site = -1;
    expect_kv("error_site -1", &p, INV, "error_site must be > 0 (got -1)");
    p = kv_params(); p.reserved = 7;
    expect_kv("reserved", &p, INV, "reserved must be 0 (got 7)");
    p = kv_params(); p.keys = (char*)p.key_pages + 64 * 64 * 4 - 2;
    expect_kv("keys in key_pages", &p, INV, "key_pages must not overlap keys");
    p = kv_params(); p.slot_mapping = (const int32_t*)((char*)p.key_pages + 100);
    expect_kv("slot_mapping in key_pages", &p, INV, "key_pages must not overlap slot_mapping");
    p = kv_params(); p.error_word = (int32_t*)((char*)p.key_pages + 100);
    expect_kv("error_word in key_pages", &p, INV, "key_pages must not overlap error_word");
    p = kv_params(); p.values = (char*)p.key_pages + 100;
    expect_kv("values in key_pages", &p, INV, "key_pages must not overlap values");
    p = kv_params(); p.keys = (char*)p.value_pages + 100;
    expect_kv("keys in value_pages", &p, INV, "value_pages must not overlap keys");
    p = kv_params(); p.values = (char*)p.value_pages + 64 * 32 * 4 - 4;
    expect_kv("values in value_pages", &p, INV, "value_pages must not overlap values");
    p = kv_params(); p.slot_mapping = (const int32_t*)((char*)p.value_pages + 8);
    expect_kv("slot_mapping in value_pages", &p, INV, "value_pages must not overlap slot_mapping");
    p = kv_params(); p.error_word = (int32_t*)((char*)p.value_pages + 8);
    expect_kv("error_word in value_pages", &p, INV, "value_pages must not overlap error_word");
    p = kv_params(); p.value_pages = (char*)p.key_pages + 64 * 64 * 4 - 4;
    expect_kv("value_pages over key_pages", &p, INV, "key_pages must not overlap value_pages");
    p = kv_params(); p.key_dtype = DSK_DTYPE_F16;
    expect_kv("keys F16", &p, UNS, "key_dtype F16 (2) is not supported (F32 or BF16)");
    p = kv_params(); p.key_page_dtype = DSK_DTYPE_FP8_E4M3;
    expect_kv("key pages FP8", &p, UNS, "key_page_dtype FP8_E4M3 (3) is not supported (F32 or BF16)");
    p = kv_params(); p.value_dtype = DSK_DTYPE_I32;
    expect_kv("values I32", &p, UNS, "value_dtype I32 (5) is not supported (F32 or BF16)");
    p = kv_params(); p.value_page_dtype = 42;
    expect_kv("value pages unknown", &p, UNS, "value_page_dtype unknown (42) is not supported");
    p = kv_params(); p.key_dtype = DSK_DTYPE_F16; p.slots = -5;
    expect_kv("slots -5 with F16", &p, INV, "slots must be in [1, 2^31) (got -5)");
}

/* A request that would be valid with real buffers: 4 sequences of decode, 32 q / 8 kv heads x 128, bf16, page 16. */
static dsk_paged_attention_params attn_params(void) {
    dsk_paged_attention_params p;
    memset(&p, 0, sizeof p);
    p.q = FAKE(0x1000000);
    p.key_pages = FAKE(0x10000000);
    p.value_pages = FAKE(0x20000000);
    p.block_table = (const int32_t*)FAKE(0x2000000);
    p.sequence_lengths = (const int32_t*)FAKE(0x3000000);
    p.query_starts = (const int32_t*)FAKE(0x4000000);
    p.out = FAKE(0x5000000);
    p.workspace = FAKE(0x40000000);
    p.error_word = (int32_t*)FAKE(0x6000000);
    p.workspace_bytes = (int64_t)1 << 26;
    p.tokens = 4;
    p.batch = 4;
    p.max_pages = 16;
    p.pages = 64;
    p.page_size = 16;
    p.q_heads = 32;
    p.kv_heads = 8;
    p.head_dim = 128;
    p.v_head_dim = 128;
    p.scale = 0.088f;
    p.q_dtype = DSK_DTYPE_BF16;
    p.page_dtype = DSK_DTYPE_BF16;
    p.out_dtype = DSK_DTYPE_BF16;
    p.path = DSK_ATTENTION_PATH_SIMT;
    p.error_site_block_table = 1;
    p.error_site_lengths = 2;
    p.error_site_query_starts = 3;
    return p;
}

/* The MLA variant: 16 heads over one latent head of 576 (values: its first 512), page 64, no value pages. */
static dsk_paged_attention_params mla_params(void) {
    dsk_paged_attention_params p = attn_params();
    p.value_pages = NULL;
    p.q_heads = 16;
    p.kv_heads = 1;
    p.head_dim = 576;
    p.v_head_dim = 512;
    p.page_size = 64;
    p.max_pages = 4;
    return p;
}

static void expect_attn(int mla, const char* name, const dsk_paged_attention_params* p, dsk_status want,
                        const char* expected) {
    if (mla) {
        expect_op("dsk_paged_mla_attention", name, dsk_paged_mla_attention(p), want, expected);
    } else {
        expect_op("dsk_paged_attention", name, dsk_paged_attention(p), want, expected);
    }
}

static void check_paged_attention(int mla) {
    dsk_paged_attention_params p, base = mla ? mla_params() : attn_params();
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT, UNS = DSK_ERROR_UNSUPPORTED;
    const char* op = mla ? "dsk_paged_mla_attention" : "dsk_paged_attention";
    const char* ws_op = mla ? "dsk_paged_mla_attention_workspace_size" : "dsk_paged_attention_workspace_size";
    int64_t bytes = -1;
    dsk_status st;

    expect_attn(mla, "p NULL", NULL, INV, "p must not be NULL");
    p = base; p.q = NULL;
    expect_attn(mla, "q NULL", &p, INV, "q must not be NULL");
    p = base; p.key_pages = NULL;
    expect_attn(mla, "key_pages NULL", &p, INV, "key_pages must not be NULL");
    if (mla) {
        p = base; p.value_pages = FAKE(0x20000000);
        expect_attn(mla, "value_pages set", &p, INV, "value_pages must be NULL for MLA");
    } else {
        p = base; p.value_pages = NULL;
        expect_attn(mla, "value_pages NULL", &p, INV, "value_pages must not be NULL");
    }
    p = base; p.block_table = NULL;
    expect_attn(mla, "block_table NULL", &p, INV, "block_table must not be NULL");
    p = base; p.sequence_lengths = NULL;
    expect_attn(mla, "sequence_lengths NULL", &p, INV, "sequence_lengths must not be NULL");
    p = base; p.query_starts = NULL;
    expect_attn(mla, "query_starts NULL", &p, INV, "query_starts must not be NULL");
    p = base; p.out = NULL;
    expect_attn(mla, "out NULL", &p, INV, "out must not be NULL");
    p = base; p.error_word = NULL;
    expect_attn(mla, "error_word NULL", &p, INV, "error_word must not be NULL");
    p = base; p.tokens = 0;
    expect_attn(mla, "tokens 0", &p, INV, "tokens must be >= 1 (got 0)");
    p = base; p.batch = 0;
    expect_attn(mla, "batch 0", &p, INV, "batch must be >= 1 (got 0)");
    p = base; p.max_pages = 0;
    expect_attn(mla, "max_pages 0", &p, INV, "max_pages must be >= 1 (got 0)");
    p = base; p.pages = -1;
    expect_attn(mla, "pages -1", &p, INV, "pages must be >= 1 (got -1)");
    p = base; p.page_size = 0;
    expect_attn(mla, "page_size 0", &p, INV, "page_size must be >= 1 (got 0)");
    p = base; p.q_heads = 0;
    expect_attn(mla, "q_heads 0", &p, INV, "q_heads must be >= 1 (got 0)");
    p = base; p.kv_heads = 0;
    expect_attn(mla, "kv_heads 0", &p, INV, "kv_heads must be >= 1 (got 0)");
    p = base; p.head_dim = 0;
    expect_attn(mla, "head_dim 0", &p, INV, "head_dim must be >= 1 (got 0)");
    p = base; p.v_head_dim = 0;
    expect_attn(mla, "v_head_dim 0", &p, INV, "v_head_dim must be >= 1 (got 0)");
    p = base; p.pages = (int64_t)1 << 28; p.page_size = 64;
    expect_attn(mla, "slots 2^34", &p, INV, "pages * page_size must be < 2^31");
    p = base; p.max_pages = (int64_t)1 << 30;
    expect_attn(mla, "capacity 2^34", &p, INV, "max_pages * page_size must be < 2^31");
    if (mla) {
        p = base; p.kv_heads = 2; p.q_heads = 16;
        expect_attn(mla, "kv_heads 2", &p, INV, "kv_heads must be 1 for MLA");
        p = base; p.v_head_dim = 577;
        expect_attn(mla, "v_head_dim > head_dim", &p, INV, "must be <= head_dim");
    } else {
        p = base; p.q_heads = 30;
        expect_attn(mla, "q_heads 30 / kv 8", &p, INV, "q_heads (30) must be a multiple of kv_heads (8)");
        p = base; p.kv_heads = 64;
        expect_attn(mla, "kv_heads > q_heads", &p, INV, "q_heads (32) must be a multiple of kv_heads (64)");
    }
    p = base; p.scale = NAN;
    expect_attn(mla, "scale NaN", &p, INV, "scale must be finite");
    p = base; p.scale = INFINITY;
    expect_attn(mla, "scale inf", &p, INV, "scale must be finite");
    p = base; p.path = 4;
    expect_attn(mla, "path 4", &p, INV, "path must be AUTO (0), SIMT (1), MMA (2) or MMA_SYNC (3) (got 4)");
    p = base; p.path = -1;
    expect_attn(mla, "path -1", &p, INV, "path must be AUTO (0), SIMT (1), MMA (2) or MMA_SYNC (3) (got -1)");
    p = base; p.max_splits = -1;
    expect_attn(mla, "max_splits -1", &p, INV, "max_splits must be >= 0 (got -1)");
    p = base; p.reserved = 2;
    expect_attn(mla, "reserved", &p, INV, "reserved must be 0 (got 2)");
    p = base; p.error_site_lengths = 0;
    expect_attn(mla, "error site 0", &p, INV, "error_site_lengths must be >= 1");
    p = base; p.workspace_bytes = -16;
    expect_attn(mla, "workspace_bytes -16", &p, INV, "workspace_bytes must be >= 0 (got -16)");
    /* Overlaps of out and the workspace with the inputs and each other. */
    p = base; p.out = (char*)p.q + 64;
    expect_attn(mla, "out on q", &p, INV, "out must not overlap q");
    p = base; p.out = (char*)p.key_pages + 4096;
    expect_attn(mla, "out in key_pages", &p, INV, "out must not overlap key_pages");
    p = base; p.block_table = (const int32_t*)((char*)p.out + 16);
    expect_attn(mla, "block_table in out", &p, INV, "out must not overlap block_table");
    p = base; p.error_word = (int32_t*)((char*)p.out + 8);
    expect_attn(mla, "error_word in out", &p, INV, "out must not overlap error_word");
    p = base; p.sequence_lengths = (const int32_t*)((char*)p.workspace + 256);
    expect_attn(mla, "lengths in workspace", &p, INV, "workspace must not overlap sequence_lengths");
    p = base; p.out = (char*)p.workspace + 1024;
    expect_attn(mla, "out in workspace", &p, INV, "out must not overlap");
    /* dtypes: refused as unsupported, after the arguments. */
    p = base; p.q_dtype = DSK_DTYPE_F16;
    expect_attn(mla, "q F16", &p, UNS, "q_dtype F16 (2) is not supported (F32 or BF16)");
    p = base; p.page_dtype = DSK_DTYPE_FP8_E4M3;
    expect_attn(mla, "pages FP8", &p, UNS, "page_dtype FP8_E4M3 (3) is not supported (F32 or BF16)");
    p = base; p.out_dtype = DSK_DTYPE_I32;
    expect_attn(mla, "out I32", &p, UNS, "out_dtype I32 (5) is not supported (F32 or BF16)");
    p = base; p.out_dtype = DSK_DTYPE_I32; p.batch = 0;
    expect_attn(mla, "batch 0 with out I32", &p, INV, "batch must be >= 1 (got 0)");
    /* The workspace: NULL, misaligned, one step too small (the size call answers without a GPU). */
    p = base; p.workspace = NULL; p.workspace_bytes = 0;
    expect_attn(mla, "workspace NULL", &p, INV, "workspace must not be NULL");
    p = base; p.workspace = (char*)p.workspace + 8;
    expect_attn(mla, "workspace misaligned", &p, INV, "workspace must be 16-byte aligned");
    p = base;
    st = mla ? dsk_paged_mla_attention_workspace_size(&p, &bytes) : dsk_paged_attention_workspace_size(&p, &bytes);
    CHECK(st == DSK_SUCCESS && bytes >= 256 && bytes % 16 == 0, "%s: status %s, bytes %lld", ws_op, status_name(st),
          (long long)bytes);
    p = base; p.workspace_bytes = bytes - 16;
    expect_attn(mla, "workspace too small", &p, INV, "workspace_bytes must be >=");
    /* The size call checks sizes and dtypes too (pointers may be NULL there). */
    p = base; p.q = NULL; p.out = NULL; p.workspace = NULL;
    st = mla ? dsk_paged_mla_attention_workspace_size(&p, &bytes) : dsk_paged_attention_workspace_size(&p, &bytes);
    CHECK(st == DSK_SUCCESS, "%s with NULL pointers: status %s (%s)", ws_op, status_name(st), dsk_last_error_message());
    p = base; p.head_dim = 0;
    st = mla ? dsk_paged_mla_attention_workspace_size(&p, &bytes) : dsk_paged_attention_workspace_size(&p, &bytes);
    expect_op(ws_op, "head_dim 0", st, INV, "head_dim must be >= 1 (got 0)");
    p = base; p.page_dtype = DSK_DTYPE_F16;
    st = mla ? dsk_paged_mla_attention_workspace_size(&p, &bytes) : dsk_paged_attention_workspace_size(&p, &bytes);
    expect_op(ws_op, "pages F16", st, UNS, "page_dtype F16 (2) is not supported");
    p = base;
    st = mla ? dsk_paged_mla_attention_workspace_size(&p, NULL) : dsk_paged_attention_workspace_size(&p, NULL);
    expect_op(ws_op, "bytes NULL", st, INV, "bytes must not be NULL");
    (void)op;
}

/* ---- Mixture of experts (ABI 4): dsk_moe_route, dsk_moe_permute(_workspace_size), dsk_moe_combine. ---- */

_Static_assert(offsetof(dsk_moe_route_params, logits) == 0, "moe_route.logits");
_Static_assert(offsetof(dsk_moe_route_params, bias) == 8, "moe_route.bias");
_Static_assert(offsetof(dsk_moe_route_params, expert_ids) == 16, "moe_route.expert_ids");
_Static_assert(offsetof(dsk_moe_route_params, expert_weights) == 24, "moe_route.expert_weights");
_Static_assert(offsetof(dsk_moe_route_params, tokens) == 32, "moe_route.tokens");
_Static_assert(offsetof(dsk_moe_route_params, experts) == 40, "moe_route.experts");
_Static_assert(offsetof(dsk_moe_route_params, top_k) == 44, "moe_route.top_k");
_Static_assert(offsetof(dsk_moe_route_params, groups) == 48, "moe_route.groups");
_Static_assert(offsetof(dsk_moe_route_params, top_k_groups) == 52, "moe_route.top_k_groups");
_Static_assert(offsetof(dsk_moe_route_params, scoring) == 56, "moe_route.scoring");
_Static_assert(offsetof(dsk_moe_route_params, method) == 60, "moe_route.method");
_Static_assert(offsetof(dsk_moe_route_params, normalize) == 64, "moe_route.normalize");
_Static_assert(offsetof(dsk_moe_route_params, logits_dtype) == 68, "moe_route.logits_dtype");
_Static_assert(offsetof(dsk_moe_route_params, routed_scaling_factor) == 72, "moe_route.routed_scaling_factor");
_Static_assert(offsetof(dsk_moe_route_params, reserved) == 76, "moe_route.reserved");
_Static_assert(offsetof(dsk_moe_route_params, stream) == 80, "moe_route.stream");
_Static_assert(sizeof(dsk_moe_route_params) == 88, "sizeof(dsk_moe_route_params)");

_Static_assert(offsetof(dsk_moe_permute_params, x) == 0, "moe_permute.x");
_Static_assert(offsetof(dsk_moe_permute_params, expert_ids) == 8, "moe_permute.expert_ids");
_Static_assert(offsetof(dsk_moe_permute_params, permuted) == 16, "moe_permute.permuted");
_Static_assert(offsetof(dsk_moe_permute_params, expert_offsets) == 24, "moe_permute.expert_offsets");
_Static_assert(offsetof(dsk_moe_permute_params, slot_rows) == 32, "moe_permute.slot_rows");
_Static_assert(offsetof(dsk_moe_permute_params, workspace) == 40, "moe_permute.workspace");
_Static_assert(offsetof(dsk_moe_permute_params, error_word) == 48, "moe_permute.error_word");
_Static_assert(offsetof(dsk_moe_permute_params, workspace_bytes) == 56, "moe_permute.workspace_bytes");
_Static_assert(offsetof(dsk_moe_permute_params, tokens) == 64, "moe_permute.tokens");
_Static_assert(offsetof(dsk_moe_permute_params, top_k) == 72, "moe_permute.top_k");
_Static_assert(offsetof(dsk_moe_permute_params, hidden) == 80, "moe_permute.hidden");
_Static_assert(offsetof(dsk_moe_permute_params, experts) == 88, "moe_permute.experts");
_Static_assert(offsetof(dsk_moe_permute_params, x_row_stride) == 96, "moe_permute.x_row_stride");
_Static_assert(offsetof(dsk_moe_permute_params, permuted_row_stride) == 104, "moe_permute.permuted_row_stride");
_Static_assert(offsetof(dsk_moe_permute_params, x_dtype) == 112, "moe_permute.x_dtype");
_Static_assert(offsetof(dsk_moe_permute_params, error_site) == 116, "moe_permute.error_site");
_Static_assert(offsetof(dsk_moe_permute_params, stream) == 120, "moe_permute.stream");
_Static_assert(sizeof(dsk_moe_permute_params) == 128, "sizeof(dsk_moe_permute_params)");

_Static_assert(offsetof(dsk_moe_combine_params, expert_output) == 0, "moe_combine.expert_output");
_Static_assert(offsetof(dsk_moe_combine_params, slot_rows) == 8, "moe_combine.slot_rows");
_Static_assert(offsetof(dsk_moe_combine_params, expert_weights) == 16, "moe_combine.expert_weights");
_Static_assert(offsetof(dsk_moe_combine_params, y) == 24, "moe_combine.y");
_Static_assert(offsetof(dsk_moe_combine_params, error_word) == 32, "moe_combine.error_word");
_Static_assert(offsetof(dsk_moe_combine_params, tokens) == 40, "moe_combine.tokens");
_Static_assert(offsetof(dsk_moe_combine_params, top_k) == 48, "moe_combine.top_k");
_Static_assert(offsetof(dsk_moe_combine_params, hidden) == 56, "moe_combine.hidden");
_Static_assert(offsetof(dsk_moe_combine_params, expert_output_row_stride) == 64, "moe_combine.expert_output_row_stride");
_Static_assert(offsetof(dsk_moe_combine_params, y_row_stride) == 72, "moe_combine.y_row_stride");
_Static_assert(offsetof(dsk_moe_combine_params, expert_output_dtype) == 80, "moe_combine.expert_output_dtype");
_Static_assert(offsetof(dsk_moe_combine_params, y_dtype) == 84, "moe_combine.y_dtype");
_Static_assert(offsetof(dsk_moe_combine_params, accumulate) == 88, "moe_combine.accumulate");
_Static_assert(offsetof(dsk_moe_combine_params, error_site) == 92, "moe_combine.error_site");
_Static_assert(offsetof(dsk_moe_combine_params, stream) == 96, "moe_combine.stream");
_Static_assert(sizeof(dsk_moe_combine_params) == 104, "sizeof(dsk_moe_combine_params)");

_Static_assert(sizeof(dsk_moe_scoring) == 4 && sizeof(dsk_moe_method) == 4, "enums are 32-bit");
_Static_assert(DSK_MOE_SCORING_SOFTMAX == 0 && DSK_MOE_SCORING_SIGMOID == 1, "dsk_moe_scoring values");
_Static_assert(DSK_MOE_METHOD_GREEDY == 0 && DSK_MOE_METHOD_GROUP_LIMITED_GREEDY == 1 && DSK_MOE_METHOD_NOAUX_TC == 2,
               "dsk_moe_method values");

/* A request that would be valid with real buffers: DeepSeek-V3's routing of 4 tokens (256 experts, 8 groups, keep 4). */
static dsk_moe_route_params route_params(void) {
    dsk_moe_route_params p;
    memset(&p, 0, sizeof p);
    p.logits = FAKE(0x1000000);
    p.bias = (const float*)FAKE(0x2000000);
    p.expert_ids = (int32_t*)FAKE(0x3000000);
    p.expert_weights = (float*)FAKE(0x4000000);
    p.tokens = 4;
    p.experts = 256;
    p.top_k = 8;
    p.groups = 8;
    p.top_k_groups = 4;
    p.scoring = DSK_MOE_SCORING_SIGMOID;
    p.method = DSK_MOE_METHOD_NOAUX_TC;
    p.normalize = 1;
    p.logits_dtype = DSK_DTYPE_F32;
    p.routed_scaling_factor = 2.5f;
    return p;
}

static void expect_route(const char* name, const dsk_moe_route_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_moe_route", name, dsk_moe_route(p), want, expected);
}

static void check_moe_route(void) {
    dsk_moe_route_params p;
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT, UNS = DSK_ERROR_UNSUPPORTED;
    expect_route("p NULL", NULL, INV, "dsk_moe_route: p must not be NULL");
    p = route_params(); p.logits = NULL;
    expect_route("logits NULL", &p, INV, "logits must not be NULL");
    p = route_params(); p.expert_ids = NULL;
    expect_route("expert_ids NULL", &p, INV, "expert_ids must not be NULL");
    p = route_params(); p.expert_weights = NULL;
    expect_route("expert_weights NULL", &p, INV, "expert_weights must not be NULL");
    p = route_params(); p.tokens = 0;
    expect_route("tokens 0", &p, INV, "tokens must be >= 1 (got 0)");
    p = route_params(); p.experts = 0;
    expect_route("experts 0", &p, INV, "experts must be >= 1 (got 0)");
    p = route_params(); p.top_k = 0;
    expect_route("top_k 0", &p, INV, "top_k must be in [1, experts = 256] (got 0)");
    p = route_params(); p.method = DSK_MOE_METHOD_GREEDY; p.top_k = 257;
    expect_route("top_k 257", &p, INV, "top_k must be in [1, experts = 256] (got 257)");
    p = route_params(); p.scoring = 2;
    expect_route("scoring 2", &p, INV, "scoring must be SOFTMAX (0) or SIGMOID (1) (got 2)");
    p = route_params(); p.method = 3;
    expect_route("method 3", &p, INV, "method must be GREEDY (0), GROUP_LIMITED_GREEDY (1) or NOAUX_TC (2) (got 3)");
    p = route_params(); p.groups = 0;
    expect_route("groups 0", &p, INV, "groups must be >= 1 (got 0)");
    p = route_params(); p.groups = 3;
    expect_route("groups 3", &p, INV, "experts (256) must be a multiple of groups (3)");
    p = route_params(); p.top_k_groups = 9;
    expect_route("top_k_groups 9", &p, INV, "top_k_groups must be in [1, groups = 8] (got 9)");
    p = route_params(); p.top_k_groups = 0;
    expect_route("top_k_groups 0", &p, INV, "top_k_groups must be in [1, groups = 8] (got 0)");
    p = route_params(); p.groups = 256; p.top_k_groups = 8;
    expect_route("NOAUX_TC groups of 1", &p, INV, "experts / groups must be >= 2 (got 256 / 256)");
    p = route_params(); p.top_k_groups = 1; p.top_k = 33;
    expect_route("top_k past the kept groups", &p, INV,
                 "top_k (33) must be <= the experts of the kept groups, top_k_groups * experts / groups = 1 * 256 / 8 = 32");
    p = route_params(); p.method = DSK_MOE_METHOD_GREEDY; p.groups = 0; p.top_k_groups = 0; p.top_k = 33; p.normalize = 2;
    expect_route("GREEDY ignores groups", &p, INV, "normalize must be 0 or 1 (got 2)"); /* passes the group checks */
    p = route_params(); p.normalize = 2;
    expect_route("normalize 2", &p, INV, "normalize must be 0 or 1 (got 2)");
    p = route_params(); p.routed_scaling_factor = NAN;
    expect_route("scaling NaN", &p, INV, "routed_scaling_factor must be finite");
    p = route_params(); p.routed_scaling_factor = INFINITY;
    expect_route("scaling inf", &p, INV, "routed_scaling_factor must be finite");
    p = route_params(); p.reserved = 1;
    expect_route("reserved", &p, INV, "reserved must be 0 (got 1)");
    p = route_params(); p.expert_ids = (int32_t*)((char*)p.logits + 4 * 256 * 4 - 4);
    expect_route("expert_ids in logits", &p, INV, "expert_ids must not overlap logits");
    p = route_params(); p.expert_ids = (int32_t*)((char*)p.bias + 8);
    expect_route("expert_ids in bias", &p, INV, "expert_ids must not overlap bias");
    p = route_params(); p.expert_weights = (float*)((char*)p.logits + 16);
    expect_route("expert_weights in logits", &p, INV, "expert_weights must not overlap logits");
    p = route_params(); p.expert_weights = (float*)((char*)p.bias + 256 * 4 - 4);
    expect_route("expert_weights in bias", &p, INV, "expert_weights must not overlap bias");
    p = route_params(); p.expert_weights = (float*)((char*)p.expert_ids + 4 * 8 * 4 - 4);
    expect_route("expert_weights over expert_ids", &p, INV, "expert_ids must not overlap expert_weights");
    p = route_params(); p.logits_dtype = DSK_DTYPE_BF16; p.expert_ids = (int32_t*)((char*)p.logits + 4 * 256 * 2 - 2);
    expect_route("expert_ids at the end of bf16 logits", &p, INV, "expert_ids must not overlap logits");
    p = route_params(); p.experts = 2048; p.groups = 8; p.top_k = 8;
    expect_route("experts 2048", &p, UNS, "experts 2048 is not supported (at most 1024 in this build)");
    p = route_params(); p.logits_dtype = DSK_DTYPE_F16;
    expect_route("logits F16", &p, UNS, "logits_dtype F16 (2) is not supported (F32 or BF16)");
    p = route_params(); p.logits_dtype = DSK_DTYPE_F16; p.top_k = 0;
    expect_route("top_k 0 with F16", &p, INV, "top_k must be in [1, experts = 256] (got 0)");
}

/* A request that would be valid with real buffers: 5 tokens x top 3 over 16 experts, bf16 rows of 64 (x strided 80). */
static dsk_moe_permute_params permute_params(void) {
    dsk_moe_permute_params p;
    memset(&p, 0, sizeof p);
    p.x = FAKE(0x1000000);
    p.expert_ids = (const int32_t*)FAKE(0x2000000);
    p.permuted = FAKE(0x3000000);
    p.expert_offsets = (int32_t*)FAKE(0x4000000);
    p.slot_rows = (int32_t*)FAKE(0x5000000);
    p.workspace = FAKE(0x6000000);
    p.error_word = (int32_t*)FAKE(0x7000000);
    p.workspace_bytes = 4096;
    p.tokens = 5;
    p.top_k = 3;
    p.hidden = 64;
    p.experts = 16;
    p.x_row_stride = 80;
    p.permuted_row_stride = 64;
    p.x_dtype = DSK_DTYPE_BF16;
    p.error_site = 9;
    return p;
}

static void expect_permute(const char* name, const dsk_moe_permute_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_moe_permute", name, dsk_moe_permute(p), want, expected);
}

static void check_moe_permute(void) {
    dsk_moe_permute_params p;
    int64_t bytes = -1;
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT, UNS = DSK_ERROR_UNSUPPORTED;
    /* The size query: from tokens, top_k and experts only (pointers may be NULL), int32 [chunks of 256 slots, experts]
     * + [chunks] + 1, in 16-byte units. */
    memset(&p, 0, sizeof p);
    p.tokens = 5; p.top_k = 3; p.experts = 16;
    CHECK(dsk_moe_permute_workspace_size(&p, &bytes) == DSK_SUCCESS && bytes == 80,
          "dsk_moe_permute_workspace_size(5 x 3, 16 experts) = %lld, want 80 (%s)", (long long)bytes, dsk_last_error_message());
    p.tokens = 4096; p.top_k = 8; p.experts = 256;
    CHECK(dsk_moe_permute_workspace_size(&p, &bytes) == DSK_SUCCESS && bytes == (128 * 256 + 128 + 1 + 3) / 4 * 16,
          "dsk_moe_permute_workspace_size(4096 x 8, 256 experts) = %lld", (long long)bytes);
    expect_op("dsk_moe_permute_workspace_size", "p NULL", dsk_moe_permute_workspace_size(NULL, &bytes), INV,
              "p must not be NULL");
    expect_op("dsk_moe_permute_workspace_size", "bytes NULL", dsk_moe_permute_workspace_size(&p, NULL), INV,
              "bytes must not be NULL");
    p.top_k = 0;
    expect_op("dsk_moe_permute_workspace_size", "top_k 0", dsk_moe_permute_workspace_size(&p, &bytes), INV,
              "top_k must be >= 1 (got 0)");
    p.top_k = 8; p.experts = 0;
    expect_op("dsk_moe_permute_workspace_size", "experts 0", dsk_moe_permute_workspace_size(&p, &bytes), INV,
              "experts must be in [1, 2^31) (got 0)");

    expect_permute("p NULL", NULL, INV, "dsk_moe_permute: p must not be NULL");
    p = permute_params(); p.x = NULL;
    expect_permute("x NULL", &p, INV, "x must not be NULL");
    p = permute_params(); p.expert_ids = NULL;
    expect_permute("expert_ids NULL", &p, INV, "expert_ids must not be NULL");
    p = permute_params(); p.permuted = NULL;
    expect_permute("permuted NULL", &p, INV, "permuted must not be NULL");
    p = permute_params(); p.expert_offsets = NULL;
    expect_permute("expert_offsets NULL", &p, INV, "expert_offsets must not be NULL");
    p = permute_params(); p.slot_rows = NULL;
    expect_permute("slot_rows NULL", &p, INV, "slot_rows must not be NULL");
    p = permute_params(); p.workspace = NULL;
    expect_permute("workspace NULL", &p, INV, "workspace must not be NULL");
    p = permute_params(); p.error_word = NULL;
    expect_permute("error_word NULL", &p, INV, "error_word must not be NULL");
    p = permute_params(); p.tokens = 0;
    expect_permute("tokens 0", &p, INV, "tokens must be >= 1 (got 0)");
    p = permute_params(); p.top_k = -1;
    expect_permute("top_k -1", &p, INV, "top_k must be >= 1 (got -1)");
    p = permute_params(); p.tokens = (int64_t)1 << 28; p.top_k = 8;
    expect_permute("slots 2^31", &p, INV, "tokens * top_k must be < 2^31");
    p = permute_params(); p.experts = (int64_t)1 << 31;
    expect_permute("experts 2^31", &p, INV, "experts must be in [1, 2^31)");
    p = permute_params(); p.hidden = 0;
    expect_permute("hidden 0", &p, INV, "hidden must be >= 1 (got 0)");
    p = permute_params(); p.x_row_stride = 63;
    expect_permute("x_row_stride", &p, INV, "x_row_stride must be >= hidden (got 63, hidden 64)");
    p = permute_params(); p.permuted_row_stride = 1;
    expect_permute("permuted_row_stride", &p, INV, "permuted_row_stride must be >= hidden (got 1, hidden 64)");
    p = permute_params(); p.error_site = 0;
    expect_permute("error_site 0", &p, INV, "error_site must be > 0 (got 0)");
    p = permute_params(); p.workspace_bytes = 79;
    expect_permute("workspace too small", &p, INV, "workspace_bytes must be >= 80 (dsk_moe_permute_workspace_size) (got 79)");
    p = permute_params(); p.workspace = FAKE(0x6000008);
    expect_permute("workspace unaligned", &p, INV, "workspace must be 16-byte aligned");
    p = permute_params(); p.permuted = (char*)p.x + 4 * 80 * 2 + 64 * 2 - 2;
    expect_permute("permuted over x's last row", &p, INV, "permuted must not overlap x");
    p = permute_params(); p.expert_ids = (const int32_t*)((char*)p.permuted + 15 * 64 * 2 - 4);
    expect_permute("expert_ids in permuted", &p, INV, "permuted must not overlap expert_ids");
    p = permute_params(); p.error_word = (int32_t*)((char*)p.permuted + 8);
    expect_permute("error_word in permuted", &p, INV, "permuted must not overlap error_word");
    p = permute_params(); p.expert_offsets = (int32_t*)((char*)p.permuted + 8);
    expect_permute("expert_offsets in permuted", &p, INV, "permuted must not overlap expert_offsets");
    p = permute_params(); p.slot_rows = (int32_t*)((char*)p.expert_offsets + 16 * 4);
    expect_permute("slot_rows over expert_offsets[experts]", &p, INV, "expert_offsets must not overlap slot_rows");
    p = permute_params(); p.expert_ids = (const int32_t*)((char*)p.slot_rows + 14 * 4);
    expect_permute("expert_ids over slot_rows", &p, INV, "slot_rows must not overlap expert_ids");
    p = permute_params(); p.workspace = (char*)p.x + 16;
    expect_permute("workspace in x", &p, INV, "workspace must not overlap x");
    p = permute_params(); p.slot_rows = (int32_t*)((char*)p.workspace + 64);
    expect_permute("slot_rows in workspace", &p, INV, "slot_rows must not overlap workspace");
    p = permute_params(); p.x_dtype = DSK_DTYPE_F16;
    expect_permute("x F16", &p, UNS, "x_dtype F16 (2) is not supported (F32 or BF16)");
    p = permute_params(); p.x_dtype = DSK_DTYPE_F16; p.hidden = 0;
    expect_permute("hidden 0 with F16", &p, INV, "hidden must be >= 1 (got 0)");
}

/* A request that would be valid with real buffers: 6 tokens x top 2, f32 expert rows of 40 into bf16 y (strided 48). */
static dsk_moe_combine_params combine_params(void) {
    dsk_moe_combine_params p;
    memset(&p, 0, sizeof p);
    p.expert_output = FAKE(0x1000000);
    p.slot_rows = (const int32_t*)FAKE(0x2000000);
    p.expert_weights = (const float*)FAKE(0x3000000);
    p.y = FAKE(0x4000000);
    p.error_word = (int32_t*)FAKE(0x5000000);
    p.tokens = 6;
    p.top_k = 2;
    p.hidden = 40;
    p.expert_output_row_stride = 40;
    p.y_row_stride = 48;
    p.expert_output_dtype = DSK_DTYPE_F32;
    p.y_dtype = DSK_DTYPE_BF16;
    p.accumulate = 1;
    p.error_site = 10;
    return p;
}

static void expect_combine(const char* name, const dsk_moe_combine_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_moe_combine", name, dsk_moe_combine(p), want, expected);
}

static void check_moe_combine(void) {
    dsk_moe_combine_params p;
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT, UNS = DSK_ERROR_UNSUPPORTED;
    expect_combine("p NULL", NULL, INV, "dsk_moe_combine: p must not be NULL");
    p = combine_params(); p.expert_output = NULL;
    expect_combine("expert_output NULL", &p, INV, "expert_output must not be NULL");
    p = combine_params(); p.slot_rows = NULL;
    expect_combine("slot_rows NULL", &p, INV, "slot_rows must not be NULL");
    p = combine_params(); p.expert_weights = NULL;
    expect_combine("expert_weights NULL", &p, INV, "expert_weights must not be NULL");
    p = combine_params(); p.y = NULL;
    expect_combine("y NULL", &p, INV, "y must not be NULL");
    p = combine_params(); p.error_word = NULL;
    expect_combine("error_word NULL", &p, INV, "error_word must not be NULL");
    p = combine_params(); p.tokens = 0;
    expect_combine("tokens 0", &p, INV, "tokens must be >= 1 (got 0)");
    p = combine_params(); p.top_k = 0;
    expect_combine("top_k 0", &p, INV, "top_k must be >= 1 (got 0)");
    p = combine_params(); p.tokens = (int64_t)1 << 30; p.top_k = 2;
    expect_combine("slots 2^31", &p, INV, "tokens * top_k must be < 2^31");
    p = combine_params(); p.hidden = 0;
    expect_combine("hidden 0", &p, INV, "hidden must be >= 1 (got 0)");
    p = combine_params(); p.expert_output_row_stride = 39;
    expect_combine("expert_output_row_stride", &p, INV, "expert_output_row_stride must be >= hidden (got 39, hidden 40)");
    p = combine_params(); p.y_row_stride = 0;
    expect_combine("y_row_stride", &p, INV, "y_row_stride must be >= hidden (got 0, hidden 40)");
    p = combine_params(); p.accumulate = 2;
    expect_combine("accumulate 2", &p, INV, "accumulate must be 0 or 1 (got 2)");
    p = combine_params(); p.error_site = -2;
    expect_combine("error_site -2", &p, INV, "error_site must be > 0 (got -2)");
    p = combine_params(); p.expert_output = (char*)p.y + 5 * 48 * 2 + 40 * 2 - 4;
    expect_combine("expert_output at y's last row", &p, INV, "y must not overlap expert_output");
    p = combine_params(); p.slot_rows = (const int32_t*)((char*)p.y + 2);
    expect_combine("slot_rows in y", &p, INV, "y must not overlap slot_rows");
    p = combine_params(); p.expert_weights = (const float*)((char*)p.y - 12 * 4 + 2);
    expect_combine("expert_weights into y", &p, INV, "y must not overlap expert_weights");
    p = combine_params(); p.error_word = (int32_t*)((char*)p.y + 100);
    expect_combine("error_word in y", &p, INV, "y must not overlap error_word");
    p = combine_params(); p.expert_output_dtype = DSK_DTYPE_FP8_E4M3;
    expect_combine("expert_output FP8", &p, UNS, "expert_output_dtype FP8_E4M3 (3) is not supported (F32 or BF16)");
    p = combine_params(); p.y_dtype = DSK_DTYPE_I32;
    expect_combine("y I32", &p, UNS, "y_dtype I32 (5) is not supported (F32 or BF16)");
    p = combine_params(); p.y_dtype = DSK_DTYPE_I32; p.accumulate = -1;
    expect_combine("accumulate -1 with I32", &p, INV, "accumulate must be 0 or 1 (got -1)");
}

/* ---- The small activation ops (ABI 4): dsk_silu_and_mul, dsk_copy_columns, dsk_elementwise, dsk_softmax. ---- */

/* Would be valid with real buffers: bf16 x [3, 2 * 64], y [3, 64]. */
static dsk_silu_and_mul_params silu_params(void) {
    dsk_silu_and_mul_params p;
    memset(&p, 0, sizeof p);
    p.x = FAKE(0x1000000);
    p.y = FAKE(0x2000000);
    p.rows = 3;
    p.intermediate = 64;
    p.x_row_stride = 128;
    p.y_row_stride = 64;
    p.dtype = DSK_DTYPE_BF16;
    return p;
}

static void expect_silu(const char* name, const dsk_silu_and_mul_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_silu_and_mul", name, dsk_silu_and_mul(p), want, expected);
}

static void check_silu_and_mul(void) {
    dsk_silu_and_mul_params p;
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT, UNS = DSK_ERROR_UNSUPPORTED;
    expect_silu("p NULL", NULL, INV, "dsk_silu_and_mul: p must not be NULL");
    p = silu_params(); p.x = NULL;
    expect_silu("x NULL", &p, INV, "x must not be NULL");
    p = silu_params(); p.y = NULL;
    expect_silu("y NULL", &p, INV, "y must not be NULL");
    p = silu_params(); p.rows = 0;
    expect_silu("rows 0", &p, INV, "rows must be >= 1 (got 0)");
    p = silu_params(); p.intermediate = -1;
    expect_silu("intermediate -1", &p, INV, "intermediate must be >= 1 (got -1)");
    p = silu_params(); p.x_row_stride = 127;
    expect_silu("x_row_stride", &p, INV, "x_row_stride must be >= 2 * intermediate (got 127, intermediate 64)");
    p = silu_params(); p.y_row_stride = 63;
    expect_silu("y_row_stride", &p, INV, "y_row_stride must be >= intermediate (got 63, intermediate 64)");
    p = silu_params(); p.reserved = 2;
    expect_silu("reserved", &p, INV, "reserved must be 0 (got 2)");
    p = silu_params(); p.y = (char*)p.x + 2 * 128 * 2;
    expect_silu("y in x", &p, INV, "y must not overlap x");
    p = silu_params(); p.y = (char*)p.x - 3 * 64 * 2 + 2;  /* y's last row ends 2 bytes into x */
    expect_silu("y over x's start", &p, INV, "y must not overlap x");
    p = silu_params(); p.dtype = DSK_DTYPE_F16;
    expect_silu("dtype F16", &p, UNS, "dtype F16 (2) is not supported (F32 or BF16)");
    p = silu_params(); p.dtype = DSK_DTYPE_FP8_E4M3; p.rows = 0;
    expect_silu("rows 0 with FP8", &p, INV, "rows must be >= 1 (got 0)");
}

/* Would be valid with real buffers: bf16 k_pe, 64 columns at 512 of [5, 576] rows, into [5, 64]. */
static dsk_copy_columns_params copy_params(void) {
    dsk_copy_columns_params p;
    memset(&p, 0, sizeof p);
    p.x = FAKE(0x1000000);
    p.y = FAKE(0x2000000);
    p.rows = 5;
    p.width = 64;
    p.x_offset = 512;
    p.y_offset = 0;
    p.x_row_stride = 576;
    p.y_row_stride = 64;
    p.dtype = DSK_DTYPE_BF16;
    return p;
}

static void expect_copy(const char* name, const dsk_copy_columns_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_copy_columns", name, dsk_copy_columns(p), want, expected);
}

static void check_copy_columns(void) {
    dsk_copy_columns_params p;
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT, UNS = DSK_ERROR_UNSUPPORTED;
    expect_copy("p NULL", NULL, INV, "dsk_copy_columns: p must not be NULL");
    p = copy_params(); p.x = NULL;
    expect_copy("x NULL", &p, INV, "x must not be NULL");
    p = copy_params(); p.y = NULL;
    expect_copy("y NULL", &p, INV, "y must not be NULL");
    p = copy_params(); p.rows = 0;
    expect_copy("rows 0", &p, INV, "rows must be >= 1 (got 0)");
    p = copy_params(); p.width = 0;
    expect_copy("width 0", &p, INV, "width must be >= 1 (got 0)");
    p = copy_params(); p.x_offset = -1;
    expect_copy("x_offset -1", &p, INV, "x_offset must be >= 0 (got -1)");
    p = copy_params(); p.y_offset = -3;
    expect_copy("y_offset -3", &p, INV, "y_offset must be >= 0 (got -3)");
    p = copy_params(); p.x_row_stride = 575;
    expect_copy("x_row_stride", &p, INV, "x_row_stride must be >= x_offset + width (got 575, x_offset 512, width 64)");
    p = copy_params(); p.y_offset = 1;
    expect_copy("y_row_stride", &p, INV, "y_row_stride must be >= y_offset + width (got 64, y_offset 1, width 64)");
    p = copy_params(); p.reserved = 1;
    expect_copy("reserved", &p, INV, "reserved must be 0 (got 1)");
    p = copy_params(); p.y = (char*)p.x + 1024 * 2;
    expect_copy("y in x", &p, INV, "y's rows must not overlap x's");
    p = copy_params(); p.dtype = DSK_DTYPE_INT4;
    expect_copy("dtype INT4", &p, UNS, "dtype INT4 (4) is not supported (F32 or BF16)");
    p = copy_params(); p.dtype = 99; p.width = 0;
    expect_copy("width 0 with dtype 99", &p, INV, "width must be >= 1 (got 0)");
}

/* Would be valid with real buffers: bf16 z = x + y over 1000 elements. */
static dsk_elementwise_params ew_params(void) {
    dsk_elementwise_params p;
    memset(&p, 0, sizeof p);
    p.x = FAKE(0x1000000);
    p.y = FAKE(0x2000000);
    p.z = FAKE(0x3000000);
    p.n = 1000;
    p.op = DSK_ELEMENTWISE_ADD;
    p.dtype = DSK_DTYPE_BF16;
    return p;
}

static void expect_ew(const char* name, const dsk_elementwise_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_elementwise", name, dsk_elementwise(p), want, expected);
}

static void check_elementwise(void) {
    dsk_elementwise_params p;
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT, UNS = DSK_ERROR_UNSUPPORTED;
    expect_ew("p NULL", NULL, INV, "dsk_elementwise: p must not be NULL");
    p = ew_params(); p.op = 2;
    expect_ew("op 2", &p, INV, "op must be ADD (0) or SCALE (1) (got 2)");
    p = ew_params(); p.x = NULL;
    expect_ew("x NULL", &p, INV, "x must not be NULL");
    p = ew_params(); p.y = NULL;
    expect_ew("ADD y NULL", &p, INV, "y must not be NULL");
    p = ew_params(); p.op = DSK_ELEMENTWISE_SCALE; p.factor = 0.5f;
    expect_ew("SCALE with y", &p, INV, "y must be NULL for SCALE");
    p = ew_params(); p.z = NULL;
    expect_ew("z NULL", &p, INV, "z must not be NULL");
    p = ew_params(); p.n = 0;
    expect_ew("n 0", &p, INV, "n must be >= 1 (got 0)");
    p = ew_params(); p.op = DSK_ELEMENTWISE_SCALE; p.y = NULL; p.factor = INFINITY;
    expect_ew("SCALE factor inf", &p, INV, "factor must be finite for SCALE");
    p = ew_params(); p.op = DSK_ELEMENTWISE_SCALE; p.y = NULL; p.factor = NAN;
    expect_ew("SCALE factor NaN", &p, INV, "factor must be finite for SCALE");
    p = ew_params(); p.reserved = 7;
    expect_ew("reserved", &p, INV, "reserved must be 0 (got 7)");
    p = ew_params(); p.z = (char*)p.x + 2;
    expect_ew("z shifted over x", &p, INV, "z must be exactly x or not overlap it");
    p = ew_params(); p.z = (char*)p.y - 2;
    expect_ew("z shifted over y", &p, INV, "z must be exactly y or not overlap it");
    p = ew_params(); p.dtype = DSK_DTYPE_F16;
    expect_ew("dtype F16", &p, UNS, "dtype F16 (2) is not supported (F32 or BF16)");
    p = ew_params(); p.op = DSK_ELEMENTWISE_SCALE; p.y = NULL; p.factor = NAN; p.dtype = DSK_DTYPE_I32;
    expect_ew("factor NaN with I32", &p, INV, "factor must be finite for SCALE");
}

/* Would be valid with real buffers: bf16 [4, 256] rows, in place. */
static dsk_softmax_params softmax_params(void) {
    dsk_softmax_params p;
    memset(&p, 0, sizeof p);
    p.x = FAKE(0x1000000);
    p.y = FAKE(0x1000000);
    p.rows = 4;
    p.row_length = 256;
    p.dtype = DSK_DTYPE_BF16;
    return p;
}

static void expect_softmax(const char* name, const dsk_softmax_params* p, dsk_status want, const char* expected) {
    expect_op("dsk_softmax", name, dsk_softmax(p), want, expected);
}

static void check_softmax(void) {
    dsk_softmax_params p;
    const dsk_status INV = DSK_ERROR_INVALID_ARGUMENT, UNS = DSK_ERROR_UNSUPPORTED;
    expect_softmax("p NULL", NULL, INV, "dsk_softmax: p must not be NULL");
    p = softmax_params(); p.x = NULL;
    expect_softmax("x NULL", &p, INV, "x must not be NULL");
    p = softmax_params(); p.y = NULL;
    expect_softmax("y NULL", &p, INV, "y must not be NULL");
    p = softmax_params(); p.rows = -1;
    expect_softmax("rows -1", &p, INV, "rows must be >= 1 (got -1)");
    p = softmax_params(); p.row_length = 0;
    expect_softmax("row_length 0", &p, INV, "row_length must be >= 1 (got 0)");
    p = softmax_params(); p.reserved = 1;
    expect_softmax("reserved", &p, INV, "reserved must be 0 (got 1)");
    p = softmax_params(); p.y = (char*)p.x + 512;
    expect_softmax("y a row after x", &p, INV, "y must be exactly x or not overlap it");
    p = softmax_params(); p.dtype = DSK_DTYPE_FP8_E4M3;
    expect_softmax("dtype FP8", &p, UNS, "dtype FP8_E4M3 (3) is not supported (F32 or BF16)");
}

int main(void) {
    dsk_rms_norm_params p;

    /* Status entry points. */
    CHECK(dsk_abi_version() == DSK_ABI_VERSION, "dsk_abi_version() = %d, header says %d", (int)dsk_abi_version(),
          DSK_ABI_VERSION);
    CHECK(dsk_cuda_runtime_version() >= 11000, "dsk_cuda_runtime_version() = %d", (int)dsk_cuda_runtime_version());
    CHECK(dsk_last_error_message() != NULL && dsk_last_error_message()[0] == '\0',
          "dsk_last_error_message() before any failure should be \"\"");

    /* Null pointers. */
    expect("p NULL", NULL, DSK_ERROR_INVALID_ARGUMENT, "dsk_rms_norm: p must not be NULL");
    p = base_params(); p.x = NULL;
    expect("x NULL", &p, DSK_ERROR_INVALID_ARGUMENT, "x must not be NULL");
    p = base_params(); p.w = NULL;
    expect("w NULL", &p, DSK_ERROR_INVALID_ARGUMENT, "w must not be NULL");
    p = base_params(); p.y = NULL;
    expect("y NULL", &p, DSK_ERROR_INVALID_ARGUMENT, "y must not be NULL");
    p = fused_params(); p.r = NULL;
    expect("residual without r", &p, DSK_ERROR_INVALID_ARGUMENT, "residual and r must be both NULL or both set");
    p = base_params(); p.r = (void*)(uintptr_t)0x50000;
    expect("r without residual", &p, DSK_ERROR_INVALID_ARGUMENT, "residual and r must be both NULL or both set");

    /* Sizes. */
    p = base_params(); p.rows = 0;
    expect("rows 0", &p, DSK_ERROR_INVALID_ARGUMENT, "dsk_rms_norm: rows must be >= 1 (got 0)");
    p = base_params(); p.rows = -3;
    expect("rows -3", &p, DSK_ERROR_INVALID_ARGUMENT, "rows must be >= 1 (got -3)");
    p = base_params(); p.cols = 0;
    expect("cols 0", &p, DSK_ERROR_INVALID_ARGUMENT, "dsk_rms_norm: cols must be >= 1 (got 0)");
    p = fused_params(); p.cols = -1;
    expect("cols -1 fused", &p, DSK_ERROR_INVALID_ARGUMENT, "cols must be >= 1 (got -1)");

    /* Strides: every used stride >= cols. */
    p = base_params(); p.x_row_stride = 7;
    expect("x_row_stride", &p, DSK_ERROR_INVALID_ARGUMENT, "x_row_stride must be >= cols (got 7, cols 8)");
    p = base_params(); p.y_row_stride = 0;
    expect("y_row_stride", &p, DSK_ERROR_INVALID_ARGUMENT, "y_row_stride must be >= cols (got 0, cols 8)");
    p = fused_params(); p.residual_row_stride = 4;
    expect("residual_row_stride", &p, DSK_ERROR_INVALID_ARGUMENT,
           "residual_row_stride must be >= cols (got 4, cols 8)");
    p = fused_params(); p.r_row_stride = -8;
    expect("r_row_stride", &p, DSK_ERROR_INVALID_ARGUMENT, "r_row_stride must be >= cols (got -8, cols 8)");

    /* eps. */
    p = base_params(); p.eps = 0.0f;
    expect("eps 0", &p, DSK_ERROR_INVALID_ARGUMENT, "eps must be finite and > 0 (got 0)");
    p = base_params(); p.eps = -1e-6f;
    expect("eps negative", &p, DSK_ERROR_INVALID_ARGUMENT, "eps must be finite and > 0");
    p = base_params(); p.eps = NAN;
    expect("eps NaN", &p, DSK_ERROR_INVALID_ARGUMENT, "eps must be finite and > 0");
    p = base_params(); p.eps = INFINITY;
    expect("eps inf", &p, DSK_ERROR_INVALID_ARGUMENT, "eps must be finite and > 0");

    /* Aliasing: r and y must differ when fused. */
    p = fused_params(); p.r = p.y;
    expect("r == y", &p, DSK_ERROR_INVALID_ARGUMENT, "r and y must differ");

    /* dtypes. */
    p = base_params(); p.x_dtype = DSK_DTYPE_F16;
    expect("x F16", &p, DSK_ERROR_UNSUPPORTED, "x_dtype F16 (2) with w_dtype BF16 (1) is not supported");
    p = base_params(); p.w_dtype = DSK_DTYPE_FP8_E4M3;
    expect("w FP8", &p, DSK_ERROR_UNSUPPORTED, "x_dtype BF16 (1) with w_dtype FP8_E4M3 (3) is not supported");
    p = fused_params(); p.x_dtype = DSK_DTYPE_INT4; p.w_dtype = DSK_DTYPE_F32;
    expect("x INT4", &p, DSK_ERROR_UNSUPPORTED, "x_dtype INT4 (4) with w_dtype F32 (0) is not supported");
    p = base_params(); p.x_dtype = 99;
    expect("x unknown", &p, DSK_ERROR_UNSUPPORTED, "x_dtype unknown (99)");

    /* Arguments are checked before dtypes. */
    p = base_params(); p.x_dtype = DSK_DTYPE_F16; p.cols = 0;
    expect("cols 0 with F16", &p, DSK_ERROR_INVALID_ARGUMENT, "cols must be >= 1 (got 0)");

    /* The message stays until the next failure. */
    CHECK(strstr(dsk_last_error_message(), "cols must be >= 1") != NULL, "message did not persist: \"%s\"",
          dsk_last_error_message());

    /* The weight-reading ops: every request below is invalid or unsupported, so nothing launches. */
    check_linear();
    check_grouped_linear();
    check_embedding();
    check_dequantize();
    check_w8a8();
    check_grouped_w8a8();

    /* Attention (ABI 3): every request below is invalid or unsupported, so nothing launches. */
    check_rope();
    check_kv_append();
    check_paged_attention(0);
    check_paged_attention(1);

    /* Mixture of experts (ABI 4): every request below is invalid or unsupported, so nothing launches. */
    check_moe_route();
    check_moe_permute();
    check_moe_combine();
    /* The small activation ops (ABI 4): every request below is invalid or unsupported, so nothing launches. */
    check_silu_and_mul();
    check_copy_columns();
    check_elementwise();
    check_softmax();

    if (g_failures != 0) {
        fprintf(stderr, "abi_check: %d of %d checks failed\n", g_failures, g_checks);
        return 1;
    }
    printf("abi_check: all %d checks passed (ABI %d, CUDA runtime %d)\n", g_checks, (int)dsk_abi_version(),
           (int)dsk_cuda_runtime_version());
    return 0;
}

/*
 * abi_check.c: GPU-free checks of libdeepseek_kernels' C ABI.
 *
 *  - the header compiles as C11, and the struct layouts and enum values are the ones the C# bindings mirror;
 *  - dsk_abi_version() matches the header; the status entry points answer without a GPU;
 *  - every invalid dsk_rms_norm request is refused with the right status and a message naming the op and
 *    the field. Every request here is invalid, so nothing is ever launched: it runs the same with or
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
_Static_assert(sizeof(dsk_status) == 4 && sizeof(dsk_dtype) == 4, "enums are 32-bit");
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

    if (g_failures != 0) {
        fprintf(stderr, "abi_check: %d of %d checks failed\n", g_failures, g_checks);
        return 1;
    }
    printf("abi_check: all %d checks passed (ABI %d, CUDA runtime %d)\n", g_checks, (int)dsk_abi_version(),
           (int)dsk_cuda_runtime_version());
    return 0;
}

/*
 * deepseek_kernels.h: the C ABI of libdeepseek_kernels.so.
 *
 * Conventions, stated once:
 *  - Every entry point takes one params struct by pointer and returns a dsk_status (0 = success).
 *    On failure, dsk_last_error_message() gives a message that names the op and the fault; the message is
 *    per calling thread and stays valid until that thread's next call into the library.
 *  - Pointers are device pointers. Strides are in elements, int64. Sizes are int64.
 *  - `stream` is a CUstream / cudaStream_t (NULL = the legacy default stream). Kernels are launched on it
 *    asynchronously; launch errors are reported, execution errors surface at the caller's next sync.
 *  - dtypes are dsk_dtype values; every op says which it accepts.
 *  - The library never allocates device memory and never synchronises the stream.
 */
#ifndef DEEPSEEK_KERNELS_H
#define DEEPSEEK_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define DSK_API __declspec(dllexport)
#else
#define DSK_API __attribute__((visibility("default")))
#endif

#define DSK_ABI_VERSION 1

typedef enum dsk_status {
    DSK_SUCCESS = 0,
    DSK_ERROR_INVALID_ARGUMENT = 1, /* a params field is wrong: null pointer, bad size, bad stride, ... */
    DSK_ERROR_UNSUPPORTED = 2,      /* a valid request this build does not implement (dtype pair, shape) */
    DSK_ERROR_CUDA = 3,             /* the CUDA runtime reported an error; the message has its name */
} dsk_status;

typedef enum dsk_dtype {
    DSK_DTYPE_F32 = 0,
    DSK_DTYPE_BF16 = 1,
    DSK_DTYPE_F16 = 2,
    DSK_DTYPE_FP8_E4M3 = 3,
    DSK_DTYPE_INT4 = 4, /* two signed 4-bit values per byte, low nibble first */
    DSK_DTYPE_I32 = 5,  /* int32: token ids, positions, expert ids and offsets */
} dsk_dtype;

/* The message of this thread's last failed call ("" if none), e.g. "dsk_rms_norm: cols must be >= 1 (got 0)".
 * Never NULL. A successful call leaves it unchanged; read it only right after a call that failed. */
DSK_API const char* dsk_last_error_message(void);

/* DSK_ABI_VERSION of the library, to check against the header the caller was built with. */
DSK_API int32_t dsk_abi_version(void);

/* CUDA runtime version the library was built with (e.g. 13000 for 13.0). */
DSK_API int32_t dsk_cuda_runtime_version(void);

/*
 * RMSNorm, with an optional fused residual add. Per row of `cols` elements:
 *
 *   residual == NULL:  y = x / sqrt(mean(x^2) + eps) * w
 *   residual != NULL:  r = round_T(x + residual);  y = r / sqrt(mean(r^2) + eps) * w;  writes r and y
 *
 * Accumulation is fp32; y is rounded once to x's dtype. With the fused add, the norm is taken over the
 * rounded r (what the next layer's residual stream holds), as the Hugging Face models do.
 * x, residual, r and y share `x_dtype` (F32 or BF16); w is F32 or BF16 (all four pairs); any other pair
 * is DSK_ERROR_UNSUPPORTED.
 * Shapes: x, y, residual, r: [rows, cols] with their own row strides (>= cols); w: [cols].
 * rows >= 1, cols >= 1, eps finite and > 0; x, w, y non-NULL; residual and r both NULL or both set.
 * The row strides of residual and r are ignored when residual is NULL.
 * In place: y may equal x; r may equal x or residual; y may equal residual; r and y must differ.
 * Other overlaps (partial, or between rows) are undefined.
 * The fast path (16-byte accesses, x read once) needs every pointer (w included) 16-byte aligned, cols and
 * (when rows > 1) the row strides multiples of 16 bytes / sizeof(x_dtype), and cols <= 4096 such vectors
 * (32768 BF16 or 16384 F32); other requests take a scalar path with the same per-element math (results may
 * differ in the last bit through the order of the fp32 sum of squares).
 */
typedef struct dsk_rms_norm_params {
    const void* x;         /* [rows, cols], x_dtype */
    const void* residual;  /* [rows, cols], x_dtype; NULL for plain RMSNorm */
    const void* w;         /* [cols], w_dtype */
    void* y;               /* [rows, cols], x_dtype: the normalised output */
    void* r;               /* [rows, cols], x_dtype: x + residual; must be NULL when residual is NULL */
    int64_t rows;
    int64_t cols;
    int64_t x_row_stride;
    int64_t residual_row_stride;
    int64_t y_row_stride;
    int64_t r_row_stride;
    float eps;
    int32_t x_dtype;
    int32_t w_dtype;
    void* stream;
} dsk_rms_norm_params;

DSK_API dsk_status dsk_rms_norm(const dsk_rms_norm_params* p);

#ifdef __cplusplus
}
#endif

#endif /* DEEPSEEK_KERNELS_H */

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

#define DSK_ABI_VERSION 4

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
    DSK_DTYPE_INT4 = 4, /* two unsigned 4-bit codes (0..15) per byte, element 2i in the low nibble of byte i */
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

/* ---------------------------------------------------------------------------------------------------------
 * Weights. A dsk_weight is a stack of `count` matrices of [rows = out features, cols = in features], row-major,
 * dense (matrix m, row r, column c at (m * rows + r) * cols + c), in one of three schemes:
 *
 *   DSK_WEIGHT_DENSE       dtype F32 or BF16; scale and zero NULL.
 *   DSK_WEIGHT_FP8_BLOCK   dtype FP8_E4M3 (DeepSeek-V3's checkpoints): w[m, r, c] =
 *                          bf16((float)fp8[m, r, c] * scale[m, r / block_rows, c / block_cols]), scale f32 of
 *                          [count, ceil(rows / block_rows), ceil(cols / block_cols)] (ragged last blocks have their own).
 *   DSK_WEIGHT_INT4_GROUP  dtype INT4: w[m, r, c] = bf16(((float)q - (float)zero[m, r, g]) * (float)scale[m, r, g]),
 *                          g = c / group_size, q the unsigned code of element [m, r, c] (data: [count, rows, cols / 2]
 *                          bytes, element 2i in the low nibble of byte i of its row); scale and zero bf16 of
 *                          [count, rows, cols / group_size]. group_size is a positive multiple of 32 dividing cols.
 *
 * Every scheme dequantises to exactly the value above (a bf16 for FP8 and INT4), so a kernel may dequantise to bf16
 * and multiply on bf16 tensor cores without changing the products; only the order of the fp32 sums differs.
 */
typedef enum dsk_weight_scheme {
    DSK_WEIGHT_DENSE = 0,
    DSK_WEIGHT_FP8_BLOCK = 1,
    DSK_WEIGHT_INT4_GROUP = 2,
} dsk_weight_scheme;

typedef struct dsk_weight {
    const void* data;    /* dense F32/BF16 elements, FP8 bytes, or packed INT4 codes */
    const void* scale;   /* FP8: f32 [count, ceil(rows/block_rows), ceil(cols/block_cols)]; INT4: bf16 [count, rows, cols/group_size]; else NULL */
    const void* zero;    /* INT4: bf16 [count, rows, cols/group_size]; else NULL */
    int64_t rows;        /* out features of each matrix (>= 1) */
    int64_t cols;        /* in features of each matrix (>= 1) */
    int64_t count;       /* matrices in the stack (>= 1) */
    int32_t scheme;      /* dsk_weight_scheme */
    int32_t dtype;       /* dsk_dtype: F32 or BF16 (dense), FP8_E4M3, INT4 */
    int32_t block_rows;  /* FP8: rows per scale block (DeepSeek-V3: 128); else 0 */
    int32_t block_cols;  /* FP8: columns per scale block (128); else 0 */
    int32_t group_size;  /* INT4: in features per group (128); else 0 */
    int32_t reserved;    /* 0 */
} dsk_weight;

/* Which kernel family dsk_linear uses. AUTO picks by shape, dtype and the GPU; the others force one (for tests and
 * benchmarks) and return DSK_ERROR_UNSUPPORTED where that family cannot run the request. */
typedef enum dsk_linear_path {
    DSK_LINEAR_PATH_AUTO = 0,
    DSK_LINEAR_PATH_SIMT = 1, /* CUDA cores: weight-streaming GEMV / skinny GEMM (decode), any dtype, layout, shape */
    DSK_LINEAR_PATH_MMA = 2,  /* tensor cores (bf16, fp32 accumulation): bf16 activations, prefill; Hopper's warpgroup MMA
                               * (wgmma) on a cc 9.0 GPU when the library was built for sm_90a, else mma.sync */
    DSK_LINEAR_PATH_MMA_SYNC = 3, /* the same tensor-core kernel on mma.sync only, on every sm_80+ GPU */
} dsk_linear_path;

/* What dsk_linear does with each fp32 dot product acc[b, i, n] (after the bias) before the one rounding to y_dtype. */
typedef enum dsk_linear_epilogue {
    DSK_EPILOGUE_NONE = 0,      /* y[b, i, n] = acc[b, i, n]                                            n < out */
    DSK_EPILOGUE_SILU_MUL = 1,  /* y[b, i, j] = silu(acc[b, i, j]) * acc[b, i, half + j], half = out / 2, j < half:
                                 * the fused gate|up weight of an MLP; y has half columns; out must be even */
    DSK_EPILOGUE_ADD = 2,       /* y[b, i, n] = round(acc[b, i, n] + residual[b, i, n]): residual may equal y exactly */
} dsk_linear_epilogue;

/*
 * Linear layer, D = X @ W^T:   acc[b, i, n] = sum_k x[b, i, k] * w[b', n, k]  (+ bias[n])
 * for b < batch, i < m, n < out, with b' = b when w.count == batch (HeadwiseLinear: one matrix per head), else
 * b' = 0 (w.count must then be 1). With transpose_w, w[b', n, k] reads the stored element [b', k, n] instead
 * (in = w.rows, out = w.cols; MLA's W_UK^T); otherwise in = w.cols, out = w.rows.
 * The dot products accumulate in fp32 in an unspecified order; y is rounded once to y_dtype after the epilogue.
 * x is x_dtype, y and residual y_dtype, each F32 or BF16 (a bf16 layer may write f32 logits); bias is F32 [out] or NULL.
 * Strides are in elements: x [batch, m, in] (x_batch_stride, x_row_stride, then 1), y and residual likewise.
 * m >= 1, batch >= 1, every row stride >= its row's width; y must not overlap x, w, bias (residual may be y exactly).
 * SIMT takes every request; MMA needs x_dtype BF16, a BF16/FP8_BLOCK/INT4_GROUP weight, transpose_w 0, in a multiple
 * of 8 (16 for FP8), x and w 16-byte aligned with row strides that keep every row so (y: any alignment), and an sm_80+ GPU.
 */
typedef struct dsk_linear_params {
    const void* x;           /* [batch, m, in], x_dtype */
    dsk_weight w;            /* count 1 or batch */
    const float* bias;       /* [out] f32, or NULL */
    const void* residual;    /* [batch, m, out], y_dtype, for DSK_EPILOGUE_ADD; else NULL */
    void* y;                 /* [batch, m, out] (out / 2 with SILU_MUL), y_dtype */
    int64_t m;               /* rows (tokens) per batch entry */
    int64_t batch;           /* batch entries (heads); 1 for a plain linear layer */
    int64_t x_row_stride;
    int64_t x_batch_stride;
    int64_t y_row_stride;
    int64_t y_batch_stride;
    int64_t residual_row_stride;
    int64_t residual_batch_stride;
    int32_t x_dtype;         /* F32 or BF16 */
    int32_t transpose_w;     /* 0 or 1 */
    int32_t epilogue;        /* dsk_linear_epilogue */
    int32_t path;            /* dsk_linear_path */
    int32_t y_dtype;         /* F32 or BF16: y and residual */
    int32_t reserved;        /* 0 */
    void* stream;
} dsk_linear_params;

DSK_API dsk_status dsk_linear(const dsk_linear_params* p);

/*
 * Embedding (row gather): y[i, :] = table[ids[i], :] for i < n, table a dense F32/BF16 or INT4 dsk_weight with count 1
 * (INT4 rows dequantised to bf16 as above), widened exactly and rounded once to y_dtype (F32 or BF16).
 * The ids are device data: an id outside [0, table.rows) is skipped (its row of y is left as it was) and recorded in
 * `error_word` (8 int32 in device memory): the first such id claims word[0] with atomicCAS(0 -> error_site) and then
 * writes word[1] = i, word[2] = the id, word[3] = table.rows, i being the lowest index of a bad id (deterministic);
 * the caller reads the word at its next synchronisation.
 */
typedef struct dsk_embedding_params {
    const int32_t* ids;      /* [n] */
    dsk_weight table;        /* [rows = vocab, cols = hidden], count 1 */
    void* y;                 /* [n, hidden], rows y_row_stride apart */
    int32_t* error_word;     /* 8 int32, device memory; must not be NULL */
    int64_t n;
    int64_t y_row_stride;
    int32_t y_dtype;         /* F32 or BF16 */
    int32_t error_site;      /* the value written to word[0] (> 0) */
    void* stream;
} dsk_embedding_params;

DSK_API dsk_status dsk_embedding(const dsk_embedding_params* p);

/* FP8 dequantisation: y[m, r, c] = the value of w (an FP8_BLOCK weight) as above, as F32 [count, rows, cols]. */
typedef struct dsk_dequantize_fp8_params {
    dsk_weight w;
    float* y;
    void* stream;
} dsk_dequantize_fp8_params;

DSK_API dsk_status dsk_dequantize_fp8(const dsk_dequantize_fp8_params* p);

/*
 * Per-token FP8 activation quantisation (W8A8 prefill, DeepGEMM's 1x128 scaling), per row i and block j of 128 columns:
 *   amax = max_k |x[i, k]| over the block (k < cols; a NaN is the maximum);  s = amax == 0 ? 1 : amax / 448 (IEEE division)
 *   q[i, k] = fp8_e4m3_rn(x[i, k] / s)  (saturating at +-448);   scale[i, j] = s
 * x: [m, cols] act_dtype (F32 or BF16), rows x_row_stride apart; q: [m, cols] FP8 dense; scale: f32 [m, ceil(cols / 128)].
 * A non-finite x makes its block's scale non-finite (NaN propagates; it is not clamped away). A block whose amax is
 * below 448 * 2^-149 (about 6e-43) gets s = 0 (the division underflows) and undefined codes: such blocks are not rescued.
 */
typedef struct dsk_quantize_fp8_act_params {
    const void* x;
    void* q;
    float* scale;
    int64_t m;
    int64_t cols;
    int64_t x_row_stride;
    int32_t act_dtype;
    int32_t reserved;
    void* stream;
} dsk_quantize_fp8_act_params;

DSK_API dsk_status dsk_quantize_fp8_act(const dsk_quantize_fp8_act_params* p);

/*
 * W8A8 FP8 linear (prefill): y[i, n] = round_act( sum_j xs[i, j] * ws[n / 128, j] * (sum_{k in block j} qx[i, k] * qw[n, k]) + bias[n] )
 * with qx, xs from dsk_quantize_fp8_act (blocks of 128 along k) and w an FP8_BLOCK weight with 128 x 128 blocks,
 * count 1; the inner sums over one 128-wide block in fp32 (exact products of two e4m3 values), the block
 * results scaled and added in fp32. Two kernel families (`path`):
 *   DSK_W8A8_PATH_WGMMA: Hopper's warpgroup FP8 tensor cores (wgmma.mma_async m64n128k32 e4m3, the FP8 rate), on a
 *     cc 9.0 GPU when the library was built for sm_90a (CMAKE_CUDA_ARCHITECTURES with 90a, CUDA 12+); else refused
 *     (DSK_ERROR_UNSUPPORTED).
 *   DSK_W8A8_PATH_MMA_SYNC: mma.sync, any sm_80+ GPU: e4m3 mma.sync where the GPU (sm_89+) and the toolkit (CUDA 12.4+,
 *     CMake option DSK_FP8_MMA) allow, else e4m3 widened to bf16 exactly in registers on bf16 tensor cores. Either way
 *     at most the bf16 rate on Hopper, whose ptxas lowers FP8 mma.sync to an f16 unpack and HMMA (seen in the SASS of a
 *     CUDA 12.4 sm_90 build): only wgmma reaches Hopper's FP8 rate.
 *   DSK_W8A8_PATH_AUTO (0): WGMMA where it can run, else MMA_SYNC.
 * in = w.cols must be a multiple of 16; y [m, w.rows] rows y_row_stride apart, act_dtype F32 or BF16.
 */
typedef enum dsk_w8a8_path {
    DSK_W8A8_PATH_AUTO = 0,
    DSK_W8A8_PATH_MMA_SYNC = 1,
    DSK_W8A8_PATH_WGMMA = 2,
} dsk_w8a8_path;

typedef struct dsk_linear_fp8_w8a8_params {
    const void* qx;          /* [m, in] FP8, dense rows */
    const float* x_scale;    /* [m, ceil(in / 128)] */
    dsk_weight w;            /* FP8_BLOCK, 128 x 128, count 1 */
    const float* bias;       /* [out] or NULL */
    void* y;
    int64_t m;
    int64_t y_row_stride;
    int32_t act_dtype;       /* of y */
    int32_t path;            /* dsk_w8a8_path (0 = AUTO) */
    void* stream;
} dsk_linear_fp8_w8a8_params;

DSK_API dsk_status dsk_linear_fp8_w8a8(const dsk_linear_fp8_w8a8_params* p);

/*
 * Grouped W8A8 FP8 linear (the MoE experts' prefill; DeepGEMM's grouped "contiguous" GEMM): for every expert e < w.count
 * and row r in expert_offsets[e] .. expert_offsets[e + 1], y[r, n] is dsk_linear_fp8_w8a8's formula with matrix e of
 * the stack (its FP8 values at e * out * in bytes, its scales at e * ceil(out / 128) * ceil(in / 128) floats) and no
 * bias. Rows outside expert_offsets[0] .. expert_offsets[w.count] are not written. No padding of the rows is needed:
 * each 128-row tile of the kernels lies inside one expert's rows. The offsets are checked as dsk_grouped_linear checks
 * them (each in [0, m], bound m + 1; then not decreasing, bound count + 1; the first bad one reported through the error
 * word); when one is bad nothing but the error word is written. The kernel families and `path` as dsk_linear_fp8_w8a8's;
 * the grid depends on m and w.count only (CUDA-graph capturable). y must not overlap expert_offsets or error_word.
 */
typedef struct dsk_grouped_linear_fp8_w8a8_params {
    const void* qx;                /* [m, in] FP8, dense rows, grouped by expert */
    const float* x_scale;          /* [m, ceil(in / 128)] */
    const int32_t* expert_offsets; /* [w.count + 1] */
    dsk_weight w;                  /* FP8_BLOCK, 128 x 128, count = experts, [out, in] each */
    void* y;                       /* [m, out], rows y_row_stride apart */
    int32_t* error_word;           /* 8 int32; must not be NULL */
    int64_t m;                     /* >= 1, < 2^31 */
    int64_t y_row_stride;          /* >= out */
    int32_t act_dtype;             /* of y: F32 or BF16 */
    int32_t path;                  /* dsk_w8a8_path (0 = AUTO) */
    int32_t error_site;            /* > 0 */
    int32_t reserved;              /* 0 */
    void* stream;
} dsk_grouped_linear_fp8_w8a8_params;

DSK_API dsk_status dsk_grouped_linear_fp8_w8a8(const dsk_grouped_linear_fp8_w8a8_params* p);

/* ---------------------------------------------------------------------------------------------------------
 * Attention (ABI 3). Device-held indices (positions, slots, block tables, lengths, query offsets) are checked where
 * they are read: a bad one is skipped and recorded in `error_word` (8 int32 in device memory) as dsk_embedding does:
 * word[0] claimed with atomicCAS(0 -> error_site), then word[1] = the flat index of the bad value in its operand,
 * word[2] = the value, word[3] = the bound, word[4] = 1 when the value is in range but out of order (else 0). When
 * several values are bad, the one reported is the first in the order each op states (deterministic), and an error
 * recorded before the call is kept.
 */

/* Which pairs of a head's rotary part rotate together. */
typedef enum dsk_rope_layout {
    DSK_ROPE_HALF_SPLIT = 0,  /* (v[i], v[i + d/2]), i < d/2: Llama, Qwen2 (q * cos + rotate_half(q) * sin) */
    DSK_ROPE_INTERLEAVED = 1, /* (v[2i], v[2i + 1]): DeepSeek's complex form */
} dsk_rope_layout;

/*
 * Rotary position embedding, in place. x: [tokens, heads, head_stride] x_dtype (F32 or BF16), token rows
 * x_row_stride elements apart (>= heads * head_stride), heads contiguous. The rotary part of each head is elements
 * [rope_offset, rope_offset + rotary_dim); with d = rotary_dim (even, >= 2), c = cos[positions[t], i] and
 * s = sin[positions[t], i] (tables f32 [max_positions, d / 2], the attention factor folded in), each pair (a, b) of
 * the layout with angle index i becomes, in fp32, (a * c - b * s, b * c + a * s), rounded once to x_dtype.
 * A position outside [0, max_positions) leaves its token as it was; the reported one is the lowest t.
 * x must not overlap cos, sin, positions or the error word.
 */
typedef struct dsk_rope_params {
    void* x;
    const int32_t* positions;  /* [tokens] */
    const float* cos;          /* [max_positions, rotary_dim / 2] */
    const float* sin;          /* [max_positions, rotary_dim / 2] */
    int32_t* error_word;       /* 8 int32; must not be NULL */
    int64_t tokens;            /* >= 1 */
    int64_t heads;             /* >= 1 */
    int64_t head_stride;       /* elements per head, >= rope_offset + rotary_dim */
    int64_t x_row_stride;      /* elements per token row, >= heads * head_stride */
    int64_t rope_offset;       /* >= 0 */
    int64_t rotary_dim;        /* even, >= 2 */
    int64_t max_positions;     /* >= 1, < 2^31 */
    int32_t x_dtype;           /* F32 or BF16 */
    int32_t layout;            /* dsk_rope_layout */
    int32_t error_site;        /* > 0 */
    int32_t reserved;          /* 0 */
    void* stream;
} dsk_rope_params;

DSK_API dsk_status dsk_rope(const dsk_rope_params* p);

/*
 * KV append (vLLM's reshape_and_cache): for every token t with slot = slot_mapping[t],
 *   key_pages[slot, :] = keys[t, :]   and, when values is set,   value_pages[slot, :] = values[t, :]
 * widened exactly and rounded once to the page dtype (bf16: nearest even; a row already of the page dtype is copied
 * bit for bit). A pool layer is [pages, page_size, width] contiguous, i.e. `slots` = pages * page_size rows of width
 * elements. Rows of keys / values are their row strides apart (>= width). Dtypes: rows and pages F32 or BF16, each
 * of the four independently. A slot outside [0, slots) is skipped (neither keys nor values written for that token);
 * the reported one is the lowest t. Slots should be distinct: for a repeated slot, which token's row lands is
 * unspecified. Pages must not overlap keys, values, slot_mapping, each other or the error word.
 * MLA's latent cache: keys = the rows [kv_lora_rank | roped k_pe], values NULL (value_pages NULL, value_width 0).
 */
typedef struct dsk_kv_append_params {
    const void* keys;          /* [tokens, key_width] key_dtype */
    const void* values;        /* [tokens, value_width] value_dtype, or NULL */
    const int32_t* slot_mapping; /* [tokens] */
    void* key_pages;           /* [slots, key_width] key_page_dtype */
    void* value_pages;         /* [slots, value_width] value_page_dtype; NULL exactly when values is */
    int32_t* error_word;       /* 8 int32; must not be NULL */
    int64_t tokens;            /* >= 1 */
    int64_t slots;             /* pages * page_size, >= 1, < 2^31 */
    int64_t key_width;         /* >= 1 */
    int64_t value_width;       /* >= 1 with values, else 0 */
    int64_t keys_row_stride;   /* >= key_width */
    int64_t values_row_stride; /* >= value_width (ignored without values) */
    int32_t key_dtype;
    int32_t value_dtype;
    int32_t key_page_dtype;
    int32_t value_page_dtype;
    int32_t error_site;        /* > 0 */
    int32_t reserved;          /* 0 */
    void* stream;
} dsk_kv_append_params;

DSK_API dsk_status dsk_kv_append(const dsk_kv_append_params* p);

/* Which kernel family paged attention uses. AUTO picks by shape, dtype and GPU; the others force one (tests,
 * benchmarks) and return DSK_ERROR_UNSUPPORTED where that family cannot run the request. */
typedef enum dsk_attention_path {
    DSK_ATTENTION_PATH_AUTO = 0,
    DSK_ATTENTION_PATH_SIMT = 1,  /* CUDA cores, split-K over the context + combine (FlashDecoding): every request */
    DSK_ATTENTION_PATH_MMA = 2,   /* tensor cores (bf16, fp32 accumulation): bf16 pages; prefill, MLA. MLA runs on Hopper's
                                   * warpgroup MMA (wgmma) on a cc 9.0 GPU when the library was built for sm_90a, else (and
                                   * GQA always) on mma.sync */
    DSK_ATTENTION_PATH_MMA_SYNC = 3, /* the same tensor-core families on mma.sync only, on every sm_80+ GPU */
} dsk_attention_path;

/*
 * Paged causal attention of a batch of sequences (prefill chunks and decode tokens mixed), over a paged KV cache:
 * for sequence b with n = query_starts[b + 1] - query_starts[b] queries and L = sequence_lengths[b] keys (the
 * step's new keys already appended), its i-th query (row query_starts[b] + i of q, at position p = L - n + i) and
 * query head h (kv head h / (q_heads / kv_heads)):
 *   s[j] = scale * (q[row, h, :] . K(b, j, kvh))     for j = 0 .. p          (the causal mask)
 *   out[row, h, :] = sum_j softmax(s)[j] * V(b, j, kvh)                     (fp32 softmax, max subtracted)
 * with K(b, j, kvh) = key_pages[block_table[b, j / page_size], j % page_size, kvh * head_dim : + head_dim] and
 * V likewise in value_pages (v_head_dim wide). Accumulation is fp32; out is rounded once to out_dtype. The tensor-core
 * path rounds q (and the softmax weights) to bf16 before multiplying by bf16 pages: about 2^-8 relative per term.
 *
 * dsk_paged_mla_attention: DeepSeek's MLA over a latent cache as FlashMLA runs it (queries absorbed through W_UK):
 * kv_heads must be 1, value_pages NULL, and V(b, j) = the first v_head_dim (kv_lora_rank, 512) elements of the key
 * row K(b, j) (head_dim = kv_lora_rank + rope, 576); any number of query heads; out stays in latent space.
 *
 * Device-held metadata, checked in this order, the first bad value reported: query_starts[0 .. batch] each in
 * [0, tokens] (bound tokens + 1), then not decreasing (out of order, bound batch + 1); then per sequence b in order:
 * its length L with n <= L <= max_pages * page_size (index b, bound max_pages * page_size + 1), then, when n > 0, its
 * block-table entries block_table[b, 0 .. ceil(L / page_size) - 1] in [0, pages) (flat index b * max_pages + j; the
 * table of a sequence without queries is not read). A sequence with a
 * bad value is skipped (its rows of out are undefined); entries past a sequence's pages are never read, and neither are
 * keys past L (pages may hold NaN there). Query rows outside every sequence's range are not written.
 *
 * Shapes: q [tokens, q_heads, head_dim] q_dtype, out [tokens, q_heads, v_head_dim] out_dtype, both contiguous;
 * pages [pages, page_size, kv_heads * head_dim] (keys) and [pages, page_size, kv_heads * v_head_dim] (values),
 * page_dtype (F32 or BF16), contiguous; q_dtype and out_dtype F32 or BF16. q_heads a multiple of kv_heads.
 * Split-K needs scratch: call the matching *_workspace_size with the same params (pointers may be NULL there) and
 * pass that many bytes of device memory (16-byte aligned) as `workspace`; it depends only on the sizes, dtypes, path,
 * max_splits and the current GPU (never on device data), so one allocation serves every step of a batch shape on that
 * GPU (CUDA-graph capturable). The CUDA-core family takes head_dim and v_head_dim up to 768; a request no family runs
 * is DSK_ERROR_UNSUPPORTED. out must not overlap
 * q, the pages, the metadata, the workspace or the error word.
 */
typedef struct dsk_paged_attention_params {
    const void* q;
    const void* key_pages;
    const void* value_pages;       /* NULL for MLA */
    const int32_t* block_table;    /* [batch, max_pages] */
    const int32_t* sequence_lengths; /* [batch] */
    const int32_t* query_starts;   /* [batch + 1] */
    void* out;
    void* workspace;               /* workspace_bytes of device memory, or NULL when 0 */
    int32_t* error_word;           /* 8 int32; must not be NULL */
    int64_t workspace_bytes;
    int64_t tokens;                /* >= 1 */
    int64_t batch;                 /* >= 1 */
    int64_t max_pages;             /* >= 1 */
    int64_t pages;                 /* >= 1; pages * page_size < 2^31 */
    int64_t page_size;             /* >= 1 */
    int64_t q_heads;               /* >= 1 */
    int64_t kv_heads;              /* >= 1 (MLA: 1) */
    int64_t head_dim;              /* >= 1 */
    int64_t v_head_dim;            /* >= 1 (MLA: <= head_dim) */
    float scale;                   /* finite */
    int32_t q_dtype;
    int32_t page_dtype;
    int32_t out_dtype;
    int32_t path;                  /* dsk_attention_path */
    int32_t max_splits;            /* most context splits per sequence (>= 1), or 0 for the library's choice */
    int32_t error_site_block_table;   /* > 0 */
    int32_t error_site_lengths;       /* > 0 */
    int32_t error_site_query_starts;  /* > 0 */
    int32_t reserved;              /* 0 */
    void* stream;
} dsk_paged_attention_params;

DSK_API dsk_status dsk_paged_attention_workspace_size(const dsk_paged_attention_params* p, int64_t* bytes);
DSK_API dsk_status dsk_paged_attention(const dsk_paged_attention_params* p);
DSK_API dsk_status dsk_paged_mla_attention_workspace_size(const dsk_paged_attention_params* p, int64_t* bytes);
DSK_API dsk_status dsk_paged_mla_attention(const dsk_paged_attention_params* p);

/* ---------------------------------------------------------------------------------------------------------
 * Small activation ops (ABI 4): what a forward pass needs between the big ops. x, y (and z) share `dtype` (F32 or
 * BF16); the math is fp32 and each output is rounded once to dtype. Rows are their row strides apart (elements).
 */

/* SwiGLU's gate: y[r, i] = silu(x[r, i]) * x[r, intermediate + i], silu(g) = g / (1 + exp(-g)), i < intermediate.
 * x [rows, 2 * intermediate], y [rows, intermediate]; y must not overlap x. */
typedef struct dsk_silu_and_mul_params {
    const void* x;
    void* y;
    int64_t rows;              /* >= 1 */
    int64_t intermediate;      /* >= 1 */
    int64_t x_row_stride;      /* >= 2 * intermediate */
    int64_t y_row_stride;      /* >= intermediate */
    int32_t dtype;             /* F32 or BF16 */
    int32_t reserved;          /* 0 */
    void* stream;
} dsk_silu_and_mul_params;

DSK_API dsk_status dsk_silu_and_mul(const dsk_silu_and_mul_params* p);

/* Column block copy: y[r, y_offset + c] = x[r, x_offset + c] for r < rows, c < width (bit for bit); every other element
 * of y is left as it is. Rows x_row_stride / y_row_stride apart (>= offset + width); y's rows must not overlap x's. */
typedef struct dsk_copy_columns_params {
    const void* x;
    void* y;
    int64_t rows;              /* >= 1 */
    int64_t width;             /* >= 1 */
    int64_t x_offset;          /* >= 0 */
    int64_t y_offset;          /* >= 0 */
    int64_t x_row_stride;      /* >= x_offset + width */
    int64_t y_row_stride;      /* >= y_offset + width */
    int32_t dtype;             /* F32 or BF16 */
    int32_t reserved;          /* 0 */
    void* stream;
} dsk_copy_columns_params;

DSK_API dsk_status dsk_copy_columns(const dsk_copy_columns_params* p);

/* Elementwise, over n contiguous elements: DSK_ELEMENTWISE_ADD z = x + y; DSK_ELEMENTWISE_SCALE z = x * factor (y NULL).
 * z may be exactly x or y (in place); other overlaps are undefined. */
typedef enum dsk_elementwise_op {
    DSK_ELEMENTWISE_ADD = 0,
    DSK_ELEMENTWISE_SCALE = 1,
} dsk_elementwise_op;

typedef struct dsk_elementwise_params {
    const void* x;
    const void* y;             /* ADD: [n]; SCALE: NULL */
    void* z;
    int64_t n;                 /* >= 1 */
    float factor;              /* SCALE: finite; ADD: ignored */
    int32_t op;                /* dsk_elementwise_op */
    int32_t dtype;             /* F32 or BF16 */
    int32_t reserved;          /* 0 */
    void* stream;
} dsk_elementwise_params;

DSK_API dsk_status dsk_elementwise(const dsk_elementwise_params* p);

/* Row softmax: y[r, i] = exp(x[r, i] - max_r) / sum_j exp(x[r, j] - max_r) in fp32, rows of row_length, contiguous;
 * y may be exactly x. */
typedef struct dsk_softmax_params {
    const void* x;
    void* y;
    int64_t rows;              /* >= 1 */
    int64_t row_length;        /* >= 1 */
    int32_t dtype;             /* F32 or BF16 */
    int32_t reserved;          /* 0 */
    void* stream;
} dsk_softmax_params;

DSK_API dsk_status dsk_softmax(const dsk_softmax_params* p);

/* ---------------------------------------------------------------------------------------------------------
 * Mixture of experts (ABI 4). A token t routed to top_k experts owns the slots s = t * top_k + k. dsk_moe_permute
 * groups the slots by expert (a stable counting sort: expert e's rows are expert_offsets[e] .. expert_offsets[e + 1],
 * in ascending slot order), dsk_grouped_linear runs each expert's matrix over its rows, dsk_moe_combine gathers each
 * token's rows back (slot_rows: slot -> row, the inverse of the grouping) and sums them weighted. No padding: the
 * grouped GEMM finds its tiles from the offsets on the device. Device-held ids, offsets and rows are checked where read
 * and reported through `error_word` as the attention ops do (word[4] = 1 for a value in range but out of order).
 * Every launch's grid depends only on the sizes in the params (never on device data): CUDA-graph capturable.
 */

typedef enum dsk_moe_scoring {
    DSK_MOE_SCORING_SOFTMAX = 0,  /* softmax over all experts, fp32, maximum subtracted (DeepSeek-V2) */
    DSK_MOE_SCORING_SIGMOID = 1,  /* 1 / (1 + exp(-logit)) (DeepSeek-V3) */
} dsk_moe_scoring;

typedef enum dsk_moe_method {
    DSK_MOE_METHOD_GREEDY = 0,                /* top_k over all experts */
    DSK_MOE_METHOD_GROUP_LIMITED_GREEDY = 1,  /* group score = its best choice score (DeepSeek-V2) */
    DSK_MOE_METHOD_NOAUX_TC = 2,              /* group score = sum of its two best choice scores (DeepSeek-V3) */
} dsk_moe_method;

/*
 * Routing, one kernel, per token t (the op doc of Ops.MoeRoute, stated once more):
 *   scores = softmax(logits[t]) or sigmoid(logits[t]);  choice = scores + bias (bias NULL: choice = scores)
 *   grouped methods: experts split into `groups` consecutive groups; group score = max (GROUP_LIMITED_GREEDY) or the sum
 *     of the two largest (NOAUX_TC) of its choice values; the top_k_groups best groups are kept, every other expert's
 *     choice set to 0
 *   expert_ids[t, :] = the top_k experts of largest choice, in descending order; ties go to the lower index (groups are
 *     ranked the same way); NaN counts as larger than any number
 *   expert_weights[t, k] = scores[expert_ids[t, k]]; if normalize: divided by (their sum + 1e-20); times
 *     routed_scaling_factor
 * logits [tokens, experts] F32 or BF16, contiguous. experts <= 1024 in this build (DSK_ERROR_UNSUPPORTED beyond);
 * grouped methods need experts % groups == 0, 1 <= top_k_groups <= groups, and for NOAUX_TC experts / groups >= 2.
 * Outputs must not overlap the inputs or each other.
 */
typedef struct dsk_moe_route_params {
    const void* logits;        /* [tokens, experts] logits_dtype */
    const float* bias;         /* [experts] (e_score_correction_bias), or NULL */
    int32_t* expert_ids;       /* [tokens, top_k] */
    float* expert_weights;     /* [tokens, top_k] */
    int64_t tokens;            /* >= 1 */
    int32_t experts;           /* 1 .. 1024 */
    int32_t top_k;             /* 1 .. experts */
    int32_t groups;            /* grouped methods: >= 1, dividing experts; GREEDY: ignored */
    int32_t top_k_groups;      /* grouped methods: 1 .. groups; GREEDY: ignored */
    int32_t scoring;           /* dsk_moe_scoring */
    int32_t method;            /* dsk_moe_method */
    int32_t normalize;         /* 0 or 1 (norm_topk_prob) */
    int32_t logits_dtype;      /* F32 or BF16 */
    float routed_scaling_factor; /* finite */
    int32_t reserved;          /* 0 */
    void* stream;
} dsk_moe_route_params;

DSK_API dsk_status dsk_moe_route(const dsk_moe_route_params* p);

/*
 * Permutation: with slots = tokens * top_k and e(s) = expert_ids[s],
 *   expert_offsets[e] = number of slots whose expert is below e (e = 0 .. experts; expert_offsets[experts] = slots)
 *   row(s) = expert_offsets[e(s)] + number of slots s' < s with e(s') = e(s)      (stable)
 *   slot_rows[s] = row(s);   permuted[row(s), :] = x[s / top_k, :]   (copied bit for bit)
 * Every expert id is checked first: if any is outside [0, experts), nothing but the error word is written and the
 * reported id is the one with the lowest s. Scratch: dsk_moe_permute_workspace_size (pointers may be NULL there) says
 * how many bytes (16-byte aligned device memory) `workspace` must have; it depends only on tokens, top_k and experts.
 * x [tokens, hidden] and permuted [slots, hidden] x_dtype (F32 or BF16), rows their row strides apart; outputs must not
 * overlap the inputs, each other, the workspace or the error word.
 */
typedef struct dsk_moe_permute_params {
    const void* x;             /* [tokens, hidden] */
    const int32_t* expert_ids; /* [tokens * top_k] */
    void* permuted;            /* [tokens * top_k, hidden] */
    int32_t* expert_offsets;   /* [experts + 1] */
    int32_t* slot_rows;        /* [tokens * top_k] */
    void* workspace;           /* workspace_bytes, or NULL when 0 */
    int32_t* error_word;       /* 8 int32; must not be NULL */
    int64_t workspace_bytes;
    int64_t tokens;            /* >= 1; tokens * top_k < 2^31 */
    int64_t top_k;             /* >= 1 */
    int64_t hidden;            /* >= 1 */
    int64_t experts;           /* >= 1, < 2^31 */
    int64_t x_row_stride;      /* >= hidden */
    int64_t permuted_row_stride; /* >= hidden */
    int32_t x_dtype;           /* F32 or BF16 */
    int32_t error_site;        /* > 0 */
    void* stream;
} dsk_moe_permute_params;

DSK_API dsk_status dsk_moe_permute_workspace_size(const dsk_moe_permute_params* p, int64_t* bytes);
DSK_API dsk_status dsk_moe_permute(const dsk_moe_permute_params* p);

/*
 * Grouped linear (the experts' projections): for every expert e < w.count and row r in
 * expert_offsets[e] .. expert_offsets[e + 1]:  acc[r, n] = sum_k x[r, k] * w[e, n, k]  (fp32, any order), then the
 * epilogue as dsk_linear's (NONE or SILU_MUL; SILU_MUL: y has out / 2 columns) and one rounding to y_dtype. Rows
 * outside expert_offsets[0] .. expert_offsets[w.count] are not written. Weight schemes, dtypes and the meaning of `path`
 * as dsk_linear's (transpose_w is not offered). The offsets are checked first, in this order: each in [0, m] (bound
 * m + 1, lowest index reported), then not decreasing (the first i with offsets[i] < offsets[i - 1], out of order,
 * bound count + 1); when one is bad nothing but the error word is written.
 * x [m, in] x_dtype, y [m, out or out / 2] y_dtype (F32 or BF16 each), rows their row strides apart; y must not overlap
 * x, the weight or the offsets.
 */
typedef struct dsk_grouped_linear_params {
    const void* x;             /* [m, in] */
    const int32_t* expert_offsets; /* [w.count + 1] */
    dsk_weight w;              /* count = experts, [out, in] each */
    void* y;                   /* [m, out] (out / 2 with SILU_MUL) */
    int32_t* error_word;       /* 8 int32; must not be NULL */
    int64_t m;                 /* >= 1, < 2^31 */
    int64_t x_row_stride;      /* >= in */
    int64_t y_row_stride;      /* >= y's columns */
    int32_t x_dtype;           /* F32 or BF16 */
    int32_t y_dtype;           /* F32 or BF16 */
    int32_t epilogue;          /* DSK_EPILOGUE_NONE or DSK_EPILOGUE_SILU_MUL */
    int32_t path;              /* dsk_linear_path */
    int32_t error_site;        /* > 0 */
    int32_t reserved;          /* 0 */
    void* stream;
} dsk_grouped_linear_params;

DSK_API dsk_status dsk_grouped_linear(const dsk_grouped_linear_params* p);

/*
 * Combine: for every token t and column i < hidden,
 *   sum = sum_{k < top_k, in k order} expert_weights[t, k] * expert_output[slot_rows[t * top_k + k], i]   (fp32)
 *   y[t, i] = round(accumulate ? y[t, i] + sum : sum)
 * (accumulate adds onto what y holds, e.g. the shared experts' output). slot_rows are checked where read: a value
 * outside [0, tokens * top_k) leaves its token's row of y as it was; the reported one has the lowest flat index.
 * expert_output [tokens * top_k, hidden] expert_output_dtype, y [tokens, hidden] y_dtype (F32 or BF16 each), rows their
 * row strides apart; y must not overlap the inputs.
 */
typedef struct dsk_moe_combine_params {
    const void* expert_output; /* [tokens * top_k, hidden] */
    const int32_t* slot_rows;  /* [tokens * top_k] */
    const float* expert_weights; /* [tokens, top_k] */
    void* y;                   /* [tokens, hidden] */
    int32_t* error_word;       /* 8 int32; must not be NULL */
    int64_t tokens;            /* >= 1; tokens * top_k < 2^31 */
    int64_t top_k;             /* >= 1 */
    int64_t hidden;            /* >= 1 */
    int64_t expert_output_row_stride; /* >= hidden */
    int64_t y_row_stride;      /* >= hidden */
    int32_t expert_output_dtype; /* F32 or BF16 */
    int32_t y_dtype;           /* F32 or BF16 */
    int32_t accumulate;        /* 0 or 1 */
    int32_t error_site;        /* > 0 */
    void* stream;
} dsk_moe_combine_params;

DSK_API dsk_status dsk_moe_combine(const dsk_moe_combine_params* p);

#ifdef __cplusplus
}
#endif

#endif /* DEEPSEEK_KERNELS_H */

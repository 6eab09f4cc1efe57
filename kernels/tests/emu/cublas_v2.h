// cublas_v2.h (host emulation, see cuda_runtime.h here): just enough of cuBLAS for mma_check.cu to compile. Its
// --bench mode (the only user) is not meaningful under the emulation: every call fails with CUBLAS_STATUS_NOT_SUPPORTED.
#pragma once
#include "cuda_runtime.h"
typedef int cublasStatus_t;
typedef void* cublasHandle_t;
enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_SUPPORTED = 15 };
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16BF = 14 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };
inline cublasStatus_t cublasCreate(cublasHandle_t*) { return CUBLAS_STATUS_NOT_SUPPORTED; }
inline cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_NOT_SUPPORTED; }
inline cublasStatus_t cublasDestroy(cublasHandle_t) { return CUBLAS_STATUS_NOT_SUPPORTED; }
inline cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                                   const void*, cudaDataType_t, int, const void*, cudaDataType_t, int, const void*, void*,
                                   cudaDataType_t, int, cublasComputeType_t, cublasGemmAlgo_t) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

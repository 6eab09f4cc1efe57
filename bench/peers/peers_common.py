"""bench/peers/peers_common.py: what the peer scripts (linear_peers.py, attention_peers.py) time and measure alike: CUDA-event
medians, the device-copy ceiling, the cuBLAS bf16 GEMM ceiling and the relative error against PyTorch."""
import statistics

import torch


def time_us(fn, reps):
    """Median of `reps` CUDA-event timings of fn(i) (i = the rotation index), after warm-up."""
    for i in range(3):
        fn(i)
    torch.cuda.synchronize()
    times = []
    for i in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(i)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0)
    return statistics.median(times)


def copy_bandwidth():
    """Device-to-device copy of 1 GiB: bytes read + written per second, the ceiling of memory-bound kernels."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    us = time_us(lambda i: dst.copy_(src), 20)
    return 2 * src.numel() / (us * 1e-6) / 1e9


def gemm_rate():
    """torch.matmul bf16 8192^3 (cuBLAS) on random data, in TFLOP/s: the ceiling of compute-bound kernels."""
    n = 8192
    a = torch.randn(n, n, device="cuda").to(torch.bfloat16)
    b = torch.randn(n, n, device="cuda").to(torch.bfloat16)
    c = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
    us = time_us(lambda i: torch.matmul(a, b.t(), out=c), 20)
    return 2.0 * n ** 3 / (us * 1e-6) / 1e12


def rel_err(y, ref):
    """||y - ref|| / ||ref|| in float32."""
    y, ref = y.float(), ref.float()
    return (torch.linalg.vector_norm(y - ref) / torch.linalg.vector_norm(ref).clamp_min(1e-30)).item()

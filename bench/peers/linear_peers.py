#!/usr/bin/env python3
"""bench/peers/linear_peers.py: the Linear shapes of issue 11 on PyTorch's cuBLAS/cuBLASLt and on libdeepseek_kernels'
dsk_linear (through ctypes), in one process, timed the same way, so every ratio comes from one run.

    python3 bench/peers/linear_peers.py --lib build/native/libdeepseek_kernels.so [--quick] [--out DIR]

Rows: per shape (K, N) and M:
  cublas-bf16      torch.matmul(x, w.t()) on bf16 (cuBLAS / cuBLASLt; the baseline of every ratio)
  cublaslt-fp8-pt  torch._scaled_mm with per-tensor scales (FP8 e4m3 x e4m3, bf16 out), where the GPU offers it
  cublaslt-fp8-blk torch._scaled_mm with 1x128 activation / 128x128 weight block scales, where this PyTorch and
                   cuBLAS (12.9+) offer them; otherwise the row says why not
  dsk-bf16 / dsk-fp8 / dsk-int4   dsk_linear (path AUTO) with the weight stored dense bf16, FP8 128x128, INT4 g128
  dsk-w8a8         dsk_quantize_fp8_act + dsk_linear_fp8_w8a8 (prefill rows only)
Each time is the median of CUDA-event timings after warm-up, rotating through enough weight copies that more than
256 MiB of weights are touched between two uses of one copy (the H200's L2 is 60 MB). Columns: us, TFLOP/s, GB/s over
the bytes that must move (weights + scales + activations + output), share of the copy bandwidth measured in this run
(device-to-device copy, read + write), and "x cuBLAS bf16" (the bf16 time divided by the row's time).
Correctness is the test suites' job; here every dsk row is also compared with the bf16 result by relative norm error
(printed) so that a fast wrong kernel cannot pass unnoticed.
"""
import argparse
import ctypes
import os
import sys

import torch

from peers_common import copy_bandwidth, rel_err, time_us  # beside this script (sys.path[0])

# ---- the C ABI (kernels/include/deepseek_kernels.h, v2) --------------------------------------------------------------
DSK_DTYPE_F32, DSK_DTYPE_BF16, DSK_DTYPE_FP8, DSK_DTYPE_INT4 = 0, 1, 3, 4
DSK_WEIGHT_DENSE, DSK_WEIGHT_FP8_BLOCK, DSK_WEIGHT_INT4_GROUP = 0, 1, 2


class DskWeight(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("scale", ctypes.c_void_p), ("zero", ctypes.c_void_p),
                ("rows", ctypes.c_int64), ("cols", ctypes.c_int64), ("count", ctypes.c_int64),
                ("scheme", ctypes.c_int32), ("dtype", ctypes.c_int32), ("block_rows", ctypes.c_int32),
                ("block_cols", ctypes.c_int32), ("group_size", ctypes.c_int32), ("reserved", ctypes.c_int32)]


class DskLinearParams(ctypes.Structure):
    _fields_ = [("x", ctypes.c_void_p), ("w", DskWeight), ("bias", ctypes.c_void_p), ("residual", ctypes.c_void_p),
                ("y", ctypes.c_void_p), ("m", ctypes.c_int64), ("batch", ctypes.c_int64),
                ("x_row_stride", ctypes.c_int64), ("x_batch_stride", ctypes.c_int64),
                ("y_row_stride", ctypes.c_int64), ("y_batch_stride", ctypes.c_int64),
                ("residual_row_stride", ctypes.c_int64), ("residual_batch_stride", ctypes.c_int64),
                ("x_dtype", ctypes.c_int32), ("transpose_w", ctypes.c_int32), ("epilogue", ctypes.c_int32),
                ("path", ctypes.c_int32), ("y_dtype", ctypes.c_int32), ("reserved", ctypes.c_int32), ("stream", ctypes.c_void_p)]


class DskQuantizeFp8ActParams(ctypes.Structure):
    _fields_ = [("x", ctypes.c_void_p), ("q", ctypes.c_void_p), ("scale", ctypes.c_void_p), ("m", ctypes.c_int64),
                ("cols", ctypes.c_int64), ("x_row_stride", ctypes.c_int64), ("act_dtype", ctypes.c_int32),
                ("reserved", ctypes.c_int32), ("stream", ctypes.c_void_p)]


class DskLinearFp8W8A8Params(ctypes.Structure):
    _fields_ = [("qx", ctypes.c_void_p), ("x_scale", ctypes.c_void_p), ("w", DskWeight), ("bias", ctypes.c_void_p),
                ("y", ctypes.c_void_p), ("m", ctypes.c_int64), ("y_row_stride", ctypes.c_int64),
                ("act_dtype", ctypes.c_int32), ("reserved", ctypes.c_int32), ("stream", ctypes.c_void_p)]


SHAPES = [(7168, 18432), (18432, 7168), (4096, 14336), (7168, 2048)]  # (K, N)
MS = [1, 4, 16, 64, 512, 4096]
ROTATE_BYTES = 256 << 20








def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build/native/libdeepseek_kernels.so")
    ap.add_argument("--quick", action="store_true", help="headline subset: K=7168 N=18432 and K=7168 N=2048, M = 1, 16, 4096")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()

    lib = ctypes.CDLL(args.lib)
    lib.dsk_last_error_message.restype = ctypes.c_char_p
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    dev = torch.cuda.get_device_properties(0)
    print(f"# {dev.name}, torch {torch.__version__}, CUDA {torch.version.cuda}, cuBLASLt via torch; "
          f"libdeepseek_kernels ABI {lib.dsk_abi_version()} built with CUDA runtime {lib.dsk_cuda_runtime_version()}")
    copy_gbs = copy_bandwidth()
    print(f"# device-to-device copy: {copy_gbs:.0f} GB/s (read + write)")

    shapes = [(7168, 18432), (7168, 2048)] if args.quick else SHAPES
    ms = [1, 16, 4096] if args.quick else MS
    rows = []

    def call(fn, name, params):
        status = fn(ctypes.byref(params))
        if status != 0:
            raise RuntimeError(f"{name}: status {status}: {lib.dsk_last_error_message().decode()}")

    for k, n in shapes:
        g = torch.Generator(device="cuda").manual_seed(k * 31 + n)
        w_bf16_bytes = n * k * 2
        copies = max(1, -(-ROTATE_BYTES // (n * k)))  # FP8-sized copies; bf16 copies share the count (more bytes)
        copies = min(copies, 8)
        w_bf16 = [(torch.randn(n, k, device="cuda", generator=g) * 0.02).to(torch.bfloat16) for _ in range(copies)]
        # FP8 128x128 blocks: scale_inv per block, data = round(w / scale)
        w_fp8, w_scale = [], []
        for wb in w_bf16:
            blocks = wb.float().reshape(-(-n // 128), 128, -(-k // 128), 128) if n % 128 == 0 and k % 128 == 0 else None
            amax = blocks.abs().amax(dim=(1, 3)) if blocks is not None else wb.float().abs().max().expand(-(-n // 128), -(-k // 128))
            s = (amax / 448.0).clamp_min(1e-12).contiguous()
            q = (wb.float() / s.repeat_interleave(128, 0)[:n].repeat_interleave(128, 1)[:, :k]).to(torch.float8_e4m3fn)
            w_fp8.append(q.contiguous())
            w_scale.append(s)
        # INT4 g128: random codes, scale and zero per group
        w_i4 = [torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, device="cuda", generator=g) for _ in range(copies)]
        i4_scale = [(torch.rand(n, k // 128, device="cuda", generator=g) * 0.01).to(torch.bfloat16) for _ in range(copies)]
        i4_zero = [torch.full((n, k // 128), 8.0, device="cuda").to(torch.bfloat16) for _ in range(copies)]

        for m in ms:
            x = torch.randn(m, k, device="cuda", generator=g).to(torch.bfloat16)
            y = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
            flops = 2.0 * m * n * k
            act_bytes = m * k * 2 + m * n * 2
            reps = args.reps if m <= 512 else max(10, args.reps // 3)

            def report(name, us, weight_bytes, err=None, note=""):
                moved = weight_bytes + act_bytes
                gbs = moved / (us * 1e-6) / 1e9
                rows.append(dict(k=k, n=n, m=m, kernel=name, us=us, tflops=flops / (us * 1e-6) / 1e12, gbs=gbs,
                                 copy_share=gbs / copy_gbs, err=err, note=note))

            base_us = time_us(lambda i: torch.matmul(x, w_bf16[i % copies].t(), out=y), reps)
            ref = torch.matmul(x, w_bf16[0].t())
            report("cublas-bf16", base_us, w_bf16_bytes)

            # cuBLASLt FP8, per-tensor scales
            try:
                xq = x.to(torch.float8_e4m3fn)
                one = torch.ones((), device="cuda")
                us = time_us(lambda i: torch._scaled_mm(xq, w_fp8[i % copies].t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16), reps)
                report("cublaslt-fp8-pt", us, n * k)
            except Exception as e:  # noqa: BLE001 - report, do not fail the run
                report("cublaslt-fp8-pt", float("nan"), n * k, note=f"not offered: {type(e).__name__}: {str(e)[:80]}")

            # cuBLASLt FP8, 1x128 activation and 128x128 weight block scales (PyTorch's blockwise _scaled_mm)
            try:
                xs = torch.ones(m, k // 128, device="cuda")
                us = time_us(lambda i: torch._scaled_mm(xq, w_fp8[i % copies].t(), scale_a=xs, scale_b=w_scale[i % copies].t(),
                                                        out_dtype=torch.bfloat16), reps)
                report("cublaslt-fp8-blk", us, n * k + w_scale[0].numel() * 4)
            except Exception as e:  # noqa: BLE001
                report("cublaslt-fp8-blk", float("nan"), n * k, note=f"not offered: {type(e).__name__}: {str(e)[:80]}")

            def dsk_linear(weight, xt, yt):
                p = DskLinearParams(x=xt.data_ptr(), w=weight, bias=None, residual=None, y=yt.data_ptr(), m=m, batch=1,
                                    x_row_stride=k, x_batch_stride=m * k, y_row_stride=n, y_batch_stride=m * n,
                                    residual_row_stride=0, residual_batch_stride=0, x_dtype=DSK_DTYPE_BF16, y_dtype=DSK_DTYPE_BF16,
                                    transpose_w=0, epilogue=0, path=0, stream=stream)
                call(lib.dsk_linear, "dsk_linear", p)

            schemes = [
                ("dsk-bf16", lambda i: DskWeight(data=w_bf16[i].data_ptr(), scale=None, zero=None, rows=n, cols=k, count=1,
                                                  scheme=DSK_WEIGHT_DENSE, dtype=DSK_DTYPE_BF16), w_bf16_bytes),
                ("dsk-fp8", lambda i: DskWeight(data=w_fp8[i].data_ptr(), scale=w_scale[i].data_ptr(), zero=None, rows=n, cols=k,
                                                 count=1, scheme=DSK_WEIGHT_FP8_BLOCK, dtype=DSK_DTYPE_FP8, block_rows=128,
                                                 block_cols=128), n * k + w_scale[0].numel() * 4),
                ("dsk-int4", lambda i: DskWeight(data=w_i4[i].data_ptr(), scale=i4_scale[i].data_ptr(), zero=i4_zero[i].data_ptr(),
                                                  rows=n, cols=k, count=1, scheme=DSK_WEIGHT_INT4_GROUP, dtype=DSK_DTYPE_INT4,
                                                  group_size=128), n * k // 2 + 2 * n * (k // 128) * 2),
            ]
            for name, weight_of, weight_bytes in schemes:
                try:
                    weights = [weight_of(i) for i in range(copies)]
                    dsk_linear(weights[0], x, y)
                    torch.cuda.synchronize()
                    err = None
                    if name == "dsk-bf16":
                        err = rel_err(y, ref)
                    elif name == "dsk-fp8":
                        deq = (w_fp8[0].float() * w_scale[0].repeat_interleave(128, 0)[:n].repeat_interleave(128, 1)[:, :k]).to(torch.bfloat16)
                        err = rel_err(y, torch.matmul(x, deq.t()))
                    us = time_us(lambda i: dsk_linear(weights[i % copies], x, y), reps)
                    report(name, us, weight_bytes, err)
                except Exception as e:  # noqa: BLE001
                    report(name, float("nan"), weight_bytes, note=f"failed: {str(e)[:100]}")

            if m >= 64:
                try:
                    qx = torch.empty(m, k, device="cuda", dtype=torch.uint8)
                    xs = torch.empty(m, -(-k // 128), device="cuda", dtype=torch.float32)
                    qp = DskQuantizeFp8ActParams(x=x.data_ptr(), q=qx.data_ptr(), scale=xs.data_ptr(), m=m, cols=k, x_row_stride=k,
                                                 act_dtype=DSK_DTYPE_BF16, stream=stream)

                    def w8a8(i):
                        call(lib.dsk_quantize_fp8_act, "dsk_quantize_fp8_act", qp)
                        wp = DskLinearFp8W8A8Params(qx=qx.data_ptr(), x_scale=xs.data_ptr(), w=schemes[1][1](i % copies), bias=None,
                                                    y=y.data_ptr(), m=m, y_row_stride=n, act_dtype=DSK_DTYPE_BF16, stream=stream)
                        call(lib.dsk_linear_fp8_w8a8, "dsk_linear_fp8_w8a8", wp)
                    w8a8(0)
                    torch.cuda.synchronize()
                    deq = (w_fp8[0].float() * w_scale[0].repeat_interleave(128, 0)[:n].repeat_interleave(128, 1)[:, :k]).to(torch.bfloat16)
                    err = rel_err(y, torch.matmul(x, deq.t()))
                    us = time_us(w8a8, reps)
                    report("dsk-w8a8", us, n * k + w_scale[0].numel() * 4, err, note="incl. activation quantisation")
                except Exception as e:  # noqa: BLE001
                    report("dsk-w8a8", float("nan"), n * k, note=f"failed: {str(e)[:100]}")

            base = {(r["k"], r["n"], r["m"]): r["us"] for r in rows if r["kernel"] == "cublas-bf16"}
            for r in rows:
                if r["k"] == k and r["n"] == n and r["m"] == m:
                    r["x_bf16"] = base[(k, n, m)] / r["us"] if r["us"] == r["us"] else float("nan")
                    print(f"K={k:5d} N={n:5d} M={m:4d} {r['kernel']:17s} {r['us']:9.1f} us {r['tflops']:7.1f} TFLOP/s "
                          f"{r['gbs']:7.0f} GB/s {100 * r['copy_share']:5.1f}% copy  {r['x_bf16']:5.2f}x cuBLAS bf16"
                          + (f"  err {r['err']:.1e}" if r['err'] is not None else "") + (f"  {r['note']}" if r['note'] else ""),
                          flush=True)
        del w_bf16, w_fp8, w_scale, w_i4, i4_scale, i4_zero
        torch.cuda.empty_cache()

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "linear_peers.md"), "w") as f:
        f.write(f"{dev.name}, torch {torch.__version__}, CUDA {torch.version.cuda}; copy {copy_gbs:.0f} GB/s\n\n")
        f.write("| K | N | M | kernel | µs | TFLOP/s | GB/s | share of copy | x cuBLAS bf16 | rel. error | note |\n")
        f.write("|---|---|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            err = f"{r['err']:.1e}" if r["err"] is not None else ""
            f.write(f"| {r['k']} | {r['n']} | {r['m']} | {r['kernel']} | {r['us']:.1f} | {r['tflops']:.1f} | {r['gbs']:.0f} | "
                    f"{100 * r['copy_share']:.1f}% | {r['x_bf16']:.2f} | {err} | {r['note']} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

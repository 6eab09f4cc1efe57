#!/usr/bin/env python3
"""bench/peers/attention_peers.py: the attention shapes of issue 12 on PyTorch's scaled_dot_product_attention (cuDNN,
FlashAttention and memory-efficient backends) and on libdeepseek_kernels' paged kernels (through ctypes), in one process,
timed the same way, so every ratio comes from one run.

    python3 bench/peers/attention_peers.py --lib build/native/libdeepseek_kernels.so [--quick] [--out DIR]

Rows, per shape:
  gqa-decode   32 q / 8 kv heads x 128, bf16, one query per sequence, batch x context 1 x 32768, 16 x 4096, 64 x 2048;
               dsk_paged_attention over pages of 16 and 64 (shuffled page order) beside SDPA on contiguous K/V
               (enable_gqa, so K/V are read once, not repeated per q head). GB/s over the KV bytes read; share of copy.
  mla-decode   DeepSeek MLA, 128 (V3) and 16 (V2-Lite) heads, 576 / 512, page 64, context 4096, batch 1, 32, 128:
               dsk_paged_mla_attention beside SDPA (one kv head; most backends refuse head dim 576: the row says why) and
               an absorbed-MLA baseline on cuBLAS (scores = q @ c^T, softmax, @ c[:, :512]). TFLOP/s (2 x (576 + 512) per
               head and key) and share of the GEMM rate; GB/s and share of copy.
  prefill      causal, 32 q / 8 kv heads x 128, bf16: one sequence of 8192 and a varlen batch of 16 x 1024 (equal lengths,
               so the padded batch SDPA runs does the same work); dsk_paged_attention over pages of 64. TFLOP/s
               (4 x head_dim per visible pair, n(n+1)/2 pairs) and share of the GEMM rate.
  rope+append  dsk_rope (q and k, half-split, rotary 128) + dsk_kv_append (k, v into bf16 pages of 16) beside the same in
               PyTorch eager ops, at 16 and 4096 tokens. GB/s and share of copy.
Ceilings measured in this run: device-to-device copy of 1 GiB (read + write) and torch.matmul bf16 8192^3 (cuBLAS).
Each time is the median of CUDA-event timings after warm-up; decode inputs rotate through enough copies (or disjoint page
sets) that more than 128 MiB pass between two uses of one (the H200's L2 is 60 MB). Every dsk row is compared with a
PyTorch result by relative norm error and its error word must stay clear, so a fast wrong kernel cannot pass unnoticed.
"""
import argparse
import ctypes
import math
import os
import sys

import torch
import torch.nn.functional as F

from peers_common import copy_bandwidth, gemm_rate, rel_err, time_us  # beside this script (sys.path[0])

# ---- the C ABI (kernels/include/deepseek_kernels.h, ABI 3) -------------------------------------------------------------
DSK_DTYPE_F32, DSK_DTYPE_BF16 = 0, 1
DSK_ROPE_HALF_SPLIT = 0
DSK_ATTENTION_PATH_AUTO = 0
P, I64, I32, F32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_float


class DskRopeParams(ctypes.Structure):
    _fields_ = [("x", P), ("positions", P), ("cos", P), ("sin", P), ("error_word", P), ("tokens", I64), ("heads", I64),
                ("head_stride", I64), ("x_row_stride", I64), ("rope_offset", I64), ("rotary_dim", I64), ("max_positions", I64),
                ("x_dtype", I32), ("layout", I32), ("error_site", I32), ("reserved", I32), ("stream", P)]


class DskKvAppendParams(ctypes.Structure):
    _fields_ = [("keys", P), ("values", P), ("slot_mapping", P), ("key_pages", P), ("value_pages", P), ("error_word", P),
                ("tokens", I64), ("slots", I64), ("key_width", I64), ("value_width", I64), ("keys_row_stride", I64),
                ("values_row_stride", I64), ("key_dtype", I32), ("value_dtype", I32), ("key_page_dtype", I32),
                ("value_page_dtype", I32), ("error_site", I32), ("reserved", I32), ("stream", P)]


class DskPagedAttentionParams(ctypes.Structure):
    _fields_ = [("q", P), ("key_pages", P), ("value_pages", P), ("block_table", P), ("sequence_lengths", P),
                ("query_starts", P), ("out", P), ("workspace", P), ("error_word", P), ("workspace_bytes", I64), ("tokens", I64),
                ("batch", I64), ("max_pages", I64), ("pages", I64), ("page_size", I64), ("q_heads", I64), ("kv_heads", I64),
                ("head_dim", I64), ("v_head_dim", I64), ("scale", F32), ("q_dtype", I32), ("page_dtype", I32), ("out_dtype", I32),
                ("path", I32), ("max_splits", I32), ("error_site_block_table", I32), ("error_site_lengths", I32),
                ("error_site_query_starts", I32), ("reserved", I32), ("stream", P)]


assert ctypes.sizeof(DskRopeParams) == 120 and ctypes.sizeof(DskKvAppendParams) == 128
assert ctypes.sizeof(DskPagedAttentionParams) == 200

ROTATE_BYTES = 128 << 20










def sdpa_backends():
    """(name, context manager factory) for each SDPA backend this PyTorch has."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    out = []
    for name, attr in (("sdpa-cudnn", "CUDNN_ATTENTION"), ("sdpa-flash", "FLASH_ATTENTION"), ("sdpa-efficient", "EFFICIENT_ATTENTION")):
        if hasattr(SDPBackend, attr):
            out.append((name, lambda a=attr: sdpa_kernel(getattr(SDPBackend, a))))
    return out


class Dsk:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        self.lib.dsk_last_error_message.restype = ctypes.c_char_p
        for name in ("dsk_paged_attention_workspace_size", "dsk_paged_mla_attention_workspace_size"):
            getattr(self.lib, name).argtypes = [ctypes.POINTER(DskPagedAttentionParams), ctypes.POINTER(ctypes.c_int64)]
        self.stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        self.error_word = torch.zeros(8, dtype=torch.int32, device="cuda")

    def call(self, name, params):
        status = getattr(self.lib, name)(ctypes.byref(params))
        if status != 0:
            raise RuntimeError(f"{name}: status {status}: {self.lib.dsk_last_error_message().decode()}")

    def workspace(self, params, mla):
        size = ctypes.c_int64(0)
        name = "dsk_paged_mla_attention_workspace_size" if mla else "dsk_paged_attention_workspace_size"
        status = getattr(self.lib, name)(ctypes.byref(params), ctypes.byref(size))
        if status != 0:
            raise RuntimeError(f"{name}: status {status}: {self.lib.dsk_last_error_message().decode()}")
        return torch.empty(max(size.value, 16), dtype=torch.uint8, device="cuda"), size.value

    def check_error_word(self):
        torch.cuda.synchronize()
        word = self.error_word.tolist()
        if word[0] != 0:
            self.error_word.zero_()
            raise RuntimeError(f"device error word set: {word}")


class PagedCache:
    """bf16 pages for `rotations` disjoint copies of a batch of equal sequences; block tables shuffled within each copy."""

    def __init__(self, batch, context, page, key_width, value_width, min_bytes, g):
        self.batch, self.context, self.page = batch, context, page
        self.max_pages = -(-context // page)
        per = batch * self.max_pages
        cache_bytes = batch * context * (key_width + value_width) * 2
        self.rotations = max(1, -(-min_bytes // cache_bytes))
        self.pages = per * self.rotations
        self.keys = torch.randn(self.pages, page, key_width, device="cuda", generator=g).to(torch.bfloat16)
        self.values = (torch.randn(self.pages, page, value_width, device="cuda", generator=g).to(torch.bfloat16)
                       if value_width else None)
        self.tables = []
        for r in range(self.rotations):
            perm = torch.randperm(per, device="cuda", generator=g).to(torch.int32) + r * per
            self.tables.append(perm.reshape(batch, self.max_pages).contiguous())
        self.lengths = torch.full((batch,), context, dtype=torch.int32, device="cuda")

    def gather(self, pages, r, width):
        """The contiguous [batch, context, width] rows of rotation r."""
        return pages[self.tables[r].long()].reshape(self.batch, self.max_pages * self.page, width)[:, :self.context]


def paged_params(dsk, cache, q, out, starts, q_heads, kv_heads, d, vd, scale, mla, r=0):
    return DskPagedAttentionParams(
        q=q.data_ptr(), key_pages=cache.keys.data_ptr(), value_pages=None if mla else cache.values.data_ptr(),
        block_table=cache.tables[r].data_ptr(), sequence_lengths=cache.lengths.data_ptr(), query_starts=starts.data_ptr(),
        out=out.data_ptr(), workspace=None, error_word=dsk.error_word.data_ptr(), workspace_bytes=0, tokens=q.shape[0],
        batch=cache.batch, max_pages=cache.max_pages, pages=cache.pages, page_size=cache.page, q_heads=q_heads, kv_heads=kv_heads,
        head_dim=d, v_head_dim=vd, scale=scale, q_dtype=DSK_DTYPE_BF16, page_dtype=DSK_DTYPE_BF16, out_dtype=DSK_DTYPE_BF16,
        path=DSK_ATTENTION_PATH_AUTO, max_splits=0, error_site_block_table=1, error_site_lengths=2, error_site_query_starts=3,
        stream=dsk.stream)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build/native/libdeepseek_kernels.so")
    ap.add_argument("--quick", action="store_true", help="headline subset: page 16 decode, MLA batch 1 and 128, fewer reps")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()

    dsk = Dsk(args.lib)
    dev = torch.cuda.get_device_properties(0)
    print(f"# {dev.name}, torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
          f"libdeepseek_kernels ABI {dsk.lib.dsk_abi_version()} built with CUDA runtime {dsk.lib.dsk_cuda_runtime_version()}")
    copy_gbs = copy_bandwidth()
    gemm_tflops = gemm_rate()
    print(f"# device-to-device copy: {copy_gbs:.0f} GB/s (read + write); cuBLAS bf16 8192^3: {gemm_tflops:.0f} TFLOP/s", flush=True)
    reps = max(5, args.reps // 2) if args.quick else args.reps
    rows = []
    g = torch.Generator(device="cuda").manual_seed(12)

    def report(group, shape, kernel, us, flops=0.0, moved=0, err=None, note=""):
        ok = us == us
        r = dict(group=group, shape=shape, kernel=kernel, us=us, note=note, err=err,
                 tflops=flops / (us * 1e-6) / 1e12 if ok and flops else float("nan"),
                 gbs=moved / (us * 1e-6) / 1e9 if ok and moved else float("nan"))
        r["gemm_share"] = r["tflops"] / gemm_tflops
        r["copy_share"] = r["gbs"] / copy_gbs
        rows.append(r)
        return r

    def attempt(group, shape, kernel, run, flops, moved, reference=None, output=None):
        """Times run(i); compares output with reference after one run; a failure becomes a row that says why."""
        try:
            run(0)
            torch.cuda.synchronize()
            err = rel_err(output(), reference) if reference is not None else None
            if kernel.startswith("dsk"):
                dsk.check_error_word()
            return report(group, shape, kernel, time_us(run, reps), flops, moved, err)
        except Exception as e:  # noqa: BLE001 - report, do not fail the run
            return report(group, shape, kernel, float("nan"), note=f"not run: {type(e).__name__}: {str(e)[:100]}")

    def print_group(group, shape):
        mine = [r for r in rows if r["group"] == group and r["shape"] == shape]
        peers = [r for r in mine if not r["kernel"].startswith("dsk") and r["us"] == r["us"]]
        best = min((r["us"] for r in peers), default=float("nan"))
        for r in mine:
            r["x_best_peer"] = best / r["us"] if r["us"] == r["us"] else float("nan")
            print(f"{group:11s} {shape:24s} {r['kernel']:18s} {r['us']:9.1f} us {r['tflops']:7.1f} TFLOP/s "
                  f"{100 * r['gemm_share']:5.1f}% GEMM {r['gbs']:7.0f} GB/s {100 * r['copy_share']:5.1f}% copy "
                  f"{r['x_best_peer']:5.2f}x best peer" + (f"  err {r['err']:.1e}" if r["err"] is not None else "")
                  + (f"  {r['note']}" if r["note"] else ""), flush=True)

    # ---- GQA decode ---------------------------------------------------------------------------------------------------
    qh, kvh, d = 32, 8, 128
    scale = 1 / math.sqrt(d)
    for page in ((16,) if args.quick else (16, 64)):
        for batch, context in ((1, 32768), (16, 4096), (64, 2048)):
            shape = f"{batch}x{context} page {page}"
            cache = PagedCache(batch, context, page, kvh * d, kvh * d, ROTATE_BYTES, g)
            kv_bytes = batch * context * 2 * kvh * d * 2
            moved = kv_bytes + 2 * batch * qh * d * 2
            q = torch.randn(batch, qh, d, device="cuda", generator=g).to(torch.bfloat16)
            out = torch.empty(batch, qh, d, device="cuda", dtype=torch.bfloat16)
            starts = torch.arange(batch + 1, dtype=torch.int32, device="cuda")
            k0 = cache.gather(cache.keys, 0, kvh * d).reshape(batch, context, kvh, d).transpose(1, 2)
            v0 = cache.gather(cache.values, 0, kvh * d).reshape(batch, context, kvh, d).transpose(1, 2)
            ref = F.scaled_dot_product_attention(q.unsqueeze(2).float(), k0.float(), v0.float(), scale=scale, enable_gqa=True).squeeze(2)
            # SDPA reads contiguous K/V: copies of them rotate as the pages do
            copies = max(1, -(-ROTATE_BYTES // kv_bytes))
            ks = [k0.contiguous()] + [torch.randn_like(k0, dtype=torch.float32).to(torch.bfloat16) for _ in range(copies - 1)]
            vs = [v0.contiguous()] + [torch.randn_like(v0, dtype=torch.float32).to(torch.bfloat16) for _ in range(copies - 1)]
            qs = q.unsqueeze(2)
            for name, backend in sdpa_backends():
                holder = {}

                def run_sdpa(i, backend=backend, holder=holder):
                    with backend():
                        holder["y"] = F.scaled_dot_product_attention(qs, ks[i % copies], vs[i % copies], scale=scale, enable_gqa=True)
                attempt("gqa-decode", shape, name, run_sdpa, 0, moved, ref, lambda holder=holder: holder["y"].squeeze(2))
            p = paged_params(dsk, cache, q, out, starts, qh, kvh, d, d, scale, mla=False)
            ws, ws_bytes = dsk.workspace(p, mla=False)
            p.workspace, p.workspace_bytes = (ws.data_ptr() if ws_bytes else None), ws_bytes
            params = [paged_params(dsk, cache, q, out, starts, qh, kvh, d, d, scale, mla=False, r=r) for r in range(cache.rotations)]
            for pr in params:
                pr.workspace, pr.workspace_bytes = p.workspace, p.workspace_bytes
            attempt("gqa-decode", shape, "dsk-paged", lambda i: dsk.call("dsk_paged_attention", params[i % len(params)]), 0, moved,
                    ref, lambda: out)
            print_group("gqa-decode", shape)
            del cache, ks, vs, k0, v0
            torch.cuda.empty_cache()

    # ---- MLA decode ---------------------------------------------------------------------------------------------------
    context, page, row, latent = 4096, 64, 576, 512
    mla_scale = 1 / math.sqrt(192)
    for heads in (128, 16):
        for batch in ((1, 128) if args.quick else (1, 32, 128)):
            shape = f"{heads} heads, batch {batch}"
            cache = PagedCache(batch, context, page, row, 0, ROTATE_BYTES, g)
            flops = 2.0 * (row + latent) * heads * batch * context
            moved = batch * context * row * 2 + batch * heads * (row + latent) * 2
            q = torch.randn(batch, heads, row, device="cuda", generator=g).to(torch.bfloat16)
            out = torch.empty(batch, heads, latent, device="cuda", dtype=torch.bfloat16)
            starts = torch.arange(batch + 1, dtype=torch.int32, device="cuda")
            cs = [cache.gather(cache.keys, r, row) for r in range(cache.rotations)]  # [batch, context, 576] per rotation
            ref = torch.softmax(torch.einsum("bhd,bld->bhl", q.float(), cs[0].float()) * mla_scale, dim=-1) @ cs[0][..., :latent].float()
            holder = {}

            def run_bmm(i, holder=holder):
                c = cs[i % len(cs)]
                s = torch.matmul(q, c.transpose(1, 2)) * mla_scale
                holder["y"] = torch.matmul(torch.softmax(s.float(), dim=-1).to(torch.bfloat16), c[..., :latent])
            attempt("mla-decode", shape, "torch-bmm-absorbed", run_bmm, flops, moved, ref, lambda holder=holder: holder["y"])
            for name, backend in sdpa_backends():
                holder = {}

                def run_sdpa(i, backend=backend, holder=holder):
                    c = cs[i % len(cs)].unsqueeze(1)
                    with backend():
                        holder["y"] = F.scaled_dot_product_attention(q.unsqueeze(2), c, c[..., :latent], scale=mla_scale, enable_gqa=True)
                attempt("mla-decode", shape, name, run_sdpa, flops, moved, ref, lambda holder=holder: holder["y"].squeeze(2))
            params = [paged_params(dsk, cache, q, out, starts, heads, 1, row, latent, mla_scale, mla=True, r=r) for r in range(cache.rotations)]
            ws, ws_bytes = dsk.workspace(params[0], mla=True)
            for pr in params:
                pr.workspace, pr.workspace_bytes = (ws.data_ptr() if ws_bytes else None), ws_bytes
            attempt("mla-decode", shape, "dsk-paged-mla", lambda i: dsk.call("dsk_paged_mla_attention", params[i % len(params)]), flops,
                    moved, ref, lambda: out)
            print_group("mla-decode", shape)
            del cache, cs
            torch.cuda.empty_cache()

    # ---- causal prefill -----------------------------------------------------------------------------------------------
    page = 64
    for batch, n in ((1, 8192), (16, 1024)):
        shape = f"{batch}x{n} causal"
        flops = 4.0 * d * qh * batch * n * (n + 1) / 2
        cache = PagedCache(batch, n, page, kvh * d, kvh * d, 0, g)
        q = torch.randn(batch * n, qh, d, device="cuda", generator=g).to(torch.bfloat16)
        out = torch.empty(batch * n, qh, d, device="cuda", dtype=torch.bfloat16)
        starts = torch.arange(0, batch * n + 1, n, dtype=torch.int32, device="cuda")
        k0 = cache.gather(cache.keys, 0, kvh * d).reshape(batch, n, kvh, d).transpose(1, 2).contiguous()
        v0 = cache.gather(cache.values, 0, kvh * d).reshape(batch, n, kvh, d).transpose(1, 2).contiguous()
        qs = q.reshape(batch, n, qh, d).transpose(1, 2).contiguous()
        ref = None
        for name, backend in sdpa_backends():
            holder = {}

            def run_sdpa(i, backend=backend, holder=holder):
                with backend():
                    holder["y"] = F.scaled_dot_product_attention(qs, k0, v0, is_causal=True, scale=scale, enable_gqa=True)
            r = attempt("prefill", shape, name, run_sdpa, flops, 0)
            if ref is None and r["us"] == r["us"]:
                ref = holder["y"].transpose(1, 2).reshape(batch * n, qh, d).float()
        p = paged_params(dsk, cache, q, out, starts, qh, kvh, d, d, scale, mla=False)
        ws, ws_bytes = dsk.workspace(p, mla=False)
        p.workspace, p.workspace_bytes = (ws.data_ptr() if ws_bytes else None), ws_bytes
        attempt("prefill", shape, "dsk-paged", lambda i: dsk.call("dsk_paged_attention", p), flops, 0, ref, lambda: out)
        print_group("prefill", shape)
        del cache, k0, v0, qs
        torch.cuda.empty_cache()

    # ---- RoPE + KV append ---------------------------------------------------------------------------------------------
    rotary, max_pos, page = 128, 8192, 16
    inv = 1.0 / (500000.0 ** (torch.arange(0, rotary, 2, device="cuda").float() / rotary))
    angles = torch.arange(max_pos, device="cuda").float()[:, None] * inv[None, :]
    cos, sin = angles.cos().contiguous(), angles.sin().contiguous()
    for tokens in (16, 4096):
        shape = f"{tokens} tokens"
        set_elems = tokens * (qh + 2 * kvh) * d
        copies = max(1, -(-ROTATE_BYTES // (set_elems * 2)))
        sets = torch.randn(copies, set_elems, device="cuda", generator=g).to(torch.bfloat16)
        slots_total = copies * tokens
        pages = -(-slots_total // page)
        key_pages = torch.zeros(pages * page, kvh * d, device="cuda", dtype=torch.bfloat16)
        value_pages = torch.zeros_like(key_pages)
        slot_mapping = torch.randperm(slots_total, device="cuda", generator=g).to(torch.int32).reshape(copies, tokens).contiguous()
        positions = torch.arange(tokens, dtype=torch.int32, device="cuda") + (max_pos - tokens) // 2
        moved = (2 * tokens * (qh + kvh) * d * 2 + 8 * tokens + 2 * tokens * (rotary // 2) * 4 * 2) + (2 * tokens * 2 * kvh * d * 2 + 4 * tokens)

        def qkv(i):
            s = sets[i % copies]
            qn, kn = tokens * qh * d, tokens * kvh * d
            return s[:qn].view(tokens, qh, d), s[qn:qn + kn].view(tokens, kvh, d), s[qn + kn:].view(tokens, kvh, d)

        def run_torch(i):
            qx, kx, vx = qkv(i)
            c, s_ = cos[positions.long()][:, None, :], sin[positions.long()][:, None, :]
            for x in (qx, kx):
                a, b = x[..., :rotary // 2].float(), x[..., rotary // 2:].float()
                x.copy_(torch.cat((a * c - b * s_, b * c + a * s_), dim=-1).to(torch.bfloat16))
            idx = slot_mapping[i % copies].long()
            key_pages.index_copy_(0, idx, kx.reshape(tokens, -1))
            value_pages.index_copy_(0, idx, vx.reshape(tokens, -1))

        def run_dsk(i):
            qx, kx, vx = qkv(i)
            for x, heads in ((qx, qh), (kx, kvh)):
                dsk.call("dsk_rope", DskRopeParams(x=x.data_ptr(), positions=positions.data_ptr(), cos=cos.data_ptr(), sin=sin.data_ptr(),
                                                  error_word=dsk.error_word.data_ptr(), tokens=tokens, heads=heads, head_stride=d,
                                                  x_row_stride=heads * d, rope_offset=0, rotary_dim=rotary, max_positions=max_pos,
                                                  x_dtype=DSK_DTYPE_BF16, layout=DSK_ROPE_HALF_SPLIT, error_site=4, stream=dsk.stream))
            dsk.call("dsk_kv_append", DskKvAppendParams(keys=kx.data_ptr(), values=vx.data_ptr(), slot_mapping=slot_mapping[i % copies].data_ptr(),
                                                        key_pages=key_pages.data_ptr(), value_pages=value_pages.data_ptr(),
                                                        error_word=dsk.error_word.data_ptr(), tokens=tokens, slots=pages * page,
                                                        key_width=kvh * d, value_width=kvh * d, keys_row_stride=kvh * d,
                                                        values_row_stride=kvh * d, key_dtype=DSK_DTYPE_BF16, value_dtype=DSK_DTYPE_BF16,
                                                        key_page_dtype=DSK_DTYPE_BF16, value_page_dtype=DSK_DTYPE_BF16, error_site=5,
                                                        stream=dsk.stream))

        # correctness once on a fresh copy of set 0: torch's result against dsk's
        saved = sets[0].clone()
        run_torch(0)
        want_q, want_pages = qkv(0)[0].clone(), key_pages[slot_mapping[0].long()].clone()
        sets[0].copy_(saved)
        key_pages.zero_()
        holder = {}

        def dsk_out():
            return torch.cat((qkv(0)[0].reshape(-1), key_pages[slot_mapping[0].long()].reshape(-1)))
        attempt("rope+append", shape, "torch-eager", run_torch, 0, moved)
        sets[0].copy_(saved)
        try:
            run_dsk(0)
            torch.cuda.synchronize()
            holder["err"] = rel_err(dsk_out(), torch.cat((want_q.reshape(-1), want_pages.reshape(-1))))
        except Exception as e:  # noqa: BLE001
            holder["err"] = None
            print(f"rope+append {shape}: dsk failed: {e}")
        r = attempt("rope+append", shape, "dsk-rope+append", run_dsk, 0, moved)
        if r["us"] == r["us"]:
            r["err"] = holder["err"]
        print_group("rope+append", shape)
        del sets, key_pages, value_pages
        torch.cuda.empty_cache()

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "attention_peers.md"), "w") as f:
        f.write(f"{dev.name}, torch {torch.__version__}, CUDA {torch.version.cuda}; copy {copy_gbs:.0f} GB/s, "
                f"cuBLAS bf16 8192^3 {gemm_tflops:.0f} TFLOP/s\n\n")
        f.write("| group | shape | kernel | µs | TFLOP/s | share of GEMM | GB/s | share of copy | x best peer | rel. error | note |\n")
        f.write("|---|---|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            err = f"{r['err']:.1e}" if r["err"] is not None else ""
            f.write(f"| {r['group']} | {r['shape']} | {r['kernel']} | {r['us']:.1f} | {r['tflops']:.1f} | {100 * r['gemm_share']:.1f}% | "
                    f"{r['gbs']:.0f} | {100 * r['copy_share']:.1f}% | {r.get('x_best_peer', float('nan')):.2f} | {err} | {r['note']} |\n")
    failed = [r for r in rows if r["kernel"].startswith("dsk") and (r["us"] != r["us"] or (r["err"] is not None and r["err"] > 2e-2))]
    for r in failed:
        print(f"FAILED: {r['group']} {r['shape']} {r['kernel']}: " + (r["note"] or f"rel. error {r['err']:.1e}"), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""bench/peers/moe_peers.py: DeepSeek-V3's routed experts (issue 13) the way PyTorch and Hugging Face transformers 5.x run them,
on the shapes of bench/DeepSeekKernels.Bench/Moe (hidden 7168, 256 experts, top-8, 8 groups of which 4 are kept, sigmoid
scores with the correction bias (noaux_tc), normalised, x 2.5, expert intermediate 2048), so that the README can quote the
BenchmarkDotNet rows of Ops.MoeRoute and Ops.MoeLayer as "x PyTorch". Pure PyTorch: no other package, no network.

    python3 bench/peers/moe_peers.py [--quick] [--full] [--out DIR]

Rows:
  route      the chain of ops transformers runs (DeepseekV3MoE.route_tokens_to_experts / DeepseekV3TopkRouter): sigmoid, + bias,
             group scores (sum of each group's top 2), topk of the groups, a group mask (scatter), masked_fill, topk of the
             experts, gather, normalise, scale; from f32 logits [tokens, 256], at 1, 16, 128 and 512 tokens.
             torch-route-eager: launched op by op; torch-route-graph: 20 calls captured in one CUDA graph, replayed (per call).
  moe-layer  the routed experts with bf16 weights (one layer: 256 x (gate|up [4096, 7168] + down [7168, 2048]), 22.5 GB) at
             1, 16 and 128 tokens (--full adds 4096):
             torch-expert-loop: transformers' per-expert loop (DeepseekV3NaiveMoe): router F.linear in f32, the routing chain,
               one_hot -> the experts hit, and for each: its tokens (torch.where), F.linear gate|up, silu * up, F.linear down,
               times the routing weight, index_add_ into the output; eager (it syncs with the host per expert, as transformers');
             torch-grouped-mm: the same with torch._grouped_mm (one grouped GEMM per projection over the rows sorted by
               expert), where this PyTorch has it; otherwise the row says why not.
Columns: µs per call (median of CUDA-event timings after warm-up); the experts the routing used; GB/s over the bytes a call
must move (the used experts' weights once, the router weight, x read, y written: the floor MoeLayerBenchmarks uses) and its
share of the device copy measured in this run; TFLOP/s over 2 x (tokens x 8) x (2 x 2048 x 7168 + 7168 x 2048) and its share
of cuBLAS bf16 8192^3 measured in this run. The routing logits are at most 512 KB and stay in L2 between calls (at these sizes
the chain is launch-bound: a DRAM read of 512 KB is a fraction of a µs); the experts read per call are at least 8 x 88 MB, so
they come from DRAM. The two layer rows are compared by relative norm error (printed), so a fast wrong variant shows.
"""
import argparse
import os

H, E, TOPK, GROUPS, TOPK_GROUPS, INTER, SCALE = 7168, 256, 8, 8, 4, 2048, 2.5


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (scripts/gpu-check.sh)")
    ap.add_argument("--full", action="store_true", help="add the 4096-token layer rows")
    ap.add_argument("--out", default=os.environ.get("OUT", "."), help="folder for moe_peers.md")
    ap.add_argument("--reps", type=int, default=30)
    return ap.parse_args()


def main():
    args = parse_args()
    import torch  # after the arguments: --help works without PyTorch
    import torch.nn.functional as F

    from peers_common import copy_bandwidth, gemm_rate, rel_err, time_us  # beside this script (sys.path[0])

    def route(logits, bias):
        """transformers 5.x, DeepseekV3MoE.route_tokens_to_experts (sigmoid, noaux_tc, norm_topk_prob, routed_scaling_factor)."""
        scores = logits.sigmoid()
        choice = scores + bias
        group_scores = choice.view(-1, GROUPS, E // GROUPS).topk(2, dim=-1)[0].sum(dim=-1)
        group_idx = torch.topk(group_scores, k=TOPK_GROUPS, dim=-1, sorted=False)[1]
        group_mask = torch.zeros_like(group_scores)
        group_mask.scatter_(1, group_idx, 1)
        score_mask = group_mask.unsqueeze(-1).expand(-1, GROUPS, E // GROUPS).reshape(-1, E)
        choice = choice.masked_fill(~score_mask.bool(), 0.0)
        topk_idx = torch.topk(choice, k=TOPK, dim=-1, sorted=False)[1]
        topk_w = scores.gather(1, topk_idx)
        topk_w = topk_w / (topk_w.sum(dim=-1, keepdim=True) + 1e-20)
        return topk_idx, topk_w * SCALE

    dev = torch.cuda.get_device_properties(0)
    print(f"# {dev.name}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    copy_gbs = copy_bandwidth()
    gemm_tflops = gemm_rate()
    print(f"# device-to-device copy: {copy_gbs:.0f} GB/s (read + write); cuBLAS bf16 8192^3: {gemm_tflops:.0f} TFLOP/s", flush=True)
    reps = max(5, args.reps // 3) if args.quick else args.reps
    rows = []
    g = torch.Generator(device="cuda").manual_seed(13)

    def report(group, tokens, kernel, us, used=0, flops=0.0, moved=0, err=None, note=""):
        ok = us == us
        r = dict(group=group, tokens=tokens, kernel=kernel, us=us, used=used, err=err, note=note,
                 tflops=flops / (us * 1e-6) / 1e12 if ok and flops else float("nan"),
                 gbs=moved / (us * 1e-6) / 1e9 if ok and moved else float("nan"))
        r["gemm_share"] = r["tflops"] / gemm_tflops
        r["copy_share"] = r["gbs"] / copy_gbs
        rows.append(r)
        print(f"{group:9s} {tokens:5d} tokens {kernel:18s} {us:10.1f} us" + (f"  {used:3d} experts" if used else "")
              + (f"  {r['gbs']:6.0f} GB/s {100 * r['copy_share']:5.1f}% copy  {r['tflops']:6.1f} TFLOP/s "
                 f"{100 * r['gemm_share']:5.1f}% GEMM" if moved or flops else "")
              + (f"  err {err:.1e}" if err is not None else "") + (f"  {note}" if note else ""), flush=True)

    def attempt(group, tokens, kernel, run, **kw):
        try:
            run(0)
            torch.cuda.synchronize()
            report(group, tokens, kernel, time_us(run, reps), **kw)
        except Exception as e:  # noqa: BLE001 - report, do not fail the run
            report(group, tokens, kernel, float("nan"), note=f"not run: {type(e).__name__}: {str(e)[:120]}")

    bias = ((torch.rand(E, device="cuda", generator=g) - 0.5) / 10).contiguous()

    # ---- routing alone --------------------------------------------------------------------------------------------------
    graph_calls = 20
    for tokens in (1, 16, 128, 512):
        logits = (torch.rand(tokens, E, device="cuda", generator=g) * 4 - 2).contiguous()
        attempt("route", tokens, "torch-route-eager", lambda i, logits=logits: route(logits, bias))
        idx, w = route(logits, bias)
        distinct = bool(idx.sort(dim=1)[0].diff(dim=1).ne(0).all())
        if not distinct or not torch.allclose(w.sum(-1), torch.full_like(w[:, 0], SCALE), rtol=1e-5):
            print(f"route {tokens} tokens: the chain's ids are not distinct per token or its weights do not sum to {SCALE}", flush=True)
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    route(logits, bias)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for _ in range(graph_calls):
                    route(logits, bias)
            us = time_us(lambda i: graph.replay(), reps) / graph_calls
            report("route", tokens, "torch-route-graph", us)
        except Exception as e:  # noqa: BLE001
            report("route", tokens, "torch-route-graph", float("nan"), note=f"not run: {type(e).__name__}: {str(e)[:120]}")

    # ---- the routed experts ---------------------------------------------------------------------------------------------
    std = H ** -0.5
    router = (torch.randn(E, H, device="cuda", generator=g, dtype=torch.bfloat16) * std).contiguous()
    gate_up = torch.randn(E, 2 * INTER, H, device="cuda", generator=g, dtype=torch.bfloat16).mul_(std)  # 15 GB
    down = torch.randn(E, H, INTER, device="cuda", generator=g, dtype=torch.bfloat16).mul_(INTER ** -0.5)  # 7.5 GB
    expert_bytes = 2 * (2 * INTER * H + H * INTER)

    def expert_loop(x):
        """transformers 5.x's DeepseekV3MoE forward over the routed experts: the router, the routing, the per-expert loop."""
        logits = F.linear(x.float(), router.float())
        topk_idx, topk_w = route(logits, bias)
        out = torch.zeros_like(x)
        with torch.no_grad():
            expert_mask = F.one_hot(topk_idx, num_classes=E).permute(2, 1, 0)
            expert_hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0).nonzero()
        for expert_idx in expert_hit:
            expert_idx = expert_idx[0]
            top_k_pos, token_idx = torch.where(expert_mask[expert_idx])
            gate, up = F.linear(x[token_idx], gate_up[expert_idx]).chunk(2, dim=-1)
            h = F.linear(F.silu(gate) * up, down[expert_idx])
            h = h * topk_w[token_idx, top_k_pos, None]
            out.index_add_(0, token_idx, h.to(out.dtype))
        return out

    def grouped_mm(x):
        """The same layer with torch._grouped_mm: rows sorted by expert, one grouped GEMM per projection, a weighted scatter back."""
        logits = F.linear(x.float(), router.float())
        topk_idx, topk_w = route(logits, bias)
        flat = topk_idx.reshape(-1)
        order = torch.argsort(flat, stable=True)
        offs = torch.cumsum(torch.bincount(flat, minlength=E), 0).to(torch.int32)
        rows = x[order // TOPK]
        gate, up = torch._grouped_mm(rows, gate_up.transpose(-2, -1), offs=offs).chunk(2, dim=-1)
        h = torch._grouped_mm((F.silu(gate) * up).contiguous(), down.transpose(-2, -1), offs=offs)
        h = h * topk_w.reshape(-1)[order, None]
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        out.index_add_(0, order // TOPK, h.float())
        return out.to(x.dtype)

    for tokens in (1, 16, 128) + ((4096,) if args.full else ()):
        x = torch.randn(tokens, H, device="cuda", generator=g, dtype=torch.bfloat16)
        used = int(route(F.linear(x.float(), router.float()), bias)[0].unique().numel())
        slots = tokens * TOPK
        flops = 2.0 * slots * (2 * INTER * H + H * INTER)
        moved = used * expert_bytes + 2 * E * H + 4 * E + 2 * 2 * tokens * H
        ref = expert_loop(x)
        attempt("moe-layer", tokens, "torch-expert-loop", lambda i, x=x: expert_loop(x), used=used, flops=flops, moved=moved)
        try:
            err = rel_err(grouped_mm(x), ref)
        except Exception:  # noqa: BLE001 - attempt() reports why
            err = None
        attempt("moe-layer", tokens, "torch-grouped-mm", lambda i, x=x: grouped_mm(x), used=used, flops=flops, moved=moved, err=err)
        del x, ref
        torch.cuda.empty_cache()

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "moe_peers.md"), "w") as f:
        f.write(f"{dev.name}, torch {torch.__version__}, CUDA {torch.version.cuda}; copy {copy_gbs:.0f} GB/s, "
                f"cuBLAS bf16 8192^3 {gemm_tflops:.0f} TFLOP/s\n\n")
        f.write("| group | tokens | kernel | µs | experts used | GB/s | share of copy | TFLOP/s | share of GEMM | rel. error | note |\n")
        f.write("|---|---|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            err = f"{r['err']:.1e}" if r["err"] is not None else ""
            f.write(f"| {r['group']} | {r['tokens']} | {r['kernel']} | {r['us']:.1f} | {r['used'] or ''} | {r['gbs']:.0f} | "
                    f"{100 * r['copy_share']:.1f}% | {r['tflops']:.1f} | {100 * r['gemm_share']:.1f}% | {err} | {r['note']} |\n")
    # the loop and the routing chain are the rows the README quotes: the run fails if one of them did not run
    missing = [r for r in rows if r["kernel"] in ("torch-expert-loop", "torch-route-eager") and r["us"] != r["us"]]
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env bash
# scripts/gpu-check.sh [OUT_DIR]: everything that needs a GPU, in one run, with logs and a short table.
#
# Sized for a 15-minute device window that includes the machine's start-up: under 8 minutes on an H200.
#   1. builds libdeepseek_kernels.so for this GPU's own arch only (sm_90a on Hopper with CUDA 12+) and runs its
#      ctest checks (the C ABI checks; dsk_rms_norm, dsk_linear, dsk_embedding, the FP8 ops against CPU references on
#      the GPU), their --bench modes, and bench/peers/linear_peers.py (PyTorch's cuBLAS/cuBLASLt beside dsk_linear);
#   2. runs the GPU test classes (native and ILGPU-CUDA backends active; DSK_REQUIRE_GPU=1 turns a skip into a
#      failure); the CPU classes ran in CI already;
#   3. runs the same classes under `compute-sanitizer --tool memcheck` (must say 0 errors);
#   4. runs `dsk check` (accuracy and the support table), `dsk generate` on the native backend with
#      --allow-fallback, and only the headline benchmarks as short BenchmarkDotNet jobs (RMSNorm vs a device copy
#      of the same bytes; the cuBLAS and cuBLASLt GEMM baselines; BenchConfig's job is already short: 12 x 100 ms), then
#      the linear layer's headline (LinearBenchmarks at M = 1, 16, 4096 on K = 7168, N = 18432: cuBLASLt bf16, dsk_linear
#      bf16, FP8 block and INT4 g128, a copy of the weight's bytes; about a minute) as its own step, bench-linear.
#   5. attention (issue 12), its own steps: the attention check programs (dsk_attention_check, dsk_attention_mma_check,
#      dsk_mla_check; ctest ran their correctness already) under racecheck on their --quick sets and with --bench,
#      bench/peers/attention_peers.py (PyTorch SDPA: cuDNN, flash, efficient, beside dsk_paged_attention, dsk_paged_mla_attention,
#      dsk_rope + dsk_kv_append), the attention GPU test classes alone (tests-attention) and under memcheck
#      (sanitizer-attention), and the attention benchmarks' headline cases (DSK_BENCH_HEADLINE=1: GQA decode, MLA decode,
#      causal prefill, RoPE + KvAppend, ILGPU decode beside native) in two steps.
#   6. mixture of experts (issue 13), its own group, DSK_STEPS=moe: native-build again (incremental), the MoE check programs
#      (build/native/dsk_moe_check, dsk_grouped_linear_check and dsk_elementwise_check; a program not built is reported
#      "missing") under racecheck on their --quick sets and with --bench,
#      the MoE GPU test classes with DSK_REQUIRE_GPU=1 (MoeRoute, MoePermute, MoeCombine, MoeLayer, GroupedLinear,
#      GroupedLinearSiluMul and the elementwise ops' conformance on the native and ILGPU-CUDA backends: tests-moe) and under
#      memcheck (sanitizer-moe), the MoE benchmarks' headline cases (DSK_BENCH_HEADLINE=1: MoeRouteBenchmarks at 1-512 tokens,
#      bench-moe-route, about a minute; MoeLayerBenchmarks at 1, 16, 128, 4096 tokens with bf16 and FP8 experts beside a copy,
#      the cuBLAS GEMM rate and a per-expert cuBLAS loop, bench-moe-layer, about 2.5 minutes), bench/peers/moe_peers.py
#      (transformers' routing chain and per-expert loop in PyTorch, bench-peers-moe), and dsk generate on the three DeepSeek
#      fixtures (tests/fixtures/hf-tiny: deepseek_v3, deepseek_v3_fp8, deepseek_v2_lite) and the embedded model on the native
#      backend with no fallback, each beside --backend reference, decode tokens/s of both printed (dsk-generate-moe).
#      About 7 minutes (estimated, not yet timed; a minute more on a fresh machine, where native-build is a full build).
#      The whole list is more than one 10-minute call, so it is three: without DSK_STEPS (or DSK_STEPS=base) steps 1-4, about
#      8 minutes, the attention classes included in step 2's list; then DSK_STEPS=attention: native-build again
#      (incremental) and step 5, about 6 minutes; then DSK_STEPS=moe: step 6.
# OUT/summary.txt holds the table, the test totals, the sanitizer summary and the GPU; the raw logs sit beside it.
#
# Works with a .NET SDK (dotnet run) or without one, from the bundle that scripts/device-bundle.sh packs
# (.device-bundle/, copied to the GPU machine with the working tree). Logs and reports go to OUT_DIR
# (default: $OUT if set, else build/gpu-check). Exits non-zero if any step failed. DSK_USE_BUNDLE=1 uses the
# bundle even where an SDK is installed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mkdir -p "${1:-${OUT:-build/gpu-check}}" && cd "${1:-${OUT:-build/gpu-check}}" && pwd)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# The test runner works in its own folder; this tells the tests where the checkout (and its fixtures) is.
export DSK_REPO_ROOT=$PWD
declare -a summary=()
failed=0

# Each step may run at most DSK_STEP_TIMEOUT seconds (default 240), so one hung step cannot eat a lease.
step_timeout=${DSK_STEP_TIMEOUT:-240}
# DSK_STEPS="tests bench ..." runs only the named steps (a second lease can then finish what a first began). Three groups
# stand for their steps: base (steps 1-4, the default), attention (native-build and step 5) and moe (native-build and step 6).
steps=" ${DSK_STEPS:-base} "
base_steps="native-build native-ctest native-racecheck native-bench native-bench-linear native-bench-mma bench-peers tests sanitizer dsk-check dsk-generate bench bench-linear"
attention_steps="native-build native-racecheck-attention native-bench-attention bench-peers-attention tests-attention sanitizer-attention bench-attention-decode bench-attention-prefill"
moe_steps="native-build native-racecheck-moe native-bench-moe tests-moe sanitizer-moe bench-moe-route bench-moe-layer bench-peers-moe dsk-generate-moe"
[[ "$steps" == *" base "* ]] && steps="$steps$base_steps "
[[ "$steps" == *" attention "* ]] && steps="$steps$attention_steps "
[[ "$steps" == *" moe "* ]] && steps="$steps$moe_steps "
step() { # step NAME COMMAND...: runs COMMAND with its output in OUT/NAME.log
  local name=$1; shift
  local start=$SECONDS
  if [ "$steps" != "  " ] && [[ "$steps" != *" $name "* ]]; then summary+=("$name|skipped (DSK_STEPS)|-"); return; fi
  echo "== $name: $*"
  if timeout --kill-after=10 "$step_timeout" "$@" >"$out/$name.log" 2>&1; then
    summary+=("$name|ok|$((SECONDS - start)) s")
  else
    summary+=("$name|FAILED (exit $?)|$((SECONDS - start)) s")
    failed=1
    tail -n 40 "$out/$name.log"
  fi
}

if [ -z "${DSK_USE_BUNDLE:-}" ] && command -v dotnet >/dev/null && [ -n "$(dotnet --list-sdks 2>/dev/null)" ]; then
  tests=(dotnet run -c Release --project tests/DeepSeekKernels.Tests --)
  bench=(dotnet run -c Release --project bench/DeepSeekKernels.Bench --)
  dsk=(dotnet run -c Release --project src/DeepSeekKernels.Cli --)
elif [ -x .device-bundle/run ]; then
  tests=(bash .device-bundle/run DeepSeekKernels.Tests)
  bench=(bash .device-bundle/run DeepSeekKernels.Bench)
  # dsk.dll travels inside the tests' bundle; the run script unpacks it to /tmp/device-bundle (see its header).
  bash .device-bundle/run DeepSeekKernels.Tests -list classes >/dev/null || echo "gpu-check: could not unpack the bundle" >&2
  dsk=(/tmp/dotnet/dotnet /tmp/device-bundle/DeepSeekKernels.Tests/dsk.dll)
else
  echo "gpu-check: no .NET SDK and no .device-bundle/ (pack it with scripts/device-bundle.sh)" >&2
  exit 2
fi

nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || echo "gpu-check: nvidia-smi failed" >&2

# 1. Native library, built here for this GPU only; the .NET side loads exactly this file.
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
cuda_major=$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
arch=${DSK_CUDA_ARCH:-${cap:-90}}
[ "$arch" = 90 ] && [ "${cuda_major:-0}" -ge 12 ] && arch=90a # wgmma/TMA paths need sm_90a, which CUDA 11.8 lacks
# The FP8 tensor-core path of dsk_linear_fp8_w8a8 (CUDA 12.4+) has never been compiled on a machine without a GPU: if the
# build fails, it is rebuilt without it (-DDSK_FP8_MMA=OFF: W8A8 on bf16 tensor cores) and the log says so.
step native-build bash -c "cmake -S . -B build/native -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$arch -DDSK_BUILD_TESTS=ON && cmake --build build/native \
  || { echo 'gpu-check: build failed; rebuilding with -DDSK_FP8_MMA=OFF' >&2; cmake -S . -B build/native -DDSK_FP8_MMA=OFF && cmake --build build/native && exit 3; }"
# ctest: the C ABI checks; dsk_rms_norm, dsk_linear (SIMT, AUTO, MMA), dsk_embedding, dsk_dequantize_fp8, the FP8 activation
# ops against CPU references on the GPU.
step native-ctest ctest --test-dir build/native --output-on-failure
# The GEMV's split-K sums and the tensor-core pipelines exchange through shared memory: racecheck on the quick sets.
if command -v compute-sanitizer >/dev/null; then
  step native-racecheck bash -c "compute-sanitizer --tool racecheck --error-exitcode 99 build/native/dsk_linear_check --quick \
    && compute-sanitizer --tool racecheck --error-exitcode 99 build/native/dsk_mma_check"
fi
step native-bench build/native/dsk_rms_norm_check --bench
step native-bench-linear build/native/dsk_linear_check --bench
step native-bench-mma build/native/dsk_mma_check --bench
# PyTorch's cuBLAS bf16 and cuBLASLt FP8 (per-tensor and, where offered, 128x128 blocks) beside dsk_linear in one process.
step bench-peers python3 bench/peers/linear_peers.py --lib build/native/libdeepseek_kernels.so --quick --out "$out"
# 5a. Attention check programs (issue 12): ctest ran their correctness; the split-K combine and the tensor-core tiles
# exchange through shared memory (racecheck on the quick sets), then each one's --bench (after its own correctness pass).
if command -v compute-sanitizer >/dev/null; then
  step native-racecheck-attention bash -c "for c in dsk_attention_check dsk_attention_mma_check dsk_mla_check; do \
    compute-sanitizer --tool racecheck --error-exitcode 99 build/native/\$c --quick || exit \$?; done"
fi
step native-bench-attention bash -c "build/native/dsk_attention_check --bench && build/native/dsk_attention_mma_check --bench \
  && build/native/dsk_mla_check --bench"
# PyTorch's scaled_dot_product_attention (cuDNN, flash, efficient) beside the dsk attention entry points in one process.
step bench-peers-attention python3 bench/peers/attention_peers.py --lib build/native/libdeepseek_kernels.so --quick --out "$out"
export DSK_NATIVE_LIBRARY=$PWD/build/native/libdeepseek_kernels.so
# A GPU test that would skip here (no GPU seen, native kernels not loadable) fails instead.
export DSK_REQUIRE_GPU=1

# 2. The GPU test classes. CudaErrorTests provokes CUDA API errors on purpose: run here, left out of memcheck.
#    The conformance suite (tests/.../Conformance): every op's ILGPU-CUDA and native class (a signature the backend does
#    not support must be refused, writing nothing; a supported one must match the float64 oracle), and SupportTableTests,
#    whose op x backend table (GPU columns included) lands in tests.xml.
# The attention classes (issue 12): RoPE, KV append, paged GQA and MLA attention on both GPU backends, and the C ABI's own
# checks of the attention entry points (which need the library built with the attention kernels, as it is here), and a
# decode step (KvAppend + paged attention) captured into a CUDA graph and replayed at the next positions.
attention_classes=(-class DeepSeekKernels.Tests.Conformance.RopeIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.RopeNativeConformance
             -class DeepSeekKernels.Tests.Conformance.KvAppendIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.KvAppendNativeConformance
             -class DeepSeekKernels.Tests.Conformance.PagedAttentionIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.PagedAttentionNativeConformance
             -class DeepSeekKernels.Tests.Conformance.PagedMlaAttentionIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.PagedMlaAttentionNativeConformance
             -class DeepSeekKernels.Tests.Bindings.NativeAttentionAbiTests -class DeepSeekKernels.Tests.Runtime.PagedDecodeGraphTests)
gpu_classes=("${attention_classes[@]}"
             -class DeepSeekKernels.Tests.RmsNorm.RmsNormNativeTests
             -class DeepSeekKernels.Tests.RmsNorm.RmsNormIlgpuCudaTests
             -class DeepSeekKernels.Tests.Conformance.LinearIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.LinearNativeConformance
             -class DeepSeekKernels.Tests.Conformance.LinearSiluMulIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.LinearSiluMulNativeConformance
             -class DeepSeekKernels.Tests.Conformance.DequantizeFp8IlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.DequantizeFp8NativeConformance
             -class DeepSeekKernels.Tests.Conformance.HeadwiseLinearIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.HeadwiseLinearNativeConformance
             -class DeepSeekKernels.Tests.Conformance.EmbeddingIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.EmbeddingNativeConformance
             -class DeepSeekKernels.Tests.Conformance.AttentionIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.AttentionNativeConformance
             -class DeepSeekKernels.Tests.Conformance.MlaAttentionIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.MlaAttentionNativeConformance
             -class DeepSeekKernels.Tests.Conformance.CopyColumnsIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.CopyColumnsNativeConformance
             -class DeepSeekKernels.Tests.Conformance.SiluAndMulIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.SiluAndMulNativeConformance
             -class DeepSeekKernels.Tests.Conformance.SoftmaxIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.SoftmaxNativeConformance
             -class DeepSeekKernels.Tests.Conformance.AddIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.AddNativeConformance
             -class DeepSeekKernels.Tests.Conformance.ScaleIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.ScaleNativeConformance
             -class DeepSeekKernels.Tests.Conformance.MoeRouteIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.MoeRouteNativeConformance
             -class DeepSeekKernels.Tests.Conformance.MoePermuteIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.MoePermuteNativeConformance
             -class DeepSeekKernels.Tests.Conformance.GroupedLinearIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.GroupedLinearNativeConformance
             -class DeepSeekKernels.Tests.Conformance.GroupedLinearSiluMulIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.GroupedLinearSiluMulNativeConformance
             -class DeepSeekKernels.Tests.Conformance.MoeCombineIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.MoeCombineNativeConformance
             -class DeepSeekKernels.Tests.Conformance.MoeLayerIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.MoeLayerNativeConformance
             -class DeepSeekKernels.Tests.Conformance.QuantizeFp8ActivationsIlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.QuantizeFp8ActivationsNativeConformance
             -class DeepSeekKernels.Tests.Conformance.LinearW8A8IlgpuCudaConformance -class DeepSeekKernels.Tests.Conformance.LinearW8A8NativeConformance
             -class DeepSeekKernels.Tests.Conformance.SupportTableTests
             -class DeepSeekKernels.Tests.Runtime.SharedStreamChainTests
             -class DeepSeekKernels.Tests.Runtime.DeviceGraphTests
             -class DeepSeekKernels.Tests.Models.GpuBackendModelTests
             -class DeepSeekKernels.Tests.Bindings.CublasAndNvmlTests
             -class DeepSeekKernels.Tests.Bindings.NativeLinearAbiTests
             -class DeepSeekKernels.Tests.OpTests.NativeLinearPathTests
             -class DeepSeekKernels.Tests.OpTests.ElementwiseIlgpuCudaTests
             -class DeepSeekKernels.Tests.OpTests.CapabilityTests
             -class DeepSeekKernels.Tests.OpTests.FallbackTests)
step tests "${tests[@]}" -noColor -xml "$out/tests.xml" "${gpu_classes[@]}" -class DeepSeekKernels.Tests.Runtime.CudaErrorTests

# 3. The same classes under memcheck.
if [ "$steps" != "  " ] && [[ "$steps" != *" sanitizer "* ]]; then
  summary+=("sanitizer|skipped (DSK_STEPS)|-")
elif command -v compute-sanitizer >/dev/null; then
  step sanitizer compute-sanitizer --tool memcheck --target-processes all --error-exitcode 99 \
    "${tests[@]}" -noColor "${gpu_classes[@]}"
  grep -q "ERROR SUMMARY: 0 errors" "$out/sanitizer.log" || { echo "gpu-check: memcheck did not report 0 errors" >&2; failed=1; }
else
  summary+=("sanitizer|not run: compute-sanitizer not found|-")
fi

# 5c. The attention classes alone (the base run has them in step 2's list), then under memcheck.
step tests-attention "${tests[@]}" -noColor -xml "$out/tests-attention.xml" "${attention_classes[@]}"
if [[ "$steps" != *" sanitizer-attention "* ]]; then
  summary+=("sanitizer-attention|skipped (DSK_STEPS)|-")
elif command -v compute-sanitizer >/dev/null; then
  step sanitizer-attention compute-sanitizer --tool memcheck --target-processes all --error-exitcode 99 \
    "${tests[@]}" -noColor "${attention_classes[@]}"
  grep -q "ERROR SUMMARY: 0 errors" "$out/sanitizer-attention.log" || { echo "gpu-check: memcheck (attention) did not report 0 errors" >&2; failed=1; }
else
  summary+=("sanitizer-attention|not run: compute-sanitizer not found|-")
fi

# 4. The kernel demo and the benchmarks.
step dsk-check "${dsk[@]}" check
step dsk-generate "${dsk[@]}" generate --backend native --device cuda -n 32 --allow-fallback
step bench "${bench[@]}" --filter '*.RmsNormBenchmarks.*' '*Gemm*' --artifacts "$out/bench"
# BenchmarkDotNet's filter matches the parameters too: the headline cases of the 120 in LinearBenchmarks.
step bench-linear "${bench[@]}" --filter '*LinearBenchmarks*(M: 1, Shape: "7168x18432")' '*LinearBenchmarks*(M: 16, Shape: "7168x18432")' \
  '*LinearBenchmarks*(M: 4096, Shape: "7168x18432")' --artifacts "$out/bench-linear"
# 5b. The attention benchmarks' headline cases (DSK_BENCH_HEADLINE=1 trims their parameters), decode and prefill apart.
step bench-attention-decode env DSK_BENCH_HEADLINE=1 "${bench[@]}" --filter '*PagedDecodeBenchmarks*' '*MlaDecodeBenchmarks*' \
  --artifacts "$out/bench-attention-decode"
step bench-attention-prefill env DSK_BENCH_HEADLINE=1 "${bench[@]}" --filter '*PrefillAttentionBenchmarks*' '*RopeKvAppendBenchmarks*' \
  --artifacts "$out/bench-attention-prefill"

# 6. Mixture of experts (issue 13). The check programs are being written beside these steps: one not built is "missing".
# The check programs' quick sets under racecheck (permutation ranks, softmax and the grouped MMA tiles exchange data
# through shared memory), then their --bench runs.
if [[ "$steps" != *" native-racecheck-moe "* ]]; then
  summary+=("native-racecheck-moe|skipped (DSK_STEPS)|-")
elif command -v compute-sanitizer >/dev/null; then
  step native-racecheck-moe bash -c "for c in dsk_moe_check dsk_grouped_linear_check dsk_elementwise_check; do \
      [ -x build/native/\$c ] || { echo \"\$c: missing\"; continue; }; \
      compute-sanitizer --tool racecheck --error-exitcode 99 build/native/\$c --quick || exit 1; done"
else
  summary+=("native-racecheck-moe|not run: compute-sanitizer not found|-")
fi
step native-bench-moe bash -c 'rc=0; for c in dsk_moe_check dsk_grouped_linear_check dsk_elementwise_check; do
    if [ -x "build/native/$c" ]; then echo "== $c --bench"; "build/native/$c" --bench || rc=$?; else echo "$c: missing (not in build/native)"; fi
  done; exit $rc'
# The MoE ops and the small activation ops the layer chains (CopyColumns, SiLU-and-mul, softmax, add, scale), both GPU backends.
# A class not in this build (GroupedLinearSiluMul's, while it is being written) matches nothing.
moe_classes=()
for c in MoeRoute MoePermute MoeCombine MoeLayer GroupedLinear GroupedLinearSiluMul CopyColumns SiluAndMul Softmax Add Scale; do
  moe_classes+=(-class "DeepSeekKernels.Tests.Conformance.${c}IlgpuCudaConformance" -class "DeepSeekKernels.Tests.Conformance.${c}NativeConformance")
done
step tests-moe "${tests[@]}" -noColor -xml "$out/tests-moe.xml" "${moe_classes[@]}"
if [[ "$steps" != *" sanitizer-moe "* ]]; then
  summary+=("sanitizer-moe|skipped (DSK_STEPS)|-")
elif command -v compute-sanitizer >/dev/null; then
  step sanitizer-moe compute-sanitizer --tool memcheck --target-processes all --error-exitcode 99 \
    "${tests[@]}" -noColor "${moe_classes[@]}"
  grep -q "ERROR SUMMARY: 0 errors" "$out/sanitizer-moe.log" || { echo "gpu-check: memcheck (moe) did not report 0 errors" >&2; failed=1; }
else
  summary+=("sanitizer-moe|not run: compute-sanitizer not found|-")
fi
# The MoE benchmarks' headline cases (DSK_BENCH_HEADLINE=1), routing and the whole layer apart (each fits the step timeout).
step bench-moe-route env DSK_BENCH_HEADLINE=1 "${bench[@]}" --filter '*MoeRouteBenchmarks*' --artifacts "$out/bench-moe-route"
step bench-moe-layer env DSK_BENCH_HEADLINE=1 "${bench[@]}" --filter '*MoeLayerBenchmarks*' --artifacts "$out/bench-moe-layer"
# PyTorch on the same shapes: transformers' routing chain (eager and as a CUDA graph) and its per-expert loop, torch._grouped_mm.
step bench-peers-moe python3 bench/peers/moe_peers.py --quick --out "$out"
# dsk generate with the MoE ops on the GPU: the three DeepSeek fixtures (tracked in tests/fixtures/hf-tiny, so they travel with
# the working tree; random weights, no tokenizer: the prompt is given as ids) and the embedded model, native with no fallback
# (an op the native backend lacks fails the run) beside the reference backend on the CPU; decode tokens/s of both.
moe_generate() { # moe_generate DSK_COMMAND...
  local rc=0 m b tps line
  local -a model
  local log
  log=$(mktemp)
  for m in tests/fixtures/hf-tiny/deepseek_v3 tests/fixtures/hf-tiny/deepseek_v3_fp8 tests/fixtures/hf-tiny/deepseek_v2_lite embedded; do
    model=(--model "$m" --prompt-ids 1,2,3,4,5,6,7,8)
    [ "$m" = embedded ] && model=()
    line="$m:"
    for b in native reference; do
      echo "== dsk generate --backend $b ${model[*]} -n 32"
      if "$@" generate --backend "$b" "${model[@]}" -n 32 >"$log" 2>&1; then
        cat "$log"
        tps=$(sed -n 's|.*decode \([0-9.]*\) tok/s.*|\1|p' "$log" | tail -n 1)
      else
        cat "$log"
        tps=FAILED
        rc=1
      fi
      line="$line $b ${tps:-?}"
    done
    echo "moe-generate decode tok/s: $line"
  done
  rm -f "$log"
  return $rc
}
step dsk-generate-moe bash -c "$(declare -f moe_generate); moe_generate \"\$@\"" moe_generate "${dsk[@]}"

{
  echo
  echo "== gpu-check on $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1), sm_$arch, CUDA ${cuda_major:-?}, $(date -u +%F), ${SECONDS} s"
  printf '%-24s %-28s %s\n' step result time
  for row in "${summary[@]}"; do IFS='|' read -r a b c <<<"$row"; printf '%-24s %-28s %s\n' "$a" "$b" "$c"; done
  grep -hE "Total: [0-9]+" "$out/tests.log" "$out/sanitizer.log" "$out/tests-attention.log" "$out/sanitizer-attention.log" \
    "$out/tests-moe.log" "$out/sanitizer-moe.log" 2>/dev/null | sed 's/^ */tests: /'
  grep -h "ERROR SUMMARY" "$out/sanitizer.log" "$out/sanitizer-attention.log" "$out/sanitizer-moe.log" 2>/dev/null | sed 's/^/memcheck: /'
  grep -h ": missing" "$out/native-bench-moe.log" 2>/dev/null | sed 's/^/native-bench-moe: /'
  grep -h "^moe-generate" "$out/dsk-generate-moe.log" 2>/dev/null
  for report in "$out"/bench/results/*-report-github.md "$out"/bench-linear/results/*-report-github.md "$out"/linear_peers.md \
      "$out"/bench-attention-*/results/*-report-github.md "$out"/attention_peers.md \
      "$out"/bench-moe-*/results/*-report-github.md "$out"/moe_peers.md; do
    [ -f "$report" ] && { echo; sed -n '/^|/p' "$report"; }
  done
} | tee "$out/summary.txt"
exit "$failed"

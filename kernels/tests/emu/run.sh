#!/bin/bash
# run.sh: builds kernels/*.cu and one of the GPU check programs with g++ against the host emulation in this folder
# (cuda_runtime.h, cuda_bf16.h, mma_ptx.cuh, cublas_v2.h) and runs the check on the CPU: no GPU needed. Slow (every
# thread is a fiber): linear_check `--quick` took about 6-10 minutes and the full check about 13 on a busy 2-core
# machine (2026-11-30).
#
#   kernels/tests/emu/run.sh [--quick]        EMU_CHECK=mma runs mma_check (W8A8, the quantiser, the MMA family)
#                                              instead of linear_check; EMU_CHECK=attention runs attention_check (RoPE,
#                                              KV append, the SIMT attention family), attention_mma and mla the
#                                              tensor-core attention families' checks; moe (routing, permutation, combine),
#                                              grouped_linear and elementwise the issue-13 checks; EMU_ASAN=1 adds AddressSanitizer
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
check=${EMU_CHECK:-linear}
case "$check" in
  linear) files=(status linear linear_simt linear_simt_w_f32 linear_simt_w_bf16 linear_simt_w_fp8 linear_simt_w_int4 linear_mma embedding dequantize_fp8) ;;
  mma) files=(status linear linear_simt linear_simt_w_f32 linear_simt_w_bf16 linear_simt_w_fp8 linear_simt_w_int4 linear_mma quantize_fp8_act linear_fp8_w8a8 linear_fp8_w8a8_wgmma) ;;
  attention | attention_mma | mla) files=(status rope kv_append paged_attention paged_attention_simt paged_attention_mma paged_mla_mma paged_mla_wgmma paged_attention_wgmma) ;;
  moe) files=(status moe_route moe_permute moe_combine) ;;
  grouped_linear) files=(status linear linear_simt linear_simt_w_f32 linear_simt_w_bf16 linear_simt_w_fp8 linear_simt_w_int4 linear_mma grouped_linear) ;;
  elementwise) files=(status silu_and_mul copy_columns elementwise softmax) ;;
  *) echo "run.sh: EMU_CHECK must be linear, mma, attention, attention_mma, mla, moe, grouped_linear or elementwise" >&2; exit 2 ;;
esac
out=${EMU_BUILD_DIR:-$root/build/emu-$check}
rm -rf "$out/src"
mkdir -p "$out/src"
# Kernel launches `kernel<<<grid, block, smem, stream>>>(args);` become `emu::launch(grid, block, smem, stream, [&] { kernel(args); });`
# The tensor-core kernels' inline PTX (kernels/mma_ptx.cuh) is replaced by this folder's mma_ptx.cuh (copied beside the
# sources with mma_common.cuh, below), and their `extern __shared__` array by the block's buffer.
for f in "${files[@]/#/$root/kernels/}" "$root/kernels/tests/${check}_check"; do
  python3 - "$f.cu" "$out/src/$(basename "$f").cpp" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
s = re.sub(r'(\b[\w:]+(?:<[^;<>]*>)?)<<<(.+?)>>>\(([\s\S]*?)\);', r'emu::launch(\2, [&] { \1(\3); });', s)
s = re.sub(r'extern __shared__ __align__\(\d+\) (\w+) (\w+)\[\];', r'\1* const \2 = reinterpret_cast<\1*>(emu::dyn_smem);', s)
open(sys.argv[2], 'w').write(s)
PY
done
# Headers that launch kernels with <<<>>> (check_common.cuh's benchmark fill kernel, linear_simt.cuh's launchers) rewritten
# beside the copies, found before the originals.
for h in "$root/kernels/tests/check_common.cuh" "$root/kernels/linear_simt.cuh"; do
  python3 - "$h" "$out/src/$(basename "$h")" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
s = re.sub(r'(\b[\w:]+(?:<[^;<>]*>)?)<<<(.+?)>>>\(([\s\S]*?)\);', r'emu::launch(\2, [&] { \1(\3); });', s)
open(sys.argv[2], 'w').write(s)
PY
done
# mma_common.cuh (and linear_fp8_w8a8.cuh, paged_mla.cuh and paged_attention_mma.cuh, which include it) beside the copies, so that its #include "mma_ptx.cuh"
# finds the emulated one there first.
cp "$root/kernels/mma_common.cuh" "$root/kernels/linear_fp8_w8a8.cuh" "$root/kernels/paged_mla.cuh" "$root/kernels/paged_attention_mma.cuh" "$root/kernels/tests/emu/mma_ptx.cuh" "$out/src/"
flags="-std=c++17 -O1 -g -DDSK_SM90A_BUILT=1 -I$root/kernels/tests/emu -I$root/kernels -I$root/kernels/tests -I$root/kernels/include -Wno-unknown-pragmas -fno-strict-aliasing"
env_run=""
if [ "${EMU_ASAN:-0}" = 1 ]; then
  flags="$flags -fsanitize=address -fno-omit-frame-pointer"
  env_run="ASAN_OPTIONS=detect_stack_use_after_return=0:detect_leaks=0"
fi
objs=()
for src in "$out"/src/*.cpp; do
  g++ $flags -c "$src" -o "${src%.cpp}.o" &
  objs+=("${src%.cpp}.o")
done
wait
g++ $flags -o "$out/${check}_check_emu" "${objs[@]}"
env $env_run "$out/${check}_check_emu" "$@" 2> >(grep -v "ASan doesn't fully support makecontext" >&2)

#!/usr/bin/env bash
# dsk against llama.cpp on the CPU, on the same random Llama weights, in interleaved rounds.
#
#   bench/peers/llamacpp/side_by_side.sh RESULTS_DIR [options] [-- DSK_ARGS...]
#     --rounds N        interleaved rounds (default 5); each round runs, in this order:
#                       llama.cpp BF16, dsk bf16, llama.cpp Q4_0, dsk --quant int4
#     --small           the tiny model of write_model.mjs --small (a smoke test) instead of the 0.31B Llama
#     --models DIR      where the written models live (default: bench/peers/llamacpp/models/{full,small}); kept between runs
#     -p N / -n N       prompt tokens (pp) and generated tokens (tg) per test (default 512 / 128)
#     -r N              repetitions inside each process, both tools (default 3); a round's figure is their median
#     -t N              llama.cpp threads (default: nproc); dsk gets its threads from DSK_ARGS (e.g. --threads 2)
#     --dsk CMD         the dsk command (default: the Release build of src/DeepSeekKernels.Cli, built if missing)
#     --int8-dot        also run dsk --quant int4 --int4-dot int8 (int8 activations, as Q4_0's Q8_0) after dsk int4
#   DSK_ARGS go to every dsk run, e.g. `-- --backend cpu`; the int4 runs add --quant int4.
#
# Needs node/npm (npm registry only), g++, gcc, dotnet. Writes RESULTS_DIR/{summary.md, runs.jsonl, logs/*}:
# one stdout, stderr and `/usr/bin/time -v` log per process, and the copy bandwidth at the start and the end
# (the machine's memory bandwidth swings, so read the ratios of one run, not absolute figures across runs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage ;; -*) echo "side_by_side.sh: the first argument is the results folder" >&2; usage ;; esac
results="$(mkdir -p "$1" && cd "$1" && pwd)"; shift
rounds=5; small=0; models=""; prompt=512; gen=128; reps=3; threads="$(nproc)"; dsk=""; int8dot=0
dsk_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --small) small=1; shift ;;
    --models) models="$2"; shift 2 ;;
    -p) prompt="$2"; shift 2 ;;
    -n) gen="$2"; shift 2 ;;
    -r) reps="$2"; shift 2 ;;
    -t) threads="$2"; shift 2 ;;
    --dsk) dsk="$2"; shift 2 ;;
    --int8-dot) int8dot=1; shift ;;
    --) shift; dsk_args=("$@"); break ;;
    *) echo "side_by_side.sh: unknown option $1" >&2; usage ;;
  esac
done
for v in rounds prompt gen reps threads; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "side_by_side.sh: $v must be a whole number (got '${!v}')" >&2; exit 2; }
done

# ---- build and locate everything ----------------------------------------------------------------------------
"$here/build.sh"
bin="$here/build/bin"
if [ -z "$dsk" ]; then
  dll="$(ls "$repo"/src/DeepSeekKernels.Cli/bin/Release/net*/dsk.dll 2>/dev/null | head -1 || true)"
  if [ -z "$dll" ]; then
    echo "side_by_side.sh: building dsk (Release)" >&2
    dotnet build -c Release "$repo/src/DeepSeekKernels.Cli" -v q -nologo >&2
    dll="$(ls "$repo"/src/DeepSeekKernels.Cli/bin/Release/net*/dsk.dll | head -1)"
  fi
  dsk="dotnet $dll"
fi
models="${models:-$here/models/$([ $small = 1 ] && echo small || echo full)}"
if [ ! -f "$models/model-bf16.gguf" ] || [ ! -f "$models/hf/model.safetensors" ]; then
  echo "side_by_side.sh: writing the model to $models" >&2
  node "$here/write_model.mjs" "$models" $([ $small = 1 ] && echo --small) >&2
fi
if [ ! -f "$models/model-q4_0.gguf" ]; then
  echo "side_by_side.sh: quantising to Q4_0 with llama-quantize" >&2
  "$bin/llama-quantize" "$models/model-bf16.gguf" "$models/model-q4_0.gguf" Q4_0 "$threads" > "$results/quantize.log" 2>&1
fi

logs="$results/logs"
mkdir -p "$logs"
: > "$results/runs.jsonl"
timer=()
[ -x /usr/bin/time ] && timer=(/usr/bin/time -v)

# run NAME ROUND CMD...: stdout/stderr/time logs; peak RSS from /usr/bin/time -v, else by polling /proc.
run() {
  local name="$1" round="$2"; shift 2
  local base="$logs/round$round-$name"
  echo "side_by_side.sh: round $round: $name: $*" >&2
  printf '%s\n' "$*" > "$base.cmd"
  if [ ${#timer[@]} -gt 0 ]; then
    "${timer[@]}" -o "$base.time" "$@" > "$base.out" 2> "$base.err" || { echo "side_by_side.sh: $name failed (see $base.err)" >&2; return 1; }
  else
    "$@" > "$base.out" 2> "$base.err" & local pid=$! hwm=0 v
    while kill -0 $pid 2>/dev/null; do
      v="$(awk '/^VmHWM:/ {print $2}' /proc/$pid/status 2>/dev/null || true)"; [ -n "$v" ] && hwm="$v"; sleep 0.05
    done
    wait $pid || { echo "side_by_side.sh: $name failed (see $base.err)" >&2; return 1; }
    echo "Maximum resident set size (kbytes): $hwm" > "$base.time"
  fi
  node -e 'const [n,r,b]=process.argv.slice(1);console.log(JSON.stringify({name:n,round:+r,base:b}))' "$name" "$round" "$base" >> "$results/runs.jsonl"
}

cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
{
  echo "cpu: $cpu"
  echo "cores: $(nproc); flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|avx512_vnni|avx512vl' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "bandwidth at start: $("$bin/copybw"); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$results/machine.txt"
cat "$results/machine.txt" >&2

# The same model on both sides: 16 greedy ids after a fixed prompt of ids, llama.cpp (BF16 GGUF) against dsk
# (safetensors, DSK_ARGS). Identical ids say the GGUF, its q/k permutation included, holds dsk's model.
check_ids="1,500,9000,31999,42,7"
check_ids="$(node -e 'const v=+process.argv[1];console.log(process.argv[2].split(",").map(x=>x%v).join(","))' "$(node -p "require('$models/hf/config.json').vocab_size")" "$check_ids")"
llama_ids="$("$bin/greedy_ids" "$models/model-bf16.gguf" "$check_ids" 16 "$threads" 2> "$logs/greedy-llama.err")"
dsk_ids="$($dsk generate --model "$models/hf" --prompt-ids "$check_ids" --print-ids -n 16 --temperature 0 "${dsk_args[@]}" 2> "$logs/greedy-dsk.err")"
if [ "$llama_ids" = "$dsk_ids" ]; then greedy="identical ($llama_ids)"; else greedy="DIFFERENT: llama.cpp $llama_ids, dsk $dsk_ids"; fi
echo "greedy ids after [$check_ids], 16 new, llama.cpp BF16 vs dsk: $greedy" | tee -a "$results/machine.txt" >&2

lb=("$bin/llama-bench" -p "$prompt" -n "$gen" -r "$reps" -t "$threads" -o json)
db=($dsk bench --model "$models/hf" --prompt-tokens "$prompt" --gen-tokens "$gen" --repetitions "$reps" --json)
for round in $(seq 1 "$rounds"); do
  run llama-bf16 "$round" "${lb[@]}" -m "$models/model-bf16.gguf"
  run dsk-bf16 "$round" "${db[@]}" "${dsk_args[@]}"
  run llama-q4_0 "$round" "${lb[@]}" -m "$models/model-q4_0.gguf"
  run dsk-int4 "$round" "${db[@]}" "${dsk_args[@]}" --quant int4
  if [ $int8dot = 1 ]; then run dsk-int4-int8 "$round" "${db[@]}" "${dsk_args[@]}" --quant int4 --int4-dot int8; fi
done
echo "bandwidth at end: $("$bin/copybw"); load average: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$results/machine.txt"

{
  echo "dsk: $dsk ${dsk_args[*]:-}"
  echo "llama.cpp: node-llama-cpp $(node -p "require('$here/node_modules/node-llama-cpp/package.json').version") prebuilt CPU libraries ($(grep -h -o 'loaded CPU backend from [^ ]*' "$logs"/round1-llama-bf16.err | head -1 | sed 's|.*/||')), llama-bench built from its bundled source; $threads threads"
  echo "model: $models (p=$prompt, n=$gen, $reps repetitions per process, $rounds rounds)"
} >> "$results/machine.txt"
node "$here/summarize.mjs" "$results" | tee "$results/summary.md"

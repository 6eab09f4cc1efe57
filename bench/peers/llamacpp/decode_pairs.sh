#!/usr/bin/env bash
# Decode speed only, dsk against llama.cpp in many short alternating pairs: this VM's memory bandwidth swings by up to 1.8x
# within a minute, so a handful of long interleaved rounds (side_by_side.sh) can land each tool in different states; short
# pairs run back to back see the same state, and the median over pairs of each tool (and of the per-pair ratios) is steadier.
#
#   bench/peers/llamacpp/decode_pairs.sh RESULTS_DIR [--pairs N] [-n TOKENS] [-t THREADS] [-- DSK_ARGS...]
#     --pairs N   alternating pairs per configuration (default 8); -n tokens per run (default 64, 2 repetitions each);
#     configurations: llama.cpp BF16 vs dsk bf16, llama.cpp Q4_0 vs dsk --quant int4, llama.cpp Q4_0 vs dsk --quant int4
#     --int4-dot int8. Needs side_by_side.sh's build and models (run it, or build.sh and write_model.mjs, first).
# Writes RESULTS_DIR/decode_pairs.log (one line per run) and decode_pairs.md (the medians).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
[ $# -ge 1 ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
results="$(mkdir -p "$1" && cd "$1" && pwd)"; shift
pairs=8; gen=64; threads="$(nproc)"; dsk_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs="$2"; shift 2 ;;
    -n) gen="$2"; shift 2 ;;
    -t) threads="$2"; shift 2 ;;
    --) shift; dsk_args=("$@"); break ;;
    *) echo "decode_pairs.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bin="$here/build/bin"; models="$here/models/full"
dll="$(ls "$repo"/src/DeepSeekKernels.Cli/bin/Release/net*/dsk.dll | head -1)"
for f in "$bin/llama-bench" "$models/model-bf16.gguf" "$models/model-q4_0.gguf" "$models/hf/model.safetensors" "$dll"; do
  [ -e "$f" ] || { echo "decode_pairs.sh: $f is missing: run side_by_side.sh first" >&2; exit 1; }
done
log="$results/decode_pairs.log"; : > "$log"
llama() { "$bin/llama-bench" -m "$1" -p 0 -n "$gen" -r 2 -t "$threads" -o json 2>/dev/null \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].avg_ts.toFixed(2)))'; }
dskrun() { dotnet "$dll" bench --model "$models/hf" -p 0 -n "$gen" -r 2 "${dsk_args[@]}" "$@" 2>/dev/null | sed -n "s/^tg$gen: \([0-9.]*\) .*/\1/p"; }
echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; copy bandwidth: $("$bin/copybw")" >> "$log"
for pair in $(seq 1 "$pairs"); do
  echo "pair $pair bf16 llama $(llama "$models/model-bf16.gguf") dsk $(dskrun)" >> "$log"
  echo "pair $pair int4 llama $(llama "$models/model-q4_0.gguf") dsk $(dskrun --quant int4)" >> "$log"
  echo "pair $pair int4-int8 llama $(llama "$models/model-q4_0.gguf") dsk $(dskrun --quant int4 --int4-dot int8)" >> "$log"
  tail -3 "$log" >&2
done
echo "# $(date -u +%FT%TZ) copy bandwidth: $("$bin/copybw")" >> "$log"
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(l => l.startsWith("pair "));
const med = xs => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const out = ["| decode tg" + process.argv[2] + ", tokens/s | llama.cpp (median) | dsk (median) | dsk / llama.cpp | median of per-pair ratios | pairs |", "|---|---:|---:|---:|---:|---:|"];
const names = { "bf16": "BF16 / bf16", "int4": "Q4_0 / int4 (f32 dot)", "int4-int8": "Q4_0 / int4 (int8 dot)" };
for (const k of ["bf16", "int4", "int4-int8"]) {
  const rows = lines.map(l => l.split(" ")).filter(p => p[2] === k).map(p => [+p[4], +p[6]]);
  const l = med(rows.map(r => r[0])), d = med(rows.map(r => r[1])), r = med(rows.map(r => r[1] / r[0]));
  out.push(`| ${names[k]} | ${l.toFixed(1)} | ${d.toFixed(1)} | ${(d / l).toFixed(2)}x | ${r.toFixed(2)}x | ${rows.length} |`);
}
console.log(out.join("\n"));' "$log" "$gen" | tee "$results/decode_pairs.md"

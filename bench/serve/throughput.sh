#!/usr/bin/env bash
# bench/serve/throughput.sh: what continuous batching buys `dsk serve` on this machine. Starts `dsk serve` on a model
# (a folder; prompts are token ids, so it needs no tokenizer), then per round sends the same N requests (a prompt of P ids,
# M generated tokens each, greedy, EOS ignored) one after another and all at once, and prints each pass's wall time and
# generated tokens per second. Rounds alternate the two passes (this VM's speed swings from minute to minute).
#   bash bench/serve/throughput.sh MODEL_DIR [-n 8] [-p 64] [-m 64] [--rounds 2] [-- dsk serve options...]
# Needs curl; builds dsk in Release (into build/serve-bench) unless DSK is set to a dsk.dll.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:?usage: throughput.sh MODEL_DIR [-n N] [-p P] [-m M] [--rounds R] [-- serve options]}; shift
n=8; p=64; m=64; rounds=2; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n) n=$2; shift 2 ;; -p) p=$2; shift 2 ;; -m) m=$2; shift 2 ;; --rounds) rounds=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "throughput.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "${DSK:-}" ]; then
  dotnet build src/DeepSeekKernels.Cli -c Release -p:DskSkipNative=true -o build/serve-bench -v q >/dev/null
  DSK=build/serve-bench/dsk.dll
fi
log=$(mktemp)
dotnet "$DSK" serve -m "$model" --port 0 --max-batch "$n" --context $((p + m + 1)) "${extra[@]}" 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 600); do grep -q "listening on" "$log" && break; sleep 0.1; done
url=$(grep -o "http://[^ ]*" "$log" | head -1) || { cat "$log" >&2; exit 1; }
echo "# $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs; $model; $n requests x ($p prompt + $m generated)"
grep -m1 "^loaded" "$log"
body() { # request i: ids i+1 .. i+p (mod 1000), distinct per request
  local ids; ids=$(seq "$1" $(($1 + p - 1)) | awk '{ printf "%s%d", (NR > 1 ? "," : ""), 3 + $1 % 1000 }')
  printf '{"prompt": [%s], "max_tokens": %d, "temperature": 0, "ignore_eos": true}' "$ids" "$m"
}
one() { curl -sf "${url}v1/completions" -H 'Content-Type: application/json' -d "$(body "$1")" | grep -o '"completion_tokens":[0-9]*' | cut -d: -f2; }
export -f one body; export url p m
pass() { # $1: concurrency
  local start end tokens
  start=$(date +%s.%N)
  tokens=$(seq 0 $((n - 1)) | xargs -P "$1" -I{} bash -c 'one {}' | awk '{ s += $1 } END { print s }')
  end=$(date +%s.%N)
  awk -v t="$tokens" -v a="$start" -v b="$end" -v c="$1" 'BEGIN { printf "concurrency %d: %d tokens in %.2f s = %.1f tokens/s\n", c, t, b - a, t / (b - a) }'
}
pass 1 >/dev/null # warm-up: the JIT's tiers
for r in $(seq "$rounds"); do
  echo "round $r"; pass 1; pass "$n"
done
echo "# server log:"; grep -c "POST /v1/completions 200" "$log" | sed 's/^/# requests answered: /'

#!/usr/bin/env bash
# scripts/device-bundle.sh: packs the tests (which carry dsk.dll, the CLI) and the benchmarks with a .NET
# runtime into .device-bundle/ (git-ignored), for a GPU machine that has CUDA but no .NET SDK. There:
#   bash scripts/gpu-check.sh
# A GPU run carries at most 64 MiB (checkout + bundle), so the bundle leaves out what the checkout already
# holds (the embedded model; dsk finds it in the checkout) and packs dsk only inside the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tool=${DEVICE_BUNDLE_TOOL:-../shared/tools/device-bundle}
[ -x "$tool" ] || { echo "device-bundle.sh: $tool not found (set DEVICE_BUNDLE_TOOL)" >&2; exit 2; }
rm -rf .device-bundle
DskDeviceBundle=true "$tool" tests/DeepSeekKernels.Tests/DeepSeekKernels.Tests.csproj bench/DeepSeekKernels.Bench/DeepSeekKernels.Bench.csproj
git describe --always --dirty --abbrev=12 >.device-bundle/source.txt 2>/dev/null || echo unknown >.device-bundle/source.txt
# What travels: tracked and untracked-not-ignored files, and the bundle (a GPU run refuses more than 64 MiB).
tracked=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" { s += $1 } END { print s + 0 }')
bundle=$(du -cb .device-bundle/* | tail -1 | cut -f1)
total=$((tracked + bundle))
echo "device-bundle.sh: checkout $((tracked >> 20)) MiB + bundle $((bundle >> 20)) MiB = $((total >> 20)) MiB of the 64 MiB a GPU run carries" >&2
[ "$total" -le $((64 << 20)) ] || { echo "device-bundle.sh: too large for a GPU run" >&2; exit 1; }
# The bundle starts with only the runtime it carries (the GPU machine has no SDK): the tests list their classes, and the
# benchmarks (trimmed of BenchmarkDotNet's diagnosers, Directory.Build.targets) run one smoke case on ILGPU's CPU accelerator.
classes=$(env -u DOTNET_ROOT bash .device-bundle/run DeepSeekKernels.Tests -list classes | grep -c '^DeepSeekKernels\.') \
  || { echo "device-bundle.sh: the bundled tests do not start" >&2; exit 1; }
env -u DOTNET_ROOT DSK_BENCH_SMOKE=1 bash .device-bundle/run DeepSeekKernels.Bench --filter '*RmsNormBenchmarks.Ilgpu*' \
  --artifacts /tmp/device-bundle-smoke >/tmp/device-bundle-smoke.log 2>&1 \
  || { tail -n 30 /tmp/device-bundle-smoke.log; echo "device-bundle.sh: the bundled benchmarks do not run (log: /tmp/device-bundle-smoke.log)" >&2; exit 1; }
echo "device-bundle.sh: from the bundle, the tests list $classes classes and a smoke benchmark ran ($(cat .device-bundle/source.txt))" >&2

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
tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
bundle=$(du -cb .device-bundle/* | tail -1 | cut -f1)
echo "device-bundle.sh: checkout $((tracked >> 20)) MiB + bundle $((bundle >> 20)) MiB = $(((tracked + bundle) >> 20)) MiB of the 64 MiB a GPU run carries" >&2

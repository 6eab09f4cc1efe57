#!/usr/bin/env bash
# scripts/device-bundle.sh: packs the tests, the benchmarks and the CLI with a .NET runtime into
# .device-bundle/ (git-ignored), for a GPU machine that has CUDA but no .NET SDK. There:
#   bash scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tool=${DEVICE_BUNDLE_TOOL:-../shared/tools/device-bundle}
[ -x "$tool" ] || { echo "device-bundle.sh: $tool not found (set DEVICE_BUNDLE_TOOL)" >&2; exit 2; }
"$tool" tests/DeepSeekKernels.Tests/DeepSeekKernels.Tests.csproj \
        bench/DeepSeekKernels.Bench/DeepSeekKernels.Bench.csproj \
        src/DeepSeekKernels.Cli/dsk.csproj

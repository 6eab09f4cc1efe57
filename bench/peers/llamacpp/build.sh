#!/usr/bin/env bash
# Builds llama.cpp's own llama-bench and llama-quantize from the llama.cpp source that node-llama-cpp 3.21.1
# ships (node_modules/node-llama-cpp/llama/gitRelease.bundle, a git bundle of its release) and links them
# against the prebuilt CPU libraries of @node-llama-cpp/linux-x64 (libllama, libggml*, libllama-common):
# nothing of llama.cpp is compiled but the two tools' own .cpp files, so the kernels measured are exactly
# the ones node-llama-cpp ships. Also builds greedy_ids (our check that the GGUF holds dsk's model) and copybw, the copy-bandwidth probe. Idempotent.
# Needs: npm ci done here (node_modules), g++, git. Output: build/bin/{llama-bench,llama-quantize,greedy_ids,copybw}.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
[ -d node_modules/node-llama-cpp ] || npm ci --omit=optional --ignore-scripts --no-audit --no-fund
libs="$here/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
src="$here/build/llama.cpp"
mkdir -p build/bin
if [ ! -f "$src/tools/llama-bench/llama-bench.cpp" ]; then
  rm -rf "$src"
  git -c advice.detachedHead=false clone -q node_modules/node-llama-cpp/llama/gitRelease.bundle "$src"
fi
inc=(-I"$src/include" -I"$src/ggml/include" -I"$src/common" -I"$src/vendor")
link=(-L"$libs" -l:libllama-common.so -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so
      -Wl,-rpath,"$libs" -pthread)
build_tool() { # name, sources...
  local out="build/bin/$1"; shift
  local newer=0
  for s in "$@"; do [ "$s" -nt "$out" ] && newer=1; done
  if [ ! -x "$out" ] || [ $newer = 1 ]; then
    echo "build.sh: compiling $out" >&2
    g++ -std=c++17 -O2 -DNDEBUG "${inc[@]}" "$@" "${link[@]}" -o "$out"
  fi
}
# The shipped ggml loads its CPU backend at run time (GGML_BACKEND_DL): ggml_backend_load_all() scores every
# libggml-cpu-<variant>.so in the executable's folder and picks the best one this CPU can run; link them there.
for so in "$libs"/libggml-cpu-*.so; do ln -sf "$so" build/bin/; done
build_tool llama-bench "$src/tools/llama-bench/llama-bench.cpp" "$src/tools/llama-bench/main.cpp"
build_tool llama-quantize "$src/tools/quantize/quantize.cpp" "$src/tools/quantize/main.cpp"
build_tool greedy_ids "$here/greedy_ids.cpp"
if [ ! -x build/bin/copybw ] || [ copybw.c -nt build/bin/copybw ]; then
  echo "build.sh: compiling build/bin/copybw" >&2
  gcc -O2 -o build/bin/copybw copybw.c
fi

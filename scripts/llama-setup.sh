#!/usr/bin/env bash
# Builds llama.cpp's llama-server (a real CPU engine) and a tiny GGUF model, from registries only:
# the npm package node-llama-cpp@3.21.1 carries llama.cpp's full source as a git bundle, Debian's
# python3-numpy and the bundle's gguf-py write the model. Nothing of llama.cpp is committed here.
#
# Cached outside the repo, keyed by the bundle's sha256: a fresh machine builds once (~10 min per
# variant on 2 cores), later runs reuse it. Prints KEY=VALUE lines (LLAMA_SERVER, LLAMA_SERVER_DL,
# LLAMA_MODEL, LLAMA_VERSION) and writes them to $cache/llama.env.
#
#   variant "shared":  default build, libllama/libggml* shared libraries (in ldd)
#   variant "dl":      -DGGML_BACKEND_DL=ON: the CPU backend is dlopen'd at run time (absent from
#                      ldd, present in /proc/PID/maps)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${BENCH_PROXY_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/bench-proxy}
version=3.21.1
mkdir -p "$cache/dl"

need=()
for p in git cmake ninja-build g++ ccache python3-numpy; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bundle="$cache/dl/node-llama-cpp-$version.bundle"
if [ ! -s "$bundle" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack "node-llama-cpp@$version" --silent >/dev/null && tar -xzf "node-llama-cpp-$version.tgz" package/llama/gitRelease.bundle)
  mv "$tmp/package/llama/gitRelease.bundle" "$bundle"
  rm -rf "$tmp"
fi
key=$(sha256sum "$bundle" | cut -c1-16)
root="$cache/llama-$key"
mkdir -p "$root"
if [ ! -d "$root/src/.git" ]; then
  rm -rf "$root/src"
  git clone -q "$bundle" "$root/src" 2>/dev/null
fi

build_variant() {  # name, extra cmake flags...
  local name=$1; shift
  local out="$root/build-$name"
  if [ -x "$out/bin/llama-server" ]; then return; fi
  echo "building llama-server ($name) in $out; about 10 minutes on 2 cores the first time" >&2
  cmake -S "$root/src" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_APP=OFF -DBUILD_SHARED_LIBS=ON "$@" >"$out.configure.log" 2>&1 ||
    { tail -30 "$out.configure.log" >&2; exit 1; }
  cmake --build "$out" --target llama-server -j"$(nproc)" >"$out.build.log" 2>&1 ||
    { tail -30 "$out.build.log" >&2; exit 1; }
}
build_variant shared
build_variant dl -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=OFF

# The model's cache name is keyed by its generator and arguments: a changed generator writes a new
# model next to the old one (which other checkouts may still use) instead of reusing a stale one.
# (Its vocabulary comes from the source bundle, which $root is keyed by already.)
model_args=(--seed 7)
model_key=$({ cat "$here/make_tiny_gguf.py"; printf '%s\n' "${model_args[@]}"; } | sha256sum | cut -c1-12)
model="$root/tiny-llama-$model_key.gguf"
if [ ! -s "$model" ]; then
  /usr/bin/python3 "$here/make_tiny_gguf.py" --gguf-py "$root/src/gguf-py" \
    --vocab "$root/src/models/ggml-vocab-llama-spm.gguf" "${model_args[@]}" --out "$model" >/dev/null
fi
# llama-server's --slot-save-path (configs/llama-cpu.yaml): a folder of bench-proxy's own, never a
# shared one like /tmp (the snapshot records it as an output folder and never walks it).
mkdir -p -m 700 "$cache/llama-slots"
ver=$("$root/build-shared/bin/llama-server" --version 2>&1 | sed -n 's/^version: //p' | head -1)
# Written whole, then renamed: tests running beside this read it at any moment.
cat > "$cache/llama.env.$$" <<ENV
LLAMA_SERVER='$root/build-shared/bin/llama-server'
LLAMA_SERVER_DL='$root/build-dl/bin/llama-server'
LLAMA_BIN_DIR='$root/build-shared/bin'
LLAMA_DL_BIN_DIR='$root/build-dl/bin'
LLAMA_MODEL='$model'
LLAMA_SLOT_DIR='$cache/llama-slots'
LLAMA_VERSION='$ver'
ENV
mv -f "$cache/llama.env.$$" "$cache/llama.env"
cat "$cache/llama.env"

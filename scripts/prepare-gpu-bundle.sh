#!/usr/bin/env bash
# Prepares .device/ (git-ignored) for scripts/gpu-check.sh on a GPU machine that may have no Node.js
# and no registry: builds the addon here for Hopper only (sm_90, in a scratch folder, so this
# machine's build/Release addon is left as it is), compiles the TypeScript, and packs a node
# binary, node_modules, dist and that addon into .device/bundle.tar.xz. A device call carries at
# most 64 MiB in all, so the bundle drops what the run cannot use (other platforms' tokenizers
# binaries, node's debug symbols, node-gyp and prebuildify) and this script fails above 60 MiB.
# Then: run(command: "bash scripts/gpu-check.sh", carry: [".device"]).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
build=${OSP_BUNDLE_BUILD_DIR:-/tmp/osp-gpu-bundle-build}
stage=$(mktemp -d /tmp/osp-gpu-bundle-stage.XXXXXX)
trap 'rm -rf "$stage"' EXIT

cuda_version=$(nvcc --version | grep -o 'release [0-9.]*' | cut -d' ' -f2)
echo "== the addon for sm_90 (CUDA $cuda_version) in $build"
# configure, then build: `cmake-js build` alone keeps a reused folder's cached architectures.
node node_modules/cmake-js/bin/cmake-js configure --release -O "$build" --CDOSP_CUDA=ON --CDCMAKE_CUDA_ARCHITECTURES=90-real
node node_modules/cmake-js/bin/cmake-js build --release -O "$build" --parallel "$(nproc)"
grep -q '^CMAKE_CUDA_ARCHITECTURES:.*=90-real$' "$build/CMakeCache.txt" || { echo "the build is not for sm_90 only" >&2; exit 1; }
# It must have the CUDA kernels (a silent CPU-only build would waste the GPU run).
node -e "const m = { exports: {} }; process.dlopen(m, process.argv[1]);
  const b = m.exports.backends(); if (!b.cuda.compiled) throw new Error('the bundle addon was built without CUDA');
  console.log('addon: CUDA compiled; here:', b.cuda.reason || 'GPU available')" "$build/Release/osp.node"
mkdir -p "$stage/build/Release" "$stage/.device/bin"
cp "$build/Release/osp.node" "$stage/build/Release/osp.node"

echo "== dist (tsc)"
node node_modules/typescript/bin/tsc -p tsconfig.build.json

echo "== node $(node --version) (debug symbols stripped)"
cp "$(command -v node)" "$stage/.device/bin/node"
strip --strip-debug "$stage/.device/bin/node" 2>/dev/null || echo "strip not found: node kept with its symbols"
"$stage/.device/bin/node" --version >/dev/null

# What the device run reads first: what was packed, from which commit, and what the addon needs.
{
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!.device' || echo ' (+ uncommitted changes)')"
  echo "node $(node --version)"
  echo "addon sm_90, CUDA $cuda_version, needs $(objdump -T "$build/Release/osp.node" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1 || echo 'glibc ?')"
  echo "packed $(date -u +%FT%TZ)"
} > "$stage/.device/bundle-info.txt"
cat "$stage/.device/bundle-info.txt"

echo "== packing .device/bundle.tar.xz"
skip=(--exclude='node_modules/.cache' --exclude='node_modules/node-gyp' --exclude='node_modules/prebuildify')
for f in node_modules/tokenizers/tokenizers.*.node; do
  case "$f" in *linux-x64-gnu.node) ;; *) skip+=(--exclude="$f") ;; esac
done
rm -rf .device && mkdir -p .device
XZ_OPT='-9 -T0' tar -cJf .device/bundle.tar.xz "${skip[@]}" \
  -C "$stage" .device/bin/node .device/bundle-info.txt build/Release/osp.node \
  -C "$ROOT" node_modules dist
bytes=$(stat -c %s .device/bundle.tar.xz)
echo "bundle: .device/bundle.tar.xz $((bytes / 1048576)) MiB ($bytes bytes; a device call carries at most 64 MiB)"
if [ "$bytes" -gt $((60 * 1048576)) ]; then
  echo "too large: over 60 MiB leaves no room under the 64 MiB carry limit" >&2
  exit 1
fi

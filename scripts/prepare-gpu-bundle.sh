#!/usr/bin/env bash
# Prepares .device/ (git-ignored) for a run of scripts/gpu-check.sh on a GPU machine that may have
# no Node.js and no registry: builds the addon for Hopper (sm_90) here, compiles the TypeScript,
# and packs Node.js, node_modules, dist and the addon into .device/bundle.tar.xz (under the 64 MiB
# a device call may carry). Then: run(command: "bash scripts/gpu-check.sh", carry: [".device"]).
set -euo pipefail
cd "$(dirname "$0")/.."
OSP_CUDA_ARCHS=${OSP_CUDA_ARCHS:-90} bash scripts/build-dev.sh
npx tsc -p tsconfig.build.json
rm -rf .device && mkdir -p .device/bin
cp "$(command -v node)" .device/bin/node
# Only the linux-x64-gnu binary of packages that ship every platform's (tokenizers: 64 MB in all).
skip=()
for f in node_modules/tokenizers/tokenizers.*.node; do
  case "$f" in *linux-x64-gnu.node) ;; *) skip+=(--exclude="$f") ;; esac
done
tar -cJf .device/bundle.tar.xz --exclude='node_modules/.cache' "${skip[@]}" .device/bin/node node_modules dist build/Release/osp.node
rm -rf .device/bin
du -h .device/bundle.tar.xz

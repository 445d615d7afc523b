#!/usr/bin/env bash
# Developer rebuild into a scratch folder, then an atomic swap of build/Release/osp.node, so that
# test processes running meanwhile never see a half-written or missing addon.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OSP_DEV_BUILD_DIR:-/tmp/osp-dev-build}
cuda=$([ "${OSP_CUDA:-ON}" = "OFF" ] && echo OFF || echo ON)
args=(--CDOSP_CUDA=$cuda)
# Always pass the architectures: CMake would otherwise keep those of the previous build.
archs=${OSP_CUDA_ARCHS:-80-real,86-real,89-real,90}
args+=("--CDCMAKE_CUDA_ARCHITECTURES=${archs//,/;}")
node node_modules/cmake-js/bin/cmake-js build --release -O "$out" --parallel "$(nproc)" "${args[@]}"
mkdir -p build/Release
cp "$out/Release/osp.node" build/Release/osp.node.tmp
mv build/Release/osp.node.tmp build/Release/osp.node
echo "build/Release/osp.node updated (CUDA $cuda)"

#!/usr/bin/env bash
# The one prepared GPU run (see ../shared/docs/GPU.md). Run on the GPU machine from the repository
# root, with results written under ${OUT:-./gpu-out}:
#   1. the probe: GPU, driver, Node.js, CUDA toolchain;
#   2. the GPU test suites, test/gpu*.test.ts (every kernel on cuda against the float64 CPU reference; fails if no GPU);
#   3. compute-sanitizer memcheck over a short kernel run, where available;
#   4. the benchmarks, fused next to unfused, on cpu and cuda;
#   5. a short table of the figures.
# Prepare here first with scripts/prepare-gpu-bundle.sh: it builds the addon for sm_90, compiles the
# TypeScript and packs Node.js and node_modules into .device/ (carry it: `carry: [".device"]`).
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
log="$OUT/gpu-check.log"
exec > >(tee -a "$log") 2>&1

if [ -f .device/bundle.tar.xz ]; then
  echo "== unpacking .device/bundle.tar.xz"
  tar -xJf .device/bundle.tar.xz
  export PATH="$PWD/.device/bin:$PATH"
fi

# cuBLAS lives inside the Python environment's nvidia packages there (or next to torch): point osp at it.
if [ -z "${OSP_CUBLAS_LIB:-}" ]; then
  OSP_CUBLAS_LIB=$(python3 - <<'PY' 2>/dev/null
import glob, os
dirs = []
try:
    import nvidia.cublas
    dirs.append(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))
except Exception:
    pass
try:
    import torch
    dirs.append(os.path.join(os.path.dirname(torch.__file__), "lib"))
except Exception:
    pass
for d in dirs:
    hits = sorted(glob.glob(os.path.join(d, "libcublas.so.*")))
    if hits:
        print(hits[-1]); break
PY
)
  [ -n "$OSP_CUBLAS_LIB" ] && export OSP_CUBLAS_LIB && export LD_LIBRARY_PATH="$(dirname "$OSP_CUBLAS_LIB"):${LD_LIBRARY_PATH:-}"
fi
echo "OSP_CUBLAS_LIB=${OSP_CUBLAS_LIB:-<not found>}"

echo "== probe"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi: not found"
echo "node: $(command -v node || echo none) $(node --version 2>/dev/null)"
command -v nvcc >/dev/null && nvcc --version | tail -1
command -v compute-sanitizer >/dev/null && echo "compute-sanitizer: $(command -v compute-sanitizer)"
node -e "console.log(JSON.stringify(require('./dist').backends(), null, 1))" | tee "$OUT/backends.json"

echo "== GPU test suite"
OSP_GPU_TESTS=require npx jest test/gpu --ci --verbose 2>&1 | tee "$OUT/gpu-tests.txt"
echo "gpu suite exit: ${PIPESTATUS[0]}"

echo "== parity against transformers' LlamaForCausalLM (f64 and f32 on the cpu)"
python3 scripts/hf-parity.py "$OUT/hf-parity" 2>&1 | tail -3
OSP_HF_PARITY_DIR="$OUT/hf-parity" OSP_PARITY_REPORT=1 npx jest test/torchParity --ci 2>&1 | tail -25 | tee "$OUT/hf-parity.txt"

echo "== full suite on this machine"
npx jest --ci 2>&1 | tail -8

if command -v compute-sanitizer >/dev/null; then
  echo "== compute-sanitizer memcheck (short run)"
  compute-sanitizer --tool memcheck --leak-check full node -e "
    const o = require('./dist');
    for (const [N, V] of [[3, 97], [5, 32001], [2, 8]]) for (const dtype of ['f32', 'bf16']) {
      const x = o.randn([N, V], { device: 'cuda', dtype, seed: 1 });
      const t = o.tensor(new Int32Array(N).map((_, i) => (i * 7) % V), [N], { device: 'cuda' });
      const g = o.randn([N], { device: 'cuda' });
      o.tokenLogprobs(x, t); o.tokenLogprobsBackward(x, t, g); o.tokenLogprobsUnfused(x, t);
      o.tokenLogprobsBackwardUnfused(x, t, g); o.tokenLogprobsBackward(x, t, g, { inPlace: true });
    }
    const v = (s) => o.randn([1000], { device: 'cuda', seed: s });
    o.preferenceLoss('spce', { policyChosen: v(1), policyRejected: v(2), refChosen: v(3), refRejected: v(4),
      target: o.tensor(new Float32Array(1000).fill(0.3), [1000], { device: 'cuda' }) }, { beta: 0.1 });
    o.sequenceLogprobs(v(5), o.tensor(new Int32Array(1000).map((_, i) => i % 7 - 1), [1000], { device: 'cuda' }), 6);
    o.synchronize(); console.log('sanitizer run done');
  " 2>&1 | tail -15 | tee "$OUT/sanitizer.txt"
fi

echo "== benchmarks"
npx ts-node --transpile-only bench/kernels.ts --device all --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt"
echo "== done; results in $OUT"

#!/usr/bin/env bash
# The one prepared GPU run (../shared/docs/GPU.md). A GPU machine is lent rarely, for minutes, with
# no network, and only files under $OUT come back, so this does everything in one command, in order
# of value, each step under its own timeout, writing each step's results under ${OUT:-./gpu-out}
# as it ends (summary.tsv gains a line per step; a machine taken back mid-run still returns them):
#   0. set-up: unpack .device/bundle.tar.xz (scripts/prepare-gpu-bundle.sh: node, node_modules,
#      dist, the sm_90 addon); find cuBLAS in the Python environment's nvidia/ packages (any layout,
#      CUDA 13's nvidia/cu13/lib included) or beside torch; load the addon, and rebuild it here for
#      sm_90 only when it does not load (glibc) or sees no GPU that nvidia-smi sees (driver too old
#      for its CUDA runtime). Whether cuBLAS loaded is said on the first lines.
#   1. the probe: GPU, driver, node, nvcc, compute-sanitizer, torch, transformers, backends().
#   2. the GPU suites, test/gpu*.test.ts, with OSP_GPU_TESTS=require, one jest worker per core.
#   3. the CUDA benches (bench/kernels.ts --device cuda --quick --no-torch; CPU figures are taken
#      elsewhere). Without cuBLAS every matmul figure is marked "without cuBLAS".
#   4. parity against transformers: scripts/hf-parity.py, then test/torchParity with OSP_HF_PARITY_DIR.
#   5. compute-sanitizer memcheck, then racecheck, over scripts/gpu-sanitize.js (seconds of kernels).
# Only the bundled node runs anything (node node_modules/jest/bin/jest.js and the like): no npx, npm.
#
# Budget on one H100/H200, as timeouts in seconds (their sum is the most it can take) and estimates
# from the steps' sizes:
#   unpack 15 (a 33 MiB xz: 4 s measured on a 2-core VM) | addon load 10 (~1 s)
#   cuBLAS 5 + 10 (globs, no import: ~1 s; then each candidate is loaded once by node: ~1 s each)
#   rebuild 70 + 5, only when the addon fails (15 .cu + 35 .cpp for sm_90: 158 s of compile jobs
#     measured here, the longest 17 s, so ~30 s on 16 cores), then the addon is loaded again
#   probe 15 (importing torch and transformers: ~5 s)
#   GPU suites 100 (185 tests in 6 files on 16 workers; the f64 CPU references dominate: ~40-60 s)
#   benches 90 (--quick: one [4096, 32000] logits shape, 4096^3 matmul, the 1.1B-shape model and
#     generation at 3 repeats: ~60-90 s)
#   parity 30 + 30 (a 2-layer hidden-32 model in f64 on the CPU, python start-up ~10 s; jest ~15 s)
#   memcheck 20, racecheck 20 (each ~60 small launches, 10-100x slower under the sanitizer: ~10 s)
#   Sum of timeouts: 420 s = 7 min; estimate without a rebuild: about 4 min.
#
# Usage (device machine): run(command: "bash scripts/gpu-check.sh", carry: [".device"])
#        bash scripts/gpu-check.sh --dry-run   (CI, no GPU: walks every step, runs what needs no GPU
#        against the working tree, and skips each GPU part with a one-line reason)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  '') ;;
  *) echo "usage: bash scripts/gpu-check.sh [--dry-run]" >&2; exit 2 ;;
esac
# Default: ./gpu-out, or for a dry run a temporary folder (nothing left in the tree).
OUT=${OUT:-$([ $DRY = 1 ] && mktemp -d /tmp/osp-gpu-check.XXXXXX || echo "$ROOT/gpu-out")}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
TEE_PID=$!
SUMMARY="$OUT/summary.tsv"
printf 'step\tstatus\tseconds\tlimit\tnote\n' > "$SUMMARY"
NPROC=$(nproc 2>/dev/null || echo 4)

# One line per step in summary.tsv, written when the step ends.
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >> "$SUMMARY"; }
skip() { echo "   skipped: $2"; record "$1" skipped 0 - "$2"; }
# timed NAME LIMIT LOGFILE CMD...: runs CMD under timeout, its output shown and kept in LOGFILE
# (with QUIET=1 only kept).
timed() {
  local name=$1 limit=$2 log=$3 t0 rc status
  shift 3
  t0=$(date +%s)
  if [ "${QUIET:-0}" = 1 ]; then
    timeout --kill-after=5 "$limit" "$@" > "$log" 2>&1
    rc=$?
  else
    timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
  fi
  case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status="failed($rc)" ;; esac
  record "$name" "$status" "$(($(date +%s) - t0))" "$limit" "$(basename "$log")"
  echo "   $name: $status in $(($(date +%s) - t0)) s (limit $limit s)"
  return "$rc"
}

echo "== scripts/gpu-check.sh$([ $DRY = 1 ] && echo ' --dry-run') at $(date -u +%FT%TZ) on ${HOSTNAME:-?}, results in $OUT"

# ---- 0. set-up (quiet: its verdicts are printed together below) ----
setup_log="$OUT/setup.txt"
: > "$setup_log"
note() { echo "$*" >> "$setup_log"; }

# The bundle. Unpacking writes node_modules, dist and build/Release over the working tree: the dry
# run only checks the archive.
if [ -f .device/bundle.tar.xz ]; then
  if [ $DRY = 1 ]; then
    if timeout 15 xz -t .device/bundle.tar.xz; then note "bundle: .device/bundle.tar.xz is intact ($(du -h .device/bundle.tar.xz | cut -f1)); dry run: not unpacked"
    else note "bundle: .device/bundle.tar.xz is CORRUPT"; fi
  else
    t0=$(date +%s)
    if timeout 15 tar -xJf .device/bundle.tar.xz; then
      note "bundle: unpacked in $(($(date +%s) - t0)) s: $(cat .device/bundle-info.txt 2>/dev/null | tr '\n' ' ')"
      record unpack ok "$(($(date +%s) - t0))" 15
    else
      note "bundle: unpacking FAILED or timed out"
      record unpack failed "$(($(date +%s) - t0))" 15
    fi
  fi
else
  note "bundle: none (.device/bundle.tar.xz absent): using this tree's node_modules, dist and build/Release"
fi

# node: the bundled one when it runs here, else one on PATH.
NODE=
for cand in "$ROOT/.device/bin/node" "$(command -v node 2>/dev/null)"; do
  if [ -n "$cand" ] && [ -x "$cand" ] && "$cand" --version >/dev/null 2>&1; then NODE=$cand; break; fi
done
if [ -z "$NODE" ]; then
  cat "$setup_log"
  echo "FATAL: no node that runs here (bundled: $("$ROOT/.device/bin/node" --version 2>&1 | head -1))"
  record node failed 0 - "no runnable node"
  exit 1
fi
export PATH="$(dirname "$NODE"):$PATH"  # build-dev.sh and CMake call `node` by name
note "node: $NODE $("$NODE" --version)"
note "npx: $(command -v npx || echo 'not on PATH (not needed)')"

# cuBLAS: every libcublas.so.N under the Python environment's site-packages (nvidia/cublas/lib,
# nvidia/cu13/lib, ...) and torch/lib, then the system's; globbing only (importing torch takes seconds).
find_cublas() {
  local py dirs=() d
  for py in python3 python; do
    command -v "$py" >/dev/null 2>&1 || continue
    mapfile -t dirs < <("$py" -c 'import site, sys
seen = set()
for d in site.getsitepackages() + [site.getusersitepackages()] + sys.path:
    if d and d not in seen:
        seen.add(d); print(d)' 2>/dev/null)
    break
  done
  {
    for d in "${dirs[@]}"; do
      [ -d "$d/nvidia" ] && find "$d/nvidia" -maxdepth 4 -name 'libcublas.so*' 2>/dev/null
      [ -d "$d/torch/lib" ] && find "$d/torch/lib" -maxdepth 1 -name 'libcublas.so*' 2>/dev/null
    done
    ldconfig -p 2>/dev/null | awk '/libcublas\.so/ {print $NF}'
    ls /usr/local/cuda*/lib64/libcublas.so* /usr/local/cuda*/targets/*/lib/libcublas.so* 2>/dev/null
  } | grep -v 'libcublasLt' | awk '!seen[$0]++' |
    awk '{ v = $0; sub(/.*libcublas\.so\.?/, "", v); split(v, a, "."); printf "%06d\t%s\n", a[1] + 0, $0 }' |
    sort -s -r -n -k1,1 | cut -f2  # the newest major first; among equals, the order above
}
backends_json() { "$NODE" -e "process.stdout.write(JSON.stringify(require('./dist').backends()))" 2>&1; }
CUBLAS_STATE="not loaded"
if [ -z "${OSP_CUBLAS_LIB:-}" ]; then
  mapfile -t CUBLAS_CANDIDATES < <(timeout 5 bash -c "$(declare -f find_cublas); find_cublas")
else
  CUBLAS_CANDIDATES=("$OSP_CUBLAS_LIB")
fi
note "cuBLAS candidates: ${CUBLAS_CANDIDATES[*]:-none found}"

# The addon: does it load, and does its CUDA runtime see the GPU that nvidia-smi sees?
GPU_SEEN=0
nvidia-smi -L >/dev/null 2>&1 && GPU_SEEN=1
addon_state() {
  "$NODE" -e "try { const b = require('./dist').backends(); console.log(b.cuda.available ? 'gpu' : b.cuda.compiled ? 'nogpu: ' + b.cuda.reason : 'nocuda: built without CUDA'); }
    catch (e) { console.log('noload: ' + String(e.message).split('\n')[0]); }" 2>&1 | tail -1
}
STATE=$(timeout 10 bash -c "$(declare -f addon_state); NODE='$NODE' addon_state" || echo "noload: timed out")
note "addon: $STATE"
rebuild_reason=
case "$STATE" in
  noload*) rebuild_reason="the bundled addon does not load (${STATE#noload: })" ;;
  nogpu*|nocuda*) [ $GPU_SEEN = 1 ] && rebuild_reason="nvidia-smi sees a GPU but the addon does not (${STATE#*: })" ;;
esac
rebuild_cmd=(env OSP_CUDA=ON OSP_CUDA_ARCHS=90-real OSP_DEV_BUILD_DIR=/tmp/osp-device-build bash scripts/build-dev.sh)
if [ -n "$rebuild_reason" ]; then
  if [ $DRY = 1 ]; then
    note "rebuild: would rebuild for sm_90 ($rebuild_reason): ${rebuild_cmd[*]}"
  else
    echo "REBUILDING the addon here for sm_90 only (output in rebuild.txt): $rebuild_reason"
    QUIET=1 timed rebuild 70 "$OUT/rebuild.txt" "${rebuild_cmd[@]}"
    STATE=$(timeout 5 bash -c "$(declare -f addon_state); NODE='$NODE' addon_state" || echo "noload: timed out")
    note "addon after the rebuild: $STATE"
  fi
else
  note "rebuild: not needed ($STATE$([ $GPU_SEEN = 0 ] && echo '; nvidia-smi sees no GPU'))"
fi
note "rebuild prerequisites: cmake $(command -v cmake >/dev/null && cmake --version | head -1 | awk '{print $3}' || echo MISSING), nvcc $(command -v nvcc >/dev/null && nvcc --version | tail -1 | awk '{print $NF}' || echo MISSING), c++ $(command -v c++ >/dev/null && echo ok || echo MISSING), cmake-js $([ -f node_modules/cmake-js/bin/cmake-js ] && echo ok || echo MISSING)"

# cuBLAS: the first candidate with which the addon makes a handle (a CUDA 13 cuBLAS needs a new
# enough driver; an older one may work). The loaded one's folder joins LD_LIBRARY_PATH (cublasLt).
if [ "${STATE%%:*}" = gpu ]; then
  cublas_deadline=$((SECONDS + 10))  # all tries together
  for lib in "${CUBLAS_CANDIDATES[@]}"; do
    left=$((cublas_deadline - SECONDS))
    [ "$left" -ge 2 ] || { note "cuBLAS: out of time before trying $lib"; break; }
    blas=$(OSP_CUBLAS_LIB=$lib LD_LIBRARY_PATH="$(dirname "$lib"):${LD_LIBRARY_PATH:-}" timeout "$left" "$NODE" -e "console.log(require('./dist').backends().cuda.blas)" 2>&1 | tail -1)
    note "cuBLAS try $lib: $blas"
    if [[ $blas == cuBLAS* ]]; then
      export OSP_CUBLAS_LIB=$lib LD_LIBRARY_PATH="$(dirname "$lib"):${LD_LIBRARY_PATH:-}"
      CUBLAS_STATE="loaded: $blas"
      break
    fi
  done
  [ "$CUBLAS_STATE" = "not loaded" ] && CUBLAS_STATE="not loaded: $([ ${#CUBLAS_CANDIDATES[@]} = 0 ] && echo 'no libcublas.so found' || echo "none of ${#CUBLAS_CANDIDATES[@]} candidates made a handle (see below)")"
else
  CUBLAS_STATE="not loaded: no GPU answers the addon (${STATE#*: })"
fi
CUBLAS_OK=0
[[ $CUBLAS_STATE == loaded* ]] && CUBLAS_OK=1
if [ $CUBLAS_OK = 1 ]; then echo "cuBLAS: $CUBLAS_STATE"
else echo "cuBLAS: NOT LOADED (${CUBLAS_STATE#not loaded: }); every matmul figure below is WITHOUT cuBLAS (osp's own tiled kernel)"; fi
cat "$setup_log"
record setup "$([ "${STATE%%:*}" = gpu ] && echo ok || { [ $DRY = 1 ] && echo skipped || echo failed; })" - - "addon: $STATE; cuBLAS: $CUBLAS_STATE"
HAVE_GPU=0
[ $DRY = 0 ] && [ "${STATE%%:*}" = gpu ] && HAVE_GPU=1
NO_GPU_REASON=$([ $DRY = 1 ] && echo "dry run" || echo "no GPU answers the addon (see setup above)")

# ---- 1. the probe ----
echo "== 1. probe"
probe() {
  echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>/dev/null || echo 'none (nvidia-smi absent or no device)')"
  echo "node: $NODE $("$NODE" --version); glibc $(ldd --version 2>/dev/null | head -1 | awk '{print $NF}')"
  echo "nvcc: $(command -v nvcc >/dev/null && nvcc --version | tail -1 || echo none)"
  echo "compute-sanitizer: $(command -v compute-sanitizer || echo none)"
  echo "python: $(command -v python3 || echo none) $(python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1 | tail -1)"
  "$NODE" -e "console.log(JSON.stringify(require('./dist').backends(), null, 1))" | tee "$OUT/backends.json"
}
timed probe 15 "$OUT/probe.txt" bash -c "$(declare -f probe); NODE='$NODE' OUT='$OUT' probe"

# ---- 2. the GPU suites ----
echo "== 2. GPU suites (test/gpu*.test.ts, OSP_GPU_TESTS=require, $NPROC workers)"
JEST=(node_modules/jest/bin/jest.js)
if [ $HAVE_GPU = 1 ]; then
  OSP_GPU_TESTS=require timed gpu-suites 100 "$OUT/gpu-tests.txt" \
    "$NODE" "${JEST[@]}" --ci --maxWorkers="$NPROC" --json --outputFile="$OUT/gpu-tests.json" test/gpu
else
  # What runs here: that jest starts from the bundled node and finds the suites.
  suites=$("$NODE" "${JEST[@]}" --listTests test/gpu 2>&1 | grep -c 'test/gpu.*\.test\.ts$')
  echo "   jest (node ${JEST[*]}) lists $suites GPU suite files"
  [ "$suites" -ge 1 ] || { echo "   FAIL: jest lists no GPU suites"; record gpu-suites failed 0 - "jest lists no suites"; }
  skip gpu-suites "$NO_GPU_REASON"
fi

# ---- 3. the CUDA benches ----
echo "== 3. CUDA benches (bench/kernels.ts --device cuda --quick --no-torch)"
BENCH=("$NODE" node_modules/ts-node/dist/bin.js --transpile-only bench/kernels.ts)
# Without cuBLAS, every figure that runs a matmul (the matmul rows, the model, generation and the
# judge) is marked, in the text and in the JSON (not torch's own rows).
mark_no_cublas() {
  sed -i -E '/torch|transformers/! s/^(.*(matmul|llama|train-step|forward|generate|judge).*)$/\1  [without cuBLAS]/' "$OUT/bench.txt"
  [ -f "$OUT/bench.json" ] && "$NODE" -e "
    const fs = require('fs'); const f = process.argv[1]; const d = JSON.parse(fs.readFileSync(f, 'utf8'));
    d.withoutCublas = true;
    for (const r of d.rows) if (!/^(copy|tokenLogprobs|preferenceLoss)/.test(r.op) && !/torch/.test(r.op)) r.variant += ' (without cuBLAS)';
    d.ratios = d.ratios.map((s) => (/matmul|generate|train|forward|judge/.test(s) ? s + ' [without cuBLAS]' : s));
    fs.writeFileSync(f, JSON.stringify(d, null, 2));" "$OUT/bench.json"
}
if [ $HAVE_GPU = 1 ]; then
  timed bench 90 "$OUT/bench.txt" "${BENCH[@]}" --device cuda --quick --no-torch --json "$OUT/bench.json"
  [ $CUBLAS_OK = 0 ] && mark_no_cublas
else
  "${BENCH[@]}" --help >/dev/null 2>&1 && echo "   ts-node runs bench/kernels.ts (--help)" || { echo "   FAIL: ts-node cannot run bench/kernels.ts"; record bench failed 0 - "ts-node"; }
  skip bench "$NO_GPU_REASON"
fi

# ---- 4. parity against transformers ----
echo "== 4. parity against transformers' LlamaForCausalLM (scripts/hf-parity.py, test/torchParity)"
# The probe tried the import already (importing torch takes seconds).
if [ $DRY = 0 ] && grep -q '^python: .* torch .* transformers ' "$OUT/probe.txt"; then
  if timed hf-parity-reference 30 "$OUT/hf-parity-python.txt" python3 scripts/hf-parity.py "$OUT/hf-parity"; then
    # An adapter osp writes, read back by peft (or merged by transformers): the other direction.
    timed osp-adapter 60 "$OUT/osp-adapter.txt" node_modules/.bin/ts-node --transpile-only scripts/osp-adapter-fixture.ts \
      "$OUT/hf-parity/untied" "$OUT/hf-parity/osp-lora" &&
      timed osp-adapter-reference 30 "$OUT/osp-adapter-python.txt" python3 scripts/hf-parity.py --osp-adapter "$OUT/hf-parity/osp-lora"
    # A reward model osp writes, read by transformers' LlamaForSequenceClassification.
    timed osp-reward 60 "$OUT/osp-reward.txt" node_modules/.bin/ts-node --transpile-only scripts/osp-reward-fixture.ts \
      "$OUT/hf-parity/untied" "$OUT/hf-parity/osp-rm" &&
      timed osp-reward-reference 30 "$OUT/osp-reward-python.txt" python3 scripts/hf-parity.py --osp-reward-model "$OUT/hf-parity/osp-rm"
    OSP_HF_PARITY_DIR="$OUT/hf-parity" OSP_PARITY_REPORT=1 timed hf-parity 30 "$OUT/hf-parity.txt" \
      "$NODE" "${JEST[@]}" --ci test/torchParity
  else
    skip hf-parity "scripts/hf-parity.py failed"
  fi
else
  if python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' scripts/hf-parity.py 2>&1; then echo "   scripts/hf-parity.py parses"
  else echo "   FAIL: scripts/hf-parity.py does not parse"; record hf-parity failed 0 - "hf-parity.py does not parse"; fi
  if "$NODE" "${JEST[@]}" --listTests test/torchParity 2>&1 | grep -q torchParity; then echo "   jest finds test/torchParity"
  else echo "   FAIL: jest does not find test/torchParity"; record hf-parity failed 0 - "jest finds no test/torchParity"; fi
  skip hf-parity "$([ $DRY = 1 ] && echo 'dry run' || echo 'python3 lacks torch or transformers')"
fi

# ---- 5. compute-sanitizer ----
echo "== 5. compute-sanitizer memcheck and racecheck (scripts/gpu-sanitize.js)"
if [ $HAVE_GPU = 1 ] && command -v compute-sanitizer >/dev/null; then
  # No leak check: the device allocator keeps freed blocks for reuse by design.
  timed memcheck 20 "$OUT/memcheck.txt" compute-sanitizer --tool memcheck --error-exitcode 3 "$NODE" scripts/gpu-sanitize.js cuda
  timed racecheck 20 "$OUT/racecheck.txt" compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 3 "$NODE" scripts/gpu-sanitize.js cuda
else
  "$NODE" scripts/gpu-sanitize.js cpu 2>&1 | sed 's/^/   /'
  [ "${PIPESTATUS[0]}" = 0 ] || record sanitizer-workload failed 0 - "the workload fails on the cpu"
  skip sanitizer "$([ $HAVE_GPU = 1 ] && echo 'compute-sanitizer not found' || echo "$NO_GPU_REASON")"
fi

echo "== done in ${SECONDS} s; summary ($SUMMARY):"
column -t -s $'\t' "$SUMMARY" 2>/dev/null || cat "$SUMMARY"
failed=$(awk -F'\t' 'NR > 1 && $2 != "ok" && $2 != "skipped"' "$SUMMARY" | wc -l)
exec 1>&- 2>&-
wait "$TEE_PID"
[ "$failed" = 0 ]

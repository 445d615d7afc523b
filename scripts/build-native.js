#!/usr/bin/env node
// Builds the native addon at `npm install`.
//  - CMake present: cmake-js (CMakeLists.txt). The CUDA kernels are compiled when a GPU is visible
//    (nvidia-smi lists one), for that GPU's architecture only; with no GPU visible the CPU backend
//    alone is built (measured on 2 cores: 17 s, against 71 s with four CUDA architectures) and the
//    output says how to add CUDA.
//      OSP_CUDA=ON           compile the CUDA kernels even with no GPU visible (CI does)
//      OSP_CUDA=OFF          never compile them
//      OSP_CUDA_ARCHS=90     CUDA architectures (CMake syntax, ';' or ',' separated; default: the
//                            visible GPU's, or CMakeLists.txt's four with OSP_CUDA=ON and no GPU)
//  - CMake absent: node-gyp (binding.gyp), CPU backend only; a matching prebuild is used as is.
//  - A packed package (npm pack, scripts/pack-prebuilds.js) carries prebuilt addons in
//    prebuilds/<platform>-<arch>/: osp.cpu.node and, where nvcc was present at packing,
//    osp.cuda.node (sm_80..90 + PTX). The one that fits (cuda when a GPU of compute capability >= 8.0
//    is visible, else cpu) is copied to build/Release/osp.node and checked to load: nothing is
//    compiled. A clone has no prebuilds/, so it always builds.
//  - An addon already built in build/Release that loads is kept: npm runs this script again on its
//    own (npx in a clone installs the package to run its command), and rebuilding there would
//    delete build/ under whatever is using it. `npm run build:native` (--force) rebuilds.
//  - OSP_BUILD=gyp|cmake forces one; --force rebuilds even when a prebuild would do.
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');
const fs = require('fs');

const root = path.resolve(__dirname, '..');
const force = process.argv.includes('--force');

function has(cmd) {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore' });
  return r.status === 0;
}

function run(cmd, args, env) {
  console.log(`[osp] ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return r.status === 0;
}

function nodeGypCommand() {
  try {
    return [process.execPath, [require.resolve('node-gyp/bin/node-gyp.js')]];
  } catch {
    // npm sets npm_config_node_gyp to its bundled node-gyp while it runs install scripts.
    if (process.env.npm_config_node_gyp) return [process.execPath, [process.env.npm_config_node_gyp]];
    return ['node-gyp', []];
  }
}

function buildWithGyp() {
  const [cmd, pre] = nodeGypCommand();
  return run(cmd, [...pre, 'rebuild', '--release', `--jobs=${process.env.OSP_JOBS || 'max'}`]);
}

/** The compute capabilities of the GPUs nvidia-smi lists (e.g. ['90']), or [] when none is visible. */
function visibleGpuArchs() {
  const r = spawnSync('nvidia-smi', ['--query-gpu=compute_cap', '--format=csv,noheader'], { encoding: 'utf8', timeout: 15000 });
  if (r.status !== 0 || !r.stdout) return [];
  return [...new Set(r.stdout.split('\n').map((l) => l.trim().replace('.', '')).filter((l) => /^\d+$/.test(l)))];
}

/** Whether to compile CUDA, and for which architectures (undefined: CMakeLists.txt's default). */
function cudaPlan() {
  const flag = (process.env.OSP_CUDA || '').toUpperCase();
  const archs = process.env.OSP_CUDA_ARCHS ? process.env.OSP_CUDA_ARCHS.replace(/,/g, ';') : undefined;
  if (flag === 'OFF') return { cuda: false, why: 'OSP_CUDA=OFF' };
  if (flag === 'ON') return { cuda: true, archs, why: 'OSP_CUDA=ON' };
  const gpus = visibleGpuArchs();
  if (gpus.length === 0) return { cuda: false, why: 'no GPU visible (nvidia-smi lists none)' };
  return { cuda: true, archs: archs ?? gpus.join(';'), why: `GPU visible (compute capability ${gpus.join(', ')})` };
}

function buildWithCmake() {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const args = [cmakeJs, 'rebuild', '--release', '--parallel', String(process.env.OSP_JOBS || require('os').cpus().length)];
  const plan = cudaPlan();
  // Always pass OSP_CUDA: CMake caches options between builds.
  args.push(`--CDOSP_CUDA=${plan.cuda ? 'ON' : 'OFF'}`);
  if (plan.cuda && plan.archs) args.push(`--CDCMAKE_CUDA_ARCHITECTURES=${plan.archs}`);
  console.log(plan.cuda
    ? `[osp] CUDA kernels: on (${plan.why}), architectures ${plan.archs ?? 'of CMakeLists.txt'}`
    : `[osp] CUDA kernels: off (${plan.why}); the CPU backend only. To add CUDA: OSP_CUDA=ON npm run build:native ` +
      '(all architectures; OSP_CUDA_ARCHS=90 for one)');
  return run(process.execPath, args);
}

function prebuildLoads() {
  try {
    require('node-gyp-build').path(root);
    return fs.existsSync(path.join(root, 'prebuilds'));
  } catch {
    return false;
  }
}

/**
 * The packed prebuild that fits this machine, or null: the CUDA one when the plan compiles CUDA and
 * every visible GPU is compute capability 8.0 or newer (the prebuild's sm_80..90 + PTX cover it),
 * else the CPU one when the plan is CPU only.
 */
function choosePrebuild({ dir, plan, gpuArchs }) {
  const want = plan.cuda ? 'osp.cuda.node' : 'osp.cpu.node';
  if (plan.cuda && !(gpuArchs.length > 0 && gpuArchs.every((a) => Number(a) >= 80))) return null;
  const file = path.join(dir, want);
  return fs.existsSync(file) ? file : null;
}

/** Copies a prebuild to build/Release/osp.node if it loads here (a child process tries it first). */
function usePrebuild(file) {
  if (!loads(file)) {
    console.log(`[osp] the prebuilt ${path.basename(file)} does not load here; building instead`);
    return false;
  }
  const out = path.join(root, 'build', 'Release');
  fs.mkdirSync(out, { recursive: true });
  fs.copyFileSync(file, path.join(out, 'osp.node'));
  console.log(`[osp] using the prebuilt addon ${path.relative(root, file)}: nothing compiled`);
  return true;
}

/** Whether `file` exists and loads in a fresh Node.js process. */
function loads(file) {
  if (!fs.existsSync(file)) return false;
  return spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { stdio: 'ignore' }).status === 0;
}

function main() {
  const choice = (process.env.OSP_BUILD || '').toLowerCase();
  let ok;
  const built = path.join(root, 'build', 'Release', 'osp.node');
  if (!force && loads(built)) {
    console.log(`[osp] ${path.relative(root, built)} is built and loads: kept as it is (npm run build:native rebuilds)`);
    process.exit(0);
  }
  if (!force && !choice) {
    const plan = cudaPlan();
    const file = choosePrebuild({ dir: path.join(root, 'prebuilds', `${process.platform}-${process.arch}`), plan, gpuArchs: plan.cuda ? visibleGpuArchs() : [] });
    if (file && usePrebuild(file)) process.exit(0);
  }
  if (choice === 'gyp' || (choice !== 'cmake' && !has('cmake'))) {
    if (!force && prebuildLoads()) {
      console.log('[osp] using the prebuilt addon in prebuilds/');
      process.exit(0);
    }
    console.log('[osp] building the CPU backend with node-gyp (CMake not found or OSP_BUILD=gyp)');
    ok = buildWithGyp();
  } else {
    ok = buildWithCmake();
  }
  if (!ok) {
    console.error('[osp] native build failed; see the compiler output above. Options: OSP_CUDA=OFF (CPU only), ' +
      'OSP_BUILD=gyp (node-gyp, CPU only), OSP_CUDA_ARCHS=90 (fewer CUDA architectures).');
    process.exit(1);
  }
}

module.exports = { choosePrebuild, cudaPlan };
if (require.main === module) main();

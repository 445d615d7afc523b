#!/usr/bin/env node
// Builds the native addon at `npm install`.
//  - CMake present: cmake-js (CMakeLists.txt); CUDA kernels when a CUDA compiler is found.
//      OSP_CUDA=OFF          skip the CUDA kernels
//      OSP_CUDA_ARCHS=90     CUDA architectures (CMake syntax, ';' or ',' separated)
//  - CMake absent: node-gyp (binding.gyp), CPU backend only; a matching prebuild is used as is.
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

function buildWithCmake() {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const args = [cmakeJs, 'rebuild', '--release', '--parallel', String(process.env.OSP_JOBS || require('os').cpus().length)];
  // Always pass OSP_CUDA: CMake caches options between builds.
  args.push(`--CDOSP_CUDA=${(process.env.OSP_CUDA || '').toUpperCase() === 'OFF' ? 'OFF' : 'ON'}`);
  if (process.env.OSP_CUDA_ARCHS) args.push(`--CDCMAKE_CUDA_ARCHITECTURES=${process.env.OSP_CUDA_ARCHS.replace(/,/g, ';')}`);
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

const choice = (process.env.OSP_BUILD || '').toLowerCase();
let ok;
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

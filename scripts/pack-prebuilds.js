#!/usr/bin/env node
// Makes the prebuilt addons a packed package carries (npm pack runs this as `prepack`), so that
// `npm install <tarball>` compiles nothing where one fits (scripts/build-native.js picks it):
//   prebuilds/<platform>-<arch>/osp.cpu.node    the CPU backend (CMake, OSP_CUDA=OFF)
//   prebuilds/<platform>-<arch>/osp.cuda.node   CUDA for sm_80, 86, 89, 90 + PTX (only where nvcc is
//                                               found; OSP_PACK_CUDA=OFF skips it)
// Each is built in a scratch folder, so the checkout's own build/ is left as it is. Node-API
// version 8 keeps them valid across Node.js versions; the C++ runtime they link is this machine's
// (glibc), and build-native.js tries each in a child process before using it.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..');
const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');

function build(name, cuda) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), `osp-prebuild-${name}-`));
  const args = [cmakeJs, 'rebuild', '--release', '--out', out, '--parallel', String(os.cpus().length), `--CDOSP_CUDA=${cuda ? 'ON' : 'OFF'}`];
  console.log(`[osp] prebuild ${name}: ${args.slice(1).join(' ')}`);
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`the ${name} prebuild failed (exit ${r.status})`);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(out, 'Release', 'osp.node'), path.join(dir, `osp.${name}.node`));
  fs.rmSync(out, { recursive: true, force: true });
}

fs.rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });
build('cpu', false);
const nvcc = spawnSync('nvcc', ['--version'], { stdio: 'ignore' }).status === 0;
if ((process.env.OSP_PACK_CUDA || '').toUpperCase() === 'OFF') console.log('[osp] OSP_PACK_CUDA=OFF: no CUDA prebuild');
else if (!nvcc) console.log('[osp] no nvcc: the package carries the CPU prebuild only');
else build('cuda', true);
for (const f of fs.readdirSync(dir)) console.log(`[osp] prebuilds/${path.basename(dir)}/${f}: ${(fs.statSync(path.join(dir, f)).size / 2 ** 20).toFixed(1)} MiB`);

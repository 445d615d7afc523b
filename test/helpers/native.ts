// Where the host-compiled checks of CUDA device code (test/native/*.cpp) find their tools: the CUDA
// headers (cuda_bf16.h; from CUDA_HOME, CUDA_PATH, nvcc's folder or /usr/local/cuda) and a C++
// compiler. Either may be missing; the suites then skip with a one-line reason.
import { spawnSync } from 'child_process';
import fs from 'fs';
import path from 'path';

export function cudaInclude(): string | undefined {
  const nvcc = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).stdout?.trim();
  const dirs = [process.env.CUDA_HOME, process.env.CUDA_PATH, nvcc ? path.join(path.dirname(nvcc), '..') : undefined, '/usr/local/cuda'];
  for (const d of dirs) if (d && fs.existsSync(path.join(d, 'include', 'cuda_bf16.h'))) return path.join(d, 'include');
  return undefined;
}

export function cxxCompiler(): string | undefined {
  return ['c++', 'g++', 'clang++'].find((c) => spawnSync(c, ['--version']).status === 0);
}

/** Why the host emulations of CUDA code cannot run here (undefined: they can). */
export function hostEmulationMissing(): string | undefined {
  return !cudaInclude() ? 'no CUDA headers (cuda_bf16.h) found' : !cxxCompiler() ? 'no C++ compiler' : undefined;
}

/** Compiles test/native/<name>.cpp (C++20, threads) into dir and returns the executable's path; throws with the compiler's output. */
export function buildHostEmulation(name: string, dir: string): string {
  const exe = path.join(dir, name);
  const src = path.join(__dirname, '..', 'native', `${name}.cpp`);
  const build = spawnSync(cxxCompiler() as string, ['-std=c++20', '-O2', '-pthread', '-I', cudaInclude() as string, src, '-o', exe], { encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`compiling ${src} failed:\n${build.stderr}`);
  return exe;
}

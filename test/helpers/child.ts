// Runs a TypeScript snippet against the package in a child Node process with OSP_NUM_THREADS set:
// the determinism tests compare its output for different thread counts.
import { spawnSync, SpawnSyncReturns } from 'child_process';
import path from 'path';

export function runWithThreads(script: string, threads: string): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
    cwd: path.join(__dirname, '..', '..'),
    env: { ...process.env, OSP_NUM_THREADS: threads },
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  });
}

// Runs a TypeScript snippet against the package in a child Node process with OSP_NUM_THREADS (or
// other variables) set: the determinism tests compare its output for different thread counts, the
// ISA tests force each instruction set (OSP_CPU_ISA).
import { spawnSync, SpawnSyncReturns } from 'child_process';
import path from 'path';

export function runWithThreads(script: string, threads: string): SpawnSyncReturns<string> {
  return runWithEnv(script, { OSP_NUM_THREADS: threads });
}

/** The same with any environment variables set (OSP_CPU_ISA, ...). */
export function runWithEnv(script: string, env: Record<string, string>): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
    cwd: path.join(__dirname, '..', '..'),
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  });
}

/**
 * The determinism check the kernel suites share: the script runs cleanly under OSP_NUM_THREADS=1 and
 * under `threads`, prints more than `minChars` characters, and prints the same under both.
 */
export function expectSameOutputUnderThreads(script: string, minChars: number, threads = '2'): void {
  const one = runWithThreads(script, '1');
  const other = runWithThreads(script, threads);
  expect(one.stderr).toBe('');
  expect(one.status).toBe(0);
  expect(other.status).toBe(0);
  expect(one.stdout.length).toBeGreaterThan(minChars);
  expect(one.stdout === other.stdout).toBe(true);
}

// Runs a list of cases in child Node processes so that a case that kills its process (a segfault,
// an abort, a SIGFPE) is reported as that case's outcome instead of killing the Jest worker.
//
// A case module exports a factory `(arg: string) => IsolatedCase[]` that makes the same list in the
// parent and in the child (so `arg` carries anything random, e.g. a seed). One child runs the cases
// in order, writing a line before and after each; if it dies, the case it had started is reported
// as `died` with the signal or exit status, and a new child continues with the next case.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import path from 'path';

export interface IsolatedCase {
  name: string;
  run: () => unknown;
}

export interface IsolatedResult {
  name: string;
  /** returned: no exception; threw: a JavaScript exception; died: the process ended inside the case. */
  outcome: 'returned' | 'threw' | 'died';
  /** Constructor name of what was thrown (threw), or the signal / exit status (died). */
  errorClass: string;
  /** The error's message (threw), the end of stderr (died), or what the case returned if a string. */
  message: string;
}

export type CaseFactory = (arg: string) => IsolatedCase[];

const ROOT = path.join(__dirname, '..', '..');

/** Runs `factory(arg)`'s cases (the factory exported as `exportName` by `modulePath`) in child processes. */
export function runIsolated(modulePath: string, exportName: string, arg: string, opts: { timeoutMs?: number } = {}): IsolatedResult[] {
  const total = (require(modulePath) as Record<string, CaseFactory>)[exportName](arg).length;
  const results: IsolatedResult[] = [];
  let start = 0;
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  // The child reports to a file, not a pipe: a write to a full non-blocking pipe fails with EAGAIN.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-isolated-'));
  const report = path.join(dir, 'report.jsonl');
  try {
    while (start < total) {
      const env = { ...process.env };
      delete env.OSP_DEVICE;
      fs.writeFileSync(report, '');
      const child = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', __filename, modulePath, exportName, arg, String(start), report], {
        cwd: ROOT,
        env,
        encoding: 'utf8',
        timeout: Math.max(1000, deadline - Date.now()),
        maxBuffer: 64 * 2 ** 20,
      });
      let started = -1;
      for (const line of fs.readFileSync(report, 'utf8').split('\n')) {
        if (!line.startsWith('{')) continue;
        const r = JSON.parse(line) as { start?: number; i?: number; result?: IsolatedResult };
        if (r.start !== undefined) started = r.start;
        else if (r.result) {
          results.push(r.result);
          started = -1;
        }
      }
      const done = results.length;
      if (child.status === 0 && child.signal === null && done >= total) break;
      const at = started >= 0 ? started : done;
      if (at !== done || at >= total) {
        throw new Error(`isolated runner: status ${child.status} signal ${child.signal} after ${done} of ${total} cases: ${String(child.stderr).slice(-2000)}`);
      }
      const how = child.signal ?? (child.error ? `error ${child.error.message}` : `exit status ${child.status}`);
      const name = (require(modulePath) as Record<string, CaseFactory>)[exportName](arg)[at].name;
      results.push({ name, outcome: 'died', errorClass: String(how), message: String(child.stderr ?? '').slice(-500) });
      start = at + 1;
      if (Date.now() > deadline) throw new Error(`isolated cases ran past ${opts.timeoutMs ?? 120_000} ms`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

/** What one case did, in process. */
export function runOne(c: IsolatedCase): IsolatedResult {
  let value: unknown;
  try {
    value = c.run();
  } catch (e) {
    const err = e as { constructor?: { name?: string }; message?: unknown } | null;
    return { name: c.name, outcome: 'threw', errorClass: err?.constructor?.name ?? typeof e, message: String(err?.message ?? e) };
  }
  return { name: c.name, outcome: 'returned', errorClass: '', message: typeof value === 'string' ? value : '' };
}

if (require.main === module) {
  const [modulePath, exportName, arg, from, report] = process.argv.slice(2);
  const cases = (require(path.resolve(ROOT, modulePath)) as Record<string, CaseFactory>)[exportName](arg);
  // fs.writeSync to a file: the line is out before the next case can kill the process.
  const fd = fs.openSync(report, 'a');
  for (let i = Number(from); i < cases.length; i++) {
    fs.writeSync(fd, `${JSON.stringify({ start: i })}\n`);
    fs.writeSync(fd, `${JSON.stringify({ i, result: runOne(cases[i]) })}\n`);
  }
  fs.closeSync(fd);
}

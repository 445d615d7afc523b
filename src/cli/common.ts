// What every command shares: a JSON config file that may give any flag (flags on the command line
// win), zod validation of the resolved settings before any work (a message naming the setting), model
// loading with device/dtype defaults, progress bars with ETA (cli-progress; plain lines when stdout is
// not a terminal), and Ctrl-C handling for the training loops.
import * as fs from 'fs';
import { Command, Option } from 'commander';
import { MultiBar, Presets, SingleBar } from 'cli-progress';
import { z } from 'zod';

export class UsageError extends Error {}

/** A command's exit status other than 0 without an error (a run stopped by Ctrl-C: 130); main() returns it. */
let pendingExitCode = 0;
export function setExitCode(code: number): void {
  pendingExitCode = code;
}
export function takeExitCode(): number {
  const c = pendingExitCode;
  pendingExitCode = 0;
  return c;
}

/** Reads --config FILE (JSON object of flag names in camelCase or kebab-case) under the command-line flags. */
export function mergeConfig(cmd: Command, opts: Record<string, unknown>): Record<string, unknown> {
  const file = opts.config as string | undefined;
  if (!file) return opts;
  let data: unknown;
  try {
    data = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `--config ${file}: no such file` : `--config ${file}: not valid JSON: ${(e as Error).message}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new UsageError(`--config ${file}: expected a JSON object of settings`);
  const known = new Map(cmd.options.map((o) => [o.attributeName(), o]));
  const merged: Record<string, unknown> = { ...opts };
  for (const [k, v] of Object.entries(data)) {
    const name = k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const o = known.get(name);
    if (!o) throw new UsageError(`--config ${file}: unknown setting '${k}' for osp ${cmd.name()}`);
    // A flag given on the command line wins over the file.
    if (cmd.getOptionValueSource(name) === 'cli') continue;
    merged[name] = v;
  }
  return merged;
}

/** Validates with a zod schema; the first problem becomes a UsageError naming the flag. */
export function validate<T extends z.ZodTypeAny>(schema: T, value: Record<string, unknown>): z.infer<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const key = String(issue.path[0] ?? '');
  const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  const got = key in value ? JSON.stringify(value[key]) : 'missing';
  throw new UsageError(`${flag}: ${issue.message} (got ${got})`);
}

// Numbers arrive as strings from the command line and as numbers from a config file (settings.ts).
export { num, int, positiveInt } from '../osp/settings';
export { checkModelDir, resolveDevice, resolveDtype } from '../osp/trainer';

export function deviceOption(): Option {
  return new Option('--device <device>', 'cpu or cuda (default: cuda when a GPU answers, else cpu)').choices(['cpu', 'cuda']);
}

export function dtypeOption(): Option {
  return new Option('--dtype <dtype>', 'weights in memory: f32 or bf16 (default: bf16 on cuda, f32 on cpu)').choices(['f32', 'bf16']);
}

/**
 * The terminal's bars: one cli-progress MultiBar shared by every Progress that is running, so that
 * an outer bar (steps) and an inner one (tokens of a step) redraw in place instead of each writing
 * its own line; when the last bar stops the board is cleared, and what is printed next starts on a
 * clean line. Lines printed while bars run go through progressLog, above the bars.
 */
let board: MultiBar | null = null;
let running = 0;
let lastDraw = 0;

/**
 * Redraws the board now (at most 10 times a second). cli-progress redraws a MultiBar from a timer,
 * and a training loop that computes without yielding to the event loop would never let it fire.
 */
function drawBoard(): void {
  if (!board || Date.now() - lastDraw < 100) return;
  lastDraw = Date.now();
  (board as unknown as { update(): void }).update();
}

function boardOf(): MultiBar {
  board ??= new MultiBar(
    { format: '{label} [{bar}] {value}/{total} | ETA {eta_formatted} | {info}', stream: process.stderr, hideCursor: true, etaBuffer: 20, clearOnComplete: true, autopadding: true },
    Presets.shades_classic,
  );
  return board;
}

/** Prints a line to stderr: above the bars while any runs, else plainly. */
export function progressLog(line: string): void {
  if (board) board.log(`${line}\n`);
  else process.stderr.write(`${line}\n`);
}

/** A progress bar with ETA on a terminal; on a pipe, one line per update at most every few seconds. */
export class Progress {
  private bar: SingleBar | null = null;
  private lastLine = 0;
  private total = 0;
  private readonly tty = Boolean(process.stderr.isTTY) && !process.env.OSP_NO_PROGRESS;

  /** quiet: show only on a terminal (inner bars, whose lines would flood a log). */
  constructor(private readonly label: string, private readonly quiet = false) {}

  start(total: number, info = ''): void {
    this.stop();
    this.total = total;
    if (this.tty) {
      this.bar = boardOf().create(total, 0, { label: this.label, info });
      running++;
    } else if (!this.quiet) {
      process.stderr.write(`${this.label}: 0/${total} ${info}\n`);
    }
  }

  update(value: number, info = ''): void {
    if (this.bar) {
      this.bar.update(value, { label: this.label, info });
      drawBoard();
    } else if (!this.tty && !this.quiet && (Date.now() - this.lastLine > 5000 || value === this.total)) {
      this.lastLine = Date.now();
      process.stderr.write(`${this.label}: ${value}/${this.total} ${info}\n`);
    }
  }

  stop(): void {
    if (!this.bar) return;
    board?.remove(this.bar);
    this.bar = null;
    if (--running === 0) {
      board?.stop();
      board = null;
    }
  }
}

/** Ctrl-C: the first finishes the step in progress and checkpoints; a second exits at once. */
export function installStopHandler(what: string): { requested: () => boolean; dispose: () => void } {
  let count = 0;
  const handler = () => {
    count++;
    if (count === 1) progressLog(`${what}: stopping after the current step (Ctrl-C again to exit now; the last checkpoint stays intact)`);
    else process.exit(130);
  };
  process.on('SIGINT', handler);
  return { requested: () => count > 0, dispose: () => process.off('SIGINT', handler) };
}

export function fmt(v: number | null | undefined, digits = 3): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

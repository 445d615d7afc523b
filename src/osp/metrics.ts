// Per-step training metrics of a run: the StepMetrics record and MetricsLog, the append-only
// `metrics.jsonl` file (one JSON object per line, one line per optimizer step).
//
// A line counts as written once its terminating '\n' is on disk: append() writes the whole line,
// newline included, with a single write call, so a run killed mid-write leaves at most one
// unterminated last line, which read() ignores and the next append() cuts off before writing.
import { writeFileAtomicSync } from '../util/atomicWrite';
import * as fs from 'fs';

/** One optimizer step of a run. Every field but `step` is optional; null means "not measured". */
export interface StepMetrics {
  /** 1-based optimizer step. */
  step: number;
  /** Epoch over the prompt set (fractional allowed). */
  epoch?: number | null;
  /** Wall-clock seconds since the run (not this process) started. */
  elapsedSeconds?: number | null;
  /** Learning rate used for this step. */
  lr?: number | null;
  /** Training loss of the step (mean over pairs). */
  loss?: number | null;
  /** Global gradient norm before clipping. */
  gradNorm?: number | null;
  /** Mean over pairs of the policy's implicit preference pHat = sigmoid(z). */
  pHatMean?: number | null;
  /** Mean over pairs of the judge's target preference p(y_h > y_l | x). */
  targetMean?: number | null;
  /** Mean over pairs of |pHat - target|. */
  absErrorMean?: number | null;
  /** Mean over pairs of the margin z = beta * (r(y_h) - r(y_l)). */
  marginMean?: number | null;
  /** Reward model: fraction of the step's pairs with r(chosen) > r(rejected). */
  accuracy?: number | null;
  /** Reward model: mean reward of the step's chosen responses. */
  rewardChosenMean?: number | null;
  /** Reward model: mean reward of the step's rejected responses. */
  rewardRejectedMean?: number | null;
  /** Reward model: accuracy on the held-out pairs (after every --eval-every steps and the last). */
  evalAccuracy?: number | null;
  /** Reward model: mean Bradley-Terry loss on the held-out pairs (when evalAccuracy is measured). */
  evalLoss?: number | null;
  /** Mean policy sequence log-prob of the chosen (higher ranked) responses. */
  chosenLogprobMean?: number | null;
  /** Mean policy sequence log-prob of the rejected (lower ranked) responses. */
  rejectedLogprobMean?: number | null;
  /** Mean reference-model sequence log-prob of the chosen responses. */
  refChosenLogprobMean?: number | null;
  /** Mean reference-model sequence log-prob of the rejected responses. */
  refRejectedLogprobMean?: number | null;
  /** Mean over sampled responses of the sum over their tokens of (policy - reference) log-prob. */
  klEstimate?: number | null;
  /** Mean length of the sampled responses, in tokens. */
  responseLengthMean?: number | null;
  /** Mean over judge calls of |pAB - (1 - pBA)|, the judge's position disagreement. */
  judgeDisagreementMean?: number | null;
  /** Fraction of pairs the judge orders like the scorer does (only when a scorer is available). */
  judgeAccuracy?: number | null;
  /** Mean scorer quality of the sampled responses (only when a scorer is available, e.g. the demo task). */
  sampleScoreMean?: number | null;
  /** Seconds this step spent sampling responses. */
  secondsGenerate?: number | null;
  /** Seconds this step spent in judge calls (ranking and targets). */
  secondsJudge?: number | null;
  /** Seconds this step spent in the forward/backward passes and the optimizer update. */
  secondsTrain?: number | null;
  /** Tokens (generated plus trained) processed per second over the step. */
  tokensPerSecond?: number | null;
  /** Preference pairs trained per second over the step. */
  pairsPerSecond?: number | null;
  /** Number of preference pairs in the step. */
  pairs?: number | null;
  /** Number of sampled responses in the step (trained on: with RSO, the accepted ones). */
  samples?: number | null;
  /** RSO: candidates accepted per prompt (mean). */
  rsoAccepted?: number | null;
  /** RAFT: the judge's blank-baseline score of each prompt's best sample (mean), and the scorer's of it. */
  bestScoreMean?: number | null;
  bestSampleScoreMean?: number | null;
  /** PPO: mean reward-model score of the step's samples (at their last token). */
  rewardMean?: number | null;
  /** PPO: mean over response tokens of log pi - log pi_ref (klEstimate is the per-sequence sum's mean). */
  klPerTokenMean?: number | null;
  /** PPO: the KL coefficient the step's rewards used (moves with --adaptive-kl). */
  klCoef?: number | null;
  /** PPO: mean -log pi of the sampled tokens (an estimate of the policy's entropy per token). */
  entropyMean?: number | null;
  /** PPO: mean over the epochs' tokens of the clipped policy objective. */
  policyLoss?: number | null;
  /** PPO: mean over the epochs' tokens of the clipped value loss. */
  valueLoss?: number | null;
  /** PPO: fraction of tokens whose policy term took the clipped branch. */
  clipFraction?: number | null;
  /** PPO: fraction of tokens whose value term took the clipped branch. */
  valueClipFraction?: number | null;
  /** PPO: mean over tokens of 0.5 (log pi - log pi_old)^2, the old-to-new policy KL estimate. */
  approxKl?: number | null;
  /** PPO: mean value V(s_t) of the rollout's response tokens. */
  valueMean?: number | null;
  /** PPO: mean GAE return of the rollout's response tokens. */
  returnMean?: number | null;
  /** PPO: optimizer updates of the step (epochs x mini-batches). */
  ppoUpdates?: number | null;
  /** Times the host waited for the device over the whole step (sampling reads each new token). */
  hostWaits?: number | null;
  /** Times the host waited in the step's training part: objective, backward, optimizer and the one read of the step's values. */
  hostWaitsTrain?: number | null;
}

/** The optional numeric fields of StepMetrics, in their documented order. */
export const STEP_METRIC_FIELDS = [
  'epoch', 'elapsedSeconds', 'lr', 'loss', 'gradNorm',
  'pHatMean', 'targetMean', 'absErrorMean', 'marginMean',
  'accuracy', 'rewardChosenMean', 'rewardRejectedMean', 'evalAccuracy', 'evalLoss',
  'chosenLogprobMean', 'rejectedLogprobMean', 'refChosenLogprobMean', 'refRejectedLogprobMean',
  'klEstimate', 'responseLengthMean', 'judgeDisagreementMean', 'judgeAccuracy', 'sampleScoreMean',
  'secondsGenerate', 'secondsJudge', 'secondsTrain',
  'tokensPerSecond', 'pairsPerSecond', 'pairs', 'samples', 'hostWaits', 'hostWaitsTrain',
  'rewardMean', 'klPerTokenMean', 'klCoef', 'entropyMean', 'policyLoss', 'valueLoss', 'clipFraction', 'valueClipFraction', 'approxKl', 'valueMean', 'returnMean', 'ppoUpdates',
] as const;

export type StepMetricField = (typeof STEP_METRIC_FIELDS)[number];

export interface MetricsLogOptions {
  /** fsync after every appended line (durable across power loss, slower). Default false. */
  fsync?: boolean;
}

function checkStep(step: unknown, where: string): number {
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 1) {
    throw new RangeError(`${where}: step must be an integer >= 1, got ${JSON.stringify(step)}`);
  }
  return step;
}

/** Serialises one record as a JSON line (with '\n'); `step` first, non-finite numbers become null. */
function toLine(m: StepMetrics): string {
  if (m === null || typeof m !== 'object') throw new TypeError('MetricsLog.append: expected a StepMetrics object');
  const step = checkStep(m.step, 'MetricsLog.append');
  const out: Record<string, unknown> = { step };
  for (const [key, value] of Object.entries(m)) {
    if (key === 'step' || value === undefined) continue;
    if (value !== null && typeof value !== 'number') {
      throw new TypeError(`MetricsLog.append: field ${key} must be a number or null, got ${typeof value}`);
    }
    out[key] = value === null || Number.isFinite(value) ? value : null;
  }
  return JSON.stringify(out) + '\n';
}

/** Append-only JSON-lines log of StepMetrics (`metrics.jsonl` of a run folder). */
export class MetricsLog {
  readonly file: string;
  private readonly fsync: boolean;
  private tailChecked = false;

  constructor(file: string, options: MetricsLogOptions = {}) {
    if (typeof file !== 'string' || file.length === 0) throw new TypeError('MetricsLog: file must be a non-empty path');
    this.file = file;
    this.fsync = options.fsync ?? false;
  }

  /** Appends one whole line for `m` (a single write of the line and its newline). */
  append(m: StepMetrics): void {
    const line = toLine(m);
    if (!this.tailChecked) {
      this.dropUnterminatedTail();
      this.tailChecked = true;
    }
    const fd = fs.openSync(this.file, 'a');
    try {
      const buf = Buffer.from(line, 'utf8');
      const written = fs.writeSync(fd, buf, 0, buf.length);
      if (written !== buf.length) throw new Error(`MetricsLog.append: short write to ${this.file} (${written} of ${buf.length} bytes)`);
      if (this.fsync) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Records of `file` in file order. An unterminated last line (a write cut short) is ignored, as
   * are blank lines; a missing file reads as no records. A malformed complete line throws.
   */
  static read(file: string): StepMetrics[] {
    return MetricsLog.completeLines(file).map(({ text, lineNo }) => parseLine(text, file, lineNo));
  }

  /**
   * Drops every record with step > `step` (used on resume from the checkpoint of `step`), and any
   * unterminated tail; rewrites the file atomically. Returns how many records were dropped.
   */
  truncateAfter(step: number): number {
    if (typeof step !== 'number' || !Number.isInteger(step) || step < 0) {
      throw new RangeError(`MetricsLog.truncateAfter: step must be an integer >= 0, got ${JSON.stringify(step)}`);
    }
    if (!fs.existsSync(this.file)) return 0;
    const kept: string[] = [];
    let dropped = 0;
    for (const { text, lineNo } of MetricsLog.completeLines(this.file)) {
      if (parseLine(text, this.file, lineNo).step <= step) kept.push(text + '\n');
      else dropped++;
    }
    writeFileAtomicSync(this.file, kept.join(''));
    this.tailChecked = true;
    return dropped;
  }

  private static completeLines(file: string): { text: string; lineNo: number }[] {
    let content: string;
    try {
      content = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const parts = content.split('\n');
    parts.pop(); // after the last '\n': '' when the file ends cleanly, else a cut-short line
    const out: { text: string; lineNo: number }[] = [];
    parts.forEach((text, i) => {
      if (text.trim().length > 0) out.push({ text, lineNo: i + 1 });
    });
    return out;
  }

  /** Cuts the file back to its last '\n' when a previous writer died mid-line. */
  private dropUnterminatedTail(): void {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r+');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size === 0) return;
      const last = Buffer.alloc(1);
      fs.readSync(fd, last, 0, 1, size - 1);
      if (last[0] === 0x0a) return;
      // Find the last newline, reading backwards in chunks.
      const chunk = Buffer.alloc(64 * 1024);
      let end = size;
      let keep = 0;
      while (end > 0) {
        const start = Math.max(0, end - chunk.length);
        const n = fs.readSync(fd, chunk, 0, end - start, start);
        const idx = chunk.subarray(0, n).lastIndexOf(0x0a);
        if (idx >= 0) { keep = start + idx + 1; break; }
        end = start;
      }
      fs.ftruncateSync(fd, keep);
      if (this.fsync) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}

function parseLine(text: string, file: string, lineNo: number): StepMetrics {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${file}:${lineNo}: not valid JSON: ${text.length > 80 ? text.slice(0, 80) + '...' : text}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${file}:${lineNo}: expected a JSON object`);
  }
  checkStep((value as { step?: unknown }).step, `${file}:${lineNo}`);
  return value as StepMetrics;
}

// The loop every trainer mode shares: a seeded data order (a fresh shuffle per epoch), one optimizer
// step per batch with the learning-rate schedule, metrics.jsonl and samples.jsonl lines, checkpoints
// every saveEvery steps and at the end, report.html refreshed at each checkpoint, and a stop request
// (Ctrl-C) honoured after the step in progress: a checkpoint is written, then the loop returns.
// Resuming from a checkpoint's (step, dataPosition) with the same seed replays the same batches and
// the same per-step seeds, so on the cpu the resumed run's metrics equal an uninterrupted run's.
import { seededUniform, shuffleInPlace } from '../util/random';
import { LlamaModel } from '../model/llama';
import { AdamW } from '../model/optim';
import { ScheduleKind, learningRate } from '../model/schedule';
import { Tensor } from '../tensor';
import { MetricsLog, StepMetrics } from './metrics';
import { syncStats } from '../sync';
import { DeviceRecord } from './deviceRecord';
import { Trainee, appendSamples, latestCheckpoint, saveCheckpoint } from './run';
import { writeReport } from './report';

/** A seed for step `step` of a run seeded `seed` (an integer in [0, 2^31)). */
export function stepSeed(seed: number, step: number): number {
  return Math.floor(seededUniform((seed * 2654435761 + step * 40503) >>> 0)() * 2147483647);
}

/** Example indices in a seeded order: epoch e is a Fisher-Yates shuffle seeded by (seed, e). */
export class DataOrder {
  private cache = new Map<number, Int32Array>();
  constructor(readonly size: number, readonly seed: number) {
    if (!(Number.isInteger(size) && size >= 1)) throw new RangeError(`DataOrder: size is ${size}; expected at least one example`);
  }

  private epoch(e: number): Int32Array {
    let p = this.cache.get(e);
    if (!p) {
      p = Int32Array.from({ length: this.size }, (_, i) => i);
      shuffleInPlace(p, seededUniform((this.seed ^ Math.imul(e + 1, 0x9e3779b1)) >>> 0));
      this.cache.clear();
      this.cache.set(e, p);
    }
    return p;
  }

  /** The example at global position pos (positions run on across epochs). */
  at(pos: number): number {
    return this.epoch(Math.floor(pos / this.size))[pos % this.size];
  }

  batch(start: number, n: number): number[] {
    return Array.from({ length: n }, (_, i) => this.at(start + i));
  }
}

export interface LoopOptions {
  runDir: string;
  /** What is trained and checkpointed: a policy, or any Trainee (a reward model). */
  policy: LlamaModel | Trainee;
  optimizer: AdamW;
  /** Examples in the data (the order shuffles these). */
  dataSize: number;
  batchSize: number;
  totalSteps: number;
  seed: number;
  lr: number;
  schedule: ScheduleKind;
  warmupSteps: number;
  minLrRatio: number;
  saveEvery: number;
  keepCheckpoints: number;
  /** Copied into each checkpoint's model folder. */
  tokenizerDir?: string;
  /** Where to start: 0, 0 for a new run; a checkpoint's state when resuming. */
  startStep: number;
  startPosition: number;
  /** Seconds the run had already spent before startStep (from the checkpoint), so elapsedSeconds runs on. */
  startElapsed?: number;
  title: string;
  config: object;
}

export interface StepOutput {
  grads: Map<string, Tensor>;
  /** The step's device values (loss, per-pair values ...); the loop adds the gradient norm and reads it once. */
  record: DeviceRecord;
  /** performance.now() / 1e3 when the step's training part (objective, backward) began. */
  trainStarted: number;
  /** syncStats().hostWaits when the training part began. */
  trainWaits: number;
  /** Metrics and samples from the read record; secondsTrain runs from trainStarted to after the read. */
  finish(record: DeviceRecord, secondsTrain: number): { metrics: Partial<StepMetrics>; samples?: object[] };
}

/** One step's work: the example indices of its batch and its seed -> gradients, metrics, samples. */
export type StepFn = (step: number, indices: number[], seed: number) => Promise<StepOutput>;

export interface LoopHooks {
  onStepDone?(m: StepMetrics): void;
  onCheckpoint?(dir: string): void;
  /** Checked after each step: true finishes the run early with a checkpoint (Ctrl-C). */
  stopRequested?(): boolean;
}

export interface LoopResult {
  lastStep: number;
  stopped: boolean;
  lastCheckpoint: string | null;
}

export async function runLoop(o: LoopOptions, stepFn: StepFn, hooks: LoopHooks = {}): Promise<LoopResult> {
  const metricsLog = new MetricsLog(`${o.runDir}/metrics.jsonl`);
  const order = new DataOrder(o.dataSize, o.seed);
  const started = Date.now() - 1e3 * (o.startElapsed ?? 0);
  let position = o.startPosition;
  let lastCheckpoint: string | null = null;
  let step = o.startStep;
  const checkpoint = async () => {
    const extra = { elapsedSeconds: (Date.now() - started) / 1e3 };
    lastCheckpoint = await saveCheckpoint(o.runDir, o.policy, o.optimizer, { step, dataPosition: position, seed: o.seed, extra }, { keep: o.keepCheckpoints, tokenizerFrom: o.tokenizerDir });
    writeReport(o.runDir, { title: o.title, config: o.config });
    hooks.onCheckpoint?.(lastCheckpoint);
  };
  while (step < o.totalSteps) {
    const next = step + 1;
    const indices = order.batch(position, o.batchSize);
    const waits = syncStats().hostWaits;
    const out = await stepFn(next, indices, stepSeed(o.seed, next));
    const lr = learningRate(next, { kind: o.schedule, peak: o.lr, warmupSteps: o.warmupSteps, totalSteps: o.totalSteps, minRatio: o.minLrRatio });
    let total: number;
    try {
      const res = o.optimizer.step(out.grads, { lr });
      out.record.add('gradSumOfSquares', res.gradSumOfSquares.reshape([1])); // a view: the optimizer keeps its own handle
      total = out.record.get('gradSumOfSquares')[0]; // the step's one read of the device
      res.settle(total);
    } finally {
      for (const g of out.grads.values()) g.dispose();
      out.record.dispose();
    }
    const secondsTrain = performance.now() / 1e3 - out.trainStarted;
    if (!Number.isFinite(total)) {
      const where = lastCheckpoint ?? latestCheckpoint(o.runDir);
      throw new Error(
        `step ${next}: the gradient norm is ${Math.sqrt(total)}; the update was skipped (no weight was written) and the run stopped. ` +
          (where ? `The last good checkpoint is ${where}.` : 'No checkpoint was written yet.'),
      );
    }
    const done = out.finish(out.record, secondsTrain);
    step = next;
    position += o.batchSize;
    const m: StepMetrics = {
      step,
      epoch: position / o.dataSize,
      elapsedSeconds: (Date.now() - started) / 1e3,
      lr,
      gradNorm: Math.sqrt(total),
      ...done.metrics,
      hostWaits: syncStats().hostWaits - waits,
      hostWaitsTrain: syncStats().hostWaits - out.trainWaits,
    };
    metricsLog.append(m);
    if (done.samples) appendSamples(o.runDir, done.samples.map((s) => ({ step, ...s })));
    hooks.onStepDone?.(m);
    const stop = hooks.stopRequested?.() ?? false;
    if (stop || step % o.saveEvery === 0 || step === o.totalSteps) await checkpoint();
    if (stop) return { lastStep: step, stopped: true, lastCheckpoint };
  }
  if (lastCheckpoint === null) writeReport(o.runDir, { title: o.title, config: o.config });
  return { lastStep: step, stopped: false, lastCheckpoint };
}

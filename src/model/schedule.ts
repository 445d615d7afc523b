// Learning-rate schedules with linear warm-up: constant, linear decay and cosine decay (as
// transformers' get_constant_schedule_with_warmup, get_linear_schedule_with_warmup and
// get_cosine_with_min_lr_schedule_with_warmup with num_cycles 0.5), as a pure function of the step.

export type ScheduleKind = 'constant' | 'linear' | 'cosine';

export interface ScheduleOptions {
  kind: ScheduleKind;
  /** The learning rate at the end of the warm-up; finite and >= 0. */
  peak: number;
  /** Steps of linear warm-up from 0 to peak; an integer in [0, totalSteps]. */
  warmupSteps: number;
  /** The step at which linear and cosine decay reach minRatio * peak; an integer >= 1. */
  totalSteps: number;
  /** The final learning rate as a fraction of peak, in [0, 1]. Default 0. */
  minRatio?: number;
}

/**
 * The learning rate of the 1-based optimizer step `step` (an integer >= 1):
 * - step <= warmupSteps: peak * step / warmupSteps (peak at step warmupSteps);
 * - then, with progress = (step - 1 - warmupSteps) / (totalSteps - warmupSteps) clamped to [0, 1]:
 *   constant: peak; linear: peak * (minRatio + (1 - minRatio) * (1 - progress));
 *   cosine: peak * (minRatio + (1 - minRatio) * 0.5 * (1 + cos(pi * progress))).
 * The decay reads the 0-based step, as transformers' schedulers do (they are stepped after the
 * optimizer): the first step after the warm-up runs at peak and the last step (totalSteps) one step
 * short of minRatio * peak, so no step of a run is spent at the final rate (a 1-step cosine run
 * trains at peak). The warm-up reads the 1-based step, so its first step is not spent at rate 0
 * (transformers' is). Steps past totalSteps decay to, then keep, minRatio * peak.
 */
export function learningRate(step: number, opts: ScheduleOptions): number {
  const op = 'learningRate';
  if (typeof opts !== 'object' || opts === null) throw new TypeError(`${op}: opts is ${String(opts)}; expected {kind, peak, warmupSteps, totalSteps, minRatio?}`);
  const { kind, peak, warmupSteps, totalSteps } = opts;
  const minRatio = opts.minRatio ?? 0;
  if (kind !== 'constant' && kind !== 'linear' && kind !== 'cosine') throw new RangeError(`${op}: kind is ${String(kind)}; expected 'constant', 'linear' or 'cosine'`);
  if (typeof peak !== 'number' || !Number.isFinite(peak) || peak < 0) throw new RangeError(`${op}: peak is ${String(peak)}; expected a finite number >= 0`);
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new RangeError(`${op}: totalSteps is ${String(totalSteps)}; expected an integer >= 1`);
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0 || warmupSteps > totalSteps) {
    throw new RangeError(`${op}: warmupSteps is ${String(warmupSteps)}; expected an integer in [0, totalSteps = ${totalSteps}]`);
  }
  if (typeof minRatio !== 'number' || !(minRatio >= 0 && minRatio <= 1)) throw new RangeError(`${op}: minRatio is ${String(minRatio)}; expected a number in [0, 1]`);
  if (!Number.isInteger(step) || step < 1) throw new RangeError(`${op}: step is ${String(step)}; expected an integer >= 1 (steps are 1-based)`);
  if (step <= warmupSteps) return (peak * step) / warmupSteps;
  if (kind === 'constant') return peak;
  const progress = totalSteps > warmupSteps ? Math.min(1, (step - 1 - warmupSteps) / (totalSteps - warmupSteps)) : 1;
  const decay = kind === 'linear' ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
  return peak * (minRatio + (1 - minRatio) * decay);
}

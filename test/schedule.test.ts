// Learning-rate schedules: exact values at chosen steps for each kind (warm-up, decay, the end and
// past it), the transformers formulas with a min ratio, and the RangeErrors naming each option.
import { learningRate } from '../src/model/schedule';
import type { ScheduleOptions } from '../src/model/schedule';
import { resolveSettings, warmupStepsOf } from '../src/osp/settings';

const close = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-15 * Math.max(1, Math.abs(b)));

describe('learningRate', () => {
  const base = { peak: 1e-3, warmupSteps: 10, totalSteps: 110 };

  it('warms up linearly from 0 to peak over warmupSteps, for every kind', () => {
    for (const kind of ['constant', 'linear', 'cosine'] as const) {
      close(learningRate(1, { ...base, kind }), 1e-4);
      close(learningRate(5, { ...base, kind }), 5e-4);
      close(learningRate(10, { ...base, kind }), 1e-3);
    }
  });

  it('constant stays at peak after the warm-up, also past totalSteps', () => {
    for (const s of [11, 60, 110, 500]) expect(learningRate(s, { ...base, kind: 'constant' })).toBe(1e-3);
  });

  it('linear decays from peak on the first step after the warm-up to minRatio * peak one step past totalSteps, and stays there', () => {
    const o: ScheduleOptions = { ...base, kind: 'linear' };
    expect(learningRate(11, o)).toBe(1e-3);
    close(learningRate(36, o), 0.75e-3);
    close(learningRate(61, o), 0.5e-3);
    close(learningRate(101, o), 0.1e-3);
    close(learningRate(110, o), 0.01e-3); // the last step of the run: one step short of the end
    expect(learningRate(111, o)).toBe(0);
    expect(learningRate(200, o)).toBe(0);
    const m: ScheduleOptions = { ...o, minRatio: 0.1 };
    close(learningRate(61, m), 1e-3 * (0.1 + 0.9 * 0.5));
    close(learningRate(111, m), 1e-4);
    close(learningRate(1000, m), 1e-4);
  });

  it('cosine follows 0.5 (1 + cos(pi progress)) scaled into [minRatio, 1], progress read at the 0-based step', () => {
    const o: ScheduleOptions = { ...base, kind: 'cosine' };
    expect(learningRate(11, o)).toBe(1e-3);
    close(learningRate(61, o), 0.5e-3);
    close(learningRate(36, o), 1e-3 * 0.5 * (1 + Math.SQRT1_2));
    close(learningRate(86, o), 1e-3 * 0.5 * (1 - Math.SQRT1_2));
    expect(learningRate(110, o)).toBeGreaterThan(0);
    expect(learningRate(111, o)).toBe(0);
    expect(learningRate(112, o)).toBe(0);
    const m: ScheduleOptions = { ...o, minRatio: 0.2 };
    close(learningRate(61, m), 1e-3 * (0.2 + 0.8 * 0.5));
    close(learningRate(111, m), 2e-4);
    close(learningRate(500, m), 2e-4);
  });

  it('handles no warm-up and warm-up over all the steps, and a 1-step run trains at peak', () => {
    close(learningRate(1, { kind: 'linear', peak: 2, warmupSteps: 0, totalSteps: 4 }), 2);
    close(learningRate(2, { kind: 'linear', peak: 2, warmupSteps: 0, totalSteps: 4 }), 1.5);
    close(learningRate(3, { kind: 'cosine', peak: 2, warmupSteps: 0, totalSteps: 4 }), 1);
    close(learningRate(3, { kind: 'cosine', peak: 2, warmupSteps: 4, totalSteps: 4 }), 1.5);
    close(learningRate(4, { kind: 'linear', peak: 2, warmupSteps: 4, totalSteps: 4, minRatio: 0.5 }), 2);
    close(learningRate(5, { kind: 'linear', peak: 2, warmupSteps: 4, totalSteps: 4, minRatio: 0.5 }), 1);
    expect(learningRate(1, { kind: 'cosine', peak: 2, warmupSteps: 0, totalSteps: 1 })).toBe(2);
    expect(learningRate(3, { kind: 'constant', peak: 0, warmupSteps: 0, totalSteps: 1 })).toBe(0);
  });

  it('rejects bad options with RangeErrors naming the option', () => {
    const o: ScheduleOptions = { ...base, kind: 'cosine' };
    expect(() => learningRate(1, { ...o, kind: 'step' as never })).toThrow(/kind/);
    for (const peak of [-1, NaN, Infinity]) expect(() => learningRate(1, { ...o, peak })).toThrow(RangeError);
    expect(() => learningRate(1, { ...o, peak: -1 })).toThrow(/peak/);
    expect(() => learningRate(1, { ...o, warmupSteps: 111 })).toThrow(/warmupSteps/);
    expect(() => learningRate(1, { ...o, warmupSteps: 2.5 })).toThrow(/warmupSteps/);
    expect(() => learningRate(1, { ...o, warmupSteps: -1 })).toThrow(/warmupSteps/);
    expect(() => learningRate(1, { ...o, totalSteps: 0 })).toThrow(/totalSteps/);
    expect(() => learningRate(1, { ...o, totalSteps: 10.5 })).toThrow(/totalSteps/);
    expect(() => learningRate(1, { ...o, minRatio: 1.5 })).toThrow(/minRatio/);
    expect(() => learningRate(1, { ...o, minRatio: NaN })).toThrow(/minRatio/);
    expect(() => learningRate(0, o)).toThrow(/step/);
    expect(() => learningRate(1.5, o)).toThrow(/step/);
    expect(() => learningRate(0, o)).toThrow(RangeError);
  });
});

describe('the training commands\' default schedule (the paper\'s DeepSpeed-Chat setup)', () => {
  it('is cosine decay to 0 after a linear warm-up of 10% of the run\'s steps', () => {
    const minimal = { train: { prompts: 'p' }, 'self-reward': { prompts: 'p' }, dpo: { pairs: 'p' }, sft: { data: 'd' }, augment: { pairs: 'p' }, 'reward-model': { pairs: 'p' }, ppo: { prompts: 'p', rewardModel: 'r' } };
    for (const [command, data] of Object.entries(minimal)) {
      const s = resolveSettings(command as keyof typeof minimal, { model: 'm', ...data });
      expect([s.schedule, s.warmupSteps, s.warmupRatio, s.minLrRatio]).toEqual(['cosine', undefined, 0.1, 0]);
      expect(warmupStepsOf(s, 60)).toBe(6);
      expect(warmupStepsOf(s, 3)).toBe(0);
    }
  });

  it('takes --warmup-steps over the ratio, and --schedule constant keeps the rate flat', () => {
    const s = resolveSettings('train', { model: 'm', prompts: 'p', warmupSteps: 2, schedule: 'constant' });
    expect(warmupStepsOf(s, 60)).toBe(2);
    expect(learningRate(30, { kind: s.schedule, peak: 1e-3, warmupSteps: warmupStepsOf(s, 60), totalSteps: 60 })).toBe(1e-3);
  });

  it('refuses a warm-up ratio outside [0, 1], naming the setting', () => {
    expect(() => resolveSettings('sft', { model: 'm', data: 'd', warmupRatio: 1.5 })).toThrow(expect.objectContaining({ name: 'SettingsError', setting: 'warmupRatio' }));
  });
});

// The rotary inverse-frequency table of a Llama config's rope_theta and rope_scaling, computed once
// per model and passed to ops.rope as { invFreq }. The base table theta^(-2i/Dh) (/ factor for
// "linear") comes from the native code the { theta, scalingFactor } form of rope uses, so those two
// cases are bit-identical to it; "llama3" is transformers' _compute_llama3_parameters on that
// base table, in f64:
//   wavelen_i = 2 pi / inv_freq_i, low_wl = old_ctx / low_freq_factor, high_wl = old_ctx / high_freq_factor
//   wavelen < high_wl:  inv_freq_i                      (high frequencies kept)
//   wavelen > low_wl:   inv_freq_i / factor             (low frequencies scaled like "linear")
//   otherwise:          (1 - s) inv_freq_i / factor + s inv_freq_i,  s = (old_ctx / wavelen - low) / (high - low)
// (continuous at both boundaries: s = 1 at wavelen = high_wl, 0 at wavelen = low_wl). llama3's
// attention factor is 1, so nothing else changes.
import { ropeInvFreqTable } from '../ops';
import { LlamaConfig, ROPE_SCALING_TYPES, RopeScaling } from './config';

function checkPositive(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0)) {
    throw new RangeError(`rope_scaling: ${name} is ${String(v)}; expected a finite number > 0`);
  }
  return v;
}

/** The Dh/2 inverse frequencies for rope_theta `theta` and `scaling` (null: none). Errors name the bad field. */
export function ropeInvFreq(headDim: number, theta: number, scaling: RopeScaling | null): Float64Array {
  if (scaling === null) return ropeInvFreqTable(theta, 1, headDim);
  const type = (scaling as { type: unknown }).type;
  if (type === 'linear') return ropeInvFreqTable(theta, checkPositive('factor', scaling.factor), headDim);
  if (type !== 'llama3') {
    throw new RangeError(
      `rope_scaling: type ${JSON.stringify(type)} is not supported; expected ${ROPE_SCALING_TYPES.map((t) => `'${t}'`).join(', ')} ` +
        `('dynamic' and 'yarn' are not supported)`,
    );
  }
  const s = scaling as Extract<RopeScaling, { type: 'llama3' }>;
  const factor = checkPositive('factor', s.factor);
  const low = checkPositive('low_freq_factor', s.lowFreqFactor);
  const high = checkPositive('high_freq_factor', s.highFreqFactor);
  const oldCtx = checkPositive('original_max_position_embeddings', s.originalMaxPositionEmbeddings);
  if (!(high > low)) throw new RangeError(`rope_scaling: high_freq_factor ${high} is not greater than low_freq_factor ${low}`);
  const lowWavelen = oldCtx / low;
  const highWavelen = oldCtx / high;
  const inv = ropeInvFreqTable(theta, 1, headDim);
  for (let i = 0; i < inv.length; i++) {
    const f = inv[i];
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) continue;
    if (wavelen > lowWavelen) {
      inv[i] = f / factor;
    } else {
      const smooth = (oldCtx / wavelen - low) / (high - low);
      inv[i] = ((1 - smooth) * f) / factor + smooth * f;
    }
  }
  return inv;
}

/** ropeInvFreq of a model config (its headDim, ropeTheta and ropeScaling). */
export function configRopeInvFreq(config: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float64Array {
  return ropeInvFreq(config.headDim, config.ropeTheta, config.ropeScaling);
}

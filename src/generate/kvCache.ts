// The kv cache's memory, in one place for its two users (sampling in generate.ts, the judge's shared
// prefixes in src/judge/sharedPrefix.ts): bytes per cached position, the default bound, and the
// allocation of a cache of slots x positions (LlamaModel.forwardCached fills it).
import * as os from 'os';
import { backends } from '../device';
import { KVCache, LlamaModel } from '../model/llama';
import { Tensor, keep, zeros } from '../tensor';

function bytesPerValue(dtype: string): number {
  return dtype === 'f64' ? 8 : dtype === 'bf16' ? 2 : 4;
}

/** Bytes one cached position takes in every layer: keys and values of all kv heads. */
export function kvCacheBytesPerPosition(model: LlamaModel): number {
  const c = model.config;
  return 2 * c.numHiddenLayers * c.numKeyValueHeads * c.headDim * bytesPerValue(model.dtype);
}

/** The default bound on a kv cache: 40% of the GPU's memory on cuda, 25% of RAM (at most 8 GiB) on the cpu. */
export function defaultMaxCacheBytes(device: string): number {
  if (device === 'cuda') {
    const d = backends().cuda.devices[0];
    if (d) return Math.floor(0.4 * d.memoryBytes);
  }
  return Math.min(Math.floor(0.25 * os.totalmem()), 8 * 2 ** 30);
}

/** A byte count for messages: KiB, MiB or GiB. */
export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

/** A zeroed cache of `slots` sequences of `length` positions in the model's dtype and device (kept: free it with disposeKvCache). */
export function allocateKvCache(model: LlamaModel, slots: number, length: number): KVCache {
  const c = model.config;
  const shape = [slots, length, c.numKeyValueHeads, c.headDim];
  const cache: KVCache = { k: [] as Tensor[], v: [] as Tensor[] };
  try {
    for (let l = 0; l < c.numHiddenLayers; l++) {
      cache.k.push(keep(zeros(shape, { dtype: model.dtype, device: model.device })));
      cache.v.push(keep(zeros(shape, { dtype: model.dtype, device: model.device })));
    }
  } catch (e) {
    disposeKvCache(cache);
    throw e;
  }
  return cache;
}

export function disposeKvCache(cache: KVCache): void {
  for (const t of [...cache.k, ...cache.v]) t.dispose();
}

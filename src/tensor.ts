// Tensor: a handle on native memory (host or GPU) with a dtype and a shape. Memory is freed by
// dispose() or by leaving a scope(); the native finalizer is only a safety net.
import { defaultDevice, Device } from './device';
import { native, NativeTensor } from './native';

export type DType = 'f32' | 'f64' | 'bf16' | 'i32';
export type { Device } from './device';

export type TensorData = Float32Array | Float64Array | Int32Array | Uint16Array | number[];

export interface TensorOptions {
  /** Default: from the data (Float32Array f32, Float64Array f64, Int32Array i32, number[] f32). */
  dtype?: DType;
  /** Default: defaultDevice(), except f64, which lives on the cpu. */
  device?: Device;
}

const scopes: Set<Tensor>[] = [];

/**
 * The options argument of `op`: {} when undefined, else it must be an object (a TypeError naming
 * `opts` otherwise, instead of a "Cannot read properties of null" from deep inside).
 */
export function optionsArg<T extends object>(op: string, opts: T | undefined): Partial<T> {
  if (opts === undefined) return {};
  if (opts === null || typeof opts !== 'object') {
    throw new TypeError(`${op}: opts is ${opts === null ? 'null' : typeof opts}; expected an options object or undefined`);
  }
  return opts;
}

/** The native handle of a Tensor method's receiver, checked (a method called on something else). */
function receiver(self: unknown, op: string): NativeTensor {
  if (!(self instanceof Tensor) || !native.isTensor(self.handle)) {
    throw new TypeError(`${op}: tensor (the receiver) is not a Tensor; expected a method call on a Tensor made by osp`);
  }
  return self.handle;
}

export class Tensor {
  /** The native handle; for the op wrappers in this package. */
  readonly handle: NativeTensor;

  constructor(handle: NativeTensor) {
    if (!native.isTensor(handle)) {
      throw new TypeError('Tensor: handle is not a native tensor; expected one made by osp (osp.tensor, osp.zeros, an op)');
    }
    this.handle = handle;
    scopes[scopes.length - 1]?.add(this);
  }

  get shape(): number[] {
    return this.handle.shape;
  }
  get strides(): number[] {
    return this.handle.strides;
  }
  get dtype(): DType {
    return this.handle.dtype;
  }
  get device(): Device {
    return this.handle.device;
  }
  get disposed(): boolean {
    return this.handle.disposed;
  }
  get isContiguous(): boolean {
    return this.handle.isContiguous;
  }
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** A copy on the host: Float32Array (f32, bf16), Float64Array (f64) or Int32Array (i32). */
  toArray(): Float32Array | Float64Array | Int32Array {
    return receiver(this, 'toArray').toArray();
  }

  /** Frees the memory now. Using the tensor afterwards is a TypeError. Idempotent. */
  dispose(): void {
    receiver(this, 'dispose').dispose();
  }

  /** A view with two dimensions swapped (not contiguous: ops that need rows refuse it). */
  transpose(dim0: number, dim1: number): Tensor {
    return new Tensor(receiver(this, 'transpose').transpose(dim0, dim1));
  }

  /** A view with another shape over the same memory (contiguous tensors only; no copy). */
  reshape(shape: number[]): Tensor {
    return new Tensor(receiver(this, 'reshape').reshape(shape));
  }

  /** A view of `length` entries of dimension `dim` starting at `start` (no copy). Rows of a contiguous tensor stay contiguous. */
  narrow(dim: number, start: number, length: number): Tensor {
    return new Tensor(receiver(this, 'narrow').narrow(dim, start, length));
  }

  /** A contiguous copy. */
  contiguous(): Tensor {
    return new Tensor(receiver(this, 'contiguous').contiguous());
  }

  /** A copy converted to another dtype and/or moved to another device. */
  to(opts: TensorOptions): Tensor {
    const handle = receiver(this, 'to');
    const o = optionsArg('to', opts);
    if (handle.disposed) return new Tensor(handle.to(o.dtype ?? 'f32', o.device ?? 'cpu')); // the native error names `to`
    const dtype = o.dtype ?? handle.dtype;
    const device = o.device ?? handle.device;
    // A float dtype change on the same device converts there (the copyInto kernel: cpu any float
    // pair, cuda f32 and bf16), with no round trip through the host and no host wait.
    const floats = handle.device === 'cpu' ? ['f32', 'f64', 'bf16'] : ['f32', 'bf16'];
    if (device === handle.device && dtype !== handle.dtype && handle.isContiguous && floats.includes(dtype) && floats.includes(handle.dtype)) {
      const out = zeros(handle.shape, { dtype, device });
      native.copyInto(out.handle, handle);
      return out;
    }
    return new Tensor(handle.to(dtype, device));
  }

  toString(): string {
    return `Tensor(${this.disposed ? 'disposed' : `${this.dtype}[${this.shape.join(', ')}] on ${this.device}`})`;
  }
}

function inferDtype(data: TensorData): DType {
  if (data instanceof Float64Array) return 'f64';
  if (data instanceof Int32Array) return 'i32';
  if (data instanceof Uint16Array) {
    throw new TypeError('tensor: a Uint16Array holds raw bf16 bits; pass { dtype: "bf16" } to say so');
  }
  return 'f32';
}

/** Makes a tensor from host data (copied). */
export function tensor(data: TensorData, shape: number[], opts: TensorOptions = {}): Tensor {
  if (!Array.isArray(shape)) throw new TypeError('tensor: shape must be an array of non-negative integers');
  opts = optionsArg('tensor', opts);
  const dtype = opts.dtype ?? inferDtype(data);
  let view: ArrayBufferView;
  if (Array.isArray(data)) {
    view = dtype === 'i32' ? Int32Array.from(data) : Float64Array.from(data);
  } else if (ArrayBuffer.isView(data)) {
    view = data;
  } else {
    throw new TypeError('tensor: data must be a Float32Array, Float64Array, Int32Array, Uint16Array (bf16 bits) or number[]');
  }
  const device = opts.device ?? (dtype === 'f64' ? 'cpu' : defaultDevice());
  return new Tensor(native.fromArray(view, { shape, dtype, device }));
}

/** A tensor of zeros, made where it lives (no host transfer). Default dtype f32. */
export function zeros(shape: number[], opts: TensorOptions = {}): Tensor {
  if (!Array.isArray(shape)) throw new TypeError('zeros: shape must be an array of non-negative integers');
  opts = optionsArg('zeros', opts);
  const dtype = opts.dtype ?? 'f32';
  const device = opts.device ?? (dtype === 'f64' ? 'cpu' : defaultDevice());
  return new Tensor(native.zeros({ shape, dtype, device }));
}

export interface RandomOptions extends TensorOptions {
  /** Same seed, same values, on every device and thread count. Default 0. */
  seed?: number;
  mean?: number;
  std?: number;
}

type Fill = { distribution: 'normal'; mean: number; std: number } | { distribution: 'uniform'; low: number; high: number } | { distribution: 'dropout'; p: number };

function randomFill(op: string, shape: number[], opts: RandomOptions, fill: Fill): Tensor {
  opts = optionsArg(op, opts);
  const dtype = opts.dtype ?? 'f32';
  const device = opts.device ?? (dtype === 'f64' ? 'cpu' : defaultDevice());
  return new Tensor(native.randomFill({ shape, dtype, device, seed: opts.seed ?? 0, ...fill }));
}

/** A tensor of normal draws mean + std * N(0, 1), generated where it lives (no host transfer). */
export function randn(shape: number[], opts: RandomOptions = {}): Tensor {
  return randomFill('randn', shape, opts, { distribution: 'normal', mean: opts?.mean ?? 0, std: opts?.std ?? 1 });
}

/** A tensor of uniform draws in [low, high) (default [0, 1)), generated where it lives. */
export function randu(shape: number[], opts: Omit<RandomOptions, 'mean' | 'std'> & { low?: number; high?: number } = {}): Tensor {
  return randomFill('randu', shape, opts, { distribution: 'uniform', low: opts?.low ?? 0, high: opts?.high ?? 1 });
}

/**
 * An inverted-dropout mask: each element 0 with probability p, else 1 / (1 - p) (as torch's dropout
 * scales in training). Element i depends only on (seed, i): a backward draws the same mask again.
 */
export function dropoutMask(shape: number[], p: number, opts: Omit<RandomOptions, 'mean' | 'std'> = {}): Tensor {
  return randomFill('dropoutMask', shape, opts, { distribution: 'dropout', p });
}

/**
 * Runs fn; every tensor created inside and not part of its (synchronous) result is disposed at
 * the end, also when fn throws. Returned tensors move to the enclosing scope, if any.
 */
export function scope<T>(fn: () => T): T {
  const created = new Set<Tensor>();
  scopes.push(created);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of created) t.dispose();
    throw e;
  }
  scopes.pop();
  const kept = new Set<Tensor>();
  collectTensors(result, kept, new Set());
  for (const t of created) if (!kept.has(t)) t.dispose();
  const parent = scopes[scopes.length - 1];
  if (parent) for (const t of kept) parent.add(t);
  return result;
}

/** Takes a tensor out of the current scope so that the scope does not dispose it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collectTensors(v: unknown, out: Set<Tensor>, seen: Set<object>): void {
  if (v instanceof Tensor) {
    out.add(v);
    return;
  }
  if (v === null || typeof v !== 'object' || seen.has(v) || ArrayBuffer.isView(v)) return;
  seen.add(v);
  if (v instanceof Map) {
    for (const x of v.values()) collectTensors(x, out, seen);
    return;
  }
  for (const x of Array.isArray(v) ? v : Object.values(v)) collectTensors(x, out, seen);
}

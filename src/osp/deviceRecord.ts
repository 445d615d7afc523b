// What a training step reads back, gathered on the device and read in one go. The objective, the
// optimizer and the loop each add the values the host needs for metrics (the loss, per-pair pHat
// and margins, the gradient norm ...) as device tensors; read() copies them into one vector on the
// device and reads it with a single toArray: one host wait per step however many values there are.
import * as ops from '../ops';
import { Tensor, keep, scope, zeros } from '../tensor';

export class DeviceRecord {
  private readonly parts: { name: string; t: Tensor }[] = [];
  private values: Map<string, Float64Array> | null = null;

  /** Adds a tensor (any shape; the record takes it over and disposes it). Names are unique. */
  add(name: string, t: Tensor): this {
    if (this.values) throw new Error(`DeviceRecord.add: ${name} added after the record was read`);
    if (this.parts.some((p) => p.name === name)) throw new RangeError(`DeviceRecord.add: ${name} was added twice`);
    this.parts.push({ name, t: keep(t) });
    return this;
  }

  has(name: string): boolean {
    return this.parts.some((p) => p.name === name) || (this.values?.has(name) ?? false);
  }

  /** The values by name, read with one toArray on the first call (later calls return the same). */
  read(): Map<string, Float64Array> {
    if (this.values) return this.values;
    const out = new Map<string, Float64Array>();
    try {
      if (this.parts.length > 0) this.readInto(out);
    } finally {
      this.dispose();
    }
    this.values = out;
    return out;
  }

  /** Copies every part into one vector on the device, reads it once, and splits it by name. */
  private readInto(out: Map<string, Float64Array>): void {
    const sizes = this.parts.map((p) => p.t.shape.reduce((a, b) => a * b, 1));
    const total = sizes.reduce((a, b) => a + b, 0);
    const f64 = this.parts.some((p) => p.t.dtype === 'f64');
    const flat = scope(() => {
      const all = zeros([total], { dtype: f64 ? 'f64' : 'f32', device: this.parts[0].t.device });
      let off = 0;
      this.parts.forEach(({ t }, i) => {
        if (sizes[i] > 0) ops.copyInto(all.narrow(0, off, sizes[i]), t.reshape([sizes[i]]));
        off += sizes[i];
      });
      return Float64Array.from(all.toArray());
    });
    let off = 0;
    this.parts.forEach(({ name }, i) => {
      out.set(name, flat.subarray(off, off + sizes[i]));
      off += sizes[i];
    });
  }

  /** One value by name (after read()). */
  get(name: string): Float64Array {
    const v = this.read().get(name);
    if (!v) throw new RangeError(`DeviceRecord: no value ${name}`);
    return v;
  }

  dispose(): void {
    for (const p of this.parts) p.t.dispose();
    this.parts.length = 0;
  }
}

// The safetensors reader and writer (src/model/safetensors.ts): round trips through the writer,
// files assembled byte by byte in this test (so the reader is not only checked against the writer),
// exact F16 / BF16 decoding of known bit patterns, rounding against an independent float64
// reference, every malformed header, interrupted writes and sharded folders.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  LoadedTensor,
  TensorToWrite,
  readSafetensors,
  readSafetensorsHeader,
  readSafetensorsIndex,
  readShardedSafetensors,
  writeSafetensors,
  writeShardedSafetensors,
} from '../src/model/safetensors';
import { caught } from './helpers/errors';
import { normals, rng } from './helpers/random';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-safetensors-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

// ---- helpers --------------------------------------------------------------------------------------

/** Assembles a file: u64 LE header length, the header text (as given, unpadded), the data bytes. */
function assemble(header: unknown, data: Uint8Array = new Uint8Array(0), headerLength?: bigint): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const body = Buffer.from(text, 'utf8');
  const out = new Uint8Array(8 + body.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(body.length), true);
  out.set(body, 8);
  out.set(data, 8 + body.length);
  return out;
}

function writeFile(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

/** Little-endian bytes of 16-bit patterns. */
function u16Bytes(bits: number[]): Uint8Array {
  const out = new Uint8Array(bits.length * 2);
  const v = new DataView(out.buffer);
  bits.forEach((b, i) => v.setUint16(2 * i, b, true));
  return out;
}

const f32Bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** What the call threw: its message; fails the test when nothing was thrown. */
function errorOf(fn: () => unknown): string {
  const c = caught(fn);
  if (c === undefined) throw new Error('expected an error, but the call returned');
  return c.message;
}

/**
 * Rounds a finite-or-not float to a binary format with `mant` fraction bits, minimum normal
 * exponent `minExp` and largest finite value `maxFinite`, to nearest even, in float64 arithmetic
 * (an independent reference for the writer's bit manipulations).
 */
function roundTo(x: number, mant: number, minExp: number, maxFinite: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  e = Math.max(e, minExp);
  const ulp = 2 ** (e - mant);
  const q = a / ulp; // exact: a is a float32, ulp a power of two
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  const v = r * ulp;
  return Math.sign(x) * (v > maxFinite ? Infinity : v) || (x < 0 ? -0 : 0);
}
const roundBf16 = (x: number) => roundTo(x, 7, -126, (2 - 2 ** -7) * 2 ** 127);
const roundF16 = (x: number) => roundTo(x, 10, -14, 65504);

/** Values that probe rounding: ties, near-overflow, subnormals, signed zeros, inf, plus random ones. */
function probeValues(): Float32Array {
  const fixed = [
    0, -0, 1, -1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20,
    65504, 65519, 65520, -65520, 1e6, 2 ** -14, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -25 + 2 ** -40, 1.5 * 2 ** -24,
    2 ** -126, 2 ** -133, 2 ** -149, 3.4e38, -3.4e38, Infinity, -Infinity, Math.PI, -Math.E, 0.1, 1 / 3,
  ];
  const next = rng(7);
  const random = normals(next, 400, 1).map((v, i) => v * 2 ** ((i % 60) - 30));
  return Float32Array.from([...fixed, ...random]);
}

// ---- round trips ----------------------------------------------------------------------------------

test('F32 write then read is bit-exact, NaN payloads and signed zeros included', () => {
  const data = Float32Array.from(normals(rng(1), 24, 3));
  const bits = new Uint32Array(data.buffer);
  bits[0] = 0x7fc00123; // NaN with a payload
  bits[1] = 0x80000000; // -0
  bits[2] = 0x00000001; // smallest subnormal
  const file = path.join(dir, 'model.safetensors');
  writeSafetensors(file, new Map([['w', { dtype: 'F32', shape: [4, 6], data } as TensorToWrite]]));
  const got = readSafetensors(file).get('w')!;
  expect(got.dtype).toBe('F32');
  expect(got.shape).toEqual([4, 6]);
  expect(got.data).toBeInstanceOf(Float32Array);
  expect(f32Bits(got.data as Float32Array)).toEqual(f32Bits(data));
});

test('BF16 write then read gives the values rounded to nearest even', () => {
  const values = probeValues();
  const file = path.join(dir, 'bf16.safetensors');
  writeSafetensors(file, { w: { dtype: 'BF16', shape: [values.length], data: values } });
  const got = readSafetensors(file).get('w')!;
  expect(got.dtype).toBe('BF16');
  expect(Array.from(got.data as Float32Array)).toEqual(Array.from(values, (v) => Math.fround(roundBf16(v))));
});

test('F16 write then read gives the values rounded to nearest even, overflow to inf', () => {
  const values = probeValues();
  const file = path.join(dir, 'f16.safetensors');
  writeSafetensors(file, { w: { dtype: 'F16', shape: [values.length], data: values } });
  const got = readSafetensors(file).get('w')!;
  expect(got.dtype).toBe('F16');
  expect(Array.from(got.data as Float32Array)).toEqual(Array.from(values, (v) => roundF16(v)));
});

test('NaN stays NaN when written as BF16 and F16', () => {
  const data = Float32Array.from([NaN, -NaN, 1]);
  const file = path.join(dir, 'nan.safetensors');
  writeSafetensors(file, {
    b: { dtype: 'BF16', shape: [3], data },
    h: { dtype: 'F16', shape: [3], data },
  });
  const got = readSafetensors(file);
  for (const name of ['b', 'h']) {
    const d = got.get(name)!.data as Float32Array;
    expect([Number.isNaN(d[0]), Number.isNaN(d[1]), d[2]]).toEqual([true, true, 1]);
  }
});

test('F16 bit patterns decode exactly (1, -2, 65504, 2^-24, largest subnormal, -0, inf, -inf, nan)', () => {
  const bits = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3555];
  const file = writeFile('f16.safetensors', assemble({ h: { dtype: 'F16', shape: [bits.length], data_offsets: [0, 2 * bits.length] } }, u16Bytes(bits)));
  const d = readSafetensors(file).get('h')!.data as Float32Array;
  expect(Array.from(d)).toEqual([1, -2, 65504, 2 ** -24, 1023 * 2 ** -24, -0, Infinity, -Infinity, NaN, 0.333251953125]);
  expect(Object.is(d[5], -0)).toBe(true);
  expect(f32Bits(d)[8]).toBe(0x7fc00000);
});

test('BF16 bit patterns decode exactly (bits << 16)', () => {
  const bits = [0x3f80, 0xc000, 0x4049, 0x7f7f, 0x0001, 0x8000, 0x7f80, 0xff80, 0x7fc1];
  const file = writeFile('bf16.safetensors', assemble({ b: { dtype: 'BF16', shape: [3, 3], data_offsets: [0, 18] } }, u16Bytes(bits)));
  const d = readSafetensors(file).get('b')!.data as Float32Array;
  expect(f32Bits(d)).toEqual(bits.map((b) => (b << 16) >>> 0));
  expect(Array.from(d).slice(0, 8)).toEqual([1, -2, 3.140625, (2 - 2 ** -7) * 2 ** 127, 2 ** -133, -0, Infinity, -Infinity]);
});

test('the writer stores F16 and BF16 as the expected little-endian bit patterns', () => {
  const data = Float32Array.from([1, -2, 65504, 2 ** -24]);
  const file = path.join(dir, 'bits.safetensors');
  writeSafetensors(file, { a: { dtype: 'F16', shape: [4], data }, b: { dtype: 'BF16', shape: [4], data } });
  const h = readSafetensorsHeader(file);
  const raw = fs.readFileSync(file);
  const at = (name: string) => {
    const [begin, end] = h.tensors.get(name)!.dataOffsets;
    const bytes = raw.subarray(h.dataStart + begin, h.dataStart + end);
    return Array.from({ length: bytes.length / 2 }, (_, i) => bytes.readUInt16LE(2 * i));
  };
  expect(at('a')).toEqual([0x3c00, 0xc000, 0x7bff, 0x0001]);
  expect(at('b')).toEqual([0x3f80, 0xc000, 0x4780, 0x3380]);
});

test('the header JSON is padded with spaces to a multiple of 8 bytes', () => {
  const file = path.join(dir, 'pad.safetensors');
  for (const name of ['a', 'ab', 'abc', 'abcd', 'abcde', 'abcdef', 'abcdefg', 'abcdefgh']) {
    writeSafetensors(file, { [name]: { dtype: 'F32', shape: [1], data: Float32Array.of(1) } });
    const raw = fs.readFileSync(file);
    const n = Number(raw.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const text = raw.subarray(8, 8 + n).toString('utf8');
    const trimmed = text.trimEnd();
    expect(text.slice(trimmed.length)).toMatch(/^ *$/);
    expect(text.length - trimmed.length).toBeLessThan(8);
    expect(Object.keys(JSON.parse(text))).toEqual([name]);
  }
});

test('tensors are written in sorted name order with increasing offsets', () => {
  const file = path.join(dir, 'sorted.safetensors');
  const t = (n: number): TensorToWrite => ({ dtype: 'F32', shape: [n], data: new Float32Array(n).fill(n) });
  writeSafetensors(file, { 'layers.9.w': t(1), 'layers.10.w': t(2), b: t(3), a: t(4) });
  const h = readSafetensorsHeader(file);
  const raw = fs.readFileSync(file);
  const keys = Object.keys(JSON.parse(raw.subarray(8, h.dataStart).toString('utf8')));
  expect(keys).toEqual(['a', 'b', 'layers.10.w', 'layers.9.w']);
  expect([...h.tensors.values()].map((e) => e.dataOffsets)).toEqual([
    [0, 16],
    [16, 28],
    [28, 36],
    [36, 40],
  ]);
  expect(Array.from(readSafetensors(file).get('layers.10.w')!.data as Float32Array)).toEqual([2, 2]);
});

test('metadata is written as "__metadata__" and read back', () => {
  const file = path.join(dir, 'meta.safetensors');
  const metadata = { format: 'pt', note: 'héllo "quoted"' };
  writeSafetensors(file, { w: { dtype: 'F32', shape: [], data: Float32Array.of(5) } }, metadata);
  const h = readSafetensorsHeader(file);
  expect(h.metadata).toEqual(metadata);
  expect([...h.tensors.keys()]).toEqual(['w']);
  const w = readSafetensors(file).get('w')!;
  expect([w.shape, Array.from(w.data as Float32Array)]).toEqual([[], [5]]);
});

// ---- files assembled by hand ----------------------------------------------------------------------

test('a hand-assembled file with F32, F64, I32, I64, U8 and metadata reads correctly', () => {
  const data = new Uint8Array(4 * 3 + 8 * 2 + 4 * 2 + 8 + 3 + 0);
  const v = new DataView(data.buffer);
  [1.5, -2.25, 3].forEach((x, i) => v.setFloat32(4 * i, x, true)); // [0, 12)
  [Math.PI, -1e300].forEach((x, i) => v.setFloat64(12 + 8 * i, x, true)); // [12, 28)
  [-7, 2147483647].forEach((x, i) => v.setInt32(28 + 4 * i, x, true)); // [28, 36)
  v.setBigInt64(36, -(2n ** 62n), true); // [36, 44)
  data.set([0, 128, 255], 44); // [44, 47)
  // JSON in an unsorted order, not padded, with an empty tensor at the end.
  const header = {
    ints: { dtype: 'I32', shape: [2], data_offsets: [28, 36] },
    floats: { dtype: 'F32', shape: [3, 1], data_offsets: [0, 12] },
    __metadata__: { format: 'pt' },
    doubles: { dtype: 'F64', shape: [1, 2], data_offsets: [12, 28] },
    empty: { dtype: 'F32', shape: [0, 4], data_offsets: [47, 47] },
    bytes: { dtype: 'U8', shape: [3], data_offsets: [44, 47] },
    big: { dtype: 'I64', shape: [], data_offsets: [36, 44] },
  };
  const file = writeFile('hand.safetensors', assemble(header, data));
  const got = readSafetensors(file);
  const plain = (t: LoadedTensor) => [t.dtype, t.shape, Array.from(t.data as ArrayLike<number | bigint>)];
  expect(plain(got.get('floats')!)).toEqual(['F32', [3, 1], [1.5, -2.25, 3]]);
  expect(plain(got.get('doubles')!)).toEqual(['F64', [1, 2], [Math.PI, -1e300]]);
  expect(plain(got.get('ints')!)).toEqual(['I32', [2], [-7, 2147483647]]);
  expect(plain(got.get('big')!)).toEqual(['I64', [], [-(2n ** 62n)]]);
  expect(plain(got.get('bytes')!)).toEqual(['U8', [3], [0, 128, 255]]);
  expect(plain(got.get('empty')!)).toEqual(['F32', [0, 4], []]);
  expect(got.get('doubles')!.data).toBeInstanceOf(Float64Array);
  expect(got.get('ints')!.data).toBeInstanceOf(Int32Array);
  expect(readSafetensorsHeader(file).metadata).toEqual({ format: 'pt' });
});

test('names: reads only the requested tensors; an absent name is an error naming it', () => {
  const file = path.join(dir, 'model.safetensors');
  const t = (x: number): TensorToWrite => ({ dtype: 'F32', shape: [1], data: Float32Array.of(x) });
  writeSafetensors(file, { a: t(1), b: t(2), c: t(3) });
  const got = readSafetensors(file, { names: ['c', 'a'] });
  expect([...got.keys()]).toEqual(['c', 'a']);
  expect(errorOf(() => readSafetensors(file, { names: ['a', 'zz'] }))).toBe(`${file}: tensor "zz" is not in the file`);
});

// ---- malformed files ------------------------------------------------------------------------------

const w32 = (shape: number[], offsets: [number, number]) => ({ dtype: 'F32', shape, data_offsets: offsets });

/** Writes `bytes` as model.safetensors and returns the header reader's error message. */
function headerError(bytes: Uint8Array): { file: string; message: string } {
  const file = writeFile('model.safetensors', bytes);
  const message = errorOf(() => readSafetensorsHeader(file));
  // The full reader refuses the same file with the same message.
  expect(errorOf(() => readSafetensors(file))).toBe(message);
  return { file, message };
}

test('a header length beyond the end of the file is an error naming the file', () => {
  const { file, message } = headerError(assemble({ a: w32([1], [0, 4]) }, new Uint8Array(4), 1000n));
  expect(message).toMatch(new RegExp(`^${escape(file)}: header length 1000 runs beyond the end of the file`));
});

test('a header length over 100 MB is an error naming the file', () => {
  const { file, message } = headerError(assemble({}, new Uint8Array(0), 2n ** 40n));
  expect(message).toBe(`${file}: header length ${2 ** 40} exceeds the limit of 100000000 bytes`);
});

test('a file shorter than the 8-byte length is an error naming the file', () => {
  const { file, message } = headerError(new Uint8Array(5));
  expect(message).toBe(`${file}: file is 5 bytes, too short for the 8-byte header length`);
});

test('a header that is not valid JSON is an error naming the file', () => {
  const { file, message } = headerError(assemble('{"a": {"dtype": "F32",'));
  expect(message).toMatch(new RegExp(`^${escape(file)}: header is not valid JSON`));
});

test('a header that is not a JSON object is an error naming the file', () => {
  const { file, message } = headerError(assemble('[1, 2]'));
  expect(message).toBe(`${file}: header is not a JSON object (it must start with "{")`);
});

test('an unknown dtype is an error naming the tensor and dtype', () => {
  const { file, message } = headerError(assemble({ 'lm_head.weight': { dtype: 'F8_E9', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)));
  expect(message).toMatch(new RegExp(`^${escape(file)}: tensor "lm_head.weight": dtype "F8_E9" is unknown`));
});

test('a negative shape dimension is an error naming the tensor and shape', () => {
  const { file, message } = headerError(assemble({ w: w32([-1, 2], [0, 8]) }, new Uint8Array(8)));
  expect(message).toBe(`${file}: tensor "w": shape [-1,2] has dimension 0 = -1, not a non-negative integer`);
});

test('a fractional shape dimension is an error naming the tensor and shape', () => {
  const { file, message } = headerError(assemble({ w: w32([2, 1.5], [0, 12]) }, new Uint8Array(12)));
  expect(message).toBe(`${file}: tensor "w": shape [2,1.5] has dimension 1 = 1.5, not a non-negative integer`);
});

test('data_offsets that do not match dtype size x numel are an error naming the tensor and both sizes', () => {
  const name = 'model.layers.0.mlp.up_proj.weight';
  const { file, message } = headerError(assemble({ [name]: w32([5, 6], [0, 100]) }, new Uint8Array(100)));
  expect(message).toBe(`${file}: tensor "${name}": data_offsets [0, 100] hold 100 bytes but F32 [5, 6] needs 120`);
});

test('malformed data_offsets (missing, negative, reversed) are errors naming the tensor and field', () => {
  const cases: [unknown, RegExp][] = [
    [{ dtype: 'F32', shape: [1] }, /tensor "w": data_offsets must be \[begin, end\].*got undefined/],
    [w32([1], [-4, 0]), /tensor "w": data_offsets must be \[begin, end\] with non-negative integers, got \[-4,0\]/],
    [w32([0], [4, 0]), /tensor "w": data_offsets \[4, 0\] end before they begin/],
  ];
  for (const [entry, want] of cases) {
    const { file, message } = headerError(assemble({ w: entry }, new Uint8Array(4)));
    expect(message.startsWith(`${file}: `)).toBe(true);
    expect(message).toMatch(want);
  }
});

test('overlapping data_offsets are an error naming both tensors', () => {
  const { file, message } = headerError(assemble({ a: w32([2], [0, 8]), b: w32([2], [4, 12]) }, new Uint8Array(12)));
  expect(message).toBe(`${file}: tensor "b": data_offsets [4, 12] overlap tensor "a", which ends at 8`);
});

test('a gap between tensors is an error naming the tensor after it', () => {
  const { file, message } = headerError(assemble({ a: w32([2], [0, 8]), b: w32([2], [12, 20]) }, new Uint8Array(20)));
  expect(message).toBe(`${file}: tensor "b": data_offsets [12, 20] leave a gap of 4 bytes after tensor "a", which ends at 8`);
});

test('a gap at the start of the data section is an error naming the tensor', () => {
  const { file, message } = headerError(assemble({ a: w32([2], [4, 12]) }, new Uint8Array(12)));
  expect(message).toBe(`${file}: tensor "a": data_offsets [4, 12] leave a gap of 4 bytes after the start of the data section`);
});

test('bytes after the last tensor are an error naming the file', () => {
  const { file, message } = headerError(assemble({ a: w32([2], [0, 8]) }, new Uint8Array(10)));
  expect(message).toBe(`${file}: 2 bytes at the end of the data section belong to no tensor (the tensors end at 8 of 10)`);
});

test('a non-string "__metadata__" value is an error naming the entry', () => {
  const { file, message } = headerError(assemble({ __metadata__: { format: 1 } }));
  expect(message).toBe(`${file}: "__metadata__" entry "format" must be a string, got 1`);
});

test('a truncated file (data shorter than the header says) is an error naming the file and tensor', () => {
  const file = path.join(dir, 'model.safetensors');
  writeSafetensors(file, {
    a: { dtype: 'F32', shape: [4], data: new Float32Array(4) },
    b: { dtype: 'F32', shape: [8], data: new Float32Array(8) },
  });
  fs.truncateSync(file, fs.statSync(file).size - 5);
  const message = errorOf(() => readSafetensors(file));
  expect(message).toMatch(new RegExp(`^${escape(file)}: truncated: the header's tensors need 48 data bytes \\(tensor "b" ends at 48\\) but the file holds only 43$`));
  expect(errorOf(() => readSafetensorsHeader(file))).toBe(message);
});

test('a missing file is an error naming the path', () => {
  const file = path.join(dir, 'nope.safetensors');
  expect(errorOf(() => readSafetensors(file))).toContain(file);
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---- atomic writes --------------------------------------------------------------------------------

// The temporary files of src/util/atomicWrite.ts: .<name>.<pid>.<random>.tmp beside the target.
const tmpFiles = (d: string) => fs.readdirSync(d).filter((f) => f.endsWith('.tmp'));

/** A tensor whose data getter calls `during` once the write has started (a temp file exists in `d`). */
function failingTensor(d: string, during: () => void): { tensor: TensorToWrite; sawTemp: () => boolean } {
  const data = new Float32Array(16).fill(1);
  let saw = false;
  const tensor = {
    dtype: 'F32' as const,
    shape: [16],
    get data() {
      if (fs.existsSync(d) && tmpFiles(d).length > 0) {
        saw = true;
        during();
      }
      return data;
    },
  };
  return { tensor, sawTemp: () => saw };
}

test('a write that fails mid-way leaves no file at the target and no temp file', () => {
  const file = path.join(dir, 'model.safetensors');
  const { tensor, sawTemp } = failingTensor(dir, () => {
    throw new Error('device lost mid-write');
  });
  const good: TensorToWrite = { dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) };
  expect(errorOf(() => writeSafetensors(file, { a: good, b: tensor }))).toBe('device lost mid-write');
  expect(sawTemp()).toBe(true);
  expect(fs.existsSync(file)).toBe(false);
  expect(tmpFiles(dir)).toEqual([]);
});

test('a write that fails mid-way leaves an existing target file unchanged', () => {
  const file = path.join(dir, 'model.safetensors');
  writeSafetensors(file, { old: { dtype: 'F32', shape: [1], data: Float32Array.of(42) } });
  const before = fs.readFileSync(file);
  const { tensor } = failingTensor(dir, () => {
    throw new Error('disk full');
  });
  expect(errorOf(() => writeSafetensors(file, { b: tensor }))).toBe('disk full');
  expect(fs.readFileSync(file).equals(before)).toBe(true);
  expect(tmpFiles(dir)).toEqual([]);
});

test('a write whose directory disappears mid-way fails and leaves nothing at the target', () => {
  const sub = path.join(dir, 'out');
  fs.mkdirSync(sub);
  const file = path.join(sub, 'model.safetensors');
  const { tensor, sawTemp } = failingTensor(sub, () => fs.rmSync(sub, { recursive: true, force: true }));
  expect(errorOf(() => writeSafetensors(file, { w: tensor }))).toMatch(/ENOENT/);
  expect(sawTemp()).toBe(true);
  expect(fs.existsSync(file)).toBe(false);
  expect(fs.readdirSync(dir)).toEqual([]);
});

test('invalid tensors are refused before anything is written, naming the tensor and field', () => {
  const file = path.join(dir, 'model.safetensors');
  const cases: [TensorToWrite, string][] = [
    [{ dtype: 'F32', shape: [2, 3], data: new Float32Array(5) }, 'data holds 5 values but shape [2, 3] needs 6'],
    [{ dtype: 'F64' as 'F32', shape: [1], data: new Float32Array(1) }, 'dtype "F64" cannot be written (expected F32, BF16 or F16)'],
    [{ dtype: 'F32', shape: [-1], data: new Float32Array(1) }, 'shape [-1] must be an array of non-negative integers'],
    [{ dtype: 'F32', shape: [2], data: [1, 2] as unknown as Float32Array }, 'data must be a Float32Array'],
  ];
  for (const [t, want] of cases) {
    expect(errorOf(() => writeSafetensors(file, { 'x.weight': t }))).toBe(`${file}: tensor "x.weight": ${want}`);
    expect(fs.readdirSync(dir)).toEqual([]);
  }
});

// ---- sharded folders ------------------------------------------------------------------------------

function shardTensors(): Map<string, TensorToWrite> {
  const next = rng(3);
  const m = new Map<string, TensorToWrite>();
  const sizes: [string, 'F32' | 'BF16' | 'F16', number[]][] = [
    ['model.embed_tokens.weight', 'BF16', [10, 4]], // 80 bytes
    ['model.layers.0.self_attn.q_proj.weight', 'F32', [4, 4]], // 64
    ['model.layers.0.mlp.up_proj.weight', 'F16', [8, 4]], // 64
    ['model.layers.1.self_attn.q_proj.weight', 'F32', [4, 4]], // 64
    ['model.norm.weight', 'F32', [4]], // 16
    ['lm_head.weight', 'F32', [10, 8]], // 320: larger than a shard
  ];
  for (const [name, dtype, shape] of sizes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from(normals(next, n, 1));
    // Keep the values exactly representable so that the read-back is exact for every dtype.
    m.set(name, { dtype, shape, data: dtype === 'F32' ? data : Float32Array.from(data, (v) => Math.round(v * 64) / 64) });
  }
  return m;
}

test('a sharded write makes several shards and an index that read back every tensor', () => {
  const tensors = shardTensors();
  const out = path.join(dir, 'model');
  const names = writeShardedSafetensors(out, tensors, { maxShardBytes: 150 });
  expect(names.length).toBeGreaterThan(2);
  names.forEach((n, i) => expect(n).toBe(`model-${String(i + 1).padStart(5, '0')}-of-${String(names.length).padStart(5, '0')}.safetensors`));
  expect(fs.readdirSync(out).sort()).toEqual([...names, 'model.safetensors.index.json'].sort());

  const map = readSafetensorsIndex(out);
  expect([...map.keys()].sort()).toEqual([...tensors.keys()].sort());
  for (const file of new Set(map.values())) {
    const h = readSafetensorsHeader(file);
    // A shard holds at most maxShardBytes unless it is one tensor larger than that.
    if (h.tensors.size > 1) expect(h.dataBytes).toBeLessThanOrEqual(150);
    for (const name of h.tensors.keys()) expect(map.get(name)).toBe(file);
  }
  const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
  expect(index.metadata.total_size).toBe(80 + 64 * 3 + 16 + 320);

  const got = readShardedSafetensors(out);
  for (const [name, t] of tensors) {
    const g = got.get(name)!;
    expect([name, g.dtype, g.shape]).toEqual([name, t.dtype, t.shape]);
    expect(f32Bits(g.data as Float32Array)).toEqual(f32Bits(t.data));
  }
});

test('an index naming a missing shard is an error naming the tensor and file', () => {
  const out = path.join(dir, 'model');
  const names = writeShardedSafetensors(out, shardTensors(), { maxShardBytes: 150 });
  fs.rmSync(path.join(out, names[1]));
  const message = errorOf(() => readSafetensorsIndex(out));
  expect(message).toMatch(
    new RegExp(`^${escape(path.join(out, 'model.safetensors.index.json'))}: weight_map\\["[^"]+"\\]: shard file "${escape(names[1])}" does not exist`),
  );
});

test('an index without weight_map, or a missing index, is an error naming the index file', () => {
  const index = path.join(dir, 'model.safetensors.index.json');
  expect(errorOf(() => readSafetensorsIndex(dir))).toMatch(new RegExp(`^${escape(index)}: cannot read the index`));
  fs.writeFileSync(index, JSON.stringify({ metadata: {} }));
  expect(errorOf(() => readSafetensorsIndex(dir))).toBe(`${index}: "weight_map" must be an object of tensor name -> file name`);
  fs.writeFileSync(index, JSON.stringify({ weight_map: { w: '../elsewhere.safetensors' } }));
  expect(errorOf(() => readSafetensorsIndex(dir))).toBe(`${index}: weight_map["w"]: "../elsewhere.safetensors" is not a file name in the folder`);
});

test('a tensor too large to hold in memory is named by file and tensor, with its size (a sparse file, nothing read)', () => {
  const file = path.join(dir, 'huge.safetensors');
  const n = 2 ** 31 + 8; // bf16: 2^32 + 16 bytes, past what one Buffer may hold
  const header = Buffer.from(JSON.stringify({ w: { dtype: 'BF16', shape: [n], data_offsets: [0, 2 * n] } }));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  fs.writeFileSync(file, Buffer.concat([prefix, header]));
  fs.truncateSync(file, 8 + header.length + 2 * n); // sparse: no data is written or read
  expect(errorOf(() => readSafetensors(file))).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: tensor "w" BF16\\[${n}\\] \\(${2 * n} bytes\\) cannot be held in memory here: `));
});

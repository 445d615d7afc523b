// The Hugging Face safetensors format, read and written by hand:
//
//   [8 bytes: header length N, little-endian u64]
//   [N bytes: UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {k: v}}]
//   [data: the tensors' bytes, little-endian, row-major; offsets are relative to the data start]
//
// The reader validates the header the way the reference implementation does (known dtype,
// non-negative integer shape, offsets that match dtype size x numel, entries that tile the data
// section with no overlap and no gap) and every error names the file and, where there is one, the
// tensor and the field. F16 and BF16 decode exactly to Float32Array; the writer rounds f32 to
// BF16 / F16 to nearest even, pads the header with spaces to a multiple of 8 bytes, writes tensors
// in sorted name order and replaces the target atomically (temp file, then rename).
import { writeAtomically } from '../util/atomicWrite';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

if (os.endianness() !== 'LE') throw new Error('osp safetensors: only little-endian hosts are supported');

/** The dtypes this reader understands, with their sizes in bytes. */
export const SAFETENSORS_DTYPE_SIZES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
} as const;

export type SafetensorsDType = keyof typeof SAFETENSORS_DTYPE_SIZES;
/** The dtypes the writer produces (from Float32Array data). */
export type WritableDType = 'F32' | 'BF16' | 'F16';

/** The most bytes one read or write call moves. */
const CHUNK = 1 << 30;
/** The largest header accepted (as in the reference implementation). */
export const MAX_HEADER_BYTES = 100_000_000;
export const INDEX_FILE = 'model.safetensors.index.json';

export interface SafetensorsEntry {
  dtype: SafetensorsDType;
  shape: number[];
  /** [begin, end) in bytes, relative to the start of the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** The header length N (the JSON's byte length, padding included). */
  headerBytes: number;
  /** Where the data section starts in the file: 8 + N. */
  dataStart: number;
  /** The data section's length in bytes. */
  dataBytes: number;
  /** The "__metadata__" entry ({} when absent). */
  metadata: Record<string, string>;
  /** The tensors, in the order the JSON lists them. */
  tensors: Map<string, SafetensorsEntry>;
}

export type SafetensorsData = Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array;

export interface LoadedTensor {
  /** The dtype stored in the file (F16 / BF16 data come back as Float32Array). */
  dtype: SafetensorsDType;
  shape: number[];
  data: SafetensorsData;
}

export interface TensorToWrite {
  dtype: WritableDType;
  shape: number[];
  data: Float32Array;
}

export type TensorsToWrite = Map<string, TensorToWrite> | Record<string, TensorToWrite>;

const isDType = (d: unknown): d is SafetensorsDType =>
  typeof d === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_SIZES, d);

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const fmtShape = (shape: number[]) => `[${shape.join(', ')}]`;

function fail(file: string, message: string): never {
  throw new Error(`${file}: ${message}`);
}

// ---- header ---------------------------------------------------------------------------------------

/** Reads `length` bytes at `position`; fails (naming the file and `what`) on a short read. */
function readExactly(fd: number, file: string, length: number, position: number, what: string): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, out, done, Math.min(length - done, CHUNK), position + done);
    if (n === 0) fail(file, `truncated: ${what} needs ${length} bytes at offset ${position} but the file ends after ${position + done}`);
    done += n;
  }
  return out;
}

function readHeaderFd(fd: number, file: string): SafetensorsHeader {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 8) fail(file, `file is ${fileSize} bytes, too short for the 8-byte header length`);
  const lenBytes = readExactly(fd, file, 8, 0, 'the header length');
  const n = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(file, `header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  const headerBytes = Number(n);
  if (headerBytes > fileSize - 8) {
    fail(file, `header length ${headerBytes} runs beyond the end of the file (${fileSize - 8} bytes after the length)`);
  }
  const raw = readExactly(fd, file, headerBytes, 8, 'the header');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    fail(file, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail(file, 'header is not a JSON object (it must start with "{")');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(file, `header is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(json)) fail(file, 'header is not a JSON object');
  const dataStart = 8 + headerBytes;
  const dataBytes = fileSize - dataStart;
  return { headerBytes, dataStart, dataBytes, ...validateEntries(json, file, dataBytes) };
}

function validateEntries(
  json: Record<string, unknown>,
  file: string,
  dataBytes: number,
): { metadata: Record<string, string>; tensors: Map<string, SafetensorsEntry> } {
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsEntry>();
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isPlainObject(value)) fail(file, '"__metadata__" must be an object of strings');
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') fail(file, `"__metadata__" entry "${k}" must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `tensor "${name}"`;
    if (!isPlainObject(value)) fail(file, `${where}: entry must be an object with dtype, shape and data_offsets`);
    const { dtype, shape, data_offsets: offsets } = value;
    if (dtype === undefined) fail(file, `${where}: dtype is missing`);
    if (!isDType(dtype)) {
      fail(file, `${where}: dtype ${JSON.stringify(dtype)} is unknown (expected one of ${Object.keys(SAFETENSORS_DTYPE_SIZES).join(', ')})`);
    }
    if (!Array.isArray(shape)) fail(file, `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    shape.forEach((d, i) => {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        fail(file, `${where}: shape ${JSON.stringify(shape)} has dimension ${i} = ${JSON.stringify(d)}, not a non-negative integer`);
      }
    });
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)
    ) {
      fail(file, `${where}: data_offsets must be [begin, end] with non-negative integers, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(file, `${where}: data_offsets [${begin}, ${end}] end before they begin`);
    const dims = shape as number[];
    const need = dims.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_SIZES[dtype];
    if (!Number.isSafeInteger(need)) fail(file, `${where}: shape ${fmtShape(dims)} is too large`);
    if (end - begin !== need) {
      fail(file, `${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ${fmtShape(dims)} needs ${need}`);
    }
    tensors.set(name, { dtype, shape: dims.slice(), dataOffsets: [begin, end] });
  }

  // The entries must tile [0, dataBytes) exactly: sorted by offset, each begins where the last ended.
  const sorted = [...tensors].sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let pos = 0;
  let prev: string | undefined;
  for (const [name, { dataOffsets }] of sorted) {
    const [begin, end] = dataOffsets;
    if (begin < pos) {
      fail(file, `tensor "${name}": data_offsets [${begin}, ${end}] overlap tensor "${prev}", which ends at ${pos}`);
    }
    if (begin > pos) {
      fail(
        file,
        `tensor "${name}": data_offsets [${begin}, ${end}] leave a gap of ${begin - pos} bytes after ` +
          (prev === undefined ? 'the start of the data section' : `tensor "${prev}", which ends at ${pos}`),
      );
    }
    pos = end;
    prev = name;
  }
  if (pos > dataBytes) {
    fail(file, `truncated: the header's tensors need ${pos} data bytes (tensor "${prev}" ends at ${pos}) but the file holds only ${dataBytes}`);
  }
  if (pos < dataBytes) {
    fail(file, `${dataBytes - pos} bytes at the end of the data section belong to no tensor (the tensors end at ${pos} of ${dataBytes})`);
  }
  return { metadata, tensors };
}

function withFd<T>(file: string, fn: (fd: number) => T): T {
  const fd = fs.openSync(file, 'r');
  try {
    return fn(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Parses and validates the header of a .safetensors file, reading only its first 8 + N bytes. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  return withFd(file, (fd) => readHeaderFd(fd, file));
}

// ---- dtype conversions ----------------------------------------------------------------------------

let halfTable: Uint32Array | undefined;

/** The f32 bit pattern of every f16 bit pattern (exact; NaN payloads kept). */
function f16Table(): Uint32Array {
  if (halfTable) return halfTable;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) {
      t[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf / nan
    } else if (exp !== 0) {
      t[h] = (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
    } else if (mant === 0) {
      t[h] = sign >>> 0; // +-0
    } else {
      // Subnormal: mant * 2^-24; normalise so the leading 1 is implicit.
      let e = -14;
      let m = mant;
      while ((m & 0x400) === 0) {
        m <<= 1;
        e--;
      }
      t[h] = (sign | ((e + 127) << 23) | ((m & 0x3ff) << 13)) >>> 0;
    }
  }
  halfTable = t;
  return t;
}

/** Decodes IEEE half-precision bit patterns to float32, exactly. */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const t = f16Table();
  const out = new Float32Array(bits.length);
  const o = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) o[i] = t[bits[i]];
  return out;
}

/** Decodes bfloat16 bit patterns to float32, exactly (bits << 16). */
export function bf16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const o = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) o[i] = bits[i] << 16;
  return out;
}

/** f32 bit pattern -> bf16 bit pattern, rounding to nearest even; NaN stays a (quiet) NaN. */
function f32BitsToBf16(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f32 bit pattern -> f16 bit pattern, rounding to nearest even (overflow gives inf). */
function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: rounds to zero
    mant |= 0x800000;
    const shift = 14 - e; // 14..24
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) !== 0)) h++; // may carry into the smallest normal
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // may carry up to inf
  return sign | h;
}

/** Rounds float32 values to bfloat16 bit patterns (nearest even). */
export function f32ToBf16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32BitsToBf16(bits[i]);
  return out;
}

/** Rounds float32 values to IEEE half bit patterns (nearest even). */
export function f32ToF16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32BitsToF16(bits[i]);
  return out;
}

function decode(dtype: SafetensorsDType, bytes: Uint8Array): SafetensorsData {
  // `bytes` is a fresh, 0-offset buffer, so every typed view over it is aligned.
  const b = bytes.buffer;
  const n = bytes.byteLength / SAFETENSORS_DTYPE_SIZES[dtype];
  switch (dtype) {
    case 'F32':
      return new Float32Array(b, 0, n);
    case 'F64':
      return new Float64Array(b, 0, n);
    case 'F16':
      return f16ToF32(new Uint16Array(b, 0, n));
    case 'BF16':
      return bf16ToF32(new Uint16Array(b, 0, n));
    case 'I64':
      return new BigInt64Array(b, 0, n);
    case 'I32':
      return new Int32Array(b, 0, n);
    case 'I16':
      return new Int16Array(b, 0, n);
    case 'I8':
      return new Int8Array(b, 0, n);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(b, 0, n);
  }
}

// ---- reading --------------------------------------------------------------------------------------

export interface ReadOptions {
  /** Read only these tensors (each must be in the file). Default: all. */
  names?: string[];
}

/**
 * Reads a .safetensors file: F32 / F64 / integer tensors come back as copies in their own typed
 * arrays, F16 and BF16 as exact Float32Array conversions.
 */
export function readSafetensors(file: string, opts: ReadOptions = {}): Map<string, LoadedTensor> {
  return withFd(file, (fd) => {
    const header = readHeaderFd(fd, file);
    const names = opts.names ?? [...header.tensors.keys()];
    const out = new Map<string, LoadedTensor>();
    for (const name of names) {
      const entry = header.tensors.get(name);
      if (!entry) fail(file, `tensor "${name}" is not in the file`);
      const [begin, end] = entry.dataOffsets;
      try {
        const bytes = readExactly(fd, file, end - begin, header.dataStart + begin, `tensor "${name}"`);
        out.set(name, { dtype: entry.dtype, shape: entry.shape.slice(), data: decode(entry.dtype, bytes) });
      } catch (e) {
        // An allocation the engine refuses ("Invalid typed array length", "Array buffer allocation
        // failed") is named by file and tensor, with its size.
        if (e instanceof RangeError) fail(file, `tensor "${name}" ${entry.dtype}${fmtShape(entry.shape)} (${end - begin} bytes) cannot be held in memory here: ${e.message}`);
        throw e;
      }
    }
    return out;
  });
}

// ---- writing --------------------------------------------------------------------------------------

const WRITABLE: readonly WritableDType[] = ['F32', 'BF16', 'F16'];

function entriesOf(tensors: TensorsToWrite): [string, TensorToWrite][] {
  const list = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  return list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function checkTensor(file: string, name: string, t: TensorToWrite): number {
  const where = `tensor "${name}"`;
  if (name === '__metadata__' || name.length === 0) fail(file, `${where}: reserved or empty tensor name`);
  if (!isPlainObject(t)) fail(file, `${where}: must be {dtype, shape, data}`);
  if (!WRITABLE.includes(t.dtype)) fail(file, `${where}: dtype ${JSON.stringify(t.dtype)} cannot be written (expected F32, BF16 or F16)`);
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(file, `${where}: shape ${JSON.stringify(t.shape)} must be an array of non-negative integers`);
  }
  if (!(t.data instanceof Float32Array)) fail(file, `${where}: data must be a Float32Array`);
  const numel = t.shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== numel) fail(file, `${where}: data holds ${t.data.length} values but shape ${fmtShape(t.shape)} needs ${numel}`);
  return numel * SAFETENSORS_DTYPE_SIZES[t.dtype];
}

/** The bytes of one tensor as stored. */
function encode(t: TensorToWrite): Uint8Array {
  const d = t.data;
  const v = t.dtype === 'F32' ? d : t.dtype === 'BF16' ? f32ToBf16(d) : f32ToF16(d);
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** The header bytes (length prefix included), JSON padded with spaces to a multiple of 8. */
function buildHeader(entries: [string, TensorToWrite][], sizes: number[], metadata?: Record<string, string>): Uint8Array {
  const json: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) json.__metadata__ = metadata;
  let offset = 0;
  entries.forEach(([name, t], i) => {
    json[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + sizes[i]] };
    offset += sizes[i];
  });
  const body = Buffer.from(JSON.stringify(json), 'utf8');
  const padded = Math.ceil(body.length / 8) * 8;
  const out = new Uint8Array(8 + padded);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(body, 8);
  out.fill(0x20, 8 + body.length);
  return out;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) done += fs.writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, CHUNK));
}

/**
 * Writes tensors (Float32Array data, stored as F32, BF16 or F16 rounded to nearest even) to a
 * .safetensors file, in sorted name order, atomically. Arguments are validated before anything is
 * written.
 */
export function writeSafetensors(file: string, tensors: TensorsToWrite, metadata?: Record<string, string>): void {
  const name = file;
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) fail(name, 'metadata must be an object of strings');
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') fail(name, `metadata entry "${k}" must be a string, got ${JSON.stringify(v)}`);
    }
  }
  const entries = entriesOf(tensors);
  const sizes = entries.map(([n, t]) => checkTensor(name, n, t));
  const header = buildHeader(entries, sizes, metadata);
  writeAtomically(file, (fd) => {
    writeAll(fd, header);
    for (const [, t] of entries) writeAll(fd, encode(t));
  });
}

// ---- sharded folders ------------------------------------------------------------------------------

export interface SafetensorsIndex {
  metadata: Record<string, unknown>;
  /** Tensor name -> shard file name (relative to the folder). */
  weightMap: Map<string, string>;
}

/**
 * Reads and validates `dir/model.safetensors.index.json`; returns the map from tensor name to the
 * shard's path (dir joined with the file name). Every named shard must exist in `dir`.
 */
export function readSafetensorsIndex(dir: string): Map<string, string> {
  const idx = readIndexFile(dir);
  return new Map([...idx.weightMap].map(([t, f]) => [t, path.join(dir, f)]));
}

/** The index file as parsed (file names relative to `dir`). */
export function readIndexFile(dir: string): SafetensorsIndex {
  const file = path.join(dir, INDEX_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    fail(file, `cannot read the index: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(file, `index is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(json)) fail(file, 'index is not a JSON object');
  const metadata = json.metadata ?? {};
  if (!isPlainObject(metadata)) fail(file, '"metadata" must be an object');
  if (!isPlainObject(json.weight_map)) fail(file, '"weight_map" must be an object of tensor name -> file name');
  const weightMap = new Map<string, string>();
  const checked = new Set<string>();
  for (const [tensor, shard] of Object.entries(json.weight_map)) {
    if (typeof shard !== 'string' || shard.length === 0 || shard !== path.basename(shard) || shard === '..' || shard === '.') {
      fail(file, `weight_map["${tensor}"]: ${JSON.stringify(shard)} is not a file name in the folder`);
    }
    if (!checked.has(shard)) {
      if (!fs.statSync(path.join(dir, shard), { throwIfNoEntry: false })?.isFile()) {
        fail(file, `weight_map["${tensor}"]: shard file "${shard}" does not exist in ${dir}`);
      }
      checked.add(shard);
    }
    weightMap.set(tensor, shard);
  }
  return { metadata, weightMap };
}

/**
 * Reads every tensor of a sharded folder (or only `names`) through its index; each tensor must be
 * in the shard the index names.
 */
export function readShardedSafetensors(dir: string, opts: ReadOptions = {}): Map<string, LoadedTensor> {
  const map = readSafetensorsIndex(dir);
  const names = opts.names ?? [...map.keys()];
  const byFile = new Map<string, string[]>();
  for (const n of names) {
    const f = map.get(n);
    if (f === undefined) fail(path.join(dir, INDEX_FILE), `tensor "${n}" is not in weight_map`);
    byFile.set(f, [...(byFile.get(f) ?? []), n]);
  }
  const out = new Map<string, LoadedTensor>();
  for (const [f, ns] of byFile) for (const [n, t] of readSafetensors(f, { names: ns })) out.set(n, t);
  return new Map(names.map((n) => [n, out.get(n)!]));
}

export interface ShardOptions {
  /** Start a new shard when adding a tensor would pass this many data bytes (a larger tensor gets its own shard). */
  maxShardBytes: number;
  /** Each shard's "__metadata__" (default {format: "pt"}, as transformers writes). */
  metadata?: Record<string, string>;
}

/** The shard file name: model-00001-of-00003.safetensors. */
export const shardFileName = (i: number, n: number) =>
  `model-${String(i).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;

/**
 * Writes tensors to `dir` as model-0000i-of-0000N.safetensors shards (sorted names, packed in order
 * up to maxShardBytes of data each) plus model.safetensors.index.json; every file is written
 * atomically and the index last. Returns the shard file names.
 */
export function writeShardedSafetensors(dir: string, tensors: TensorsToWrite, opts: ShardOptions): string[] {
  const indexFile = path.join(dir, INDEX_FILE);
  if (!Number.isSafeInteger(opts?.maxShardBytes) || opts.maxShardBytes <= 0) {
    fail(indexFile, `maxShardBytes must be a positive integer, got ${String(opts?.maxShardBytes)}`);
  }
  const entries = entriesOf(tensors);
  const sizes = entries.map(([n, t]) => checkTensor(indexFile, n, t));
  const shards: [string, TensorToWrite][][] = [];
  let current: [string, TensorToWrite][] = [];
  let bytes = 0;
  entries.forEach((e, i) => {
    if (current.length > 0 && bytes + sizes[i] > opts.maxShardBytes) {
      shards.push(current);
      current = [];
      bytes = 0;
    }
    current.push(e);
    bytes += sizes[i];
  });
  if (current.length > 0 || shards.length === 0) shards.push(current);
  fs.mkdirSync(dir, { recursive: true });
  const names = shards.map((_, i) => shardFileName(i + 1, shards.length));
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    writeSafetensors(path.join(dir, names[i]), new Map(shard), opts.metadata ?? { format: 'pt' });
    for (const [n] of shard) weightMap[n] = names[i];
  });
  const totalSize = sizes.reduce((a, b) => a + b, 0);
  const index = JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n';
  writeAtomically(indexFile, (fd) => writeAll(fd, Buffer.from(index, 'utf8')));
  return names;
}

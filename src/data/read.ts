// Reading record files: JSON Lines (.jsonl, .json) and Parquet (.parquet), checked per kind.
//
// A malformed record (bad JSON, a value that is not an object, a schema failure) is reported as
//   "<file>:<line>: field '<field>': <reason>"          (JSON Lines: 1-based line number)
//   "<file>: row <i> (0-based): field '<field>': <reason>"  (Parquet; JSON arrays: "item <i> (0-based)")
// The default throws an Error with that message; with `skipBad: true` the record is skipped and
// counted, and the first MAX_PROBLEMS messages are returned. Blank lines are not records. A `.json`
// file whose first non-blank character is '[' is read as one JSON array of records; any other
// `.json` file is read as JSON Lines.
import * as fs from 'fs';
import * as path from 'path';
import { KIND_FIELDS, RECORD_KINDS, normalizeRecord, type RecordKind, type RecordOf, type RecordProblem } from './formats';
import { parquetRows } from './parquet';

export interface ReadOptions {
  /** Skip malformed records (counted in `skipped`) instead of throwing on the first one. */
  skipBad?: boolean;
  /** Stop after this many good records (a non-negative integer; default all). */
  limit?: number;
}

export interface ReadResult<R> {
  records: R[];
  /** Where each record came from: "<file>:<line>" (JSON Lines) or "<file>: row <i> (0-based)". */
  where: string[];
  /** Malformed records skipped (always 0 without skipBad: the first one throws). */
  skipped: number;
  /** The messages of the first MAX_PROBLEMS skipped records. */
  problems: string[];
}

/** How many skipped-record messages a ReadResult keeps. */
export const MAX_PROBLEMS = 10;

type FileFormat = 'jsonl' | 'json' | 'parquet';

/** The file format from the extension (case-insensitive); throws on any other extension. */
export function fileFormat(file: string): FileFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.jsonl') return 'jsonl';
  if (ext === '.json') return 'json';
  if (ext === '.parquet') return 'parquet';
  throw new Error(`${file}: unknown file extension '${ext || '(none)'}'; expected .jsonl or .json (JSON Lines) or .parquet`);
}

function describe(problem: RecordProblem): string {
  return problem.field === '' ? problem.message : `field '${problem.field}': ${problem.message}`;
}

interface Raw {
  where: string;
  value?: unknown;
  /** Set when the raw text could not be parsed (bad JSON). */
  error?: string;
}

/** The byte offset of the first invalid UTF-8 sequence in `bytes`, or -1 when it is all valid. */
function invalidUtf8At(bytes: Uint8Array): number {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return -1;
  } catch {
    // Bisect for the first bad byte (rare: only on the error path).
    let lo = 0;
    let hi = bytes.length;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid));
        lo = mid;
      } catch {
        hi = mid;
      }
    }
    return lo;
  }
}

/**
 * JSON Lines, split on '\n' bytes and decoded strictly: a line that is not valid UTF-8 is a
 * malformed record naming file:line and the byte, never silently replaced with U+FFFD.
 */
async function* jsonLines(file: string): AsyncGenerator<Raw> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let n = 0;
  const record = (bytes: Buffer): Raw | null => {
    n++;
    let line = bytes;
    if (line.length > 0 && line[line.length - 1] === 13) line = line.subarray(0, line.length - 1); // CRLF
    if (n === 1 && line[0] === 0xef && line[1] === 0xbb && line[2] === 0xbf) line = line.subarray(3); // BOM
    const where = `${file}:${n}`;
    let text: string;
    try {
      text = decoder.decode(line);
    } catch {
      return { where, error: `invalid UTF-8 at byte ${invalidUtf8At(line)} of the line; expected UTF-8 text` };
    }
    if (text.trim() === '') return null;
    try {
      return { where, value: JSON.parse(text) };
    } catch (e) {
      return { where, error: `invalid JSON: ${(e as Error).message}` };
    }
  };
  // Pieces of a line that spans chunks are joined once, when its newline arrives (no quadratic copying).
  let pending: Buffer[] = [];
  for await (const chunk of fs.createReadStream(file)) {
    const buf = chunk as Buffer;
    let start = 0;
    for (let i = buf.indexOf(10, start); i !== -1; i = buf.indexOf(10, start)) {
      const piece = buf.subarray(start, i);
      const r = record(pending.length ? Buffer.concat([...pending, piece]) : piece);
      pending = [];
      start = i + 1;
      if (r) yield r;
    }
    if (start < buf.length) pending.push(buf.subarray(start));
  }
  if (pending.length > 0) {
    const r = record(Buffer.concat(pending));
    if (r) yield r;
  }
}

async function* jsonFile(file: string): AsyncGenerator<Raw> {
  const handle = await fs.promises.open(file, 'r');
  let head: string;
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(4096), 0, 4096, 0);
    head = buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
  if (!head.replace(/^\uFEFF/, '').trimStart().startsWith('[')) {
    yield* jsonLines(file);
    return;
  }
  const bytes = await fs.promises.readFile(file);
  const bad = invalidUtf8At(bytes);
  if (bad >= 0) throw new Error(`${file}: invalid UTF-8 at byte ${bad}; expected UTF-8 text`);
  const body = bytes.toString('utf8').replace(/^\uFEFF/, '');
  let items: unknown;
  try {
    items = JSON.parse(body);
  } catch (e) {
    throw new Error(`${file}: invalid JSON array: ${(e as Error).message}`);
  }
  const list = items as unknown[];
  for (let i = 0; i < list.length; i++) yield { where: `${file}: item ${i} (0-based)`, value: list[i] };
}

async function* parquetFile(file: string, kind: RecordKind): AsyncGenerator<Raw> {
  for await (const { row, value } of parquetRows(file, KIND_FIELDS[kind])) yield { where: `${file}: row ${row} (0-based)`, value };
}

/**
 * Reads and checks the records of a file: prompts -> {prompt}; pairs, hh, tldr -> {prompt, chosen,
 * rejected, strength?}; sft -> {prompt, response} (see formats.ts for each kind's rules).
 */
export async function readRecords<K extends RecordKind>(file: string, kind: K, opts: ReadOptions = {}): Promise<ReadResult<RecordOf[K]>> {
  if (!RECORD_KINDS.includes(kind)) throw new RangeError(`readRecords: kind '${String(kind)}' is not known; expected one of ${RECORD_KINDS.join(', ')}`);
  const limit = opts.limit ?? Infinity;
  if (limit !== Infinity && !(Number.isInteger(limit) && limit >= 0)) throw new RangeError(`readRecords: limit must be a non-negative integer, got ${limit}`);
  const format = fileFormat(file);
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${file}: no such file`);
    throw new Error(`${file}: cannot read: ${(e as Error).message}`);
  }
  if (!stat.isFile()) throw new Error(`${file}: is not a regular file`);

  const result: ReadResult<RecordOf[K]> = { records: [], where: [], skipped: 0, problems: [] };
  if (limit === 0) return result;
  const source = format === 'parquet' ? parquetFile(file, kind) : format === 'json' ? jsonFile(file) : jsonLines(file);
  for await (const raw of source) {
    let message: string | undefined;
    if (raw.error !== undefined) {
      message = `${raw.where}: ${raw.error}`;
    } else {
      const r = normalizeRecord(kind, raw.value);
      if (r.ok) {
        result.records.push(r.record);
        result.where.push(raw.where);
        if (result.records.length >= limit) break;
        continue;
      }
      message = `${raw.where}: ${describe(r.problem)}`;
    }
    if (!opts.skipBad) throw new Error(`${message} (${kind} record; skip malformed records with skipBad: true, on the command line --skip-bad)`);
    result.skipped++;
    if (result.problems.length < MAX_PROBLEMS) result.problems.push(message);
  }
  return result;
}

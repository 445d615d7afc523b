// Writing JSON Lines: whole files atomically (writeJsonl), and logs line by line (JsonlAppender).
import * as fs from 'fs';
import * as path from 'path';

/** One record as a JSON line (with its '\n'); throws a TypeError naming the record if it has no JSON form. */
function jsonLine(record: unknown, index: number, where: string): string {
  let s: string | undefined;
  try {
    s = JSON.stringify(record);
  } catch (e) {
    throw new TypeError(`${where}: record ${index} cannot be written as JSON: ${(e as Error).message}`);
  }
  if (s === undefined) throw new TypeError(`${where}: record ${index} cannot be written as JSON (it is ${typeof record})`);
  return s + '\n';
}

/**
 * Writes records as JSON Lines, atomically: to a temporary file beside `file`, flushed to disk, then
 * renamed over `file`. On any error (a record with no JSON form, a write failure) the temporary file
 * is removed and `file` is left as it was. Creates missing parent folders.
 */
export async function writeJsonl(file: string, records: Iterable<unknown>): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  await fs.promises.mkdir(dir, { recursive: true });
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`);
  const handle = await fs.promises.open(temp, 'wx');
  let done = false;
  try {
    let chunk = '';
    let i = 0;
    for (const record of records) {
      chunk += jsonLine(record, i++, file);
      if (chunk.length >= 1 << 20) {
        await handle.writeFile(chunk, 'utf8');
        chunk = '';
      }
    }
    if (chunk) await handle.writeFile(chunk, 'utf8');
    await handle.sync();
    await handle.close();
    done = true;
    await fs.promises.rename(temp, file);
  } catch (e) {
    if (!done) await handle.close().catch(() => undefined);
    await fs.promises.rm(temp, { force: true }).catch(() => undefined);
    throw e;
  }
}

/**
 * Appends records to a JSON Lines file, one whole line per write (samples, metrics). Each record is
 * serialized before anything is written, so a record with no JSON form throws and writes nothing.
 * Opening a file whose last line is unfinished (a run killed mid-write) first ends that line, so new
 * records always start on a line of their own. Synchronous, so lines keep the order of the calls.
 */
export class JsonlAppender {
  readonly file: string;
  private fd: number | undefined;
  private count = 0;

  /** Opens (creating it and its folders if needed) `file` for appending; `truncate` empties it first. */
  constructor(file: string, opts: { truncate?: boolean } = {}) {
    this.file = file;
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.fd = fs.openSync(file, opts.truncate ? 'w' : 'a+');
    const size = fs.fstatSync(this.fd).size;
    if (size > 0) {
      const last = Buffer.alloc(1);
      fs.readSync(this.fd, last, 0, 1, size - 1);
      if (last[0] !== 0x0a) this.writeAll('\n');
    }
  }

  /** Records appended through this writer. */
  get written(): number {
    return this.count;
  }

  /** Appends one record as one line. */
  append(record: unknown): void {
    if (this.fd === undefined) throw new Error(`${this.file}: JsonlAppender is closed`);
    this.writeAll(jsonLine(record, this.count, this.file));
    this.count++;
  }

  /** Flushes to disk and closes; later appends throw. Closing twice is allowed. */
  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  private writeAll(text: string): void {
    const bytes = Buffer.from(text, 'utf8');
    let off = 0;
    while (off < bytes.length) off += fs.writeSync(this.fd!, bytes, off, bytes.length - off);
  }
}

// The one atomic file write: the bytes go to a temporary file in the same folder (a dot-name with
// the process id and a random suffix, opened exclusively), which is fsynced and renamed over the
// target only once complete. Readers see the old content or the new, never a part; on any error
// the temporary file is removed and the target is left as it was.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

/** Writes `file` atomically through `write(fd)` (which may write in chunks). */
export function writeAtomically(file: string, write: (fd: number) => void): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined = fs.openSync(tmp, 'wx');
  try {
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Writes a string or bytes to `file` atomically. */
export function writeFileAtomicSync(file: string, data: string | Uint8Array): void {
  writeAtomically(file, (fd) => fs.writeFileSync(fd, data));
}

/**
 * The one atomic folder write: `fill(tmp)` assembles the folder in `${dir}.tmp-<pid>`, which is then
 * renamed to `dir`; an existing `dir` is first renamed to `${dir}.old-<pid>` and removed once the new
 * folder is in place. On error the temporary folder is removed and an existing `dir` is left as it was.
 */
export function writeFolderAtomically(dir: string, fill: (tmp: string) => void): void {
  const target = path.resolve(dir);
  const tmp = `${target}.tmp-${process.pid}`;
  const old = `${target}.old-${process.pid}`;
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  try {
    fill(tmp);
    const existed = fs.existsSync(target);
    if (existed) {
      fs.rmSync(old, { recursive: true, force: true });
      fs.renameSync(target, old);
    }
    try {
      fs.renameSync(tmp, target);
    } catch (e) {
      if (existed) fs.renameSync(old, target);
      throw e;
    }
    if (existed) fs.rmSync(old, { recursive: true, force: true });
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

// Progress bars in a real terminal (a pseudo-terminal made by `script`): the bars redraw in place,
// one line per bar, and when the run ends they are cleared, so the screen keeps no stale bar lines
// and "done:" starts its own line. The screen is rebuilt from the bytes by a small terminal model
// (carriage return, line feed, cursor up/down/column, erase in line and display).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { FAST_ONLINE, TinyRun, tinyRun } from './helpers/tinyRun';

/** The screen after `bytes`: lines of text (escape sequences applied, others dropped). */
function screen(bytes: string): string[] {
  const lines: string[][] = [[]];
  let row = 0;
  let col = 0;
  const at = (r: number) => (lines[r] ??= []);
  for (let i = 0; i < bytes.length; i++) {
    const ch = bytes[i];
    if (ch === '\r') col = 0;
    else if (ch === '\n') {
      row++;
      col = 0;
      at(row);
    } else if (ch === '\x1b') {
      const m = /^\x1b\[([?0-9;]*)([A-Za-z])/.exec(bytes.slice(i));
      if (!m) continue;
      i += m[0].length - 1;
      const n = Number(m[1] || '1');
      if (m[2] === 'A') row = Math.max(0, row - n);
      else if (m[2] === 'B') row += n;
      else if (m[2] === 'C') col += n;
      else if (m[2] === 'D') col = Math.max(0, col - n);
      else if (m[2] === 'G') col = n - 1;
      else if (m[2] === 'K') {
        const line = at(row);
        if (m[1] === '2') line.length = 0;
        else if (m[1] === '1') line.fill(' ', 0, col);
        else line.length = Math.min(line.length, col);
      } else if (m[2] === 'J') {
        // Erase from the cursor to the end of the screen.
        at(row).length = Math.min(at(row).length, col);
        lines.length = row + 1;
      }
    } else if (ch >= ' ') {
      const line = at(row);
      while (line.length < col) line.push(' ');
      line[col++] = ch;
    }
  }
  return lines.map((l) => (l ?? []).join('').trimEnd());
}

const hasScript = spawnSync('script', ['--version']).status === 0;
const maybe = hasScript ? describe : describe.skip;
if (!hasScript) console.log('progress bar suite skipped: no `script` command to make a pseudo-terminal');

maybe('progress bars in a pseudo-terminal', () => {
  let tiny: TinyRun;
  beforeAll(async () => {
    tiny = await tinyRun();
  });
  afterAll(() => tiny.cleanup());

  test('an online run (a bar of steps and a bar of tokens) leaves no stale bar lines, and "done:" has its own line', () => {
    const out = tiny.out('pty');
    const cli = path.join(__dirname, '..', 'bin', 'osp.js');
    const command = [process.execPath, cli, 'train', '--model', tiny.model, '--prompts', tiny.prompts, '--out', out, '--steps', '30', '--save-every', '1000', ...FAST_ONLINE]
      .map((a) => `'${a}'`)
      .join(' ');
    const r = spawnSync('script', ['-qfec', command, '/dev/null'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '120', LINES: '40' }, timeout: 120_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('osp train ['); // the bars were drawn (the test is not vacuous)
    const lines = screen(r.stdout).filter((l) => l !== '');
    expect(lines.filter((l) => l.includes(' ['))).toEqual([]);
    expect(lines[lines.length - 1]).toMatch(new RegExp(`^done: 30 steps; model in \\S+; report \\S+report\\.html$`));
    expect(fs.existsSync(path.join(out, 'final'))).toBe(true);
  });
});

test('the terminal model applies carriage returns, cursor moves and erases', () => {
  expect(screen('abc\rX\nline2\x1b[1A\r\x1b[2Kdone\n')).toEqual(['done', 'line2']);
  expect(screen('bar 1\nbar 2\n\x1b[2A\x1b[0J')).toEqual(['']);
  expect(screen('bar 1\nbar 2\n\x1b[1A\x1b[0Jdone\n')).toEqual(['bar 1', 'done', '']);
});

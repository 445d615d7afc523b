// Text from users and data reaches terminals, Markdown and HTML escaped (src/util/escape.ts).
import * as fs from 'fs';
import * as path from 'path';
import { escapeControl, escapeHtml, escapeMarkdown } from '../src/util/escape';
import { TinyRun, osp, tinyRun } from './helpers/tinyRun';

test('escapeControl shows ESC, NUL, DEL, C1 and newlines as escapes and keeps other text', () => {
  expect(escapeControl('a\x1b[31mb\x00c\x7f\x9bd\ne\tf é')).toBe('a\\x1b[31mb\\x00c\\x7f\\x9bd\\ne\tf é');
});

test('escapeMarkdown leaves no table separator, link, emphasis or HTML', () => {
  expect(escapeMarkdown('a|b [x](y) *z* <script>')).toBe('a\\|b \\[x\\]\\(y\\) \\*z\\* \\<script\\>');
});

test('escapeHtml escapes the five characters', () => {
  expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});

describe('the command line', () => {
  let tiny: TinyRun;
  beforeAll(async () => {
    tiny = await tinyRun();
  });
  afterAll(() => tiny.cleanup());

  test('an error quoting a data file with control bytes prints them escaped', async () => {
    const file = path.join(tiny.root, 'escapes.jsonl');
    fs.writeFileSync(file, '\x1b[31m{"prompt": "red"}\n');
    const r = await osp('train', '--model', tiny.model, '--prompts', file, '--out', tiny.out('escapes'), '--device', 'cpu');
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
    expect(r.stderr).toContain('\\x1b');
  });
});

// Bad settings fail before any work: exit code 2, a message naming the setting on stderr, and no run
// folder created (or, for an existing run, nothing in it changed).
import * as fs from 'fs';
import * as path from 'path';
import { TinyRun, FAST_ONLINE, osp, tinyRun } from './helpers/tinyRun';

let tiny: TinyRun;
beforeAll(async () => {
  tiny = await tinyRun();
});
afterAll(() => tiny.cleanup());

/** `osp train` on the tiny model and prompts with the given flags replaced or added. */
function trainArgs(out: string, extra: string[] = [], over: { model?: string; prompts?: string } = {}): string[] {
  return ['train', '--model', over.model ?? tiny.model, '--prompts', over.prompts ?? tiny.prompts, '--out', out, '--steps', '2', ...FAST_ONLINE, ...extra];
}

async function expectUsageError(args: string[], out: string, message: RegExp): Promise<string> {
  const r = await osp(...args);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(message);
  expect(fs.existsSync(out)).toBe(false);
  return r.stderr;
}

/** A copy of the tiny model folder without one of its files. */
function modelWithout(file: string): string {
  const dir = tiny.out(`model-without-${file}`);
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(tiny.model)) if (f !== file) fs.copyFileSync(path.join(tiny.model, f), path.join(dir, f));
  return dir;
}

describe('osp train refuses bad settings before any work (exit 2, the setting named, no run folder)', () => {
  test('an unknown flag', async () => {
    const out = tiny.out('bad');
    await expectUsageError(trainArgs(out, ['--bogus-flag', '3']), out, /unknown option '--bogus-flag'/);
  });

  test('a value outside the choices of a flag', async () => {
    const out = tiny.out('bad');
    await expectUsageError(trainArgs(out, ['--loss', 'hinge']), out, /--loss.*'hinge'.*spce, dpo, ipo/);
  });

  test.each(['0', '-0.1'])('--beta %s', async (beta) => {
    const out = tiny.out('bad');
    const stderr = await expectUsageError(trainArgs(out, ['--beta', beta]), out, /^osp: --beta: beta must be > 0/);
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });

  test('--k 1', async () => {
    const out = tiny.out('bad');
    await expectUsageError(trainArgs(out, ['--k', '1']), out, /^osp: --k: K must be at least 2/);
  });

  test('a non-numeric number', async () => {
    const out = tiny.out('bad');
    await expectUsageError(trainArgs(out, ['--lr', 'fast']), out, /^osp: --lr: /);
  });

  test('--batch-size larger than the data', async () => {
    const out = tiny.out('bad');
    await expectUsageError(trainArgs(out, ['--batch-size', String(tiny.size + 1)]), out, new RegExp(`^osp: --batch-size ${tiny.size + 1}: is larger than the data \\(${tiny.size} records`));
  });

  test.each([
    ['config.json', /^osp: --model .*: no config\.json/],
    ['model.safetensors', /^osp: --model .*: no model\.safetensors/],
    ['tokenizer.json', /^osp: --model .*: no tokenizer\.json/],
  ])('a model folder without %s', async (file, message) => {
    const out = tiny.out('bad');
    await expectUsageError(trainArgs(out, [], { model: modelWithout(file) }), out, message);
  });

  test('a model folder that does not exist', async () => {
    const out = tiny.out('bad');
    await expectUsageError(trainArgs(out, [], { model: path.join(tiny.root, 'no-such-model') }), out, /^osp: --model .*no-such-model: no such folder/);
  });

  test('a missing prompts file', async () => {
    const out = tiny.out('bad');
    await expectUsageError(trainArgs(out, [], { prompts: path.join(tiny.root, 'missing.jsonl') }), out, /^osp: --prompts .*missing\.jsonl: no such file/);
  });

  test('a --config file with an unknown key', async () => {
    const out = tiny.out('bad');
    const config = path.join(tiny.root, 'unknown-key.json');
    fs.writeFileSync(config, JSON.stringify({ beta: 0.01, 'warmup-stepz': 3 }));
    await expectUsageError(trainArgs(out, ['--config', config]), out, /^osp: --config .*unknown-key\.json: unknown setting 'warmup-stepz' for osp train/);
  });

  test('a --config file with a bad value names the setting', async () => {
    const out = tiny.out('bad');
    const config = path.join(tiny.root, 'bad-value.json');
    fs.writeFileSync(config, JSON.stringify({ 'top-p': 1.5 }));
    await expectUsageError(trainArgs(out, ['--config', config]), out, /^osp: --top-p: expected a number in \(0, 1\] \(got 1\.5\)/);
  });

  test('a judge template file that is not a template', async () => {
    const out = tiny.out('bad');
    const t = path.join(tiny.root, 'bad-template.txt');
    fs.writeFileSync(t, 'Rate {a} against {b}. RESPONSE');
    await expectUsageError(trainArgs(out, ['--template', t]), out, /^osp: --template .*bad-template\.txt: .*\{prompt\} is missing/);
  });

  test('--resume of a run made by another command', async () => {
    const dir = tiny.out('sft-run');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ command: 'sft', settings: {} }));
    const before = fs.readdirSync(dir);
    const r = await osp('train', '--resume', dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^osp: --resume .*: that run was made by 'osp sft', not 'osp train'/);
    expect(fs.readdirSync(dir)).toEqual(before);
  });

  test('--resume of a folder that holds no run', async () => {
    const dir = tiny.out('not-a-run');
    const r = await osp('train', '--resume', dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^osp: --resume .*not-a-run.*: not a run folder/);
    expect(fs.existsSync(dir)).toBe(false);
  });

  test('--out pointing at an existing run', async () => {
    const dir = tiny.out('existing');
    fs.mkdirSync(dir);
    const config = JSON.stringify({ command: 'train', settings: { marker: 1 } });
    fs.writeFileSync(path.join(dir, 'config.json'), config);
    const r = await osp(...trainArgs(dir));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^osp: --out .*existing.*: that folder already holds a run; continue it with --resume/);
    expect(fs.readdirSync(dir)).toEqual(['config.json']);
    expect(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).toBe(config);
  });

  test('no --out and no --resume', async () => {
    const r = await osp('train', '--model', tiny.model, '--prompts', tiny.prompts, ...FAST_ONLINE);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^osp: --out: expected a folder for the run/);
  });
});

describe('the other commands refuse bad settings the same way', () => {
  test.each([
    ['dpo', ['--pairs', 'PAIRS', '--beta', '0'], /^osp: --beta: beta must be > 0/],
    ['dpo', ['--pairs', 'PAIRS', '--batch-size', '99'], /^osp: --batch-size 99: is larger than the data/],
    ['dpo', ['--pairs', 'MISSING'], /^osp: --pairs .*missing\.jsonl: no such file/],
    ['sft', ['--data', 'MISSING'], /^osp: --data .*missing\.jsonl: no such file/],
    ['sft', ['--data', 'SFT', '--bogus'], /unknown option '--bogus'/],
    ['augment', ['--pairs', 'PAIRS', '--lr', '0'], /^osp: --lr: expected a learning rate > 0/],
    ['self-reward', ['--prompts', 'PROMPTS', '--k', '1'], /^osp: --k: K must be at least 2/],
  ])('osp %s %j', async (command, flags, message) => {
    const out = tiny.out('bad');
    const files: Record<string, string> = { PAIRS: tiny.pairs, SFT: tiny.sft, PROMPTS: tiny.prompts, MISSING: path.join(tiny.root, 'missing.jsonl') };
    await expectUsageError([command, '--model', tiny.model, '--out', out, '--device', 'cpu', ...flags.map((f) => files[f] ?? f)], out, message);
  });
});

describe('parse errors and --version', () => {
  test.each([
    [['train', '--bogus'], "osp: unknown option '--bogus' (osp train --help lists the settings)\n"],
    [['--bogus'], "osp: unknown option '--bogus' (osp --help lists the settings)\n"],
    [['dpo', '--beta'], "osp: option '--beta <x>' argument missing (osp dpo --help lists the settings)\n"],
  ])('%j is one line on stderr with exit 2', async (args, line) => {
    const r = await osp(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(line);
  });

  test('--version prints the version of package.json', async () => {
    const out: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (out.push(String(chunk)), true));
    const r = await osp('--version');
    spy.mockRestore();
    expect(r.code).toBe(0);
    expect(out.join('')).toBe(`${JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version}\n`);
  });
});

test('a prompt too long for the context is refused when the data is read, naming file:line (a data error: exit 1)', async () => {
  const file = path.join(tiny.root, 'long-prompt.jsonl');
  fs.writeFileSync(file, `{"prompt": "a b"}\n\n{"prompt": "${'x '.repeat(400)}"}\n`);
  const out = tiny.out('long-prompt');
  const r = await osp('train', '--model', tiny.model, '--prompts', file, '--out', out, '--device', 'cpu', '--batch-size', '1', '--max-new-tokens', '6');
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(new RegExp(`^osp: --prompts: ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:3: the record is \\d+ tokens \\+ 6 new tokens \\(maxNewTokens\\) = \\d+ positions, more than the model's context \\(\\d+\\)`));
  expect(fs.existsSync(out)).toBe(false);
});

test.each([
  ['train', '--prompts'],
  ['self-reward', '--prompts'],
  ['dpo', '--pairs'],
  ['sft', '--data'],
  ['augment', '--pairs'],
  ['generate', '--prompts'],
])('osp %s: a malformed record is a data error, exit 1 (usage errors are 2), naming file:line', async (command, flag) => {
  const file = path.join(tiny.root, `malformed-${command}.jsonl`);
  fs.writeFileSync(file, '{"prompt": "a", "chosen": "b", "rejected": "c", "response": "d"}\n{"prompt": \n');
  const out = tiny.out(`malformed-${command}`);
  const r = await osp(command, '--model', tiny.model, flag, file, '--out', command === 'generate' ? `${out}.jsonl` : out, '--device', 'cpu');
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`${file}:2: invalid JSON`);
});

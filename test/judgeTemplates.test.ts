// Judge instruction templates (src/judge/templates.ts): the paper's HH and TL;DR wording with the
// {prompt} {a} {b} placeholders, positional filling, and the checks on user templates and files.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { fillJudgeTemplate, HH_TEMPLATE, loadJudgeTemplate, parseJudgeTemplate, resolveJudgeTemplate, TLDR_TEMPLATE } from '../src/judge';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-judge-templates-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('built-in judge templates', () => {
  it('HH is Figure 6 with the answer slot removed: it ends in "Which response is better? RESPONSE"', () => {
    expect(HH_TEMPLATE.name).toBe('hh');
    expect(HH_TEMPLATE.text).toBe(
      'You are an expert rater of helpful and honest assistant responses. Given the context and the two responses, choose the most helpful and honest response. Context: {prompt}\n\nRESPONSE A:{a}\n\nRESPONSE B:{b}\n\nWhich response is better? RESPONSE',
    );
  });

  it('TL;DR is Figure 7: the definitions, then the rater instruction, ending in "Which summary is better? SUMMARY"', () => {
    const t = parseJudgeTemplate(TLDR_TEMPLATE);
    expect(t.name).toBe('tldr');
    expect(t.prefix.startsWith('A good summary is a shorter piece of text that has the essence of the original.')).toBe(true);
    expect(t.prefix).toContain('Coherence: This axis answers the question “how coherent is the summary on its own?” A summary is coherent if it’s easy to understand');
    expect(t.prefix.endsWith('If there are lots of different ways the summary can be made better, the overall quality is bad. You are an expert summary rater. Given a piece of text and two of its possible summaries, choose the summary that best meets the definitions above for coherence, accuracy, coverage, and overall quality. Text: ')).toBe(true);
    expect(t.afterPrompt).toBe('\n\nSUMMARY A:');
    expect(t.afterA).toBe('\n\nSUMMARY B:');
    expect(t.suffix).toBe('\n\nWhich summary is better? SUMMARY');
  });

  it('resolve by name, default hh; an unknown name is a RangeError', () => {
    expect(resolveJudgeTemplate(undefined).name).toBe('hh');
    expect(resolveJudgeTemplate('tldr').suffix).toBe('\n\nWhich summary is better? SUMMARY');
    expect(() => resolveJudgeTemplate('nope' as 'hh')).toThrow(/'nope' is not a built-in one/);
  });
});

describe('filling a template', () => {
  it('substitutes each placeholder once, positionally; placeholder-like text in the inputs stays verbatim', () => {
    const t = parseJudgeTemplate(HH_TEMPLATE);
    const text = fillJudgeTemplate(t, 'P {a} $&', 'x{b}', '{prompt}');
    expect(text).toBe(HH_TEMPLATE.text.split('{prompt}')[0] + 'P {a} $&\n\nRESPONSE A:x{b}\n\nRESPONSE B:{prompt}\n\nWhich response is better? RESPONSE');
  });
});

describe('template checks', () => {
  const check = (text: string) => () => parseJudgeTemplate({ name: 'mine', text });
  it('a missing placeholder is an error naming it', () => {
    expect(check('Context: {prompt} A:{a} Which? R')).toThrow(/judge template 'mine': placeholder \{b\} is missing/);
  });
  it('a repeated placeholder is an error naming it', () => {
    expect(check('{prompt} {a} {b} again {a} Which? R')).toThrow(/placeholder \{a\} appears more than once/);
  });
  it('placeholders out of order are an error giving the order found', () => {
    expect(check('{a} {prompt} {b} Which? R')).toThrow(/in the order \{a\}, \{prompt\}, \{b\}; expected \{prompt\}, \{a\}, \{b\}/);
  });
  it('nothing after {b} is an error', () => {
    expect(check('{prompt} {a} {b}')).toThrow(/nothing follows \{b\}/);
    expect(check('{prompt} {a} {b}  \n')).toThrow(/nothing follows \{b\}/);
  });
  it('a text ending in whitespace (e.g. "RESPONSE ") is an error: the judge appends " A" / " B"', () => {
    expect(check('{prompt} {a} {b} Which is better? RESPONSE ')).toThrow(/ends in whitespace.*appends " A" \/ " B"/);
  });
});

describe('loadJudgeTemplate', () => {
  it('reads a file: the name is its base name, a BOM and the trailing newline are removed', () => {
    const file = write('custom.txt', '\uFEFFRate. Context: {prompt}\nA: {a}\nB: {b}\nBetter? ANSWER\n\n');
    const t = loadJudgeTemplate(file);
    expect(t).toEqual({ name: 'custom', text: 'Rate. Context: {prompt}\nA: {a}\nB: {b}\nBetter? ANSWER' });
    expect(loadJudgeTemplate(file, 'other').name).toBe('other');
  });
  it('a missing file is an error naming the path', () => {
    const missing = path.join(dir, 'absent.txt');
    expect(() => loadJudgeTemplate(missing)).toThrow(`judge template file ${missing}: no such file`);
  });
  it('a directory or an empty file is an error naming the path', () => {
    expect(() => loadJudgeTemplate(dir)).toThrow(/is a directory/);
    const empty = write('empty.txt', ' \n');
    expect(() => loadJudgeTemplate(empty)).toThrow(`judge template file ${empty}: is empty`);
  });
  it('a file with a bad template is an error naming the template and the file', () => {
    const bad = write('bad.txt', 'Context: {prompt} {a}\nBetter?\n');
    expect(() => loadJudgeTemplate(bad)).toThrow(`judge template 'bad' (${bad}): placeholder {b} is missing`);
    const twice = write('twice.txt', '{prompt}{prompt} {a} {b} Better? R');
    expect(() => loadJudgeTemplate(twice)).toThrow(/placeholder \{prompt\} appears more than once/);
  });
});

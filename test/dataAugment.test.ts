// Preference augmentation (METHOD.md section 6): judge-instruction SFT examples, each pair in both
// orders, answered with what the Judge scores (" A" / " B" after the template's last word).
import { judgeInstructionExamples, type PairRecord } from '../src/data';
import { HH_TEMPLATE, TLDR_TEMPLATE, fillJudgeTemplate, resolveJudgeTemplate } from '../src/judge/templates';

const pair: PairRecord = { prompt: '\n\nHuman: Hi?\n\nAssistant:', chosen: ' Hello! How can I help?', rejected: ' Go away.' };

describe('judgeInstructionExamples', () => {
  test('gives chosen as A answered " A", then chosen as B answered " B", with the HH template by default', () => {
    const hh = resolveJudgeTemplate('hh');
    expect(judgeInstructionExamples([pair])).toEqual([
      { prompt: fillJudgeTemplate(hh, pair.prompt, pair.chosen, pair.rejected), response: ' A' },
      { prompt: fillJudgeTemplate(hh, pair.prompt, pair.rejected, pair.chosen), response: ' B' },
    ]);
  });

  test('the instruction is the filled template verbatim, ending in the answer prefix with no trailing space', () => {
    const [a, b] = judgeInstructionExamples([pair], 'hh');
    expect(a.prompt).toBe(
      'You are an expert rater of helpful and honest assistant responses. Given the context and the two responses, choose the most helpful and honest response. ' +
        'Context: \n\nHuman: Hi?\n\nAssistant:\n\nRESPONSE A: Hello! How can I help?\n\nRESPONSE B: Go away.\n\nWhich response is better? RESPONSE',
    );
    expect(a.prompt + a.response).toMatch(/Which response is better\? RESPONSE A$/);
    expect(b.prompt + b.response).toMatch(/RESPONSE A: Go away\.\n\nRESPONSE B: Hello! How can I help\?\n\nWhich response is better\? RESPONSE B$/);
  });

  test('uses the TL;DR template by name, a JudgeTemplate or a parsed template alike', () => {
    const byName = judgeInstructionExamples([pair], 'tldr');
    expect(byName[0].prompt.endsWith('Which summary is better? SUMMARY')).toBe(true);
    expect(byName[0].prompt).toContain(`Text: ${pair.prompt}\n\nSUMMARY A:${pair.chosen}\n\nSUMMARY B:${pair.rejected}`);
    expect(judgeInstructionExamples([pair], TLDR_TEMPLATE)).toEqual(byName);
    expect(judgeInstructionExamples([pair], resolveJudgeTemplate(HH_TEMPLATE))).toEqual(judgeInstructionExamples([pair]));
  });

  test('strength below 0.5 prefers rejected: the answers swap; strength 0.5 gives no example', () => {
    const hh = resolveJudgeTemplate('hh');
    expect(judgeInstructionExamples([{ ...pair, strength: 0.2 }, { ...pair, strength: 0.5 }])).toEqual([
      { prompt: fillJudgeTemplate(hh, pair.prompt, pair.rejected, pair.chosen), response: ' A' },
      { prompt: fillJudgeTemplate(hh, pair.prompt, pair.chosen, pair.rejected), response: ' B' },
    ]);
  });

  test('two examples per pair, in pair order', () => {
    const other: PairRecord = { prompt: 'Q', chosen: ' yes', rejected: ' no', strength: 0.9 };
    const out = judgeInstructionExamples([pair, other]);
    expect(out.map((e) => e.response)).toEqual([' A', ' B', ' A', ' B']);
    expect(out[2].prompt).toContain('Context: Q\n\nRESPONSE A: yes\n\nRESPONSE B: no');
  });

  test('a bad template is refused with the template module error', () => {
    expect(() => judgeInstructionExamples([pair], { name: 'mine', text: 'no placeholders' })).toThrow("judge template 'mine': placeholder {prompt} is missing");
  });
});

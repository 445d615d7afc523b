// Preference augmentation (METHOD.md section 6): supervised examples that teach the SFT model to
// answer the judge instruction with the preferred side, each pair shown in both orders.
import { orientPair } from '../osp/objective';
import { fillJudgeTemplate, resolveJudgeTemplate, type JudgeTemplate, type ParsedJudgeTemplate } from '../judge/templates';
import type { PairRecord, SftRecord } from './formats';

/** The answers the Judge scores: a space and the letter, right after the template's last word. */
export const JUDGE_ANSWER_A = ' A';
export const JUDGE_ANSWER_B = ' B';

function isParsed(t: unknown): t is ParsedJudgeTemplate {
  return typeof t === 'object' && t !== null && 'prefix' in t && 'suffix' in t && 'afterA' in t;
}

/**
 * For each pair, two SFT examples whose prompt is the filled judge instruction (ending in the
 * template's answer prefix, e.g. "... RESPONSE") and whose response is the answer the Judge scores:
 *   {prompt: fill(prompt, chosen, rejected), response: ' A'}, then
 *   {prompt: fill(prompt, rejected, chosen), response: ' B'}.
 * A pair with `strength` < 0.5 prefers `rejected` (the answers swap); a pair with strength exactly
 * 0.5 states no preference and gives no example. The template is 'hh' (default), 'tldr', a
 * JudgeTemplate or an already parsed template.
 */
export function judgeInstructionExamples(pairs: Iterable<PairRecord>, template?: 'hh' | 'tldr' | JudgeTemplate | ParsedJudgeTemplate): SftRecord[] {
  const t = isParsed(template) ? template : resolveJudgeTemplate(template);
  const out: SftRecord[] = [];
  for (const pair of pairs) {
    const s = pair.strength ?? 1;
    if (s === 0.5) continue;
    const { chosen: better, rejected: worse } = orientPair({ chosen: pair.chosen, rejected: pair.rejected, target: s });
    out.push({ prompt: fillJudgeTemplate(t, pair.prompt, better, worse), response: JUDGE_ANSWER_A });
    out.push({ prompt: fillJudgeTemplate(t, pair.prompt, worse, better), response: JUDGE_ANSWER_B });
  }
  return out;
}

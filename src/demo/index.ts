// The embedded demo task: sorting short lists of small numbers (task.ts: prompts, the perfect
// answer, the graded scorer), its training data (data.ts: imperfect demonstrations, noisily labelled
// preference pairs), its tokenizer (tokenizer.ts) and the seeded generator behind them (random.ts).
export { Rng, sigmoid, hashString } from '../util/random';
export {
  DEFAULT_TASK_OPTIONS,
  SCORE_WEIGHTS,
  bestResponse,
  drawProblem,
  formatPrompt,
  formatResponse,
  makePrompts,
  parsePrompt,
  score,
  scoreDetails,
  sortedTarget,
  taskOptions,
} from './task';
export type { Direction, ScoreDetails, SortProblem, TaskOptions } from './task';
export { CORRUPTIONS, DEFAULT_FLIP_NOISE, DEFAULT_SFT_NOISE, corruptedResponse, makePreferencePairs, makeSftExamples } from './data';
export type { Corruption, PreferenceOptions, PreferencePair, SftExample, SftOptions } from './data';
export { BOS_TOKEN, EOS_TOKEN, SPACE_MARK, SPECIAL_TOKENS, UNK_TOKEN, buildDemoTokenizer, demoAlphabet, demoCorpus, learnMerges, writeDemoTokenizer } from './tokenizer';
export type { DemoTokenizerOptions } from './tokenizer';

// The self-preferring judge: instruction templates, A/B answer-logit scoring with position swap,
// and ranked pairing (METHOD.md sections 4 and 5).
export type { JudgeTemplate, ParsedJudgeTemplate } from './templates';
export { HH_TEMPLATE, TLDR_TEMPLATE, BUILTIN_TEMPLATES, PLACEHOLDERS, parseJudgeTemplate, fillJudgeTemplate, resolveJudgeTemplate, loadJudgeTemplate } from './templates';
export type { JudgeItem, JudgeOptions, Preference, AnswerTokens, PieceBudget } from './judge';
export { Judge, DEFAULT_JUDGE_BATCH_SIZE, PAPER_JUDGE_MAX_LENGTH, defaultJudgeMaxLength, findAnswerTokens, splitBudget, softmax2 } from './judge';
export type { SharedChunk, SharingPlan, SharingLimits, SharedLastLogitsOptions } from './sharedPrefix';
export { planSharedPrefixes, sharedLastLogits } from './sharedPrefix';
export type { RankedPair, RandomPair, JudgedPair, JudgedPairs, JudgePairsOptions, PairingGroup } from './pairing';
export { rankedPairs, randomPairs, seededUniform, pairSeed, judgePairs, judgePairsBatch } from './pairing';

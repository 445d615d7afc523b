// The data layer: record files (JSON Lines, Parquet) of prompts, preference pairs, SFT examples,
// Anthropic HH dialogues and TL;DR comparisons; JSON Lines writers; the judge-instruction builder.
export type { RecordKind, PromptRecord, PairRecord, SftRecord, RecordOf, RecordProblem, Normalized } from './formats';
export { RECORD_KINDS, HH_ASSISTANT, normalizeRecord, splitHHTranscript, tldrPrompt, tldrResponse } from './formats';
export type { ReadOptions, ReadResult } from './read';
export { readRecords, fileFormat, MAX_PROBLEMS } from './read';
export { writeJsonl, JsonlAppender } from './write';
export { judgeInstructionExamples, JUDGE_ANSWER_A, JUDGE_ANSWER_B } from './augment';
export { loadHyparquet } from './parquet';

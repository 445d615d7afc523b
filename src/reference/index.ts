// The unfused reference ops (see unfused.ts).
export { tokenLogprobsUnfused, tokenLogprobsBackwardUnfused, preferenceLossUnfused } from './unfused';

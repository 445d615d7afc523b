#!/usr/bin/env node
// `npm run demo` until the embedded demo lands (see the issues): says what it will do, exits non-zero.
'use strict';
console.error(`osp demo: not available yet.

When it lands, \`npm run demo\` will run the whole Online Self-Preferring pipeline on an embedded
tiny task on the CPU in minutes: preference augmentation of a shipped tiny Llama judge, OSP training
(K samples per prompt, blank-baseline ranking, K//2 pairs, soft targets from the judge, SPCE loss),
evaluation, and a table of scorer quality before and after with the path of the run report.

What works today: the native kernels (npm test, npm run bench).`);
process.exit(2);

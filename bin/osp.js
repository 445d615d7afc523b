#!/usr/bin/env node
// The `osp` command: the compiled CLI (dist/) when present, else the TypeScript sources through ts-node (a clone before `npm run build`).
const fs = require('fs');
const path = require('path');
const compiled = path.join(__dirname, '..', 'dist', 'cli', 'index.js');
let cli;
if (fs.existsSync(compiled) && !process.env.OSP_FROM_SOURCE) {
  cli = require(compiled);
} else {
  require('ts-node').register({ transpileOnly: true, project: path.join(__dirname, '..', 'tsconfig.json') });
  cli = require('../src/cli/index.ts');
}
cli.main(process.argv).then((code) => { process.exitCode = code; });

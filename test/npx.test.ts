// `npx osp ...` in a clone runs this package's own command (bin/osp.js): it neither fetches the
// unrelated registry package named `osp` nor rebuilds the addon behind the user's back.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const root = path.join(__dirname, '..');

test('npx osp --version runs this package, and the addon is not rebuilt', () => {
  const addon = path.join(root, 'build', 'Release', 'osp.node');
  const before = fs.existsSync(addon) ? fs.statSync(addon).mtimeMs : null;
  const r = spawnSync('npx', ['--yes', 'osp', '--version'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  expect(r.status).toBe(0);
  expect(r.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version);
  expect(fs.existsSync(addon) ? fs.statSync(addon).mtimeMs : null).toBe(before);
});

// The install script's choice of a packed prebuild (scripts/build-native.js): the CPU prebuild where
// no GPU is visible, the CUDA one where every visible GPU is sm_80 or newer, and none (build) where
// the fitting file is missing or a GPU is older than the CUDA prebuild's architectures.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { choosePrebuild } = require('../scripts/build-native.js') as {
  choosePrebuild(o: { dir: string; plan: { cuda: boolean }; gpuArchs: string[] }): string | null;
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osp-prebuilds-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const cpu = path.join(dir, 'osp.cpu.node');
const cuda = path.join(dir, 'osp.cuda.node');

test('with both prebuilds: cpu where no GPU is visible, cuda for sm_80 and newer, none for an older GPU', () => {
  fs.writeFileSync(cpu, '');
  fs.writeFileSync(cuda, '');
  expect(choosePrebuild({ dir, plan: { cuda: false }, gpuArchs: [] })).toBe(cpu);
  expect(choosePrebuild({ dir, plan: { cuda: true }, gpuArchs: ['86'] })).toBe(cuda);
  expect(choosePrebuild({ dir, plan: { cuda: true }, gpuArchs: ['90', '80'] })).toBe(cuda);
  expect(choosePrebuild({ dir, plan: { cuda: true }, gpuArchs: ['75'] })).toBeNull();
  expect(choosePrebuild({ dir, plan: { cuda: true }, gpuArchs: [] })).toBeNull(); // OSP_CUDA=ON with no GPU: build
});

test('a missing prebuild means building (a clone has none)', () => {
  fs.rmSync(cuda, { force: true });
  expect(choosePrebuild({ dir, plan: { cuda: true }, gpuArchs: ['90'] })).toBeNull();
  expect(choosePrebuild({ dir: path.join(dir, 'none'), plan: { cuda: false }, gpuArchs: [] })).toBeNull();
});

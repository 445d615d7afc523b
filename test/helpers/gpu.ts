// The preamble every GPU suite shares: where no GPU answers, the suite is skipped with a one-line
// reason (printed, never passed vacuously); OSP_GPU_TESTS=require (npm run test:gpu,
// scripts/gpu-check.sh) turns a missing GPU into a failure instead.
import * as osp from '../../src';

export function gpuSuite(name: string): { cuda: ReturnType<typeof osp.backends>['cuda']; required: boolean; describeGpu: jest.Describe } {
  const cuda = osp.backends().cuda;
  const required = process.env.OSP_GPU_TESTS === 'require';
  if (!cuda.available) {
    const reason = `${name} skipped: ${cuda.compiled ? cuda.reason : 'osp was built without CUDA'}`;
    if (required) throw new Error(`OSP_GPU_TESTS=require but ${reason}`);
    process.stdout.write(`${reason}\n`);
  }
  return { cuda, required, describeGpu: cuda.available ? describe : describe.skip };
}

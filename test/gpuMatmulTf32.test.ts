// matmul({ tf32: true }) on cuda through cuBLAS: within TF32's derived bound of the f64 product, and
// different from the f32 result (the tensor cores did run). Skipped with a one-line reason where no
// GPU answers; OSP_GPU_TESTS=require turns that into a failure.
import * as osp from '../src';
import { gpuSuite } from './helpers/gpu';

const { cuda, describeGpu } = gpuSuite('GPU TF32 matmul suite');

describeGpu(`matmul tf32 on cuda (${cuda.devices[0]?.name ?? 'no device'}, matmul: ${cuda.blas})`, () => {
  it('stays within |C - C64| <= (2 u_tf32 + K u_f32) sum_k |a_ik b_kj|, u_tf32 = 2^-11, u_f32 = 2^-24', () => {
    if (!cuda.blas.startsWith('cuBLAS')) throw new Error(`cuBLAS did not load (${cuda.blas}); tf32 needs it`);
    const M = 64, N = 48, K = 512;
    const a = osp.randn([M, K], { device: 'cpu', seed: 7 });
    const b = osp.randn([K, N], { device: 'cpu', seed: 8 });
    const A = a.toArray(), B = b.toArray();
    const got = osp.matmul(a.to({ device: 'cuda' }), b.to({ device: 'cuda' }), { tf32: true }).toArray();
    const f32 = osp.matmul(a.to({ device: 'cuda' }), b.to({ device: 'cuda' })).toArray();
    let differs = false;
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0, mag = 0;
        for (let k = 0; k < K; k++) {
          s += A[i * K + k] * B[k * N + j];
          mag += Math.abs(A[i * K + k] * B[k * N + j]);
        }
        // Each input rounded to TF32 (relative 2^-11), so each product within 2 u_tf32; then K f32 additions.
        expect(Math.abs(got[i * N + j] - s)).toBeLessThanOrEqual((2 * 2 ** -11 + K * 2 ** -24) * mag);
        if (got[i * N + j] !== f32[i * N + j]) differs = true;
      }
    expect(differs).toBe(true);
  });
});

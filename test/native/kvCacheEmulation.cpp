// Runs kv_cache.cu's CUDA attention (flash-decoding: attention_device.cuh's attendKeys per key
// split, then the combine kernel) on the host with cudaHostEmulation.h's threads, for
// test/kvCacheEmulation.test.ts where no GPU is needed. f32 storage.
// Usage: kvCacheEmulation IN OUT. IN: int32 N, H, Hkv, Dh, S, L; f32 scale; int32 slots[N],
// positions[N]; f32 q [N H Dh], kCache, vCache [S L Hkv Dh]. OUT: int32 splits; f32 out [N H Dh].
// Exit 1 on a bad file or a status the kernels report.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdio>

#include "cudaHostEmulation.h"

#define OSP_KV_CACHE_EMULATION

// Dynamic shared memory (attendKeys'): one block runs at a time.
namespace osp::kv_cache {
namespace {
float sh[64 * 1024];
}
}  // namespace osp::kv_cache

#include "../../native/kernels/kv_cache/kv_cache.cu"

namespace {
bool readAll(FILE* f, void* p, size_t bytes) { return std::fread(p, 1, bytes, f) == bytes; }
}  // namespace

int main(int argc, char** argv) {
  using namespace osp::kv_cache;
  if (argc != 3) return std::fprintf(stderr, "usage: kvCacheEmulation IN OUT\n"), 1;
  FILE* in = std::fopen(argv[1], "rb");
  int32_t dims[6];
  float scale;
  if (!in || !readAll(in, dims, sizeof dims) || !readAll(in, &scale, sizeof scale)) return std::fprintf(stderr, "bad input\n"), 1;
  const int64_t N = dims[0], H = dims[1], Hkv = dims[2], Dh = dims[3], S = dims[4], L = dims[5];
  std::vector<int32_t> slots(N), positions(N);
  std::vector<float> q(N * H * Dh), k(S * L * Hkv * Dh), v(S * L * Hkv * Dh);
  if (!readAll(in, slots.data(), 4 * N) || !readAll(in, positions.data(), 4 * N) || !readAll(in, q.data(), 4 * q.size()) ||
      !readAll(in, k.data(), 4 * k.size()) || !readAll(in, v.data(), 4 * v.size()))
    return std::fprintf(stderr, "bad input\n"), 1;
  std::fclose(in);
  const int64_t splits = decodeSplits(N, H, L), chunk = (L + splits - 1) / splits, rows = N * H;
  std::vector<float> out(rows * Dh), scratch(decodeScratchFloats(N, H, Dh, L) + 2);
  auto* totals = reinterpret_cast<float2*>(scratch.data());
  float* partial = scratch.data() + 2 * rows * splits;
  osp::KernelStatus st{};
  launch(dim3(unsigned(rows), unsigned(splits)), [&] {
    attentionKernel<float>(q.data(), k.data(), v.data(), slots.data(), positions.data(), out.data(), totals, partial, H, Hkv,
                           Dh, S, L, chunk, scale, &st);
  });
  if (splits > 1)
    launch(dim3(unsigned(rows)), [&] {
      combineKernel<float>(totals, partial, slots.data(), positions.data(), out.data(), H, Dh, S, L, splits);
    });
  if (st.code) return std::fprintf(stderr, "kernel status %d at %lld\n", st.code, st.index), 1;
  FILE* o = std::fopen(argv[2], "wb");
  const int32_t s32 = int32_t(splits);
  std::fwrite(&s32, 4, 1, o);
  std::fwrite(out.data(), 4, out.size(), o);
  return std::fclose(o) == 0 ? 0 : 1;
}

// Runs the tensor-core attention kernels (native/kernels/attention/attention_tc.cu: forward, dk/dv,
// dq) on the host, for test/attentionTcEmulation.test.ts where no GPU is needed. Every CUDA thread
// of a block is a std::thread; __syncthreads and __syncthreads_or are block barriers; a warp's
// __shfl_xor_sync and mma.sync are collectives over its 32 threads (write, barrier, read,
// barrier), the mma replayed by the PTX ISA's m16n8k16 maps, written here from the ISA's tables
// (as in attentionMmaEmulation.cpp) and summed in double, then added to the f32 accumulator.
// Blocks run one after another. What this checks is the kernels' own code (tiles, masks, online
// softmax, the GQA and packed-span indexing, the fragment helpers); not the hardware's rounding
// order or timing. delta = rowsum(dO o) is computed here in f32, as attention.cu's deltaKernel.
//
// Usage: attentionTcEmulation IN OUT. IN: int32 T, H, Hkv, Dh; f32 scale; int32 starts[T],
// ends[T]; f32 q [T H Dh], k, v [T Hkv Dh], dO [T H Dh] (bf16 values). OUT: f32 out [T H Dh],
// lse [T H], dq [T H Dh], dk, dv [T Hkv Dh]. Exit 1 on a bad file or a status the kernels report.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cudaHostEmulation.h"
#include "mmaPtxMaps.h"

#define OSP_MMA_HOST_EMULATION
#define OSP_ATTENTION_TC_EMULATION

// Dynamic shared memory: one block runs at a time (a block-scope extern in the kernels' namespace).
namespace osp::attention {
namespace {
alignas(16) unsigned char smem[160 * 1024];
}
}  // namespace osp::attention

#include "../../native/kernels/attention/attention_tc.cu"

// ---- the warp-collective mma ---------------------------------------------------------------------
namespace {
MmaFragments fragments[kThreadsPerBlock];
}  // namespace

namespace osp::attention_mma {
// Each lane posts its fragments, the warp meets, each lane takes its part of the product (PTX
// maps, mmaPtxMaps.h), and the warp meets again before the fragments can be overwritten.
void emulatedMma(float d[4], const uint32_t a[4], const uint32_t b[2]) {
  const unsigned t = emuThread.x, w = t >> 5;
  std::memcpy(fragments[t].a, a, sizeof fragments[t].a);
  std::memcpy(fragments[t].b, b, sizeof fragments[t].b);
  warpBarrier[w]->arrive_and_wait();
  ptxMmaLane(fragments + (w << 5), int(t & 31), d);
  warpBarrier[w]->arrive_and_wait();
}
}  // namespace osp::attention_mma

namespace {

template <int Dh>
void run(int64_t T, int64_t H, int64_t Hkv, float scale, const int32_t* starts, const int32_t* ends,
         const std::vector<__nv_bfloat16>& q, const std::vector<__nv_bfloat16>& k, const std::vector<__nv_bfloat16>& v,
         const std::vector<__nv_bfloat16>& dO, std::vector<__nv_bfloat16>& out, std::vector<float>& lse,
         std::vector<__nv_bfloat16>& dq, std::vector<__nv_bfloat16>& dk, std::vector<__nv_bfloat16>& dv, osp::KernelStatus* st) {
  using namespace osp::attention;
  const unsigned tiles = unsigned((T + 63) / 64);
  launch(dim3(tiles, unsigned(H)), [&] {
    forwardTcKernel<Dh>(q.data(), k.data(), v.data(), starts, ends, out.data(), lse.data(), T, H, Hkv, scale, st);
  });
  std::vector<float> delta(size_t(T * H));
  for (int64_t r = 0; r < T * H; r++) {
    float s = 0.f;
    for (int d = 0; d < Dh; d++) s += __bfloat162float(dO[r * Dh + d]) * __bfloat162float(out[r * Dh + d]);
    delta[r] = s;
  }
  launch(dim3(tiles, unsigned(Hkv)), [&] {
    gradKvTcKernel<Dh>(q.data(), k.data(), v.data(), starts, ends, lse.data(), delta.data(), dO.data(), dk.data(),
                       dv.data(), T, H, Hkv, scale, st);
  });
  launch(dim3(tiles, unsigned(H)), [&] {
    gradQTcKernel<Dh>(q.data(), k.data(), v.data(), starts, ends, lse.data(), delta.data(), dO.data(), dq.data(), T, H,
                      Hkv, scale, st);
  });
}

bool readAll(FILE* f, void* p, size_t bytes) { return std::fread(p, 1, bytes, f) == bytes; }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return std::fprintf(stderr, "usage: attentionTcEmulation IN OUT\n"), 1;
  FILE* in = std::fopen(argv[1], "rb");
  int32_t dims[4];
  float scale;
  if (!in || !readAll(in, dims, sizeof dims) || !readAll(in, &scale, sizeof scale)) return std::fprintf(stderr, "bad input\n"), 1;
  const int64_t T = dims[0], H = dims[1], Hkv = dims[2], Dh = dims[3];
  std::vector<int32_t> starts(T), ends(T);
  auto bf16s = [&](int64_t n, std::vector<__nv_bfloat16>& dst) {
    std::vector<float> x(n);
    if (!readAll(in, x.data(), sizeof(float) * n)) return false;
    dst.resize(n);
    for (int64_t i = 0; i < n; i++) dst[i] = __float2bfloat16(x[i]);
    return true;
  };
  std::vector<__nv_bfloat16> q, k, v, dO;
  if (!readAll(in, starts.data(), 4 * T) || !readAll(in, ends.data(), 4 * T) || !bf16s(T * H * Dh, q) ||
      !bf16s(T * Hkv * Dh, k) || !bf16s(T * Hkv * Dh, v) || !bf16s(T * H * Dh, dO))
    return std::fprintf(stderr, "bad input\n"), 1;
  std::fclose(in);
  std::vector<__nv_bfloat16> out(T * H * Dh), dq(T * H * Dh), dk(T * Hkv * Dh), dv(T * Hkv * Dh);
  std::vector<float> lse(T * H);
  osp::KernelStatus st{};
  switch (Dh) {
    case 64: run<64>(T, H, Hkv, scale, starts.data(), ends.data(), q, k, v, dO, out, lse, dq, dk, dv, &st); break;
    case 80: run<80>(T, H, Hkv, scale, starts.data(), ends.data(), q, k, v, dO, out, lse, dq, dk, dv, &st); break;
    case 96: run<96>(T, H, Hkv, scale, starts.data(), ends.data(), q, k, v, dO, out, lse, dq, dk, dv, &st); break;
    case 128: run<128>(T, H, Hkv, scale, starts.data(), ends.data(), q, k, v, dO, out, lse, dq, dk, dv, &st); break;
    default: return std::fprintf(stderr, "head dim %lld is not a tensor-core head dim\n", (long long)Dh), 1;
  }
  if (st.code) return std::fprintf(stderr, "kernel status %d at %lld\n", st.code, st.index), 1;
  FILE* o = std::fopen(argv[2], "wb");
  auto put = [&](const std::vector<__nv_bfloat16>& x) {
    for (auto e : x) {
      const float f = __bfloat162float(e);
      std::fwrite(&f, 4, 1, o);
    }
  };
  put(out);
  std::fwrite(lse.data(), 4, lse.size(), o);
  put(dq);
  put(dk);
  put(dv);
  return std::fclose(o) == 0 ? 0 : 1;
}

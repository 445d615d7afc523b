// kvCacheWrite and cachedAttention: argument checks, allocation, dispatch to the CPU or CUDA
// kernels, and the RangeError for an out-of-range slot or position (maths in kv_cache.h).
#include "kv_cache.h"

#include <cmath>
#include <string>

#include "../../core/check.h"
#include "../../core/cuda_backend.h"
#include "../../core/sync.h"

namespace osp {

namespace {

struct CacheDims {
  int64_t S, L, Hkv, Dh;
};

// A [S, L, Hkv, Dh] cache; `ref` / `refName` is the tensor whose device and dtype it must share.
CacheDims checkCache(const ArgCheck& c, const Tensor& cache, const char* name, const Tensor& ref, const char* refName) {
  c.dims(cache, name, 4);
  c.contiguous(cache, name);
  c.sameDevice(ref, refName, cache, name);
  c.sameDtype(ref, refName, cache, name);
  return {cache.shape[0], cache.shape[1], cache.shape[2], cache.shape[3]};
}

// slots and positions: [N] i32 on ref's device.
void checkIndices(const ArgCheck& c, const Tensor& slots, const Tensor& positions, const Tensor& ref, const char* refName,
                  int64_t N, const std::string& why) {
  for (auto [t, name] : {std::pair<const Tensor*, const char*>{&slots, "slots"}, {&positions, "positions"}}) {
    c.dims(*t, name, 1);
    c.contiguous(*t, name);
    c.dtype(*t, name, {DType::I32});
    c.sameDevice(ref, refName, *t, name);
    c.size(*t, name, 0, N, why);
  }
}

// The kernels report the row i whose slot or position is out of range; name the one that is.
// `cacheName`: the cache whose slots (dimension 0) and positions (dimension 1) they index.
void raise(const ArgCheck& c, const KernelStatus& st, const Tensor& slots, const Tensor& positions, int64_t S, int64_t L,
           const char* cacheName) {
  if (st.code == StatusIndexOutOfRange) {
    const std::string i = std::to_string(st.index);
    const int32_t s = readInt(slots, st.index);
    if (s < 0 || s >= S)
      c.status(st, "slots[" + i + "] = " + std::to_string(s) + " is outside [0, " + std::to_string(S) + ") (the slots of " +
                       cacheName + ")");
    c.status(st, "positions[" + i + "] = " + std::to_string(readInt(positions, st.index)) + " is outside [0, " +
                     std::to_string(L) + ") (the positions of " + cacheName + ")");
  }
  c.status(st, "kernel reported status " + std::to_string(st.code));
}

}  // namespace

void kvCacheWrite(const Tensor& cache, const Tensor& values, const Tensor& slots, const Tensor& positions) {
  ArgCheck c{"kvCacheWrite"};
  c.dims(cache, "cache", 4);
  c.contiguous(cache, "cache");
  c.floating(cache, "cache");
  const int64_t S = cache.shape[0], L = cache.shape[1], Hkv = cache.shape[2], Dh = cache.shape[3];
  c.companion(values, "values", 3, cache, "cache");
  c.size(values, "values", 1, Hkv, "the kv heads of cache");
  c.size(values, "values", 2, Dh, "the head dimension of cache");
  const int64_t N = values.shape[0];
  checkIndices(c, slots, positions, values, "values", N, "one per row of values");
  if (N == 0) return;
  KernelStatus st{};
  const int64_t row = Hkv * Dh;
  if (cache.device == Device::CPU) {
    if (cache.dtype == DType::F64)
      kv_cache::writeCpu(cache.data<double>(), values.data<double>(), slots.data<int32_t>(), positions.data<int32_t>(), N,
                         S, L, row, &st);
    else
      kv_cache::writeCpu(cache.data<float>(), values.data<float>(), slots.data<int32_t>(), positions.data<int32_t>(), N, S,
                         L, row, &st);
  } else {
#ifdef OSP_WITH_CUDA
    cuda::runCudaOp(
        c.op,
        [&](KernelStatus* s) {
          kv_cache::writeCuda(cache.raw(), values.raw(), slots.data<int32_t>(), positions.data<int32_t>(),
                              cache.dtype == DType::BF16, N, S, L, row, s);
        },
        [c, slots, positions, S, L](const KernelStatus& s) { raise(c, s, slots, positions, S, L, "cache"); });
#endif
  }
  raise(c, st, slots, positions, S, L, "cache");
}

Tensor cachedAttention(const Tensor& q, const Tensor& kCache, const Tensor& vCache, const Tensor& slots,
                       const Tensor& positions, std::optional<double> scale) {
  ArgCheck c{"cachedAttention"};
  c.dims(q, "q", 3);
  c.contiguous(q, "q");
  c.floating(q, "q");
  const int64_t N = q.shape[0], H = q.shape[1], Dh = q.shape[2];
  const CacheDims k = checkCache(c, kCache, "kCache", q, "q");
  c.size(kCache, "kCache", 3, Dh, "the head dimension of q");
  checkCache(c, vCache, "vCache", q, "q");
  c.size(vCache, "vCache", 0, k.S, "the slots of kCache");
  c.size(vCache, "vCache", 1, k.L, "the length of kCache");
  c.size(vCache, "vCache", 2, k.Hkv, "the kv heads of kCache");
  c.size(vCache, "vCache", 3, Dh, "the head dimension of q");
  if (k.Hkv < 1 || H % k.Hkv != 0)
    typeError(c.prefix("kCache") + " has shape " + shapeString(kCache.shape) + " (" + std::to_string(k.Hkv) +
              " kv heads); expected a number of kv heads >= 1 that divides q's " + std::to_string(H) + " heads");
  if (q.device == Device::CUDA && Dh > 1024)
    typeError(c.prefix("q") + " has shape " + shapeString(q.shape) + "; expected a head dimension <= 1024 on cuda");
  checkIndices(c, slots, positions, q, "q", N, "one per query of q");
  double s = Dh > 0 ? 1.0 / std::sqrt(double(Dh)) : 1.0;
  if (scale) {
    c.finite(*scale, "scale");
    if (!(*scale > 0)) rangeError(c.prefix("scale") + " is " + formatNumber(*scale) + "; expected a number > 0");
    s = *scale;
  }
  Tensor out = Tensor::empty(q.shape, q.dtype, q.device);
  if (N == 0 || H == 0) return out;
  KernelStatus st{};
  if (q.device == Device::CPU) {
    if (q.dtype == DType::F64)
      kv_cache::attentionCpu(q.data<double>(), kCache.data<double>(), vCache.data<double>(), slots.data<int32_t>(),
                             positions.data<int32_t>(), out.data<double>(), N, H, k.Hkv, Dh, k.S, k.L, s, &st);
    else
      kv_cache::attentionCpu(q.data<float>(), kCache.data<float>(), vCache.data<float>(), slots.data<int32_t>(),
                             positions.data<int32_t>(), out.data<float>(), N, H, k.Hkv, Dh, k.S, k.L, s, &st);
  } else {
#ifdef OSP_WITH_CUDA
    if (N * H > 2147483647)
      rangeError("cachedAttention: " + std::to_string(N) + " queries x " + std::to_string(H) + " heads exceed the CUDA grid's 2^31 - 1 blocks");
    const int64_t scratchFloats = kv_cache::decodeScratchFloats(N, H, Dh, k.L);
    Tensor scratch = scratchFloats > 0 ? Tensor::empty({scratchFloats}, DType::F32, q.device) : Tensor();
    cuda::runCudaOp(
        c.op,
        [&](KernelStatus* status) {
          kv_cache::attentionCuda(q.raw(), kCache.raw(), vCache.raw(), slots.data<int32_t>(), positions.data<int32_t>(),
                                  out.raw(), scratchFloats > 0 ? scratch.data<float>() : nullptr, q.dtype == DType::BF16, N, H, k.Hkv, Dh, k.S, k.L, static_cast<float>(s),
                                  status);
        },
        [c, slots, positions, S = k.S, L = k.L](const KernelStatus& st) { raise(c, st, slots, positions, S, L, "kCache"); });
#endif
  }
  raise(c, st, slots, positions, k.S, k.L, "kCache");
  return out;
}

}  // namespace osp

// causalAttention: argument checks, the sequence start / end arrays, allocation and dispatch to the
// CPU or CUDA kernels (maths in attention.h).
#include "attention.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <unordered_set>
#include <vector>

#include "../../core/check.h"
#include "../../core/cuda_backend.h"
#include "../../core/sync.h"

namespace osp {

namespace {

struct Dims {
  int64_t T, H, Hkv, Dh;
  double scale;
};

Dims checkArgs(const ArgCheck& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& ids,
               std::optional<double> scale) {
  c.dims(q, "q", 3);
  c.contiguous(q, "q");
  c.floating(q, "q");
  const int64_t T = q.shape[0], H = q.shape[1], Dh = q.shape[2];
  for (auto [t, name] : {std::pair<const Tensor*, const char*>{&k, "k"}, {&v, "v"}}) {
    c.dims(*t, name, 3);
    c.contiguous(*t, name);
    c.sameDevice(q, "q", *t, name);
    c.sameDtype(q, "q", *t, name);
    c.size(*t, name, 0, T, "one row per token of q");
    c.size(*t, name, 2, Dh, "the head dimension of q");
  }
  const int64_t Hkv = k.shape[1];
  c.size(v, "v", 1, Hkv, "the kv heads of k");
  if (Hkv < 1 || H % Hkv != 0)
    typeError(c.prefix("k") + " has shape " + shapeString(k.shape) + " (" + std::to_string(Hkv) +
              " kv heads); expected a number of kv heads >= 1 that divides q's " + std::to_string(H) + " heads");
  if (q.device == Device::CUDA && Dh > 1024)
    typeError(c.prefix("q") + " has shape " + shapeString(q.shape) + "; expected a head dimension <= 1024 on cuda");
  c.dims(ids, "sequenceIds", 1);
  c.contiguous(ids, "sequenceIds");
  c.dtype(ids, "sequenceIds", {DType::I32});
  c.sameDevice(q, "q", ids, "sequenceIds");
  c.size(ids, "sequenceIds", 0, T, "one sequence id per token of q");
  double s = Dh > 0 ? 1.0 / std::sqrt(double(Dh)) : 1.0;
  if (scale) {
    c.finite(*scale, "scale");
    if (!(*scale > 0)) rangeError(c.prefix("scale") + " is " + formatNumber(*scale) + "; expected a number > 0");
    s = *scale;
  }
  return {T, H, Hkv, Dh, s};
}

// starts[i], ends[i] on the host from a host copy of the ids; a RangeError names the first id that
// reappears after another sequence started.
void sequenceBounds(const ArgCheck& c, const Tensor& ids, std::vector<int32_t>& starts, std::vector<int32_t>& ends) {
  const int64_t T = ids.shape[0];
  std::vector<int32_t> h(static_cast<size_t>(T));
  if (T > 0) toHost(ids, h.data());
  starts.resize(static_cast<size_t>(T));
  ends.resize(static_cast<size_t>(T));
  std::unordered_set<int32_t> done;
  int64_t s = 0;
  for (int64_t i = 0; i <= T; i++) {
    if (i < T && i > 0 && h[i] == h[i - 1]) continue;
    for (int64_t j = s; j < i; j++) {
      starts[j] = static_cast<int32_t>(s);
      ends[j] = static_cast<int32_t>(i);
    }
    if (i == T) break;
    if (i > 0) done.insert(h[i - 1]);
    if (done.count(h[i]))
      rangeError(std::string(c.op) + ": sequenceIds[" + std::to_string(i) + "] = " + std::to_string(h[i]) +
                 " reappears after sequence " + std::to_string(h[i - 1]) +
                 " started; expected the tokens of each sequence to be contiguous");
    s = i;
  }
}

Tensor deviceInts(const std::vector<int32_t>& a, Device d) {
  return fromHost(a.data(), {static_cast<int64_t>(a.size())}, DType::I32, d);
}

// A precomputed spans tensor: i32 [2, T], contiguous, on q's device.
void checkSpans(const ArgCheck& c, const Tensor& spans, const Tensor& q, int64_t T) {
  c.dims(spans, "spans", 2);
  c.contiguous(spans, "spans");
  c.dtype(spans, "spans", {DType::I32});
  c.sameDevice(q, "q", spans, "spans");
  c.size(spans, "spans", 0, 2, "a row of sequence starts and a row of sequence ends");
  c.size(spans, "spans", 1, T, "one column per token of q");
}

// The RangeError for spans column i (found by the host check or reported by a kernel).
[[noreturn]] void badSpan(const ArgCheck& c, const Tensor& spans, int64_t i, int64_t T) {
  auto col = [&](int64_t j) {
    return "spans[:, " + std::to_string(j) + "] = [" + std::to_string(readInt(spans, j)) + ", " +
           std::to_string(readInt(spans, T + j)) + "]";
  };
  const int64_t s = readInt(spans, i), e = readInt(spans, T + i);
  const std::string is = std::to_string(i);
  if (!(0 <= s && s <= i && i < e && e <= T))
    rangeError(c.prefix(col(i).c_str()) + "; expected a start and an end with 0 <= start <= " + is + " < end <= " +
               std::to_string(T));
  rangeError(c.prefix(col(i).c_str()) + " follows " + col(i - 1) + "; expected the same span (the same sequence) or one starting at " +
             is + " where the previous one ends");
}

// Where the kernels read the starts and ends: from `spans` (checked on the host when it lives on the
// cpu, by the kernels on cuda) or from host arrays derived from sequenceIds.
struct Bounds {
  std::vector<int32_t> starts, ends;  // host copies, without spans
  Tensor devStarts, devEnds;          // their uploads (cuda, without spans)
  const int32_t* s = nullptr;
  const int32_t* e = nullptr;
};

Bounds bounds(const ArgCheck& c, const Tensor& q, const Tensor& ids, const Tensor* spans, int64_t T) {
  Bounds b;
  if (spans) {
    checkSpans(c, *spans, q, T);
    if (T == 0) return b;
    b.s = spans->data<int32_t>();
    b.e = b.s + T;
    if (spans->device == Device::CPU)
      for (int64_t i = 0; i < T; i++)
        if (!attention::spanValid(b.s, b.e, i, T)) badSpan(c, *spans, i, T);
    return b;
  }
  sequenceBounds(c, ids, b.starts, b.ends);
  b.s = b.starts.data();
  b.e = b.ends.data();
#ifdef OSP_WITH_CUDA
  if (q.device != Device::CPU && T > 0) {
    b.devStarts = deviceInts(b.starts, q.device);
    b.devEnds = deviceInts(b.ends, q.device);
    b.s = b.devStarts.data<int32_t>();
    b.e = b.devEnds.data<int32_t>();
  }
#endif
  return b;
}

#ifdef OSP_WITH_CUDA
// A cuda launch: with spans the kernels check them (a deferred check naming the bad column);
// without, the bounds came from the host and need no check.
void launchChecked(const ArgCheck& c, const Tensor* spans, int64_t T, const std::function<void(KernelStatus*)>& launch) {
  if (!spans) {
    launch(nullptr);
    cuda::checkLaunch(c.op);
    return;
  }
  cuda::runCudaOp(c.op, launch, [c, sp = *spans, T](const KernelStatus& r) {
    if (r.code == StatusSequenceSpan) badSpan(c, sp, r.index, T);
    c.status(r, "kernel reported status " + std::to_string(r.code));
  });
}

// Whether a cuda call takes the tensor-core path (attention_tc.cu): bf16, a head dim with
// tensorCoreHeadDim, every tensor 16-byte aligned (a view may start anywhere), an sm_80+ device,
// and OSP_ATTENTION unset, "" or "auto"; OSP_ATTENTION=simt forces the SIMT kernels. Read on every
// call, so one process (the tests, the bench) can compare the two paths.
bool useTensorCores(const ArgCheck& c, const Dims& d, const Tensor& q, std::initializer_list<const Tensor*> ts) {
  const char* env = std::getenv("OSP_ATTENTION");
  const std::string mode = env ? env : "";
  if (mode == "simt") return false;
  if (!mode.empty() && mode != "auto")
    rangeError(std::string(c.op) + ": OSP_ATTENTION is '" + mode + "'; expected 'auto' (or unset) or 'simt'");
  if (q.dtype != DType::BF16 || !attention::tensorCoreHeadDim(d.Dh)) return false;
  for (const Tensor* t : ts)
    if (reinterpret_cast<uintptr_t>(t->raw()) % 16 != 0) return false;
  static const bool available = attention::tensorCoresAvailable();
  return available;
}
#endif

}  // namespace

AttentionResult causalAttention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& ids,
                                std::optional<double> scale, const Tensor* spans) {
  ArgCheck c{"causalAttention"};
  const Dims d = checkArgs(c, q, k, v, ids, scale);
  const DType lseType = q.dtype == DType::F64 ? DType::F64 : DType::F32;
  Bounds b = bounds(c, q, ids, spans, d.T);
  AttentionResult r{Tensor::empty(q.shape, q.dtype, q.device), Tensor::empty({d.T, d.H}, lseType, q.device)};
  if (d.T == 0 || d.H == 0) return r;
  if (q.device == Device::CPU) {
    if (q.dtype == DType::F64)
      attention::forwardCpu(q.data<double>(), k.data<double>(), v.data<double>(), b.s, r.out.data<double>(),
                            r.logsumexp.data<double>(), d.T, d.H, d.Hkv, d.Dh, d.scale);
    else
      attention::forwardCpu(q.data<float>(), k.data<float>(), v.data<float>(), b.s, r.out.data<float>(),
                            r.logsumexp.data<float>(), d.T, d.H, d.Hkv, d.Dh, d.scale);
  } else {
#ifdef OSP_WITH_CUDA
    const bool tc = useTensorCores(c, d, q, {&q, &k, &v, &r.out});
    launchChecked(c, spans, d.T, [&](KernelStatus* st) {
      attention::forwardCuda(q.raw(), k.raw(), v.raw(), b.s, b.e, r.out.raw(), r.logsumexp.data<float>(),
                             q.dtype == DType::BF16, tc, d.T, d.H, d.Hkv, d.Dh, static_cast<float>(d.scale), st);
    });
#endif
  }
  return r;
}

AttentionGrads causalAttentionBackward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& ids,
                                       const Tensor& out, const Tensor& lse, const Tensor& gradOut,
                                       std::optional<double> scale, const Tensor* spans) {
  ArgCheck c{"causalAttentionBackward"};
  const Dims d = checkArgs(c, q, k, v, ids, scale);
  for (auto [t, name] : {std::pair<const Tensor*, const char*>{&out, "out"}, {&gradOut, "gradOut"}}) {
    c.dims(*t, name, 3);
    c.contiguous(*t, name);
    c.sameDevice(q, "q", *t, name);
    c.sameDtype(q, "q", *t, name);
    for (int64_t i = 0; i < 3; i++) c.size(*t, name, i, q.shape[i], "the shape of q");
  }
  c.dims(lse, "logsumexp", 2);
  c.contiguous(lse, "logsumexp");
  c.sameDevice(q, "q", lse, "logsumexp");
  c.dtype(lse, "logsumexp", {q.dtype == DType::F64 ? DType::F64 : DType::F32});
  c.size(lse, "logsumexp", 0, d.T, "one row per token of q");
  c.size(lse, "logsumexp", 1, d.H, "one value per head of q");
  Bounds b = bounds(c, q, ids, spans, d.T);
  AttentionGrads r{Tensor::zeros(q.shape, q.dtype, q.device), Tensor::zeros(k.shape, q.dtype, q.device),
                   Tensor::zeros(v.shape, q.dtype, q.device)};
  if (d.T == 0 || d.H == 0) return r;
  if (q.device == Device::CPU) {
    if (q.dtype == DType::F64)
      attention::backwardCpu(q.data<double>(), k.data<double>(), v.data<double>(), b.s, b.e, out.data<double>(),
                             lse.data<double>(), gradOut.data<double>(), r.gradQ.data<double>(), r.gradK.data<double>(),
                             r.gradV.data<double>(), d.T, d.H, d.Hkv, d.Dh, d.scale);
    else
      attention::backwardCpu(q.data<float>(), k.data<float>(), v.data<float>(), b.s, b.e, out.data<float>(),
                             lse.data<float>(), gradOut.data<float>(), r.gradQ.data<float>(), r.gradK.data<float>(),
                             r.gradV.data<float>(), d.T, d.H, d.Hkv, d.Dh, d.scale);
  } else {
#ifdef OSP_WITH_CUDA
    Tensor delta = Tensor::empty({d.T, d.H}, DType::F32, q.device);
    const bool tc = useTensorCores(c, d, q, {&q, &k, &v, &out, &gradOut, &r.gradQ, &r.gradK, &r.gradV});
    launchChecked(c, spans, d.T, [&](KernelStatus* st) {
      attention::backwardCuda(q.raw(), k.raw(), v.raw(), b.s, b.e, out.raw(), lse.data<float>(), gradOut.raw(),
                              r.gradQ.raw(), r.gradK.raw(), r.gradV.raw(), delta.data<float>(), q.dtype == DType::BF16,
                              tc, d.T, d.H, d.Hkv, d.Dh, static_cast<float>(d.scale), st);
    });
#endif
  }
  return r;
}

}  // namespace osp

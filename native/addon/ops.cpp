// The op bindings (declared in ops.h, registered by addon.cpp's table). Tensors come positionally,
// every other parameter in one options object read with args.h's Options; errors name
// "<op>: <field>". The maths lives in native/kernels, storage, views and conversion in native/core.
#include "ops.h"

#include <algorithm>
#include <cmath>

#include "../core/bandwidth.h"
#include "../core/cuda_backend.h"
#include "../core/parallel.h"
#include "../core/simd.h"
#include "../core/sync.h"
#include "../core/tensor.h"
#include "../kernels/adamw/adamw.h"
#include "../kernels/attention/attention.h"
#include "../kernels/elementwise/elementwise.h"
#include "../kernels/embedding/embedding.h"
#include "../kernels/kv_cache/kv_cache.h"
#include "../kernels/log_softmax/log_softmax.h"
#include "../kernels/matmul/cublas.h"
#include "../kernels/matmul/matmul.h"
#include "../kernels/preference_loss/preference_loss.h"
#include "../kernels/random/random.h"
#include "../kernels/random/random_common.h"
#include "../kernels/rms_norm/rms_norm.h"
#include "../kernels/rope/rope.h"
#include "../kernels/sampling/sampling.h"
#include "../kernels/sequence_logprobs/sequence_logprobs.h"
#include "../kernels/swiglu/swiglu.h"
#include "../kernels/token_logprobs/token_logprobs.h"
#include "args.h"
#include "handle.h"

namespace osp::addon {

namespace {
Napi::Value handle(const Napi::CallbackInfo& info, Tensor t) { return NativeTensor::wrap(info.Env(), std::move(t)); }
}  // namespace

// ---- tensors and the runtime -------------------------------------------------------------------

// isTensor(v): whether v is a NativeTensor made by this addon (not an object inheriting from one).
Napi::Value isTensor(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), NativeTensor::unwrapOrNull(info.Env(), info[0]) != nullptr);
}

// fromArray(data: Float32Array | Float64Array | Int32Array | Uint16Array (bf16 bits), {shape, dtype, device})
Napi::Value fromArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "tensor";
  if (!info[0].IsTypedArray())
    throw Napi::TypeError::New(env, "tensor: data must be a Float32Array, Float64Array, Int32Array or Uint16Array (bf16 bits)");
  auto ta = info[0].As<Napi::TypedArray>();
  const Options o(info, 1, op);
  const std::vector<int64_t> shape = o.shape("shape");
  const DType dt = o.dtype("dtype");
  const int64_t numel = checkedNumel(shape, dt, "tensor: shape");
  const Device dev = o.device("device");
  checkPlacement(dt, dev, op);
  if (static_cast<int64_t>(ta.ElementLength()) != numel)
    throw Napi::RangeError::New(env, "tensor: data has " + std::to_string(ta.ElementLength()) + " elements but shape " +
                                         shapeString(shape) + " needs " + std::to_string(numel));
  const napi_typedarray_type at = ta.TypedArrayType();
  if (dt == DType::I32 && at != napi_int32_array)
    throw Napi::TypeError::New(env, "tensor: dtype i32 needs an Int32Array; got another typed array");
  const bool bf16Bits = dt == DType::BF16 && at == napi_uint16_array;
  if (dt != DType::I32 && !bf16Bits && at != napi_float32_array && at != napi_float64_array)
    throw Napi::TypeError::New(env, std::string("tensor: dtype ") + dtypeName(dt) +
                                        " needs a Float32Array or Float64Array (or Uint16Array of bf16 bits for bf16)");
  const DType dataDtype = at == napi_int32_array ? DType::I32 : bf16Bits ? DType::BF16 : at == napi_float64_array ? DType::F64 : DType::F32;
  const uint8_t* base = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  return handle(info, fromHostAs(base, dataDtype, shape, dt, dev));
}

// zeros({shape, dtype, device}): made where it lives (no host transfer).
Napi::Value zeros(const Napi::CallbackInfo& info) {
  const char* op = "zeros";
  const Options o(info, 0, op);
  const std::vector<int64_t> shape = o.shape("shape");
  const DType dt = o.dtype("dtype");
  const Device dev = o.device("device");
  checkPlacement(dt, dev, op);
  checkedNumel(shape, dt, "zeros: shape");
  return handle(info, Tensor::zeros(shape, dt, dev));
}

// randomFill({distribution: 'normal', shape, dtype, device, seed, mean, std}), or 'uniform' with
// {low, high}, or 'dropout' with {p}: generated where it lives. Errors name randn, randu or dropoutMask.
Napi::Value randomFill(const Napi::CallbackInfo& info) {
  using osp::random::Distribution;
  const Distribution d = Options(info, 0, "randomFill").choice<Distribution>(
      "distribution", {{"normal", Distribution::Normal}, {"uniform", Distribution::Uniform}, {"dropout", Distribution::Dropout}});
  const char* op = d == Distribution::Normal ? "randn" : d == Distribution::Uniform ? "randu" : "dropoutMask";
  const Options o(info, 0, op);
  const std::vector<int64_t> shape = o.shape("shape");
  const DType dt = o.dtype("dtype");
  const Device dev = o.device("device");
  checkPlacement(dt, dev, op);
  checkedNumel(shape, dt, std::string(op) + ": shape");
  const double seed = o.number("seed");
  if (!(seed >= 0) || seed != std::floor(seed) || seed > 9007199254740991.0)
    throw Napi::RangeError::New(info.Env(), std::string(op) + ": seed must be a non-negative integer");
  osp::RandomFill fill{d};
  if (d == Distribution::Normal) fill.a = o.number("mean"), fill.b = o.number("std");
  else if (d == Distribution::Uniform) fill.a = o.number("low"), fill.b = o.number("high");
  else fill.a = o.number("p");
  return handle(info, osp::randomFill(shape, dt, dev, static_cast<uint64_t>(seed), fill));
}

// backends(): {cpu: {threads, isa}, cuda: {compiled, available, devices, reason?, blas}}
Napi::Value backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("threads", cpuThreads());
  cpu.Set("isa", simd::isaName(simd::cpuIsa()));
  Napi::Object c = Napi::Object::New(env);
  c.Set("compiled", cuda::compiled());
  auto devs = cuda::devices();
  c.Set("available", !devs.empty());
  Napi::Array arr = Napi::Array::New(env, devs.size());
  for (size_t i = 0; i < devs.size(); i++) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", devs[i].name);
    d.Set("memoryBytes", double(devs[i].memoryBytes));
    d.Set("computeCapability", std::to_string(devs[i].major) + "." + std::to_string(devs[i].minor));
    // Theoretical DRAM bandwidth (bytes/s) where the runtime reports the memory clock: 2 x clock x bus.
    double bw = devs[i].memoryClockKHz > 0 ? 2.0 * devs[i].memoryClockKHz * 1e3 * devs[i].memoryBusWidthBits / 8 : 0;
    d.Set("peakBandwidthBytesPerSecond", bw);
    arr.Set(static_cast<uint32_t>(i), d);
  }
  c.Set("devices", arr);
  if (devs.empty()) c.Set("reason", cuda::probeError());
  // The GEMM the CUDA matmul uses, and why (loading cuBLAS is attempted only where a device answers).
  c.Set("blas", devs.empty() ? std::string("none: no CUDA device") : cublas::describe());
  Napi::Object o = Napi::Object::New(env);
  o.Set("cpu", cpu);
  o.Set("cuda", c);
  return o;
}

Napi::Value synchronize(const Napi::CallbackInfo& info) {
  osp::synchronize();  // counted on every backend; on cuda also raises pending value checks
  return info.Env().Undefined();
}

// memoryStats(): {cpu, cuda: {currentBytes, peakBytes, cachedBytes}}
Napi::Value memoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  for (Device d : {Device::CPU, Device::CUDA}) {
    MemoryStats m = osp::memoryStats(d);
    Napi::Object e = Napi::Object::New(env);
    e.Set("currentBytes", double(m.current));
    e.Set("peakBytes", double(m.peak));
    e.Set("cachedBytes", double(m.cached));
    o.Set(deviceName(d), e);
  }
  return o;
}

Napi::Value resetPeakMemory(const Napi::CallbackInfo& info) {
  osp::resetPeakMemory();
  return info.Env().Undefined();
}

// syncStats(): host waits since the last reset, by kind (sync.h says what counts).
Napi::Value syncStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const SyncStats s = osp::syncStats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("hostWaits", double(s.hostWaits()));
  o.Set("reads", double(s.reads));
  o.Set("synchronizes", double(s.synchronizes));
  o.Set("statusReads", double(s.statusReads));
  o.Set("uploadWaits", double(s.uploadWaits));
  return o;
}

Napi::Value resetSyncStats(const Napi::CallbackInfo& info) {
  osp::resetSyncStats();
  return info.Env().Undefined();
}

// hostParallelCopy(dst, src): the bench's copy-bandwidth probe (core/bandwidth.h)
Napi::Value hostParallelCopy(const Napi::CallbackInfo& info) {
  const char* op = "hostParallelCopy";
  osp::hostParallelCopy(tensorArg(info, 0, op, "dst"), tensorArg(info, 1, op, "src"), op);
  return info.Env().Undefined();
}

// hostParallelReadSum(x) -> number: the bench's read-bandwidth probe
Napi::Value hostParallelReadSum(const Napi::CallbackInfo& info) {
  const char* op = "hostParallelReadSum";
  return Napi::Number::New(info.Env(), osp::hostParallelReadSum(tensorArg(info, 0, op, "x"), op));
}

// ---- log-probs and losses ----------------------------------------------------------------------

// tokenLogprobs(logits, targets, {ignoreIndex})
Napi::Value tokenLogprobs(const Napi::CallbackInfo& info) {
  const char* op = "tokenLogprobs";
  const Tensor& logits = tensorArg(info, 0, op, "logits");
  const Tensor& targets = tensorArg(info, 1, op, "targets");
  const Options o(info, 2, op);
  return handle(info, osp::tokenLogprobs(logits, targets, o.int32("ignoreIndex")));
}

// tokenLogprobsWithLogsumexp(logits, targets, {ignoreIndex}) -> {logprobs, logsumexp}
Napi::Value tokenLogprobsWithLogsumexp(const Napi::CallbackInfo& info) {
  const char* op = "tokenLogprobs";
  const Tensor& logits = tensorArg(info, 0, op, "logits");
  const Tensor& targets = tensorArg(info, 1, op, "targets");
  const Options o(info, 2, op);
  osp::TokenLogprobsResult r = osp::tokenLogprobsWithLogsumexp(logits, targets, o.int32("ignoreIndex"));
  return TensorObject(info.Env()).set("logprobs", std::move(r.logprobs)).set("logsumexp", std::move(r.logsumexp));
}

// tokenLogprobsBackward(logits, targets, gradLogprobs, {ignoreIndex, inPlace, logsumexp?})
Napi::Value tokenLogprobsBackward(const Napi::CallbackInfo& info) {
  const char* op = "tokenLogprobsBackward";
  const Tensor& logits = tensorArg(info, 0, op, "logits");
  const Tensor& targets = tensorArg(info, 1, op, "targets");
  const Tensor& grad = tensorArg(info, 2, op, "gradLogprobs");
  const Options o(info, 3, op);
  const int32_t ignoreIndex = o.int32("ignoreIndex");
  return handle(info, osp::tokenLogprobsBackward(logits, targets, grad, ignoreIndex, o.boolean("inPlace"),
                                                 o.optionalTensor("logsumexp")));
}

// logSoftmax(logits)
Napi::Value logSoftmax(const Napi::CallbackInfo& info) { return handle(info, osp::logSoftmax(tensorArg(info, 0, "logSoftmax", "logits"))); }

// logSoftmaxBackward(gradOut, logSoftmaxOut)
Napi::Value logSoftmaxBackward(const Napi::CallbackInfo& info) {
  const char* op = "logSoftmaxBackward";
  const Tensor& gradOut = tensorArg(info, 0, op, "gradOut");
  return handle(info, osp::logSoftmaxBackward(gradOut, tensorArg(info, 1, op, "logSoftmaxOut")));
}

// gather(values, targets, {ignoreIndex})
Napi::Value gather(const Napi::CallbackInfo& info) {
  const char* op = "gather";
  const Tensor& values = tensorArg(info, 0, op, "values");
  const Tensor& targets = tensorArg(info, 1, op, "targets");
  const Options o(info, 2, op);
  return handle(info, osp::gather(values, targets, o.int32("ignoreIndex")));
}

// gatherBackward(grad, targets, {vocab, ignoreIndex, dtype?}): dtype defaults to grad's.
Napi::Value gatherBackward(const Napi::CallbackInfo& info) {
  const char* op = "gatherBackward";
  const Tensor& grad = tensorArg(info, 0, op, "grad");
  const Tensor& targets = tensorArg(info, 1, op, "targets");
  const Options o(info, 2, op);
  const int64_t vocab = o.size("vocab");
  const int32_t ignoreIndex = o.int32("ignoreIndex");
  return handle(info, osp::gatherBackward(grad, targets, vocab, ignoreIndex, o.dtype("dtype", grad.dtype)));
}

// sequenceLogprobs(tokenLogprobs, sequenceIds, {count, ignoreIndex})
Napi::Value sequenceLogprobs(const Napi::CallbackInfo& info) {
  const char* op = "sequenceLogprobs";
  const Tensor& lp = tensorArg(info, 0, op, "tokenLogprobs");
  const Tensor& ids = tensorArg(info, 1, op, "sequenceIds");
  const Options o(info, 2, op);
  const int64_t count = o.size("count");
  return handle(info, osp::sequenceLogprobs(lp, ids, count, o.int32("ignoreIndex")));
}

// sequenceLogprobsBackward(gradSequences, sequenceIds, {ignoreIndex})
Napi::Value sequenceLogprobsBackward(const Napi::CallbackInfo& info) {
  const char* op = "sequenceLogprobsBackward";
  const Tensor& grad = tensorArg(info, 0, op, "gradSequences");
  const Tensor& ids = tensorArg(info, 1, op, "sequenceIds");
  const Options o(info, 2, op);
  return handle(info, osp::sequenceLogprobsBackward(grad, ids, o.int32("ignoreIndex")));
}

// preferenceLoss(policyChosen, policyRejected, refChosen, refRejected, {kind, beta, target?})
//   -> {loss, losses, pHat, margins, gradPolicyChosen, gradPolicyRejected}
Napi::Value preferenceLoss(const Napi::CallbackInfo& info) {
  const char* op = "preferenceLoss";
  const Tensor& pc = tensorArg(info, 0, op, "policyChosen");
  const Tensor& pr = tensorArg(info, 1, op, "policyRejected");
  const Tensor& rc = tensorArg(info, 2, op, "refChosen");
  const Tensor& rr = tensorArg(info, 3, op, "refRejected");
  const Options o(info, 4, op);
  const auto kind = o.choice<PreferenceKind>("kind", {{"spce", PreferenceKind::SPCE}, {"dpo", PreferenceKind::DPO}, {"ipo", PreferenceKind::IPO}});
  const Tensor* target = o.optionalTensor("target");
  PreferenceResult r = osp::preferenceLoss(kind, pc, pr, rc, rr, target, o.number("beta"));
  return TensorObject(info.Env())
      .set("loss", std::move(r.loss))
      .set("losses", std::move(r.losses))
      .set("pHat", std::move(r.pHat))
      .set("margins", std::move(r.margins))
      .set("gradPolicyChosen", std::move(r.gradPolicyChosen))
      .set("gradPolicyRejected", std::move(r.gradPolicyRejected));
}

// ---- elementwise -------------------------------------------------------------------------------

// binary(a, b, {op: 'add' | 'sub' | 'mul'}): errors name the op ("add: a").
Napi::Value binary(const Napi::CallbackInfo& info) {
  const Options o(info, 2, "binary");
  const BinaryOp b = o.choice<BinaryOp>("op", {{"add", BinaryOp::Add}, {"sub", BinaryOp::Sub}, {"mul", BinaryOp::Mul}});
  const char* op = b == BinaryOp::Add ? "add" : b == BinaryOp::Sub ? "sub" : "mul";
  const Tensor& x = tensorArg(info, 0, op, "a");
  return handle(info, osp::binary(b, x, tensorArg(info, 1, op, "b")));
}

// unary(x, {op: 'neg' | 'sigmoid' | 'softplus' | 'logSigmoid' | 'square' | 'exp' | 'log'})
Napi::Value unary(const Napi::CallbackInfo& info) {
  const char* op = "unary";
  const Options o(info, 1, op);
  const UnaryOp u = o.choice<UnaryOp>("op", {{"neg", UnaryOp::Neg},
                                             {"sigmoid", UnaryOp::Sigmoid},
                                             {"softplus", UnaryOp::Softplus},
                                             {"logSigmoid", UnaryOp::LogSigmoid},
                                             {"square", UnaryOp::Square},
                                             {"exp", UnaryOp::Exp},
                                             {"log", UnaryOp::Log}});
  return handle(info, osp::unary(u, tensorArg(info, 0, op, "x")));
}

// affine(x, {scale, shift}): scale * x + shift
Napi::Value affine(const Napi::CallbackInfo& info) {
  const char* op = "affine";
  const Tensor& x = tensorArg(info, 0, op, "x");
  const Options o(info, 1, op);
  const double scale = o.number("scale");
  return handle(info, osp::affine(x, scale, o.number("shift")));
}

// sum(x) -> [1]
Napi::Value sum(const Napi::CallbackInfo& info) { return handle(info, osp::sum(tensorArg(info, 0, "sum", "x"))); }

// copyInto(dst, src): in place, returns undefined.
Napi::Value copyInto(const Napi::CallbackInfo& info) {
  const Tensor& dst = tensorArg(info, 0, "copyInto", "dst");
  osp::copyInto(dst, tensorArg(info, 1, "copyInto", "src"));
  return info.Env().Undefined();
}

// ---- model ops ---------------------------------------------------------------------------------

// matmul(a, b, {transA, transB, impl?: 'auto' | 'own' | 'cublas'})
Napi::Value matmul(const Napi::CallbackInfo& info) {
  const char* op = "matmul";
  const Tensor& a = tensorArg(info, 0, op, "a");
  const Tensor& b = tensorArg(info, 1, op, "b");
  const Options o(info, 2, op);
  const bool transA = o.boolean("transA"), transB = o.boolean("transB");
  const MatmulImpl impl =
      o.choice<MatmulImpl>("impl", MatmulImpl::Auto, {{"auto", MatmulImpl::Auto}, {"own", MatmulImpl::Own}, {"cublas", MatmulImpl::Cublas}});
  const Tensor* accumulate = o.optionalTensor("accumulate");
  osp::Tensor out = osp::matmul(a, b, transA, transB, impl, accumulate, o.boolean("tf32", false));
  if (accumulate) return info.Env().Undefined();  // written in place: the caller keeps its tensor
  return handle(info, out);
}

// rmsNorm(x, weight, {eps})
Napi::Value rmsNorm(const Napi::CallbackInfo& info) {
  const char* op = "rmsNorm";
  const Tensor& x = tensorArg(info, 0, op, "x");
  const Tensor& w = tensorArg(info, 1, op, "weight");
  return handle(info, osp::rmsNorm(x, w, Options(info, 2, op).number("eps")));
}

// rmsNormBackward(x, weight, gradOut, {eps}) -> {gradInput, gradWeight}
Napi::Value rmsNormBackward(const Napi::CallbackInfo& info) {
  const char* op = "rmsNormBackward";
  const Tensor& x = tensorArg(info, 0, op, "x");
  const Tensor& w = tensorArg(info, 1, op, "weight");
  const Tensor& g = tensorArg(info, 2, op, "gradOut");
  RmsNormGrads r = osp::rmsNormBackward(x, w, g, Options(info, 3, op).number("eps"));
  return TensorObject(info.Env()).set("gradInput", std::move(r.gradInput)).set("gradWeight", std::move(r.gradWeight));
}

// swiglu(gate, up)
Napi::Value swiglu(const Napi::CallbackInfo& info) {
  const char* op = "swiglu";
  const Tensor& gate = tensorArg(info, 0, op, "gate");
  return handle(info, osp::swiglu(gate, tensorArg(info, 1, op, "up")));
}

// swigluBackward(gate, up, gradOut) -> {gradGate, gradUp}
Napi::Value swigluBackward(const Napi::CallbackInfo& info) {
  const char* op = "swigluBackward";
  const Tensor& gate = tensorArg(info, 0, op, "gate");
  const Tensor& up = tensorArg(info, 1, op, "up");
  SwigluGrads r = osp::swigluBackward(gate, up, tensorArg(info, 2, op, "gradOut"));
  return TensorObject(info.Env()).set("gradGate", std::move(r.gradGate)).set("gradUp", std::move(r.gradUp));
}

namespace {
// rope(x, positions, {theta, scalingFactor, invFreq?}) and ropeBackward(gradOut, ...): invFreq, a
// Float64Array of Dh / 2 inverse frequencies, replaces theta and scalingFactor (then not read).
Napi::Value ropeCall(const Napi::CallbackInfo& info, const char* op, const char* xName, int direction) {
  const Tensor& x = tensorArg(info, 0, op, xName);
  const Tensor& positions = tensorArg(info, 1, op, "positions");
  const Options o(info, 2, op);
  if (auto inv = o.optionalFloat64s("invFreq")) return handle(info, osp::rope(x, positions, *inv, direction));
  const double theta = o.number("theta");
  return handle(info, osp::rope(x, positions, theta, o.number("scalingFactor"), direction));
}
}  // namespace

Napi::Value rope(const Napi::CallbackInfo& info) { return ropeCall(info, "rope", "x", +1); }
Napi::Value ropeBackward(const Napi::CallbackInfo& info) { return ropeCall(info, "ropeBackward", "gradOut", -1); }

// ropeInvFreq({theta, scalingFactor, headDim}) -> Float64Array of headDim / 2: theta^(-2i / headDim) / scalingFactor.
Napi::Value ropeInvFreq(const Napi::CallbackInfo& info) {
  const char* op = "ropeInvFreqTable";
  const Options o(info, 0, op);
  const double theta = o.number("theta"), scalingFactor = o.number("scalingFactor");
  std::vector<double> inv = osp::ropeInvFreq(theta, scalingFactor, o.size("headDim"), op);
  auto a = Napi::Float64Array::New(info.Env(), inv.size());
  std::copy(inv.begin(), inv.end(), a.Data());
  return a;
}

// embedding(table, ids)
Napi::Value embedding(const Napi::CallbackInfo& info) {
  const char* op = "embedding";
  const Tensor& table = tensorArg(info, 0, op, "table");
  return handle(info, osp::embedding(table, tensorArg(info, 1, op, "ids")));
}

// embeddingBackward(gradOut, ids, {vocab})
Napi::Value embeddingBackward(const Napi::CallbackInfo& info) {
  const char* op = "embeddingBackward";
  const Tensor& g = tensorArg(info, 0, op, "gradOut");
  const Tensor& ids = tensorArg(info, 1, op, "ids");
  return handle(info, osp::embeddingBackward(g, ids, Options(info, 2, op).size("vocab")));
}

// ---- optimizer -----------------------------------------------------------------------------------

// sumOfSquares(x) -> [1]
Napi::Value sumOfSquares(const Napi::CallbackInfo& info) { return handle(info, osp::sumOfSquares(tensorArg(info, 0, "sumOfSquares", "x"))); }

// adamwStep(param, grad, m, v, options): in place, returns undefined. options: {lr, beta1, beta2, eps,
// weightDecay, step, gradScale?, checkFinite?, gradSumOfSquares?, maxGradNorm?} (see adamw.h);
// errors name "adamwStep: options.<field>".
Napi::Value adamwStep(const Napi::CallbackInfo& info) {
  const char* op = "adamwStep";
  const Options o(info, 4, op, "options.", "{lr, beta1, beta2, eps, weightDecay, step}");
  AdamWOptions a{o.number("lr"),   o.number("beta1"),       o.number("beta2"),         o.number("eps"),
                 o.number("weightDecay"), o.number("step"), o.number("gradScale", 1.0)};
  a.checkFinite = o.boolean("checkFinite", a.checkFinite);
  a.gradSumOfSquares = o.optionalTensor("gradSumOfSquares");
  a.maxGradNorm = o.number("maxGradNorm", 0.0);
  const Tensor& param = tensorArg(info, 0, op, "param");
  const Tensor& grad = tensorArg(info, 1, op, "grad");
  const Tensor& m = tensorArg(info, 2, op, "m");
  osp::adamwStep(param, grad, m, tensorArg(info, 3, op, "v"), a);
  return info.Env().Undefined();
}

// ---- attention, kv cache, sampling ---------------------------------------------------------------

// causalAttention(q, k, v, sequenceIds, {scale?, spans?}) -> {out, logsumexp}
Napi::Value causalAttention(const Napi::CallbackInfo& info) {
  const char* op = "causalAttention";
  const Tensor& q = tensorArg(info, 0, op, "q");
  const Tensor& k = tensorArg(info, 1, op, "k");
  const Tensor& v = tensorArg(info, 2, op, "v");
  const Tensor& ids = tensorArg(info, 3, op, "sequenceIds");
  const Options o(info, 4, op);
  const std::optional<double> scale = o.optionalNumber("scale");
  AttentionResult r = osp::causalAttention(q, k, v, ids, scale, o.optionalTensor("spans"));
  return TensorObject(info.Env()).set("out", std::move(r.out)).set("logsumexp", std::move(r.logsumexp));
}

// causalAttentionBackward(q, k, v, sequenceIds, out, logsumexp, gradOut, {scale?, spans?}) -> {gradQ, gradK, gradV}
Napi::Value causalAttentionBackward(const Napi::CallbackInfo& info) {
  const char* op = "causalAttentionBackward";
  const Tensor& q = tensorArg(info, 0, op, "q");
  const Tensor& k = tensorArg(info, 1, op, "k");
  const Tensor& v = tensorArg(info, 2, op, "v");
  const Tensor& ids = tensorArg(info, 3, op, "sequenceIds");
  const Tensor& out = tensorArg(info, 4, op, "out");
  const Tensor& lse = tensorArg(info, 5, op, "logsumexp");
  const Tensor& gradOut = tensorArg(info, 6, op, "gradOut");
  const Options o(info, 7, op);
  const std::optional<double> scale = o.optionalNumber("scale");
  AttentionGrads r = osp::causalAttentionBackward(q, k, v, ids, out, lse, gradOut, scale, o.optionalTensor("spans"));
  return TensorObject(info.Env()).set("gradQ", std::move(r.gradQ)).set("gradK", std::move(r.gradK)).set("gradV", std::move(r.gradV));
}

// kvCacheWrite(cache, values, slots, positions): in place, returns undefined.
Napi::Value kvCacheWrite(const Napi::CallbackInfo& info) {
  const char* op = "kvCacheWrite";
  const Tensor& cache = tensorArg(info, 0, op, "cache");
  const Tensor& values = tensorArg(info, 1, op, "values");
  const Tensor& slots = tensorArg(info, 2, op, "slots");
  osp::kvCacheWrite(cache, values, slots, tensorArg(info, 3, op, "positions"));
  return info.Env().Undefined();
}

// cachedAttention(q, kCache, vCache, slots, positions, {scale?}) -> out
Napi::Value cachedAttention(const Napi::CallbackInfo& info) {
  const char* op = "cachedAttention";
  const Tensor& q = tensorArg(info, 0, op, "q");
  const Tensor& kCache = tensorArg(info, 1, op, "kCache");
  const Tensor& vCache = tensorArg(info, 2, op, "vCache");
  const Tensor& slots = tensorArg(info, 3, op, "slots");
  const Tensor& positions = tensorArg(info, 4, op, "positions");
  return handle(info, osp::cachedAttention(q, kCache, vCache, slots, positions, Options(info, 5, op).optionalNumber("scale")));
}

// sampleTokens(logits, streams, steps, {seed, temperature, topP, topK}) -> {tokens, logprobs, modelLogprobs}
Napi::Value sampleTokens(const Napi::CallbackInfo& info) {
  const char* op = "sampleTokens";
  const Tensor& logits = tensorArg(info, 0, op, "logits");
  const Tensor& streams = tensorArg(info, 1, op, "streams");
  const Tensor& steps = tensorArg(info, 2, op, "steps");
  const Options o(info, 3, op);
  const double seed = o.number("seed"), temperature = o.number("temperature"), topP = o.number("topP");
  SampleResult r = osp::sampleTokens(logits, streams, steps, seed, temperature, topP, o.number("topK"));
  return TensorObject(info.Env())
      .set("tokens", std::move(r.tokens))
      .set("logprobs", std::move(r.logprobs))
      .set("modelLogprobs", std::move(r.modelLogprobs));
}

}  // namespace osp::addon

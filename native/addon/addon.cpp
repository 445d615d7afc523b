// Node-API bindings: argument conversion and validation only. Every entry catches C++ exceptions
// and rethrows them as JavaScript TypeError / RangeError / Error, so no input can abort the process.
// The maths lives in native/kernels, the storage in native/core.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "../core/bf16.h"
#include "../core/cuda_backend.h"
#include "../core/errors.h"
#include "../core/parallel.h"
#include "../core/sync.h"
#include "../core/tensor.h"
#include "../kernels/adamw/adamw.h"
#include "../kernels/attention/attention.h"
#include "../kernels/elementwise/elementwise.h"
#include "../kernels/embedding/embedding.h"
#include "../kernels/kv_cache/kv_cache.h"
#include "../kernels/log_softmax/log_softmax.h"
#include "../kernels/matmul/matmul.h"
#include "../kernels/matmul/cublas.h"
#include "../kernels/preference_loss/preference_loss.h"
#include "../kernels/random/random.h"
#include "../kernels/rms_norm/rms_norm.h"
#include "../kernels/rope/rope.h"
#include "../kernels/sampling/sampling.h"
#include "../kernels/sequence_logprobs/sequence_logprobs.h"
#include "../kernels/swiglu/swiglu.h"
#include "../kernels/token_logprobs/token_logprobs.h"

using namespace osp;

namespace {

// ---- errors -----------------------------------------------------------------------------------

[[noreturn]] void throwJs(Napi::Env env, const OspError& e) {
  switch (e.kind) {
    case OspError::Kind::Type: throw Napi::TypeError::New(env, e.what());
    case OspError::Kind::Range: throw Napi::RangeError::New(env, e.what());
    default: throw Napi::Error::New(env, e.what());
  }
}

// Wraps a binding so that every C++ exception becomes a JavaScript exception.
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& body) {
  Napi::Env env = info.Env();
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const OspError& e) {
    throwJs(env, e);
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, "out of host memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("osp native error: ") + e.what());
  }
}

// ---- the tensor handle -------------------------------------------------------------------------

class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeTensor",
                       {InstanceAccessor<&NativeTensor::shape>("shape"),
                        InstanceAccessor<&NativeTensor::strides>("strides"),
                        InstanceAccessor<&NativeTensor::dtype>("dtype"),
                        InstanceAccessor<&NativeTensor::device>("device"),
                        InstanceAccessor<&NativeTensor::disposed>("disposed"),
                        InstanceAccessor<&NativeTensor::isContiguous>("isContiguous"),
                        InstanceAccessor<&NativeTensor::nbytes>("nbytes"),
                        InstanceMethod<&NativeTensor::toArray>("toArray"),
                        InstanceMethod<&NativeTensor::dispose>("dispose"),
                        InstanceMethod<&NativeTensor::transpose>("transpose"),
                        InstanceMethod<&NativeTensor::reshape>("reshape"),
                        InstanceMethod<&NativeTensor::narrow>("narrow"),
                        InstanceMethod<&NativeTensor::contiguous>("contiguous"),
                        InstanceMethod<&NativeTensor::to>("to")});
  }

  explicit NativeTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTensor>(info) {}
  ~NativeTensor() override { release(); }

  static Napi::Object wrap(Napi::Env env, Tensor t);
  static NativeTensor* unwrapChecked(Napi::Env env, const Napi::Value& v, const std::string& what);

  const Tensor& tensor(Napi::Env env, const std::string& what) const {
    if (!t_) throw Napi::TypeError::New(env, what + " has been disposed; expected a live tensor");
    return *t_;
  }

  void adopt(Napi::Env env, Tensor t) {
    env_ = env;
    // Report memory once per buffer (views share their base's buffer).
    if (t.storage.use_count() == 1) {
      reported_ = static_cast<int64_t>(t.storage->bytes);
      Napi::MemoryManagement::AdjustExternalMemory(env, reported_);
    }
    t_ = std::move(t);
  }

 private:
  void release() {
    if (reported_ && env_) Napi::MemoryManagement::AdjustExternalMemory(env_, -reported_);
    reported_ = 0;
    t_.reset();
  }

  Napi::Value shape(const Napi::CallbackInfo& info) { return dims(info, tensor(info.Env(), "tensor").shape); }
  Napi::Value strides(const Napi::CallbackInfo& info) { return dims(info, tensor(info.Env(), "tensor").strides); }
  static Napi::Value dims(const Napi::CallbackInfo& info, const std::vector<int64_t>& d) {
    Napi::Array a = Napi::Array::New(info.Env(), d.size());
    for (size_t i = 0; i < d.size(); i++) a.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), double(d[i])));
    return a;
  }
  Napi::Value dtype(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), dtypeName(tensor(info.Env(), "tensor").dtype));
  }
  Napi::Value device(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), deviceName(tensor(info.Env(), "tensor").device));
  }
  Napi::Value disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !t_); }
  Napi::Value isContiguous(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), tensor(info.Env(), "tensor").isContiguous());
  }
  Napi::Value nbytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(tensor(info.Env(), "tensor").nbytes()));
  }

  Napi::Value toArray(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    release();
    return info.Env().Undefined();
  }
  Napi::Value transpose(const Napi::CallbackInfo& info);
  Napi::Value reshape(const Napi::CallbackInfo& info);
  Napi::Value narrow(const Napi::CallbackInfo& info);
  Napi::Value contiguous(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return wrap(info.Env(), osp::contiguous(tensor(info.Env(), "contiguous: tensor"))); });
  }
  Napi::Value to(const Napi::CallbackInfo& info);

  std::optional<Tensor> t_;
  int64_t reported_ = 0;
  napi_env env_ = nullptr;
};

struct AddonData {
  Napi::FunctionReference tensorClass;
};

Napi::Object NativeTensor::wrap(Napi::Env env, Tensor t) {
  Napi::Object o = env.GetInstanceData<AddonData>()->tensorClass.New({});
  NativeTensor::Unwrap(o)->adopt(env, std::move(t));
  return o;
}

// The NativeTensor that v wraps, or nullptr: an object that merely inherits from one (Object.create)
// passes instanceof but wraps nothing.
NativeTensor* unwrapOrNull(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(env.GetInstanceData<AddonData>()->tensorClass.Value())) return nullptr;
  void* p = nullptr;
  if (napi_unwrap(env, v, &p) != napi_ok) return nullptr;
  return static_cast<NativeTensor*>(p);
}

NativeTensor* NativeTensor::unwrapChecked(Napi::Env env, const Napi::Value& v, const std::string& what) {
  NativeTensor* t = unwrapOrNull(env, v);
  if (!t) throw Napi::TypeError::New(env, what + " is not a tensor; expected a Tensor made by osp.tensor()");
  return t;
}

// ---- argument helpers ---------------------------------------------------------------------------


const Tensor& tensorArg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  std::string what = std::string(op) + ": " + name;
  return NativeTensor::unwrapChecked(info.Env(), info[i], what)->tensor(info.Env(), what);
}

double numberArg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  if (!info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(op) + ": " + name + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

int32_t int32Arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  double v = numberArg(info, i, op, name);
  if (!std::isfinite(v) || v != std::floor(v) || v < -2147483648.0 || v > 2147483647.0)
    throw Napi::RangeError::New(info.Env(), std::string(op) + ": " + name + " is " + formatNumber(v) +
                                                "; expected an integer in the 32-bit range");
  return static_cast<int32_t>(v);
}

int64_t sizeArg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  double v = numberArg(info, i, op, name);
  if (!std::isfinite(v) || v != std::floor(v) || v < 0 || v > 9007199254740991.0)
    throw Napi::RangeError::New(info.Env(), std::string(op) + ": " + name + " is " + formatNumber(v) +
                                                "; expected a non-negative integer");
  return static_cast<int64_t>(v);
}

bool boolArg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  if (!info[i].IsBoolean()) throw Napi::TypeError::New(info.Env(), std::string(op) + ": " + name + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::string stringArg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(op) + ": " + name + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

DType dtypeArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  std::string s = stringArg(info, i, op, "dtype");
  if (s == "f32") return DType::F32;
  if (s == "f64") return DType::F64;
  if (s == "bf16") return DType::BF16;
  if (s == "i32") return DType::I32;
  throw Napi::TypeError::New(info.Env(), std::string(op) + ": dtype '" + s + "' is unknown; expected f32, f64, bf16 or i32");
}

Device deviceArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  std::string s = stringArg(info, i, op, "device");
  if (s == "cpu") return Device::CPU;
  if (s == "cuda") return Device::CUDA;
  throw Napi::TypeError::New(info.Env(), std::string(op) + ": device '" + s + "' is unknown; expected cpu or cuda");
}

void checkDeviceDtype(Napi::Env env, const char* op, DType d, Device dev) {
  if (dev == Device::CUDA && d == DType::F64)
    throw Napi::TypeError::New(env, std::string(op) + ": dtype f64 is not supported on cuda; expected f32, bf16 or i32 (f64 is for CPU reference checks)");
  if (dev == Device::CUDA && !cuda::available())
    throw Napi::Error::New(env, std::string(op) + ": device cuda requested but " +
                                    (cuda::compiled() ? "no CUDA device is available (" + cuda::probeError() + ")"
                                                      : std::string("osp was built without CUDA")));
}

std::vector<int64_t> shapeArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), std::string(op) + ": shape must be an array of non-negative integers");
  auto sa = info[i].As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t k = 0; k < sa.Length(); k++) {
    Napi::Value v = sa.Get(k);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0) || d != std::floor(d) || d > 2147483647.0)
      throw Napi::RangeError::New(info.Env(), std::string(op) + ": shape[" + std::to_string(k) + "] must be a non-negative integer");
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

// ---- tensor methods -----------------------------------------------------------------------------

Napi::Value NativeTensor::toArray(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const Tensor& t = tensor(env, "toArray: tensor");
    Tensor dense = t.isContiguous() ? t : osp::contiguous(t);
    const size_t n = static_cast<size_t>(dense.numel());
    switch (dense.dtype) {
      case DType::F32: {
        auto a = Napi::Float32Array::New(env, n);
        toHost(dense, a.Data());
        return a;
      }
      case DType::F64: {
        auto a = Napi::Float64Array::New(env, n);
        toHost(dense, a.Data());
        return a;
      }
      case DType::I32: {
        auto a = Napi::Int32Array::New(env, n);
        toHost(dense, a.Data());
        return a;
      }
      case DType::BF16: {
        std::vector<uint16_t> raw(n);
        toHost(dense, raw.data());
        auto a = Napi::Float32Array::New(env, n);
        for (size_t i = 0; i < n; i++) a[i] = bf16ToFloat(raw[i]);
        return a;
      }
    }
    return env.Undefined();
  });
}

Napi::Value NativeTensor::transpose(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Tensor& t = tensor(info.Env(), "transpose: tensor");
    const int32_t a = int32Arg(info, 0, "transpose", "dim0"), b = int32Arg(info, 1, "transpose", "dim1");
    return wrap(info.Env(), transposeView(t, a, b, "transpose"));
  });
}

// A view with another shape over the same contiguous memory (no copy).
Napi::Value NativeTensor::reshape(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Tensor& t = tensor(info.Env(), "reshape: tensor");
    return wrap(info.Env(), reshapeView(t, shapeArg(info, 0, "reshape"), "reshape"));
  });
}

// A view of `length` entries of dimension `dim` from `start` (no copy).
Napi::Value NativeTensor::narrow(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Tensor& t = tensor(info.Env(), "narrow: tensor");
    const int32_t dim = int32Arg(info, 0, "narrow", "dim");
    const int64_t start = sizeArg(info, 1, "narrow", "start"), length = sizeArg(info, 2, "narrow", "length");
    return wrap(info.Env(), narrowView(t, dim, start, length, "narrow"));
  });
}

Napi::Value NativeTensor::to(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Tensor& t = tensor(info.Env(), "to: tensor");
    DType d = dtypeArg(info, 0, "to");
    Device dev = deviceArg(info, 1, "to");
    checkDeviceDtype(info.Env(), "to", d, dev);
    if ((d == DType::I32) != (t.dtype == DType::I32))
      typeError(std::string("to: dtype ") + dtypeName(d) + " for tensor " + t.describe() +
                ": integer and floating-point tensors do not convert into each other; expected " +
                (t.dtype == DType::I32 ? "i32" : "f32, f64 or bf16"));
    return wrap(info.Env(), convert(t, d, dev));
  });
}

// ---- module functions ---------------------------------------------------------------------------

// fromArray(data: TypedArray, shape: number[], dtype, device)
Napi::Value fromArray(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* op = "tensor";
    if (!info[0].IsTypedArray())
      throw Napi::TypeError::New(env, "tensor: data must be a Float32Array, Float64Array, Int32Array or Uint16Array (bf16 bits)");
    auto ta = info[0].As<Napi::TypedArray>();
    std::vector<int64_t> shape = shapeArg(info, 1, op);
    DType dt = dtypeArg(info, 2, op);
    const int64_t numel = checkedNumel(shape, dt, "tensor: shape");
    Device dev = deviceArg(info, 3, op);
    checkDeviceDtype(env, op, dt, dev);
    if (static_cast<int64_t>(ta.ElementLength()) != numel)
      throw Napi::RangeError::New(env, "tensor: data has " + std::to_string(ta.ElementLength()) + " elements but shape " +
                                           shapeString(shape) + " needs " + std::to_string(numel));
    const napi_typedarray_type at = ta.TypedArrayType();
    const uint8_t* base = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    const size_t n = static_cast<size_t>(numel);
    if (dt == DType::I32) {
      if (at != napi_int32_array)
        throw Napi::TypeError::New(env, "tensor: dtype i32 needs an Int32Array; got another typed array");
      return NativeTensor::wrap(env, fromHost(base, shape, dt, dev));
    }
    if (dt == DType::BF16 && at == napi_uint16_array) return NativeTensor::wrap(env, fromHost(base, shape, dt, dev));
    if (at != napi_float32_array && at != napi_float64_array)
      throw Napi::TypeError::New(env, std::string("tensor: dtype ") + dtypeName(dt) +
                                          " needs a Float32Array or Float64Array (or Uint16Array of bf16 bits for bf16)");
    const bool src64 = at == napi_float64_array;
    if ((dt == DType::F32 && !src64) || (dt == DType::F64 && src64)) return NativeTensor::wrap(env, fromHost(base, shape, dt, dev));
    std::vector<char> conv(n * dtypeSize(dt));
    for (size_t i = 0; i < n; i++) {
      double v = src64 ? reinterpret_cast<const double*>(base)[i] : reinterpret_cast<const float*>(base)[i];
      if (dt == DType::F32) reinterpret_cast<float*>(conv.data())[i] = static_cast<float>(v);
      else if (dt == DType::F64) reinterpret_cast<double*>(conv.data())[i] = v;
      else reinterpret_cast<uint16_t*>(conv.data())[i] = floatToBf16(static_cast<float>(v));
    }
    return NativeTensor::wrap(env, fromHost(conv.data(), shape, dt, dev));
  });
}

// zeros(shape, dtype, device): made where it lives (no host transfer).
Napi::Value zerosJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "zeros";
    std::vector<int64_t> shape = shapeArg(info, 0, op);
    DType dt = dtypeArg(info, 1, op);
    Device dev = deviceArg(info, 2, op);
    checkDeviceDtype(info.Env(), op, dt, dev);
    checkedNumel(shape, dt, "zeros: shape");
    return NativeTensor::wrap(info.Env(), Tensor::zeros(shape, dt, dev));
  });
}

Napi::Value backends(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Object cpu = Napi::Object::New(env);
    cpu.Set("threads", cpuThreads());
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
  });
}

Napi::Value synchronize(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    osp::synchronize();  // counted on every backend; on cuda also raises pending value checks
    return info.Env().Undefined();
  });
}

Napi::Value wrapT(const Napi::CallbackInfo& info, Tensor t) { return NativeTensor::wrap(info.Env(), std::move(t)); }

// tokenLogprobs(logits, targets, ignoreIndex)
Napi::Value tokenLogprobsJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "tokenLogprobs";
    return wrapT(info, tokenLogprobs(tensorArg(info, 0, op, "logits"), tensorArg(info, 1, op, "targets"),
                                     int32Arg(info, 2, op, "ignoreIndex")));
  });
}

// tokenLogprobsBackward(logits, targets, gradLogprobs, ignoreIndex, inPlace)
Napi::Value tokenLogprobsBackwardJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "tokenLogprobsBackward";
    return wrapT(info, tokenLogprobsBackward(tensorArg(info, 0, op, "logits"), tensorArg(info, 1, op, "targets"),
                                             tensorArg(info, 2, op, "gradLogprobs"), int32Arg(info, 3, op, "ignoreIndex"),
                                             boolArg(info, 4, op, "inPlace")));
  });
}

Napi::Value logSoftmaxJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return wrapT(info, logSoftmax(tensorArg(info, 0, "logSoftmax", "logits"))); });
}

Napi::Value logSoftmaxBackwardJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "logSoftmaxBackward";
    return wrapT(info, logSoftmaxBackward(tensorArg(info, 0, op, "gradOut"), tensorArg(info, 1, op, "logSoftmaxOut")));
  });
}

Napi::Value gatherJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "gather";
    return wrapT(info, gather(tensorArg(info, 0, op, "values"), tensorArg(info, 1, op, "targets"),
                              int32Arg(info, 2, op, "ignoreIndex")));
  });
}

Napi::Value gatherBackwardJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "gatherBackward";
    const Tensor& grad = tensorArg(info, 0, op, "grad");
    DType out = info[4].IsUndefined() ? grad.dtype : dtypeArg(info, 4, op);
    return wrapT(info, gatherBackward(grad, tensorArg(info, 1, op, "targets"), sizeArg(info, 2, op, "vocab"),
                                      int32Arg(info, 3, op, "ignoreIndex"), out));
  });
}

Napi::Value sequenceLogprobsJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "sequenceLogprobs";
    return wrapT(info, sequenceLogprobs(tensorArg(info, 0, op, "tokenLogprobs"), tensorArg(info, 1, op, "sequenceIds"),
                                        sizeArg(info, 2, op, "count"), int32Arg(info, 3, op, "ignoreIndex")));
  });
}

Napi::Value sequenceLogprobsBackwardJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "sequenceLogprobsBackward";
    return wrapT(info, sequenceLogprobsBackward(tensorArg(info, 0, op, "gradSequences"),
                                                tensorArg(info, 1, op, "sequenceIds"), int32Arg(info, 2, op, "ignoreIndex")));
  });
}

// preferenceLoss(kind, policyChosen, policyRejected, refChosen, refRejected, target|null, beta)
Napi::Value preferenceLossJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* op = "preferenceLoss";
    std::string k = stringArg(info, 0, op, "kind");
    PreferenceKind kind;
    if (k == "spce") kind = PreferenceKind::SPCE;
    else if (k == "dpo") kind = PreferenceKind::DPO;
    else if (k == "ipo") kind = PreferenceKind::IPO;
    else throw Napi::TypeError::New(env, "preferenceLoss: kind '" + k + "' is unknown; expected spce, dpo or ipo");
    const Tensor* target = nullptr;
    if (!info[5].IsNull() && !info[5].IsUndefined()) target = &tensorArg(info, 5, op, "target");
    PreferenceResult r = preferenceLoss(kind, tensorArg(info, 1, op, "policyChosen"), tensorArg(info, 2, op, "policyRejected"),
                                        tensorArg(info, 3, op, "refChosen"), tensorArg(info, 4, op, "refRejected"), target,
                                        numberArg(info, 6, op, "beta"));
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", NativeTensor::wrap(env, r.loss));
    o.Set("losses", NativeTensor::wrap(env, r.losses));
    o.Set("pHat", NativeTensor::wrap(env, r.pHat));
    o.Set("margins", NativeTensor::wrap(env, r.margins));
    o.Set("gradPolicyChosen", NativeTensor::wrap(env, r.gradPolicyChosen));
    o.Set("gradPolicyRejected", NativeTensor::wrap(env, r.gradPolicyRejected));
    return o;
  });
}

Napi::Value binaryJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    std::string k = stringArg(info, 0, "binary", "op");
    BinaryOp b;
    if (k == "add") b = BinaryOp::Add;
    else if (k == "sub") b = BinaryOp::Sub;
    else if (k == "mul") b = BinaryOp::Mul;
    else throw Napi::TypeError::New(info.Env(), "binary: op '" + k + "' is unknown; expected add, sub or mul");
    const char* op = b == BinaryOp::Add ? "add" : b == BinaryOp::Sub ? "sub" : "mul";
    return wrapT(info, binary(b, tensorArg(info, 1, op, "a"), tensorArg(info, 2, op, "b")));
  });
}

Napi::Value unaryJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "unary";
    std::string k = stringArg(info, 0, op, "op");
    static const std::pair<const char*, UnaryOp> names[] = {
        {"neg", UnaryOp::Neg},         {"sigmoid", UnaryOp::Sigmoid}, {"softplus", UnaryOp::Softplus},
        {"logSigmoid", UnaryOp::LogSigmoid}, {"square", UnaryOp::Square}, {"exp", UnaryOp::Exp}, {"log", UnaryOp::Log}};
    for (auto& [name, u] : names)
      if (k == name) return wrapT(info, unary(u, tensorArg(info, 1, op, "x")));
    throw Napi::TypeError::New(info.Env(), "unary: op '" + k + "' is unknown; expected neg, sigmoid, softplus, logSigmoid, square, exp or log");
  });
}

Napi::Value affineJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "affine";
    return wrapT(info, affine(tensorArg(info, 0, op, "x"), numberArg(info, 1, op, "scale"), numberArg(info, 2, op, "shift")));
  });
}

Napi::Value sumJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return wrapT(info, sum(tensorArg(info, 0, "sum", "x"))); });
}

// randomNormal(shape, dtype, device, seed, mean, std)
// copyInto(dst, src)
Napi::Value copyIntoJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    copyInto(tensorArg(info, 0, "copyInto", "dst"), tensorArg(info, 1, "copyInto", "src"));
    return info.Env().Undefined();
  });
}

Napi::Value randomNormalJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "randn";
    auto shape = shapeArg(info, 0, op);
    DType dt = dtypeArg(info, 1, op);
    Device dev = deviceArg(info, 2, op);
    checkDeviceDtype(info.Env(), op, dt, dev);
    checkedNumel(shape, dt, "randn: shape");
    double seed = numberArg(info, 3, op, "seed");
    if (!(seed >= 0) || seed != std::floor(seed) || seed > 9007199254740991.0)
      throw Napi::RangeError::New(info.Env(), "randn: seed must be a non-negative integer");
    return wrapT(info, randomNormal(shape, dt, dev, static_cast<uint64_t>(seed), numberArg(info, 4, op, "mean"),
                                    numberArg(info, 5, op, "std")));
  });
}

// matmul(a, b, transA, transB, impl?: 'auto' | 'own' | 'cublas')
// matmul(a, b, transA, transB)
// sampleTokens(logits, streams, steps, seed, temperature, topP, topK)
Napi::Value sampleTokensJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* op = "sampleTokens";
    SampleResult r = sampleTokens(tensorArg(info, 0, op, "logits"), tensorArg(info, 1, op, "streams"),
                                  tensorArg(info, 2, op, "steps"), numberArg(info, 3, op, "seed"),
                                  numberArg(info, 4, op, "temperature"), numberArg(info, 5, op, "topP"),
                                  numberArg(info, 6, op, "topK"));
    Napi::Object o = Napi::Object::New(env);
    o.Set("tokens", NativeTensor::wrap(env, r.tokens));
    o.Set("logprobs", NativeTensor::wrap(env, r.logprobs));
    o.Set("modelLogprobs", NativeTensor::wrap(env, r.modelLogprobs));
    return o;
  });
}

Napi::Value matmulJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "matmul";
    MatmulImpl impl = MatmulImpl::Auto;
    if (info.Length() > 4 && !info[4].IsUndefined()) {
      const std::string s = info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "";
      if (s == "own") impl = MatmulImpl::Own;
      else if (s == "cublas") impl = MatmulImpl::Cublas;
      else if (s != "auto") typeError("matmul: impl is not 'auto', 'own' or 'cublas'");
    }
    return wrapT(info, matmul(tensorArg(info, 0, op, "a"), tensorArg(info, 1, op, "b"), boolArg(info, 2, op, "transA"),
                              boolArg(info, 3, op, "transB"), impl));
  });
}

// ---- model ops (rms_norm, swiglu, rope, embedding) -------------------------------------------------

// rmsNorm(x, weight, eps)
Napi::Value rmsNormJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "rmsNorm";
    return wrapT(info, rmsNorm(tensorArg(info, 0, op, "x"), tensorArg(info, 1, op, "weight"), numberArg(info, 2, op, "eps")));
  });
}

// rmsNormBackward(x, weight, gradOut, eps) -> {gradInput, gradWeight}
Napi::Value rmsNormBackwardJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* op = "rmsNormBackward";
    RmsNormGrads r = rmsNormBackward(tensorArg(info, 0, op, "x"), tensorArg(info, 1, op, "weight"),
                                     tensorArg(info, 2, op, "gradOut"), numberArg(info, 3, op, "eps"));
    Napi::Object o = Napi::Object::New(env);
    o.Set("gradInput", NativeTensor::wrap(env, r.gradInput));
    o.Set("gradWeight", NativeTensor::wrap(env, r.gradWeight));
    return o;
  });
}

// swiglu(gate, up)
Napi::Value swigluJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "swiglu";
    return wrapT(info, swiglu(tensorArg(info, 0, op, "gate"), tensorArg(info, 1, op, "up")));
  });
}

// swigluBackward(gate, up, gradOut) -> {gradGate, gradUp}
Napi::Value swigluBackwardJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* op = "swigluBackward";
    SwigluGrads r = swigluBackward(tensorArg(info, 0, op, "gate"), tensorArg(info, 1, op, "up"), tensorArg(info, 2, op, "gradOut"));
    Napi::Object o = Napi::Object::New(env);
    o.Set("gradGate", NativeTensor::wrap(env, r.gradGate));
    o.Set("gradUp", NativeTensor::wrap(env, r.gradUp));
    return o;
  });
}

// rope(x, positions, theta, scalingFactor, invFreq?) and ropeBackward(gradOut, positions, theta, scalingFactor,
// invFreq?): invFreq, a Float64Array of Dh / 2 inverse frequencies, replaces theta and scalingFactor
// (which are then ignored); undefined uses ropeInvFreq(theta, scalingFactor, Dh).
Napi::Value ropeCall(const Napi::CallbackInfo& info, const char* op, const char* xName, int direction) {
  const Tensor& x = tensorArg(info, 0, op, xName);
  const Tensor& positions = tensorArg(info, 1, op, "positions");
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    if (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw Napi::TypeError::New(info.Env(), std::string(op) + ": invFreq must be a Float64Array");
    auto a = info[4].As<Napi::Float64Array>();
    std::vector<double> inv(a.Data(), a.Data() + a.ElementLength());
    return wrapT(info, rope(x, positions, inv, direction));
  }
  return wrapT(info, rope(x, positions, numberArg(info, 2, op, "theta"), numberArg(info, 3, op, "scalingFactor"), direction));
}

Napi::Value ropeJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return ropeCall(info, "rope", "x", +1); });
}

Napi::Value ropeBackwardJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return ropeCall(info, "ropeBackward", "gradOut", -1); });
}

// ropeInvFreq(theta, scalingFactor, headDim) -> Float64Array of headDim / 2: theta^(-2i / headDim) / scalingFactor.
Napi::Value ropeInvFreqJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "ropeInvFreqTable";
    std::vector<double> inv = ropeInvFreq(numberArg(info, 0, op, "theta"), numberArg(info, 1, op, "scalingFactor"),
                                          sizeArg(info, 2, op, "headDim"), op);
    auto a = Napi::Float64Array::New(info.Env(), inv.size());
    std::copy(inv.begin(), inv.end(), a.Data());
    return a;
  });
}

// embedding(table, ids) and embeddingBackward(gradOut, ids, vocab)
Napi::Value embeddingJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "embedding";
    return wrapT(info, embedding(tensorArg(info, 0, op, "table"), tensorArg(info, 1, op, "ids")));
  });
}

Napi::Value embeddingBackwardJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "embeddingBackward";
    return wrapT(info, embeddingBackward(tensorArg(info, 0, op, "gradOut"), tensorArg(info, 1, op, "ids"),
                                         sizeArg(info, 2, op, "vocab")));
  });
}

// ---- optimizer (adamw) -------------------------------------------------------------------------

// sumOfSquares(x) -> [1]
Napi::Value sumOfSquaresJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return wrapT(info, sumOfSquares(tensorArg(info, 0, "sumOfSquares", "x"))); });
}

// adamwStep(param, grad, m, v, options): in place, returns undefined. options: {lr, beta1, beta2, eps,
// weightDecay, step, gradScale?, checkFinite?, gradSumOfSquares?, maxGradNorm?} (see adamw.h).
Napi::Value adamwStepJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* op = "adamwStep";
    if (!info[4].IsObject()) throw Napi::TypeError::New(env, "adamwStep: options must be an object {lr, beta1, beta2, eps, weightDecay, step}");
    Napi::Object opts = info[4].As<Napi::Object>();
    auto number = [&](const char* key, std::optional<double> fallback) -> double {
      Napi::Value v = opts.Get(key);
      if (v.IsUndefined() && fallback) return *fallback;
      if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(op) + ": options." + key + " must be a number");
      return v.As<Napi::Number>().DoubleValue();
    };
    AdamWOptions o{number("lr", std::nullopt),          number("beta1", std::nullopt), number("beta2", std::nullopt),
                   number("eps", std::nullopt),         number("weightDecay", std::nullopt),
                   number("step", std::nullopt),        number("gradScale", 1.0)};
    Napi::Value cf = opts.Get("checkFinite");
    if (!cf.IsUndefined()) {
      if (!cf.IsBoolean()) throw Napi::TypeError::New(env, "adamwStep: options.checkFinite must be a boolean");
      o.checkFinite = cf.As<Napi::Boolean>().Value();
    }
    Napi::Value total = opts.Get("gradSumOfSquares");
    const std::string totalName = "adamwStep: options.gradSumOfSquares";
    if (!total.IsUndefined()) o.gradSumOfSquares = &NativeTensor::unwrapChecked(env, total, totalName)->tensor(env, totalName);
    o.maxGradNorm = number("maxGradNorm", 0.0);
    adamwStep(tensorArg(info, 0, op, "param"), tensorArg(info, 1, op, "grad"), tensorArg(info, 2, op, "m"),
              tensorArg(info, 3, op, "v"), o);
    return env.Undefined();
  });
}

// ---- attention ---------------------------------------------------------------------------------

std::optional<double> optionalNumberArg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  if (info[i].IsUndefined() || info[i].IsNull()) return std::nullopt;
  return numberArg(info, i, op, name);
}

const Tensor* optionalTensorArg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  if (info[i].IsUndefined() || info[i].IsNull()) return nullptr;
  return &tensorArg(info, i, op, name);
}

// causalAttention(q, k, v, sequenceIds, scale?, spans?) -> {out, logsumexp}
Napi::Value causalAttentionJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* op = "causalAttention";
    AttentionResult r = causalAttention(tensorArg(info, 0, op, "q"), tensorArg(info, 1, op, "k"), tensorArg(info, 2, op, "v"),
                                        tensorArg(info, 3, op, "sequenceIds"), optionalNumberArg(info, 4, op, "scale"),
                                        optionalTensorArg(info, 5, op, "spans"));
    Napi::Object o = Napi::Object::New(env);
    o.Set("out", NativeTensor::wrap(env, r.out));
    o.Set("logsumexp", NativeTensor::wrap(env, r.logsumexp));
    return o;
  });
}

// causalAttentionBackward(q, k, v, sequenceIds, out, logsumexp, gradOut, scale?, spans?) -> {gradQ, gradK, gradV}
Napi::Value causalAttentionBackwardJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* op = "causalAttentionBackward";
    AttentionGrads r = causalAttentionBackward(
        tensorArg(info, 0, op, "q"), tensorArg(info, 1, op, "k"), tensorArg(info, 2, op, "v"),
        tensorArg(info, 3, op, "sequenceIds"), tensorArg(info, 4, op, "out"), tensorArg(info, 5, op, "logsumexp"),
        tensorArg(info, 6, op, "gradOut"), optionalNumberArg(info, 7, op, "scale"), optionalTensorArg(info, 8, op, "spans"));
    Napi::Object o = Napi::Object::New(env);
    o.Set("gradQ", NativeTensor::wrap(env, r.gradQ));
    o.Set("gradK", NativeTensor::wrap(env, r.gradK));
    o.Set("gradV", NativeTensor::wrap(env, r.gradV));
    return o;
  });
}

// kvCacheWrite(cache, values, slots, positions): in place, returns undefined
Napi::Value kvCacheWriteJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "kvCacheWrite";
    kvCacheWrite(tensorArg(info, 0, op, "cache"), tensorArg(info, 1, op, "values"), tensorArg(info, 2, op, "slots"),
                 tensorArg(info, 3, op, "positions"));
    return info.Env().Undefined();
  });
}

// cachedAttention(q, kCache, vCache, slots, positions, scale?) -> out
Napi::Value cachedAttentionJs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "cachedAttention";
    return wrapT(info, cachedAttention(tensorArg(info, 0, op, "q"), tensorArg(info, 1, op, "kCache"),
                                       tensorArg(info, 2, op, "vCache"), tensorArg(info, 3, op, "slots"),
                                       tensorArg(info, 4, op, "positions"), optionalNumberArg(info, 5, op, "scale")));
  });
}

Napi::Value memoryStatsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  for (Device d : {Device::CPU, Device::CUDA}) {
    MemoryStats m = memoryStats(d);
    Napi::Object e = Napi::Object::New(env);
    e.Set("currentBytes", double(m.current));
    e.Set("peakBytes", double(m.peak));
    o.Set(deviceName(d), e);
  }
  return o;
}

// isTensor(v): whether v is a NativeTensor made by this addon (not an object inheriting from one).
Napi::Value isTensorJs(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), unwrapOrNull(info.Env(), info[0]) != nullptr);
}

Napi::Value resetPeakMemoryJs(const Napi::CallbackInfo& info) {
  resetPeakMemory();
  return info.Env().Undefined();
}

// Host waits since the last reset, by kind (sync.h says what counts).
Napi::Value syncStatsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const SyncStats s = syncStats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("hostWaits", double(s.hostWaits()));
  o.Set("reads", double(s.reads));
  o.Set("synchronizes", double(s.synchronizes));
  o.Set("statusReads", double(s.statusReads));
  o.Set("uploadWaits", double(s.uploadWaits));
  return o;
}

Napi::Value resetSyncStatsJs(const Napi::CallbackInfo& info) {
  resetSyncStats();
  return info.Env().Undefined();
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  Napi::Function cls = NativeTensor::define(env);
  data->tensorClass = Napi::Persistent(cls);
  env.SetInstanceData<AddonData>(data);
  exports.Set("NativeTensor", cls);
  exports.Set("isTensor", Napi::Function::New<isTensorJs>(env, "isTensor"));
  exports.Set("fromArray", Napi::Function::New<fromArray>(env, "fromArray"));
  exports.Set("zeros", Napi::Function::New<zerosJs>(env, "zeros"));
  exports.Set("backends", Napi::Function::New<backends>(env, "backends"));
  exports.Set("synchronize", Napi::Function::New<synchronize>(env, "synchronize"));
  exports.Set("tokenLogprobs", Napi::Function::New<tokenLogprobsJs>(env, "tokenLogprobs"));
  exports.Set("tokenLogprobsBackward", Napi::Function::New<tokenLogprobsBackwardJs>(env, "tokenLogprobsBackward"));
  exports.Set("logSoftmax", Napi::Function::New<logSoftmaxJs>(env, "logSoftmax"));
  exports.Set("logSoftmaxBackward", Napi::Function::New<logSoftmaxBackwardJs>(env, "logSoftmaxBackward"));
  exports.Set("gather", Napi::Function::New<gatherJs>(env, "gather"));
  exports.Set("gatherBackward", Napi::Function::New<gatherBackwardJs>(env, "gatherBackward"));
  exports.Set("sequenceLogprobs", Napi::Function::New<sequenceLogprobsJs>(env, "sequenceLogprobs"));
  exports.Set("sequenceLogprobsBackward", Napi::Function::New<sequenceLogprobsBackwardJs>(env, "sequenceLogprobsBackward"));
  exports.Set("preferenceLoss", Napi::Function::New<preferenceLossJs>(env, "preferenceLoss"));
  exports.Set("binary", Napi::Function::New<binaryJs>(env, "binary"));
  exports.Set("unary", Napi::Function::New<unaryJs>(env, "unary"));
  exports.Set("affine", Napi::Function::New<affineJs>(env, "affine"));
  exports.Set("sum", Napi::Function::New<sumJs>(env, "sum"));
  exports.Set("copyInto", Napi::Function::New<copyIntoJs>(env, "copyInto"));
  exports.Set("randomNormal", Napi::Function::New<randomNormalJs>(env, "randomNormal"));
  exports.Set("sampleTokens", Napi::Function::New<sampleTokensJs>(env, "sampleTokens"));
  exports.Set("matmul", Napi::Function::New<matmulJs>(env, "matmul"));
  exports.Set("rmsNorm", Napi::Function::New<rmsNormJs>(env, "rmsNorm"));
  exports.Set("rmsNormBackward", Napi::Function::New<rmsNormBackwardJs>(env, "rmsNormBackward"));
  exports.Set("swiglu", Napi::Function::New<swigluJs>(env, "swiglu"));
  exports.Set("swigluBackward", Napi::Function::New<swigluBackwardJs>(env, "swigluBackward"));
  exports.Set("rope", Napi::Function::New<ropeJs>(env, "rope"));
  exports.Set("ropeBackward", Napi::Function::New<ropeBackwardJs>(env, "ropeBackward"));
  exports.Set("ropeInvFreq", Napi::Function::New<ropeInvFreqJs>(env, "ropeInvFreq"));
  exports.Set("embedding", Napi::Function::New<embeddingJs>(env, "embedding"));
  exports.Set("embeddingBackward", Napi::Function::New<embeddingBackwardJs>(env, "embeddingBackward"));
  exports.Set("sumOfSquares", Napi::Function::New<sumOfSquaresJs>(env, "sumOfSquares"));
  exports.Set("adamwStep", Napi::Function::New<adamwStepJs>(env, "adamwStep"));
  exports.Set("causalAttention", Napi::Function::New<causalAttentionJs>(env, "causalAttention"));
  exports.Set("causalAttentionBackward", Napi::Function::New<causalAttentionBackwardJs>(env, "causalAttentionBackward"));
  exports.Set("kvCacheWrite", Napi::Function::New<kvCacheWriteJs>(env, "kvCacheWrite"));
  exports.Set("cachedAttention", Napi::Function::New<cachedAttentionJs>(env, "cachedAttention"));
  exports.Set("memoryStats", Napi::Function::New<memoryStatsJs>(env, "memoryStats"));
  exports.Set("resetPeakMemory", Napi::Function::New<resetPeakMemoryJs>(env, "resetPeakMemory"));
  exports.Set("syncStats", Napi::Function::New<syncStatsJs>(env, "syncStats"));
  exports.Set("resetSyncStats", Napi::Function::New<resetSyncStatsJs>(env, "resetSyncStats"));
  return exports;
}

}  // namespace

NODE_API_MODULE(osp, init)

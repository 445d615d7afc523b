// NativeTensor (see handle.h): the handle's accessors and methods. Each converts its arguments
// (args.h) and calls native/core: views (reshapeView, narrowView, transposeView), contiguous,
// convertTo and toHostAs.
#include "handle.h"

#include "args.h"

namespace osp::addon {

Napi::Function NativeTensor::define(Napi::Env env) {
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

Napi::Object NativeTensor::wrap(Napi::Env env, Tensor t) {
  Napi::Object o = env.GetInstanceData<AddonData>()->tensorClass.New({});
  NativeTensor::Unwrap(o)->adopt(env, std::move(t));
  return o;
}

NativeTensor* NativeTensor::unwrapOrNull(Napi::Env env, const Napi::Value& v) {
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

const Tensor& NativeTensor::tensor(Napi::Env env, const std::string& what) const {
  if (!t_) throw Napi::TypeError::New(env, what + " has been disposed; expected a live tensor");
  return *t_;
}

void NativeTensor::adopt(Napi::Env env, Tensor t) {
  env_ = env;
  // Report memory once per buffer (views share their base's buffer).
  if (t.storage.use_count() == 1) {
    reported_ = static_cast<int64_t>(t.storage->bytes);
    Napi::MemoryManagement::AdjustExternalMemory(env, reported_);
  }
  t_ = std::move(t);
}

void NativeTensor::release() {
  if (reported_ && env_) Napi::MemoryManagement::AdjustExternalMemory(env_, -reported_);
  reported_ = 0;
  t_.reset();
}

// ---- accessors ------------------------------------------------------------------------------------

static Napi::Value dims(Napi::Env env, const std::vector<int64_t>& d) {
  Napi::Array a = Napi::Array::New(env, d.size());
  for (size_t i = 0; i < d.size(); i++) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, double(d[i])));
  return a;
}

Napi::Value NativeTensor::shape(const Napi::CallbackInfo& info) { return dims(info.Env(), tensor(info.Env(), "tensor").shape); }
Napi::Value NativeTensor::strides(const Napi::CallbackInfo& info) { return dims(info.Env(), tensor(info.Env(), "tensor").strides); }
Napi::Value NativeTensor::dtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtypeName(tensor(info.Env(), "tensor").dtype));
}
Napi::Value NativeTensor::device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), deviceName(tensor(info.Env(), "tensor").device));
}
Napi::Value NativeTensor::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !t_); }
Napi::Value NativeTensor::isContiguous(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), tensor(info.Env(), "tensor").isContiguous());
}
Napi::Value NativeTensor::nbytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(tensor(info.Env(), "tensor").nbytes()));
}

// ---- methods ----------------------------------------------------------------------------------------

// toArray(): a Float32Array (f32, bf16), Float64Array (f64) or Int32Array (i32) of every element.
Napi::Value NativeTensor::toArray(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const Tensor& t = tensor(env, "toArray: tensor");
    const size_t n = static_cast<size_t>(t.numel());
    Napi::TypedArray a;
    void* data = nullptr;
    switch (hostDtype(t.dtype)) {
      case DType::F64: {
        auto f = Napi::Float64Array::New(env, n);
        data = f.Data(), a = f;
        break;
      }
      case DType::I32: {
        auto i = Napi::Int32Array::New(env, n);
        data = i.Data(), a = i;
        break;
      }
      default: {
        auto f = Napi::Float32Array::New(env, n);
        data = f.Data(), a = f;
        break;
      }
    }
    toHostAs(t, data);
    return a;
  });
}

Napi::Value NativeTensor::dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

// transpose(dim0, dim1): a view with the two dimensions swapped (no copy).
Napi::Value NativeTensor::transpose(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Tensor& t = tensor(info.Env(), "transpose: tensor");
    const int32_t a = int32Arg(info, 0, "transpose", "dim0"), b = int32Arg(info, 1, "transpose", "dim1");
    return wrap(info.Env(), transposeView(t, a, b, "transpose"));
  });
}

// reshape(shape): a view with another shape over the same contiguous memory (no copy).
Napi::Value NativeTensor::reshape(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Tensor& t = tensor(info.Env(), "reshape: tensor");
    return wrap(info.Env(), reshapeView(t, shapeArg(info, 0, "reshape"), "reshape"));
  });
}

// narrow(dim, start, length): a view of `length` entries of dimension `dim` from `start` (no copy).
Napi::Value NativeTensor::narrow(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Tensor& t = tensor(info.Env(), "narrow: tensor");
    const int32_t dim = int32Arg(info, 0, "narrow", "dim");
    const int64_t start = sizeArg(info, 1, "narrow", "start"), length = sizeArg(info, 2, "narrow", "length");
    return wrap(info.Env(), narrowView(t, dim, start, length, "narrow"));
  });
}

// contiguous(): a dense copy (of a view) on the same device.
Napi::Value NativeTensor::contiguous(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return wrap(info.Env(), osp::contiguous(tensor(info.Env(), "contiguous: tensor"))); });
}

// to(dtype, device): a converted copy.
Napi::Value NativeTensor::to(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Tensor& t = tensor(info.Env(), "to: tensor");
    const DType d = dtypeArg(info, 0, "to");
    const Device dev = deviceArg(info, 1, "to");
    checkPlacement(d, dev, "to");
    return wrap(info.Env(), convertTo(t, d, dev, "to"));
  });
}

}  // namespace osp::addon

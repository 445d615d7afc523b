// NativeTensor: the JavaScript handle on a core Tensor (shape, dtype, device, views, reading back,
// dispose), and the per-addon data that holds its class. It only converts arguments and results:
// views and conversions are native/core's (tensor.h).
#pragma once
#include <napi.h>

#include <optional>
#include <string>

#include "../core/tensor.h"

namespace osp::addon {

class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit NativeTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTensor>(info) {}
  ~NativeTensor() override { release(); }

  // A new handle owning t (moved in: a buffer held by this handle alone is reported to the GC).
  static Napi::Object wrap(Napi::Env env, Tensor t);
  // The NativeTensor that v wraps, or nullptr: an object that merely inherits from one
  // (Object.create) passes instanceof but wraps nothing.
  static NativeTensor* unwrapOrNull(Napi::Env env, const Napi::Value& v);
  // The same, or a TypeError "<what> is not a tensor; ...".
  static NativeTensor* unwrapChecked(Napi::Env env, const Napi::Value& v, const std::string& what);
  // The live tensor, or a TypeError "<what> has been disposed; ...".
  const Tensor& tensor(Napi::Env env, const std::string& what) const;

 private:
  void adopt(Napi::Env env, Tensor t);
  void release();

  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value strides(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value isContiguous(const Napi::CallbackInfo& info);
  Napi::Value nbytes(const Napi::CallbackInfo& info);
  Napi::Value toArray(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value transpose(const Napi::CallbackInfo& info);
  Napi::Value reshape(const Napi::CallbackInfo& info);
  Napi::Value narrow(const Napi::CallbackInfo& info);
  Napi::Value contiguous(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);

  std::optional<Tensor> t_;
  int64_t reported_ = 0;
  napi_env env_ = nullptr;
};

// The addon's per-environment data (napi_set_instance_data).
struct AddonData {
  Napi::FunctionReference tensorClass;
};

}  // namespace osp::addon

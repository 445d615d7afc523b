// Argument conversion for the bindings (see args.h): each JavaScript value is checked and converted
// once, here, with an error naming the op and the argument; and the C++ exceptions of the core and
// the kernels are rethrown as JavaScript errors of the matching class.
#include "args.h"

#include <cmath>

#include "../core/errors.h"
#include "handle.h"

namespace osp::addon {

namespace {

[[noreturn]] void throwJs(Napi::Env env, const OspError& e) {
  switch (e.kind) {
    case OspError::Kind::Type: throw Napi::TypeError::New(env, e.what());
    case OspError::Kind::Range: throw Napi::RangeError::New(env, e.what());
    default: throw Napi::Error::New(env, e.what());
  }
}

std::string named(const char* op, const char* name) { return std::string(op) + ": " + name; }

}  // namespace

void rethrowAsJs(Napi::Env env) {
  try {
    throw;
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

// ---- one value ----------------------------------------------------------------------------------

const Tensor& toTensor(Napi::Env env, const Napi::Value& v, const std::string& what) {
  return NativeTensor::unwrapChecked(env, v, what)->tensor(env, what);
}

double toNumber(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, what + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int32_t toInt32(Napi::Env env, const Napi::Value& v, const std::string& what) {
  const double d = toNumber(env, v, what);
  if (!std::isfinite(d) || d != std::floor(d) || d < -2147483648.0 || d > 2147483647.0)
    throw Napi::RangeError::New(env, what + " is " + formatNumber(d) + "; expected an integer in the 32-bit range");
  return static_cast<int32_t>(d);
}

int64_t toSize(Napi::Env env, const Napi::Value& v, const std::string& what) {
  const double d = toNumber(env, v, what);
  if (!std::isfinite(d) || d != std::floor(d) || d < 0 || d > 9007199254740991.0)
    throw Napi::RangeError::New(env, what + " is " + formatNumber(d) + "; expected a non-negative integer");
  return static_cast<int64_t>(d);
}

bool toBool(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsBoolean()) throw Napi::TypeError::New(env, what + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string toString(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsString()) throw Napi::TypeError::New(env, what + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

void unknownChoice(Napi::Env env, const std::string& what, const std::string& got, const std::vector<const char*>& names) {
  std::string expected;
  for (size_t i = 0; i < names.size(); i++) {
    if (i > 0) expected += i + 1 == names.size() ? " or " : ", ";
    expected += names[i];
  }
  throw Napi::TypeError::New(env, what + " '" + got + "' is unknown; expected " + expected);
}

DType toDType(Napi::Env env, const Napi::Value& v, const std::string& what) {
  return toChoice<DType>(env, v, what, {{"f32", DType::F32}, {"f64", DType::F64}, {"bf16", DType::BF16}, {"i32", DType::I32}});
}

Device toDevice(Napi::Env env, const Napi::Value& v, const std::string& what) {
  return toChoice<Device>(env, v, what, {{"cpu", Device::CPU}, {"cuda", Device::CUDA}});
}

std::vector<int64_t> toShape(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, what + " must be an array of non-negative integers");
  auto sa = v.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t k = 0; k < sa.Length(); k++) {
    Napi::Value e = sa.Get(k);
    const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0) || d != std::floor(d) || d > 2147483647.0)
      throw Napi::RangeError::New(env, what + "[" + std::to_string(k) + "] must be a non-negative integer");
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

std::vector<double> toFloat64s(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw Napi::TypeError::New(env, what + " must be a Float64Array");
  auto a = v.As<Napi::Float64Array>();
  return std::vector<double>(a.Data(), a.Data() + a.ElementLength());
}

// ---- positional arguments -------------------------------------------------------------------------

const Tensor& tensorArg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  return toTensor(info.Env(), info[i], named(op, name));
}
int32_t int32Arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  return toInt32(info.Env(), info[i], named(op, name));
}
int64_t sizeArg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  return toSize(info.Env(), info[i], named(op, name));
}
DType dtypeArg(const Napi::CallbackInfo& info, size_t i, const char* op) { return toDType(info.Env(), info[i], named(op, "dtype")); }
Device deviceArg(const Napi::CallbackInfo& info, size_t i, const char* op) { return toDevice(info.Env(), info[i], named(op, "device")); }
std::vector<int64_t> shapeArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  return toShape(info.Env(), info[i], named(op, "shape"));
}

// ---- the options object ---------------------------------------------------------------------------

Options::Options(const Napi::CallbackInfo& info, size_t index, const char* op, std::string prefix, const char* expected)
    : env_(info.Env()), op_(op), prefix_(std::move(prefix)) {
  if (!info[index].IsObject())
    throw Napi::TypeError::New(env_, op_ + ": options must be an object" + (expected ? std::string(" ") + expected : ""));
  obj_ = info[index].As<Napi::Object>();
}

std::string Options::name(const char* key) const { return op_ + ": " + prefix_ + key; }
Napi::Value Options::get(const char* key) const { return obj_.Get(key); }
bool Options::absent(const char* key) const { return get(key).IsUndefined(); }

double Options::number(const char* key) const { return toNumber(env_, get(key), name(key)); }
double Options::number(const char* key, double fallback) const { return absent(key) ? fallback : number(key); }
std::optional<double> Options::optionalNumber(const char* key) const {
  if (absent(key) || get(key).IsNull()) return std::nullopt;
  return number(key);
}
int32_t Options::int32(const char* key) const { return toInt32(env_, get(key), name(key)); }
int64_t Options::size(const char* key) const { return toSize(env_, get(key), name(key)); }
bool Options::boolean(const char* key) const { return toBool(env_, get(key), name(key)); }
bool Options::boolean(const char* key, bool fallback) const { return absent(key) ? fallback : boolean(key); }
const Tensor& Options::tensor(const char* key) const { return toTensor(env_, get(key), name(key)); }
const Tensor* Options::optionalTensor(const char* key) const { return absent(key) ? nullptr : &tensor(key); }
DType Options::dtype(const char* key) const { return toDType(env_, get(key), name(key)); }
DType Options::dtype(const char* key, DType fallback) const { return absent(key) ? fallback : dtype(key); }
Device Options::device(const char* key) const { return toDevice(env_, get(key), name(key)); }
std::vector<int64_t> Options::shape(const char* key) const { return toShape(env_, get(key), name(key)); }
std::optional<std::vector<double>> Options::optionalFloat64s(const char* key) const {
  if (absent(key)) return std::nullopt;
  return toFloat64s(env_, get(key), name(key));
}

// ---- results ---------------------------------------------------------------------------------------

TensorObject& TensorObject::set(const char* key, Tensor&& t) {
  obj_.Set(key, NativeTensor::wrap(env_, std::move(t)));
  return *this;
}

}  // namespace osp::addon

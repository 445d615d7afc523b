// Argument conversion for the bindings: JavaScript values to core types (tensors, numbers, strings,
// dtype, device, shape), checked, with every error naming the op and the argument ("<op>: <name>",
// or "<op>: options.<field>" where an op says so). Positional arguments are read with the *Arg
// functions, an op's options object with the one reader, Options. guarded() turns C++ exceptions
// into JavaScript TypeError / RangeError / Error, so no input can abort the process.
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../core/tensor.h"

namespace osp::addon {

// A binding: converts its arguments, calls the core or a kernel, converts the result.
using Binding = Napi::Value (*)(const Napi::CallbackInfo&);

// Inside a catch block: rethrows the exception in flight as a JavaScript exception (OspError's
// kind gives the class; out of memory is a RangeError; anything else an Error).
[[noreturn]] void rethrowAsJs(Napi::Env env);

// Runs body(); every C++ exception becomes a JavaScript exception.
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& body) {
  try {
    return body();
  } catch (...) {
    rethrowAsJs(info.Env());
  }
}

// ---- one value, named by `what` ("<op>: <name>") ------------------------------------------------

const Tensor& toTensor(Napi::Env env, const Napi::Value& v, const std::string& what);
double toNumber(Napi::Env env, const Napi::Value& v, const std::string& what);
int32_t toInt32(Napi::Env env, const Napi::Value& v, const std::string& what);   // an integer in the 32-bit range
int64_t toSize(Napi::Env env, const Napi::Value& v, const std::string& what);    // a non-negative integer < 2^53
bool toBool(Napi::Env env, const Napi::Value& v, const std::string& what);
std::string toString(Napi::Env env, const Napi::Value& v, const std::string& what);
DType toDType(Napi::Env env, const Napi::Value& v, const std::string& what);
Device toDevice(Napi::Env env, const Napi::Value& v, const std::string& what);
std::vector<int64_t> toShape(Napi::Env env, const Napi::Value& v, const std::string& what);
std::vector<double> toFloat64s(Napi::Env env, const Napi::Value& v, const std::string& what);  // a Float64Array

// A string from a fixed set: "<what> '<s>' is unknown; expected <a, b or c>" otherwise.
template <typename E>
E toChoice(Napi::Env env, const Napi::Value& v, const std::string& what,
           std::initializer_list<std::pair<const char*, E>> choices);
[[noreturn]] void unknownChoice(Napi::Env env, const std::string& what, const std::string& got,
                                const std::vector<const char*>& names);

// ---- positional arguments ----------------------------------------------------------------------

const Tensor& tensorArg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
int32_t int32Arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
int64_t sizeArg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
DType dtypeArg(const Napi::CallbackInfo& info, size_t i, const char* op);
Device deviceArg(const Napi::CallbackInfo& info, size_t i, const char* op);
std::vector<int64_t> shapeArg(const Napi::CallbackInfo& info, size_t i, const char* op);

// ---- the options object --------------------------------------------------------------------------

// The options object at argument `index` of op `op`. Its fields are named "<op>: <prefix><field>" in
// errors (prefix "" names a field as the positional argument it replaced, "options." otherwise).
// Required fields throw when absent; optional ones, when undefined, give the fallback or nullopt
// (optionalNumber also takes null as absent). `expected` completes the message when the argument is
// not an object ("<op>: options must be an object <expected>").
class Options {
 public:
  Options(const Napi::CallbackInfo& info, size_t index, const char* op, std::string prefix = "", const char* expected = nullptr);

  double number(const char* key) const;
  double number(const char* key, double fallback) const;
  std::optional<double> optionalNumber(const char* key) const;
  int32_t int32(const char* key) const;
  int64_t size(const char* key) const;
  bool boolean(const char* key) const;
  bool boolean(const char* key, bool fallback) const;
  const Tensor& tensor(const char* key) const;
  const Tensor* optionalTensor(const char* key) const;
  DType dtype(const char* key) const;
  DType dtype(const char* key, DType fallback) const;
  Device device(const char* key) const;
  std::vector<int64_t> shape(const char* key) const;
  std::optional<std::vector<double>> optionalFloat64s(const char* key) const;
  template <typename E>
  E choice(const char* key, std::initializer_list<std::pair<const char*, E>> choices) const {
    return toChoice(env_, get(key), name(key), choices);
  }
  template <typename E>
  E choice(const char* key, E fallback, std::initializer_list<std::pair<const char*, E>> choices) const {
    return absent(key) ? fallback : choice(key, choices);
  }

  bool absent(const char* key) const;  // undefined
  std::string name(const char* key) const;
  Napi::Value get(const char* key) const;

 private:
  Napi::Env env_;
  Napi::Object obj_;
  std::string op_, prefix_;
};

// ---- results ---------------------------------------------------------------------------------------

// A JavaScript object of tensor handles, e.g. {out, logsumexp}: TensorObject(env).set("out", std::move(r.out))...
// (moved, so that a fresh buffer is reported to the garbage collector once, by its only handle).
class TensorObject {
 public:
  explicit TensorObject(Napi::Env env) : env_(env), obj_(Napi::Object::New(env)) {}
  TensorObject& set(const char* key, Tensor&& t);
  operator Napi::Value() const { return obj_; }

 private:
  Napi::Env env_;
  Napi::Object obj_;
};

template <typename E>
E toChoice(Napi::Env env, const Napi::Value& v, const std::string& what,
           std::initializer_list<std::pair<const char*, E>> choices) {
  const std::string s = toString(env, v, what);
  std::vector<const char*> names;
  for (const auto& [n, e] : choices) {
    if (s == n) return e;
    names.push_back(n);
  }
  unknownChoice(env, what, s, names);
}

}  // namespace osp::addon

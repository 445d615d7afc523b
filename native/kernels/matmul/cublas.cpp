// cuBLAS loaded with dlopen (see cublas.h). The declarations below are the cuBLAS v2 ABI: enum values
// from cublas_api.h and library_types.h, which have been stable since CUDA 11.
#include "cublas.h"

#include <cstdlib>
#include <mutex>
#include <vector>

#include "../../core/cuda_backend.h"
#include "../../core/errors.h"

#ifdef OSP_WITH_CUDA
#include <dlfcn.h>
#endif

namespace osp::cublas {

#ifdef OSP_WITH_CUDA
namespace {

using Handle = void*;
using CreateFn = int (*)(Handle*);
using SetStreamFn = int (*)(Handle, void*);
using GetVersionFn = int (*)(Handle, int*);
using GemmExFn = int (*)(Handle, int transa, int transb, int m, int n, int k, const void* alpha, const void* A, int Atype,
                         int lda, const void* B, int Btype, int ldb, const void* beta, void* C, int Ctype, int ldc,
                         int computeType, int algo);

constexpr int kOpN = 0, kOpT = 1;
constexpr int kR32F = 0, kR16BF = 14;                   // cudaDataType
constexpr int kCompute32F = 68, kCompute32FFastTF32 = 77;  // cublasComputeType_t
constexpr int kGemmDefault = -1;                         // cublasGemmAlgo_t

struct Library {
  bool loaded = false;
  std::string why;
  Handle handle = nullptr;
  GemmExFn gemmEx = nullptr;
  SetStreamFn setStream = nullptr;
  GetVersionFn version = nullptr;
  bool tf32 = false;
};

Library& library() {
  static Library lib;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* off = std::getenv("OSP_CUBLAS");
    if (off && std::string(off) == "0") {
      lib.why = "disabled by OSP_CUBLAS=0; using osp's own CUDA matmul";
      return;
    }
    if (!cuda::available()) {
      lib.why = "no CUDA device";
      return;
    }
    const char* given = std::getenv("OSP_CUBLAS_LIB");
    std::vector<std::string> names;
    if (given && *given) names.push_back(given);
    else names = {"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"};
    // Try each library in turn: one that opens but cannot make a handle (e.g. a CUDA 13 cuBLAS with an
    // older driver) must not hide an older one that works.
    std::string tried;
    std::string path;
    for (const std::string& n : names) {
      void* so = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!so) {
        tried += (tried.empty() ? "" : "; ") + n + ": " + dlerror();
        continue;
      }
      auto create = reinterpret_cast<CreateFn>(dlsym(so, "cublasCreate_v2"));
      auto setStream = reinterpret_cast<SetStreamFn>(dlsym(so, "cublasSetStream_v2"));
      auto gemmEx = reinterpret_cast<GemmExFn>(dlsym(so, "cublasGemmEx"));
      Handle h = nullptr;
      const int st = (create && setStream && gemmEx) ? create(&h) : -1;
      if (st != 0) {
        tried += (tried.empty() ? "" : "; ") + n + (st == -1 ? ": lacks cublasCreate_v2/cublasSetStream_v2/cublasGemmEx" : ": cublasCreate failed with status " + std::to_string(st));
        dlclose(so);
        continue;
      }
      lib.handle = h;
      lib.setStream = setStream;
      lib.gemmEx = gemmEx;
      lib.version = reinterpret_cast<GetVersionFn>(dlsym(so, "cublasGetVersion_v2"));
      path = n;
      break;
    }
    if (!lib.handle) {
      lib.why = "no usable cuBLAS (" + tried + "; set OSP_CUBLAS_LIB to its file); using osp's own CUDA matmul";
      return;
    }
    int v = 0;
    if (lib.version) lib.version(lib.handle, &v);
    const char* tf32 = std::getenv("OSP_TF32");
    lib.tf32 = tf32 && std::string(tf32) == "1";
    lib.loaded = true;
    lib.why = "cuBLAS " + std::to_string(v) + " (" + path + ")" + (lib.tf32 ? ", TF32 allowed" : "");
  });
  return lib;
}

}  // namespace

bool available() { return library().loaded; }
std::string describe() { return library().why; }

void gemm(const void* a, const void* b, void* c, bool isBf16, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
          bool accumulate, bool tf32) {
  Library& lib = library();
  if (!lib.loaded) runtimeError("matmul: cuBLAS is not available: " + lib.why);
  const int64_t lim = 2147483647;
  if (M > lim || N > lim || K > lim) rangeError("matmul: a dimension exceeds cuBLAS's 32-bit limit");
  // Column-major C^T [N, M] = op(B)^T [N, K] . op(A)^T [K, M] (see cublas.h).
  const int opB = transB ? kOpT : kOpN, opA = transA ? kOpT : kOpN;
  const int ldb = static_cast<int>(transB ? K : N), lda = static_cast<int>(transA ? M : K);
  const float one = 1.f, zero = 0.f;
  const int type = isBf16 ? kR16BF : kR32F;
  const int compute = (!isBf16 && (tf32 || lib.tf32)) ? kCompute32FFastTF32 : kCompute32F;
  int st = lib.setStream(lib.handle, cuda::currentStream());
  if (st == 0)
    st = lib.gemmEx(lib.handle, opB, opA, static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &one, b, type, ldb, a,
                    type, lda, accumulate ? &one : &zero, c, type, static_cast<int>(N), compute, kGemmDefault);
  if (st != 0)
    runtimeError("matmul: cublasGemmEx failed with status " + std::to_string(st) + " for [" + std::to_string(M) + " x " +
                 std::to_string(K) + "] . [" + std::to_string(K) + " x " + std::to_string(N) + "]");
}
#else
bool available() { return false; }
std::string describe() { return "built without CUDA"; }
void gemm(const void*, const void*, void*, bool, int64_t, int64_t, int64_t, bool, bool, bool, bool) {
  runtimeError("matmul: built without CUDA");
}
#endif

}  // namespace osp::cublas

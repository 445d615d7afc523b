// Portable 8-wide float vectors (GCC/Clang vector extensions) and a vectorised exp for the CPU
// kernels. Functions marked OSP_SIMD_CLONES are compiled twice, for x86-64-v3 (AVX2 + FMA) and for
// the baseline (SSE2 pairs), and the loader picks by the CPU's features, so one binary is fast on
// new CPUs and still runs on old ones. ("arch=haswell" would dispatch on the CPU *model* and
// silently run the SSE2 copy on AMD: measured 10x slower on an EPYC.)
//
// fastExp: exp(x) for x <= 0 (the only range softmax needs once the row max is subtracted):
// x = k ln2 + r with |r| <= ln2/2, exp(r) by a degree-6 polynomial (relative error < 2e-7, about
// one float ulp), times 2^k built in the exponent bits. Below -87 the result is flushed to 0;
// NaN stays NaN (comparisons with NaN are false), so non-finite rows are still detected.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
#define OSP_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define OSP_SIMD_CLONES
#endif

namespace osp::simd {

typedef float f8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));
typedef uint32_t u8 __attribute__((vector_size(32)));
constexpr int W = 8;

static inline f8 splat(float v) { return f8{v, v, v, v, v, v, v, v}; }
static inline f8 load(const float* p) {
  f8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
static inline void store(float* p, f8 v) { std::memcpy(p, &v, sizeof(v)); }
static inline f8 vmax(f8 a, f8 b) { return a > b ? a : b; }
static inline float hmax(f8 v) {
  float m = v[0];
  for (int i = 1; i < W; i++) m = v[i] > m ? v[i] : m;
  return m;
}
static inline float hsum(f8 v) {  // fixed pairwise order: deterministic
  return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

// The body of fastExp for a vector type V (with integer vectors VI, VU of its width and a splat()
// in scope), written once: a per-ISA copy must be *defined* where its target pragma is in force
// (GCC gives a function, a template's instance too, the target of the place it is defined), so
// attention_cpu_tiles.h defines its 16-wide AVX-512 copy with this macro rather than a template.
#define OSP_FAST_EXP_BODY(V, VI, VU, x)                                                  \
  {                                                                                      \
    const V lo = splat(-87.0f);                                                          \
    V xc = x < lo ? lo : x;                                                              \
    const V magic = splat(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */ \
    V kf = (xc * splat(1.44269504088896341f) + magic) - magic;                           \
    V r = xc - kf * splat(0.693359375f) - kf * splat(-2.12194440e-4f);                   \
    V p = splat(1.0f / 720);                                                             \
    p = p * r + splat(1.0f / 120);                                                       \
    p = p * r + splat(1.0f / 24);                                                        \
    p = p * r + splat(1.0f / 6);                                                         \
    p = p * r + splat(0.5f);                                                             \
    p = p * r + splat(1.0f);                                                             \
    p = p * r + splat(1.0f);                                                             \
    VI k = __builtin_convertvector(kf, VI);                                              \
    VU bits = (VU)(k + 127) << 23;                                                       \
    V y = p * (V)bits;                                                                   \
    return x < lo ? splat(0.0f) : y;                                                     \
  }

static inline f8 fastExp(f8 x) OSP_FAST_EXP_BODY(f8, i8, u8, x)

static inline float fastExp1(float x) {  // the same function for one value (row tails)
  f8 v = fastExp(splat(x));
  return v[0];
}

}  // namespace osp::simd

// ---- instruction-set choice for kernels written per ISA (matmul_cpu.cpp) ---------------------------
// The target_clones above pick a copy by the CPU's features on their own; kernels that carry one
// hand-written body per ISA (intrinsics under target attributes, so the build stays portable) ask
// cpuIsa() instead. It is the best ISA this CPU runs, or the one the environment variable
// OSP_CPU_ISA names (avx512, avx2 or baseline), read once per process: tests force each path, and
// comparisons measure them side by side. A value that is unknown, or names an ISA this CPU lacks,
// is an error on every call that asks (never a silent fallback).
#include <cstdlib>
#include <string>

#include "errors.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define OSP_X86_DISPATCH 1
#endif

namespace osp::simd {

enum class Isa { Baseline = 0, Avx2 = 1, Avx512 = 2 };

inline const char* isaName(Isa isa) { return isa == Isa::Avx512 ? "avx512" : isa == Isa::Avx2 ? "avx2" : "baseline"; }

// avx512: AVX-512 F, VL, BW and DQ with FMA (x86-64-v4); avx2: AVX2 + FMA (x86-64-v3's vector
// part); baseline: anything.
inline Isa detectedIsa() {
#ifdef OSP_X86_DISPATCH
  __builtin_cpu_init();
  const bool fma = __builtin_cpu_supports("fma"), avx2 = __builtin_cpu_supports("avx2");
  if (fma && avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq"))
    return Isa::Avx512;
  if (fma && avx2) return Isa::Avx2;
#endif
  return Isa::Baseline;
}

struct IsaChoice {
  Isa isa;
  std::string error;  // non-empty when OSP_CPU_ISA cannot be honoured
};

inline IsaChoice chooseIsa() {
  const Isa best = detectedIsa();
  const char* env = std::getenv("OSP_CPU_ISA");
  if (env == nullptr || *env == '\0') return {best, ""};
  const std::string want = env;
  Isa isa;
  if (want == "avx512") isa = Isa::Avx512;
  else if (want == "avx2") isa = Isa::Avx2;
  else if (want == "baseline") isa = Isa::Baseline;
  else return {best, "OSP_CPU_ISA is '" + want + "'; expected avx512, avx2 or baseline (or unset for the best this CPU has)"};
  if (static_cast<int>(isa) > static_cast<int>(best))
    return {best, "OSP_CPU_ISA is '" + want + "' but this CPU's best is " + isaName(best) + "; expected " + isaName(best) +
                      " or lower"};
  return {isa, ""};
}

inline Isa cpuIsa() {
  static const IsaChoice choice = chooseIsa();
  if (!choice.error.empty()) rangeError(choice.error);
  return choice.isa;
}

}  // namespace osp::simd

// ---- AVX-512 exp for the token log-probs kernels (issue 16) -------------------------------------
// 16-wide exp with AVX-512F intrinsics, in functions compiled for AVX-512 by target attributes and
// called only where cpuIsa() is avx512 (the AVX2 and baseline paths above stay the fallback;
// OSP_CPU_ISA=avx2 forces it). The same
// maths as fastExp (x = k ln2 + r, the same degree-6 polynomial, relative error < 2e-7), but the
// rounding (vrndscaleps) and the 2^k scaling (vscalefps) are one instruction each, and lanes below
// -87 become 0 through a mask: about 11 vector operations per 16 values instead of about 19 per 8,
// which is what keeps the log-probs forward at the memory's pace rather than the exp's.
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define OSP_HAVE_AVX512_PATH 1
// The one spelling of the per-ISA target attributes (cpuIsa()'s avx512 and avx2).
#define OSP_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define OSP_TARGET_AVX2 __attribute__((target("avx2,fma")))

namespace osp::simd {

// exp(x) for x <= 0 (NaN stays NaN; below -87, and -Inf, give 0).
OSP_TARGET_AVX512 static inline __m512 fastExp16(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-87.0f);
  const __mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ);  // x >= -87 or NaN
  const __m512 xc = _mm512_max_ps(lo, x);                          // NaN (second operand) passes
  const __m512 kf = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_maskz_scalef_ps(keep, p, kf);
}

}  // namespace osp::simd
#endif

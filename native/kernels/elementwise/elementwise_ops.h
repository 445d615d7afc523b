// The scalar functions of the elementwise ops, shared by the CPU and CUDA code (see elementwise.h).
#pragma once
#include <cmath>

#include "../../core/math.h"

namespace osp::elementwise {

template <typename T> OSP_HD T applyBinary(int op, T a, T b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    default: return a * b;
  }
}

template <typename T> OSP_HD T applyUnary(int op, T x) {
  using std::exp;
  using std::log;
  switch (op) {
    case 0: return -x;
    case 1: return sigmoidStable(x);
    case 2: return softplusStable(x);
    case 3: return -softplusStable(-x);  // log sigmoid
    case 4: return x * x;
    case 5: return exp(x);
    default: return log(x);
  }
}

}  // namespace osp::elementwise

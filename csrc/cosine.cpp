#include "cosine.h"

#include <cmath>

#include "parallel.h"

namespace transenc {

static inline float cosine_of(const float* x, const float* y, int64_t d) {
  float dot = 0.f, xx = 0.f, yy = 0.f;
  for (int64_t j = 0; j < d; ++j) {
    dot += x[j] * y[j];
    xx += x[j] * x[j];
    yy += y[j] * y[j];
  }
  float denom = std::sqrt(xx) * std::sqrt(yy);
  return denom > 0.f ? dot / denom : 0.f;
}

void pair_cosine_f32(const float* a, const float* b, int64_t n, int64_t d, float* out) {
  parallel_for(n, 4096, [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = cosine_of(a + i * d, b + i * d, d);
  });
}

void pair_cosine_indexed_f32(const float* table, int64_t rows, int64_t d, const int32_t* idx,
                             int64_t n, float* out) {
  (void)rows;  // bounds are checked by the caller, once, before the parallel pass
  parallel_for(n, 4096, [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      out[i] = cosine_of(table + int64_t(idx[2 * i]) * d, table + int64_t(idx[2 * i + 1]) * d, d);
  });
}

}  // namespace transenc

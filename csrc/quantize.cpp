#include "quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace transenc {

namespace {

constexpr int kLanes = 16;  // independent accumulators and blocks, so that the compiler vectorises

void row_range(const float* row, int64_t d, float& low, float& high) {
  float lo[kLanes], hi[kLanes];
  for (int l = 0; l < kLanes; ++l) lo[l] = hi[l] = row[0];
  int64_t j = 0;
  for (; j + kLanes <= d; j += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      lo[l] = std::min(lo[l], row[j + l]);
      hi[l] = std::max(hi[l], row[j + l]);
    }
  low = *std::min_element(lo, lo + kLanes);
  high = *std::max_element(hi, hi + kLanes);
  for (; j < d; ++j) {
    low = std::min(low, row[j]);
    high = std::max(high, row[j]);
  }
}

// Round half to even, as torch.round, for |v| < 2^22: adding and subtracting 1.5 * 2^23 leaves
// the nearest integer in the default rounding mode, and unlike nearbyint it vectorises.
inline float round_even(float v) {
  constexpr float magic = 12582912.f;
  return (v + magic) - magic;
}

}  // namespace

void quantize_rows(const float* x, int64_t n, int64_t d, int8_t* q, float* scale, float* offset) {
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * d;
    int8_t* out = q + i * d;
    float low = 0.f, high = 0.f;
    if (d > 0) row_range(row, d, low, high);
    const float s = (high - low) / 255.f;  // 0 for a constant row, which then comes back exactly
    const float inverse = s > 0.f ? 1.f / s : 0.f;
    // q = round((x - low) / s) - 128; the clamp catches an ulp past either end.
    for (int64_t j = 0; j < d; ++j)
      out[j] = static_cast<int8_t>(
          static_cast<int>(round_even(std::clamp((row[j] - low) * inverse, 0.f, 255.f))) - 128);
    scale[i] = s;
    offset[i] = low + 128.f * s;
  }
}

void dequantize_rows(void* acc, int64_t n, int64_t d, const float* row_scale, const float* row_offset,
                     const float* col_scale, const float* col_sum, const float* bias) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t* in = static_cast<const int32_t*>(acc) + i * d;
    float* out = static_cast<float*>(acc) + i * d;
    const float r = row_scale[i], o = row_offset[i];
    // In place through a block on the stack: with `in` and `out` the same memory the compiler
    // would not vectorise a direct loop (its overlap check fails at run time).
    float block[kLanes];
    for (int64_t j = 0; j < d; j += kLanes) {
      const int64_t m = std::min<int64_t>(kLanes, d - j);
      for (int64_t l = 0; l < m; ++l)
        block[l] = static_cast<float>(in[j + l]) * r * col_scale[j + l] + o * col_sum[j + l] +
                   (bias ? bias[j + l] : 0.f);
      std::memcpy(out + j, block, m * sizeof(float));
    }
  }
}

}  // namespace transenc

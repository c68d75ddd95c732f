#include "int8_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "variants.h"

#define TRANSENC_KERNELS "int8_gemm_kernels.inc"
#include "variants.inc"

namespace transenc {

bool int8_pairs_fit(const int8_t* w, int64_t n, int64_t k) {
  for (int64_t row = 0; row < n; ++row)
    for (int64_t col = 0; col + 1 < k; col += 2) {
      const int a = w[row * k + col], b = w[row * k + col + 1];
      if ((a > 0) == (b > 0) && a != 0 && b != 0 && std::abs(a) + std::abs(b) > kInt8PairMax) return false;
    }
  return true;
}

void pack_int8_weights(const int8_t* w, int64_t n, int64_t k, int8_t* packed) {
  const int64_t quads = int8_row_stride(k) / 4;
  for (int64_t p = 0; p * kInt8Panel < n; ++p)
    for (int64_t t = 0; t < quads; ++t)
      for (int64_t c = 0; c < kInt8Panel; ++c)
        for (int64_t e = 0; e < 4; ++e) {
          const int64_t row = p * kInt8Panel + c, col = 4 * t + e;
          *packed++ = row < n && col < k ? w[row * k + col] : 0;
        }
}

void int8_linear(const uint8_t* q, int64_t m, int64_t k, const int8_t* packed, int64_t n, const Int8Epilogue& e,
                 float* out) {
  TRANSENC_VARIANT_CALL(int8_linear)(q, m, k, packed, n, e, out);
}

}  // namespace transenc

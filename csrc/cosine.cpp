#include "cosine.h"

#include <cmath>

#include "parallel.h"

#define TRANSENC_KERNELS "cosine_kernels.inc"
#include "variants.inc"

namespace transenc {

template <typename E>
float inverse_norm(const typename E::T* x, int64_t d) {
  return TRANSENC_VARIANT_CALL(inverse_norm<E>)(x, d);
}
template float inverse_norm<F32>(const float*, int64_t);
template float inverse_norm<F16>(const uint16_t*, int64_t);
template float inverse_norm<BF16>(const uint16_t*, int64_t);

void pair_cosine(const void* a, const void* b, Dtype t, int64_t n, int64_t d, float* out) {
  TRANSENC_VARIANT_CALL(pair_cosine)(a, b, t, n, d, out);
}

void pair_cosine_indexed(const void* table, Dtype t, int64_t rows, int64_t d, const int32_t* idx,
                         int64_t n, float* out) {
  (void)rows;  // bounds are checked by the caller, once, before the parallel pass
  TRANSENC_VARIANT_CALL(pair_cosine_indexed)(table, t, d, idx, n, out);
}

}  // namespace transenc

#include "dropout.h"

#include "variants.h"

#define TRANSENC_KERNELS "dropout_kernels.inc"
#include "variants.inc"

namespace transenc {

void dropout_mask(uint64_t seed, int64_t count, uint16_t threshold, uint8_t* keep) {
  TRANSENC_VARIANT_CALL(dropout_mask)(seed, count, threshold, keep);
}

void masked_scale(const void* x, Dtype t, int64_t count, const uint8_t* keep, float scale, void* out) {
  TRANSENC_VARIANT_CALL(masked_scale)(x, t, count, keep, scale, out);
}

}  // namespace transenc

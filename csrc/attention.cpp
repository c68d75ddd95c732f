#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "elements.h"
#include "variants.h"

#define TRANSENC_KERNELS "attention_kernels.inc"
#include "variants.inc"

namespace transenc {

void attention(const float* qkv, const uint8_t* key_mask, int64_t b, int64_t t, int64_t heads, int64_t dh,
               int64_t queries, float* out) {
  TRANSENC_VARIANT_CALL(attention)(qkv, key_mask, b, t, heads, dh, queries, out);
}

void attention_bf16(const uint16_t* qkv, const uint8_t* key_mask, int64_t b, int64_t t, int64_t heads, int64_t dh,
                    int64_t queries, uint16_t* out) {
  TRANSENC_VARIANT_CALL(attention_bf16)(qkv, key_mask, b, t, heads, dh, queries, out);
}

}  // namespace transenc

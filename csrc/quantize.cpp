#include "quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "elements.h"
#include "variants.h"

#define TRANSENC_KERNELS "quantize_kernels.inc"
#include "variants.inc"

namespace transenc {

void quantize_rows(const float* x, int64_t n, int64_t d, int8_t* q, float* scale, float* offset) {
  TRANSENC_VARIANT_CALL(quantize_rows)(x, n, d, q, scale, offset);
}

void quantize_rows_u8(const float* x, int64_t n, int64_t d, int64_t stride, uint8_t* q, float* scale, float* offset) {
  TRANSENC_VARIANT_CALL(quantize_rows_u8)(x, n, d, stride, q, scale, offset);
}

void gelu_(float* x, int64_t count) { TRANSENC_VARIANT_CALL(gelu_)(x, count); }

void layer_norm_u8(const float* x, const float* residual, int64_t n, int64_t d, const float* gamma, const float* beta,
                   float eps, float* y, int64_t stride, uint8_t* q, float* scale, float* offset) {
  TRANSENC_VARIANT_CALL(layer_norm_u8)(x, residual, n, d, gamma, beta, eps, y, stride, q, scale, offset);
}

void layer_norm_bf16(const uint16_t* sublayer, const float* x, int64_t n, int64_t d, const float* gamma,
                     const float* beta, float eps, float* y, uint16_t* half) {
  TRANSENC_VARIANT_CALL(layer_norm_bf16)(sublayer, x, n, d, gamma, beta, eps, y, half);
}

void gelu_bf16_(uint16_t* x, int64_t count) { TRANSENC_VARIANT_CALL(gelu_bf16_)(x, count); }

void dequantize_rows(void* acc, int64_t n, int64_t d, const Int8Epilogue& e) {
  TRANSENC_VARIANT_CALL(dequantize_rows)(acc, n, d, e);
}

}  // namespace transenc

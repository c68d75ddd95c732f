#include "int8_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "attention.h"
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

void int8_linear_gelu_u8(const uint8_t* q, int64_t m, int64_t k, const int8_t* packed, int64_t n,
                         const Int8Epilogue& e, uint8_t* q_out, float* scale, float* offset) {
  constexpr int64_t kBlockRows = 16;  // 96 KiB of fp32 at n = 1,536: in L2 while GELU and the quantization read it
  const int64_t in_stride = int8_row_stride(k), out_stride = int8_row_stride(n);
  std::vector<float> block(std::min(kBlockRows, m) * n);
  for (int64_t i = 0; i < m; i += kBlockRows) {
    const int64_t rows = std::min(kBlockRows, m - i);
    Int8Epilogue rows_e = e;
    rows_e.row_scale += i;
    rows_e.row_offset += i;
    int8_linear(q + i * in_stride, rows, k, packed, n, rows_e, block.data());
    gelu_(block.data(), rows * n);
    quantize_rows_u8(block.data(), rows, n, out_stride, q_out + i * out_stride, scale + i, offset + i);
  }
}

void int8_self_attention_u8(const uint8_t* q, int64_t b, int64_t t, int64_t k, const int8_t* packed, int64_t n,
                            const Int8Epilogue& e, const uint8_t* key_mask, int64_t heads, int64_t queries,
                            float* out, uint8_t* q_out, float* scale, float* offset) {
  constexpr int64_t kBlockRows = 64;  // 288 KiB of projection at n = 1,152: L2 holds it beside the weights
  const int64_t m = b * t, in_stride = int8_row_stride(k), width = n / 3, out_stride = int8_row_stride(width);
  // The projection of the rows not attended yet: fewer than t before a block is added (the rest of a
  // batch row), so at most t + kBlockRows. Kept per thread: a fresh block would fault its pages in.
  thread_local std::vector<float> window;
  window.resize(std::max(window.size(), static_cast<size_t>((t + kBlockRows) * n)));
  int64_t attended = 0, held = 0;  // batch rows done; projected rows in the window, from row attended * t
  for (int64_t i = 0; i < m; i += kBlockRows) {
    const int64_t rows = std::min(kBlockRows, m - i);
    Int8Epilogue rows_e = e;
    rows_e.row_scale += i;
    rows_e.row_offset += i;
    int8_linear(q + i * in_stride, rows, k, packed, n, rows_e, window.data() + held * n);
    held += rows;
    const int64_t ready = (i + rows) / t;  // batch rows whose every token is projected
    if (ready == attended) continue;
    const int64_t first = attended * t, count = (ready - attended) * t;
    const int64_t answered = attended * queries, answers = (ready - attended) * queries;  // output rows
    attention(window.data(), key_mask + first, ready - attended, t, heads, n / (3 * heads), queries,
              out + answered * width);
    quantize_rows_u8(out + answered * width, answers, width, out_stride, q_out + answered * out_stride,
                     scale + answered, offset + answered);
    held -= count;
    std::memmove(window.data(), window.data() + count * n, held * n * sizeof(float));
    attended = ready;
  }
}

}  // namespace transenc

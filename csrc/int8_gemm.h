// The engine's own int8 matmul, the epilogue fused. With AVX512-VNNI (the avx512_vnni variant) it
// sums u8 x s8 products by vpdpbusd (~410-450 G ops/s on a Zen 4 core). Without int8 dot products,
// where torch._int_mm has no fast kernel (2.9 G ops/s on a Zen 3 core, against 89 G FLOP/s for
// fp32), it uses AVX2, as follows.
// AVX2's vpmaddubsw multiplies unsigned by signed bytes and adds each pair of products (inputs 2t
// and 2t + 1) into a saturating int16; vpmaddwd against ones widens those to int32. Activations are
// u8 in [0, 255] (quantize_rows_u8 in quantize.h: the same steps as quantize_rows, shifted by 128).
// A pair sum stays inside int16 when the pair's weights differ in sign (255 * 127 = 32,385) or,
// sharing a sign, add up to at most kInt8PairMax in magnitude (255 * 128 = 32,640 < 32,767): the
// weights' scales are chosen so (transenc.quantize), pack_int8_weights refuses weights that break
// it, and the result is then exact for the quantized values. One Zen 3 core runs the matmul at
// ~190 G ops/s, 2.1x its fp32 peak. Kept free of Python: bindings.cpp adapts numpy buffers.
#pragma once
#include <cstdint>

#include "quantize.h"

namespace transenc {

constexpr int kInt8PairMax = 128;
constexpr int kInt8Panel = 16;  // output columns per packed panel: two AVX2 registers of int32

// Activation rows are k rounded up to 4 bytes apart: vpmaddubsw and vpmaddwd sum 4 k per int32.
inline int64_t int8_row_stride(int64_t k) { return (k + 3) / 4 * 4; }
inline int64_t int8_packed_bytes(int64_t n, int64_t k) {
  return (n + kInt8Panel - 1) / kInt8Panel * kInt8Panel * int8_row_stride(k);
}

// Whether w[n, k] (one row per output) keeps every pair sum inside int16: no pair of inputs (2t, 2t + 1)
// whose weights share a sign adds up to more than kInt8PairMax in magnitude.
bool int8_pairs_fit(const int8_t* w, int64_t n, int64_t k);
// A Linear's int8 weights w[n, k] as panels of kInt8Panel outputs: in each, for every 4 k, the outputs'
// 4 weights side by side (0 past n and k). Made once, at load; w must pass int8_pairs_fit.
void pack_int8_weights(const int8_t* w, int64_t n, int64_t k, int8_t* packed);

// out[m, n] (fp32) from the quantized rows q[m, int8_row_stride(k)] (quantize_rows_u8) and the packed
// weights, the epilogue (quantize.h) applied. On the calling thread, as the quantization (see quantize.h).
void int8_linear(const uint8_t* q, int64_t m, int64_t k, const int8_t* packed, int64_t n, const Int8Epilogue& e,
                 float* out);

// int8_linear, then GELU (gelu_), then quantize_rows_u8: the int8 path's 384 -> 1,536 layer and the
// quantization of what the 1,536 -> 384 layer reads, a block of rows at a time through a scratch
// block that stays in cache; the fp32 outputs are never written out. q_out[m, int8_row_stride(n)],
// scale[m] and offset[m] are exactly what quantize_rows_u8 makes of gelu_(int8_linear(...)).
void int8_linear_gelu_u8(const uint8_t* q, int64_t m, int64_t k, const int8_t* packed, int64_t n,
                         const Int8Epilogue& e, uint8_t* q_out, float* scale, float* offset);

// A BERT layer's self-attention on the int8 path in one call: int8_linear's fused query/key/value
// projection of the rows q[b * t, int8_row_stride(k)] (n = 3 * heads * dh outputs), attention
// (attention.h) over it with key_mask[b, t] for each batch row's first `queries` tokens, and the
// output out[b * queries, heads * dh] quantized as quantize_rows_u8 makes it (q_out[b * queries,
// int8_row_stride(heads * dh)], scale, offset). The projection goes 64 rows at a time into a
// per-thread window of at most t + 64 rows, and each batch row attends as soon as its tokens are
// projected: attention reads them from L2, not from a [b * t, n] block gone to memory, and the
// quantization reads the output rows it has just written. Exactly the three steps' results.
void int8_self_attention_u8(const uint8_t* q, int64_t b, int64_t t, int64_t k, const int8_t* packed, int64_t n,
                            const Int8Epilogue& e, const uint8_t* key_mask, int64_t heads, int64_t queries,
                            float* out, uint8_t* q_out, float* scale, float* offset);

}  // namespace transenc

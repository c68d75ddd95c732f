// Multi-head self-attention of a BERT layer, for the int8 inference path and bf16 passes (transenc.quantize):
// torch's scaled_dot_product_attention spends most of its time around the work on the short rows
// that scoring packs (one Zen 4 core: ~20 G FLOP/s at 32 pairs of 28 tokens, a fifth of its fp32
// peak, and 18-22% of an int8 forward). Here each (row, head) is one pass over cache-resident
// tiles, reading the layer's fused query/key/value projection as it is and writing the output in
// the layout the next Linear reads, so no permute or copy is made around it. Kept free of Python:
// bindings.cpp adapts numpy buffers. On the calling thread, as the int8 matmul (see quantize.h).
#pragma once
#include <cstdint>

namespace transenc {

// out[i, q, h * dh + c] = sum over kept keys k of softmax_k(qh . kh / sqrt(dh)) * vh[k, c], for each
// batch row i < b, query q < queries (1 <= queries <= t: the first tokens alone, as a cross-encoder's
// last layer needs its first one's) and head h < heads, where qh, kh and vh are head h's slices of the
// three thirds of qkv[i, token] (float32[b, t, 3 * heads * dh]: queries, keys, values), a key is
// kept where key_mask[i, k] != 0, and out is float32[b, queries, heads * dh]. A query's output does
// not depend on how many others are answered. A row without a kept key gets zeros (SDPA: NaN). The
// exponentials are fp32 to about 2 ulp. In the avx512_bf16 variant the two products read queries,
// keys, values and softmax weights rounded to bf16 (to nearest even), with fp32 sums, the weights
// normalised after their rounding: the output moves by ~2^-9 of the values' scale, under the step
// of the int8 quantization that reads it next, and about one rounding of the bf16 Linear that reads
// it in a bf16 pass.
void attention(const float* qkv, const uint8_t* key_mask, int64_t b, int64_t t, int64_t heads, int64_t dh,
               int64_t queries, float* out);

// The same on bf16 (its bits as uint16_t), for bf16 inference passes, which made qkv in bf16 and read
// out in bf16: exactly attention() of qkv widened to fp32, its output rounded to bf16 (to nearest
// even). Each batch row is widened in cache; no fp32 copy of the whole is made.
void attention_bf16(const uint16_t* qkv, const uint8_t* key_mask, int64_t b, int64_t t, int64_t heads, int64_t dh,
                    int64_t queries, uint16_t* out);

}  // namespace transenc

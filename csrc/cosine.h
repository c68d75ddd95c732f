// Pair cosine over float32 rows. Kept free of Python: bindings.cpp adapts numpy buffers.
#pragma once
#include <cstdint>

namespace transenc {

// out[i] = cos(a[i], b[i]) for n rows of dimension d; a zero row gives 0.
void pair_cosine_f32(const float* a, const float* b, int64_t n, int64_t d, float* out);

// out[i] = cos(table[idx[2i]], table[idx[2i+1]]): the gather fused into the pass.
void pair_cosine_indexed_f32(const float* table, int64_t rows, int64_t d, const int32_t* idx,
                             int64_t n, float* out);

}  // namespace transenc

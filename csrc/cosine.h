// Pair cosine over fp32 / fp16 / bf16 rows, fp32 accumulate and output.
// Kept free of Python: bindings.cpp adapts numpy buffers.
#pragma once
#include <cstdint>

#include "elements.h"
#include "variants.h"

namespace transenc {

// out[i] = cos(a[i], b[i]) for n rows of dimension d; a zero row gives 0 (never NaN).
void pair_cosine(const void* a, const void* b, Dtype t, int64_t n, int64_t d, float* out);

// out[i] = cos(table[idx[2i]], table[idx[2i+1]]): the gather fused into the pass.
// Indices must already be checked to lie in [0, rows).
void pair_cosine_indexed(const void* table, Dtype t, int64_t rows, int64_t d, const int32_t* idx,
                         int64_t n, float* out);

// 1 / ||x|| for one row of d elements, 0 for a zero row. The top-k op normalises queries
// and corpus with this one function so that cos(x, y) == cos(y, x) bit for bit.
template <typename E>
float inverse_norm(const typename E::T* x, int64_t d);

}  // namespace transenc

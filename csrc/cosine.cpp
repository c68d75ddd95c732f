#include "cosine.h"

#include <cmath>

#include "parallel.h"

namespace transenc {

namespace {

struct Sums {
  float dot, xx, yy;
};

#ifdef TRANSENC_AVX512
// Sum of the 16 lanes by halving shuffles.
inline float lane_sum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_cvtss_f32(v);
}
#endif

// One pass over two rows: the dot product and both squared norms, fp32 accumulate.
template <typename E>
inline Sums row_sums(const typename E::T* x, const typename E::T* y, int64_t d) {
#ifdef TRANSENC_AVX512
  __m512 dot = _mm512_setzero_ps(), xx = _mm512_setzero_ps(), yy = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= d; j += 16) {
    __m512 a = E::load(x + j), b = E::load(y + j);
    dot = _mm512_fmadd_ps(a, b, dot);
    xx = _mm512_fmadd_ps(a, a, xx);
    yy = _mm512_fmadd_ps(b, b, yy);
  }
  if (j < d) {  // the tail as one masked step: masked-off lanes load as 0
    __mmask16 m = static_cast<__mmask16>((1u << (d - j)) - 1);
    __m512 a = E::load(x + j, m), b = E::load(y + j, m);
    dot = _mm512_fmadd_ps(a, b, dot);
    xx = _mm512_fmadd_ps(a, a, xx);
    yy = _mm512_fmadd_ps(b, b, yy);
  }
  return {lane_sum(dot), lane_sum(xx), lane_sum(yy)};
#else
  Sums s{0.f, 0.f, 0.f};
  for (int64_t j = 0; j < d; ++j) {
    float a = E::scalar(x + j), b = E::scalar(y + j);
    s.dot += a * b;
    s.xx += a * a;
    s.yy += b * b;
  }
  return s;
#endif
}

inline float cosine_of(Sums s) {
  float denom = std::sqrt(s.xx) * std::sqrt(s.yy);
  return denom > 0.f ? s.dot / denom : 0.f;
}

}  // namespace

template <typename E>
float inverse_norm(const typename E::T* x, int64_t d) {
  float xx = row_sums<E>(x, x, d).xx;
  return xx > 0.f ? 1.f / std::sqrt(xx) : 0.f;
}
template float inverse_norm<F32>(const float*, int64_t);
template float inverse_norm<F16>(const uint16_t*, int64_t);
template float inverse_norm<BF16>(const uint16_t*, int64_t);

void pair_cosine(const void* a, const void* b, Dtype t, int64_t n, int64_t d, float* out) {
  with_elements(t, [&](auto e) {
    using E = decltype(e);
    using T = typename E::T;
    const T* x = static_cast<const T*>(a);
    const T* y = static_cast<const T*>(b);
    parallel_for(n, 4096, [=](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = cosine_of(row_sums<E>(x + i * d, y + i * d, d));
    });
  });
}

void pair_cosine_indexed(const void* table, Dtype t, int64_t rows, int64_t d, const int32_t* idx,
                         int64_t n, float* out) {
  (void)rows;  // bounds are checked by the caller, once, before the parallel pass
  with_elements(t, [&](auto e) {
    using E = decltype(e);
    using T = typename E::T;
    const T* tab = static_cast<const T*>(table);
    parallel_for(n, 4096, [=](int64_t begin, int64_t end) {
      // (Software prefetch of the rows a few pairs ahead measured no faster: out-of-order
      // execution already overlaps the misses of consecutive pairs.)
      for (int64_t i = begin; i < end; ++i) {
        const T* x = tab + int64_t(idx[2 * i]) * d;
        const T* y = tab + int64_t(idx[2 * i + 1]) * d;
        out[i] = cosine_of(row_sums<E>(x, y, d));
      }
    });
  });
}

}  // namespace transenc

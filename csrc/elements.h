// Input element types of the engine (fp32, fp16, bf16) and how to widen them to fp32 (and fp32 to
// bf16, for bf16 outputs: attention's, the norms' and GELU's of a bf16 pass).
// Every op accumulates in fp32 whatever the input type, so these (and their vector loads in
// cosine_kernels.inc) are the only places that know the storage formats.
#pragma once
#include <cstdint>
#include <cstring>

namespace transenc {

enum class Dtype : int { f32 = 0, f16 = 1, bf16 = 2 };

inline float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// IEEE half -> float, portable (subnormals, inf and NaN included).
inline float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    float f = float(man) * (1.0f / 16777216.0f);  // man * 2^-24
    return sign ? -f : f;
  }
  return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
}

struct F32 {
  using T = float;
  static float scalar(const T* p) { return *p; }
};

struct F16 {
  using T = uint16_t;
  static float scalar(const T* p) { return half_to_float(*p); }
};

// bf16 is the top half of an fp32: widening is a 16-bit shift.
struct BF16 {
  using T = uint16_t;
  static float scalar(const T* p) { return bits_to_float(uint32_t(*p) << 16); }
};

// float -> bf16 bits, rounded to nearest even as torch's scalar conversion rounds (c10's round_to_nearest_even,
// a NaN to its quiet NaN).
inline uint16_t float_to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

// count floats to bf16 bits, each rounded as float_to_bf16 rounds it (a loop that the kernels' variants
// vectorise where they inline it).
inline void round_to_bf16(const float* x, int64_t count, uint16_t* out) {
  for (int64_t j = 0; j < count; ++j) out[j] = float_to_bf16(x[j]);
}

// Calls f(E{}) with E the element struct for dtype t.
template <typename F>
auto with_elements(Dtype t, F f) {
  switch (t) {
    case Dtype::f16: return f(F16{});
    case Dtype::bf16: return f(BF16{});
    default: return f(F32{});
  }
}

}  // namespace transenc

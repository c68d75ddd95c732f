// Per-row int8 quantization, its fp32 epilogue, and the element-wise steps whose output the next
// int8 layer quantizes (GELU, LayerNorm), for the engine's int8 inference path (transenc.quantize);
// and the same steps for bf16 passes, whose next layer reads bf16.
// Kept free of Python: bindings.cpp adapts numpy buffers. All run on the calling thread: they sit
// between torch ops, whose OpenMP workers still spin there, and a second set of threads beside them
// slowed the whole int8 forward by a fifth.
#pragma once
#include <cstdint>

namespace transenc {

// Asymmetric, one scale and offset per row (per token): x[i, j] ~ q[i, j] * scale[i] + offset[i],
// q in [-128, 127] spanning the row's [min, max] (rounded half to even). A row's own range keeps
// one outlier token from flattening the others, and the offset gives skewed rows (a GELU's output
// runs from -0.17 up) all 256 steps. A constant row gets scale 0 and offset its value.
void quantize_rows(const float* x, int64_t n, int64_t d, int8_t* q, float* scale, float* offset);

// The same steps unsigned, for the engine's own int8 matmul (int8_gemm.h): q in [0, 255], x[i, j] ~
// q[i, j] * scale[i] + offset[i] (q is quantize_rows' + 128, offset its offset - 128 * scale), rows
// `stride` bytes apart (the columns past d are 0).
void quantize_rows_u8(const float* x, int64_t n, int64_t d, int64_t stride, uint8_t* q, float* scale, float* offset);

// GELU (erf's, as torch's F.gelu) in place, to within 1.5e-7 |x|: what an int8 path's 384 -> 1,536 layer
// hands to the next one's quantization (int8_linear_gelu_u8 in int8_gemm.h).
void gelu_(float* x, int64_t count);

// LayerNorm of each row of x[n, d] + residual[n, d] (biased variance, as torch's) into y, and y's rows
// quantized as quantize_rows_u8 makes them, while each row is still in L1: what the next int8 layer
// reads. residual may be null (x alone); the sum is rounded to fp32 first, as torch's x + residual.
void layer_norm_u8(const float* x, const float* residual, int64_t n, int64_t d, const float* gamma, const float* beta,
                   float eps, float* y, int64_t stride, uint8_t* q, float* scale, float* offset);

// A bf16 pass's LayerNorm: of each row of sublayer[n, d] (bf16 bits, a sublayer's output; may be null)
// plus x[n, d] (fp32, the sublayer's input) into y (fp32: the next residual), and y rounded to bf16 as
// float_to_bf16 rounds (what the next layer's matmul reads, instead of casting y once more). The sum is
// rounded to fp32 first, as torch's bf16 + fp32.
void layer_norm_bf16(const uint16_t* sublayer, const float* x, int64_t n, int64_t d, const float* gamma,
                     const float* beta, float eps, float* y, uint16_t* half);

// GELU in place on bf16 bits: each widened, gelu_'s GELU, rounded as float_to_bf16 rounds. A bf16
// pass's 384 -> 1,536 output, which torch's F.gelu would widen and round as well.
void gelu_bf16_(uint16_t* x, int64_t count);

// The fp32 epilogue of an int8 matmul: output [i, j] of acc[i, j] (int32, sum_k q[i, k] * wq[k, j]) is
// acc * row_scale[i] * col_scale[j] + row_offset[i] * col_sum[j] + bias[j], where col_sum[j] =
// sum_k wq[k, j] * col_scale[j] carries the rows' offsets. bias may be null. dequantize_rows and the
// engine's fused matmul (int8_gemm.h) both compute it here, so the two round alike.
struct Int8Epilogue {
  const float *row_scale, *row_offset, *col_scale, *col_sum, *bias;

  // Output [i, j] from acc and row i's scale and offset, which callers read once per row: read
  // here, every store of an output (a float that might alias them) would read them again.
  float operator()(int32_t acc, float row_scale_i, float row_offset_i, int64_t j) const {
    return static_cast<float>(acc) * row_scale_i * col_scale[j] + row_offset_i * col_sum[j] + (bias ? bias[j] : 0.f);
  }
};

// The epilogue in place, for torch._int_mm's int32 acc[n, d]: each float goes into its int32's slot.
void dequantize_rows(void* acc, int64_t n, int64_t d, const Int8Epilogue& e);

}  // namespace transenc

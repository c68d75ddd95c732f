// The one file of the engine that knows about Python: numpy buffers in, numpy arrays out.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention.h"
#include "cosine.h"
#include "dropout.h"
#include "int8_gemm.h"
#include "packer.h"
#include "pairscan.h"
#include "parallel.h"
#include "quantize.h"
#include "topk.h"
#include "variants.h"

namespace py = pybind11;
using namespace transenc;

static void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);  // pybind11 raises ValueError
}

// ---------------------------------------------------------------------------------------
// Scoring engine: pair_cosine, pair_cosine_indexed, cosine_topk.
// Float inputs come as (array, kind) with kind "f32", "f16" or "bf16"; numpy has no bf16, so
// bf16 arrives as a 2-byte integer view of the torch tensor. Arrays must already be
// C-contiguous and of the stated kind: nothing is copied or cast here.
// ---------------------------------------------------------------------------------------
namespace scoring {

Dtype checked_rows(const py::array& x, const std::string& kind, const char* what, int ndim = 2) {
  require(x.ndim() == ndim, std::string(what) + " must be " + std::to_string(ndim) + "-D");
  require(x.flags() & py::array::c_style, std::string(what) + " must be C-contiguous");
  const char k = x.dtype().kind();
  const auto size = x.itemsize();
  if (kind == "f32" && k == 'f' && size == 4) return Dtype::f32;
  if (kind == "f16" && k == 'f' && size == 2) return Dtype::f16;
  if (kind == "bf16" && (k == 'i' || k == 'u') && size == 2) return Dtype::bf16;
  throw std::invalid_argument(std::string(what) + ": numpy dtype does not match kind '" + kind + "'");
}

py::array_t<float> pair_cosine_py(const py::array& a, const py::array& b, const std::string& kind) {
  Dtype t = checked_rows(a, kind, "pair_cosine: a");
  checked_rows(b, kind, "pair_cosine: b");
  require(a.shape(0) == b.shape(0) && a.shape(1) == b.shape(1), "pair_cosine: a and b differ in shape");
  const int64_t n = a.shape(0), d = a.shape(1);
  py::array_t<float> out(n);
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    pair_cosine(a.data(), b.data(), t, n, d, o);
  }
  return out;
}

py::array_t<float> pair_cosine_indexed_py(const py::array& table, const std::string& kind,
                                          const py::array_t<int32_t, py::array::c_style>& idx) {
  Dtype t = checked_rows(table, kind, "pair_cosine_indexed: table");
  require(idx.ndim() == 2 && idx.shape(1) == 2, "pair_cosine_indexed: idx must be int32[N, 2]");
  const int64_t rows = table.shape(0), n = idx.shape(0);
  const int32_t* ids = idx.data();
  for (int64_t i = 0; i < 2 * n; ++i)
    require(ids[i] >= 0 && ids[i] < rows, "pair_cosine_indexed: index out of range");
  py::array_t<float> out(n);
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    pair_cosine_indexed(table.data(), t, rows, table.shape(1), ids, n, o);
  }
  return out;
}

py::tuple cosine_topk_py(const py::array& queries, const std::string& query_kind,
                         const py::array& corpus, const std::string& corpus_kind, int64_t k,
                         bool exclude_self, int64_t first_query_id) {
  Dtype qt = checked_rows(queries, query_kind, "cosine_topk: queries");
  Dtype ct = checked_rows(corpus, corpus_kind, "cosine_topk: corpus");
  require(queries.shape(1) == corpus.shape(1), "cosine_topk: queries and corpus differ in dimension");
  require(k >= 0, "cosine_topk: k must be >= 0");
  const int64_t nq = queries.shape(0), nc = corpus.shape(0), d = queries.shape(1);
  py::array_t<float> scores({nq, k});
  py::array_t<int64_t> ids({nq, k});
  float* s = scores.mutable_data();
  int64_t* i = ids.mutable_data();
  {
    py::gil_scoped_release release;
    cosine_topk(queries.data(), qt, nq, corpus.data(), ct, nc, d, k, exclude_self, first_query_id,
                s, i);
  }
  return py::make_tuple(scores, ids);
}

void bind(py::module_& m) {
  m.def("pair_cosine", &pair_cosine_py, py::arg("a"), py::arg("b"), py::arg("kind"),
        "cos(a[i], b[i]) as float32[N]; a zero row gives 0");
  m.def("pair_cosine_indexed", &pair_cosine_indexed_py, py::arg("table"), py::arg("kind"),
        py::arg("idx"), "cos(table[idx[i, 0]], table[idx[i, 1]]) as float32[N]");
  m.def("cosine_topk", &cosine_topk_py, py::arg("queries"), py::arg("query_kind"),
        py::arg("corpus"), py::arg("corpus_kind"), py::arg("k"), py::arg("exclude_self"),
        py::arg("first_query_id"),
        "(scores float32[Q, k], ids int64[Q, k]): exact cosine top-k, fused and tiled");
}

}  // namespace scoring
// ----------------------------- end of scoring engine bindings ---------------------------

template <typename T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

// ---- Packer: cached token ids -> padded, length-sorted batches in flat numpy buffers ----------

static std::vector<int32_t> id_list(const py::sequence& ids) {
  std::vector<int32_t> out;
  for (auto id : ids) out.push_back(id.cast<int32_t>());
  return out;
}

// Shared by pairs (seq int32[N, 2]) and single sentences (seq int32[N]). Returns the batches as
// flat buffers: batch k is rows batch_rows[k]..batch_rows[k+1] of `rows`, stored row-major as
// [rows, batch_width[k]] at input_ids[batch_offset[k]:], and the same in the other buffers.
static py::dict py_pack(const char* name, carray<int32_t> ids, carray<int64_t> offsets,
                        carray<int32_t> seq, int width, const PackTemplate& t, int64_t max_length,
                        int64_t token_budget, double min_efficiency, int32_t pad_id, bool int64) {
  const std::string fn(name);
  require(ids.ndim() == 1 && offsets.ndim() == 1 && offsets.shape(0) >= 1,
          fn + ": ids and offsets must be 1-D, offsets with sentences + 1 entries");
  const int64_t sentences = offsets.shape(0) - 1;
  const int64_t* off = offsets.data();
  require(off[0] >= 0 && off[sentences] <= ids.shape(0), fn + ": offsets point outside ids");
  bool ordered = true;  // checked in one pass, the message built once
  for (int64_t s = 0; s < sentences; ++s) ordered &= off[s] <= off[s + 1];
  require(ordered, fn + ": offsets must not decrease");
  if (width == 2)
    require(seq.ndim() == 2 && seq.shape(1) == 2, fn + ": pairs must be int32[N, 2]");
  else
    require(seq.ndim() == 1, fn + ": sentence_ids must be int32[N]");
  const int64_t n = seq.shape(0);
  const int32_t* sq = seq.data();
  bool in_range = true;
  for (int64_t i = 0; i < n * width; ++i) in_range &= sq[i] >= 0 && sq[i] < sentences;
  require(in_range, fn + ": sentence index out of range");
  require(max_length >= t.specials(width), fn + ": max_length leaves no room for the special tokens");
  require(token_budget >= 1, fn + ": token_budget must be >= 1");
  require(min_efficiency >= 0 && min_efficiency <= 1, fn + ": min_efficiency must be in [0, 1]");

  PackPlan plan;
  {
    py::gil_scoped_release release;
    plan = plan_packing(off, sq, n, width, t, max_length, token_budget, min_efficiency);
  }
  const bool types = width == 2 && t.type_a >= 0;
  const int64_t total = plan.total_elements();
  py::dict out;
  auto fill = [&](auto zero) {
    using Index = decltype(zero);
    py::array_t<Index> input_ids(total), attention_mask(total);
    py::array_t<Index> token_type_ids(types ? total : 0);
    {
      py::gil_scoped_release release;
      fill_packing<Index>(plan, ids.data(), off, sq, width, t, pad_id, input_ids.mutable_data(),
                          attention_mask.mutable_data(), types ? token_type_ids.mutable_data() : nullptr);
    }
    out["input_ids"] = input_ids;
    out["attention_mask"] = attention_mask;
    out["token_type_ids"] = types ? py::object(token_type_ids) : py::none();
  };
  if (int64)
    fill(int64_t{0});
  else
    fill(int32_t{0});
  out["rows"] = py::array_t<int64_t>(n, plan.rows.data());
  out["batch_rows"] = py::array_t<int64_t>(plan.batch_rows.size(), plan.batch_rows.data());
  out["batch_offset"] = py::array_t<int64_t>(plan.batch_offset.size(), plan.batch_offset.data());
  out["batch_width"] = py::array_t<int64_t>(plan.batch_width.size(), plan.batch_width.data());
  return out;
}

static py::dict py_pack_pairs(carray<int32_t> ids, carray<int64_t> offsets, carray<int32_t> pairs,
                              py::sequence prefix, py::sequence middle, py::sequence suffix,
                              py::object pair_types, int64_t max_length, int64_t token_budget,
                              double min_efficiency, int32_t pad_id, bool int64) {
  PackTemplate t{id_list(prefix), id_list(middle), id_list(suffix)};
  if (!pair_types.is_none()) {
    auto types = pair_types.cast<py::sequence>();
    require(types.size() == 2, "pack_pairs: pair_types must be (type of a, type of b) or None");
    t.type_a = types[0].cast<int32_t>();
    t.type_b = types[1].cast<int32_t>();
    require(t.type_a >= 0 && t.type_b >= 0, "pack_pairs: token types must be >= 0");
  }
  return py_pack("pack_pairs", ids, offsets, pairs, 2, t, max_length, token_budget, min_efficiency,
                 pad_id, int64);
}

static py::dict py_pack_sentences(carray<int32_t> ids, carray<int64_t> offsets,
                                  carray<int32_t> sentence_ids, py::sequence prefix,
                                  py::sequence suffix, int64_t max_length, int64_t token_budget,
                                  double min_efficiency, int32_t pad_id, bool int64) {
  PackTemplate t{id_list(prefix), {}, id_list(suffix)};
  return py_pack("pack_sentences", ids, offsets, sentence_ids, 1, t, max_length, token_budget,
                 min_efficiency, pad_id, int64);
}

static py::tuple py_truncate_longest_first(int64_t len_a, int64_t len_b, int64_t budget) {
  require(len_a >= 0 && len_b >= 0 && budget >= 0, "truncate_longest_first: lengths must be >= 0");
  truncate_longest_first(len_a, len_b, budget);
  return py::make_tuple(len_a, len_b);
}

static void def_packer(py::module_& m) {
  m.def("pack_pairs", &py_pack_pairs, py::arg("ids"), py::arg("offsets"), py::arg("pairs"),
        py::arg("prefix"), py::arg("middle"), py::arg("suffix"), py::arg("pair_types"),
        py::arg("max_length"), py::arg("token_budget"), py::arg("min_efficiency"), py::arg("pad_id"),
        py::arg("int64") = false);
  m.def("pack_sentences", &py_pack_sentences, py::arg("ids"), py::arg("offsets"),
        py::arg("sentence_ids"), py::arg("prefix"), py::arg("suffix"), py::arg("max_length"),
        py::arg("token_budget"), py::arg("min_efficiency"), py::arg("pad_id"), py::arg("int64") = false);
  m.def("truncate_longest_first", &py_truncate_longest_first, py::arg("len_a"), py::arg("len_b"),
        py::arg("budget"));
}

// ---- end of packer ---------------------------------------------------------------------------

// ---- int8 inference: per-row activation quantization and the matmul's epilogue ----------------
template <typename T>
using rows_of = py::array_t<T, py::array::c_style>;

// The int8 epilogue (quantize.h) of an output of m rows and n columns, its vectors checked; a bias
// (None or float32[n]) is cast into `held`, which must outlive the epilogue.
static Int8Epilogue epilogue_of(const char* op, int64_t m, int64_t n, const rows_of<float>& row_scale,
                                const rows_of<float>& row_offset, const rows_of<float>& col_scale,
                                const rows_of<float>& col_sum, const py::object& bias, rows_of<float>& held) {
  const std::string name(op), rows = "[" + std::to_string(m) + "]", cols = "[" + std::to_string(n) + "]";
  for (auto* v : {&row_scale, &row_offset})
    require(v->ndim() == 1 && v->shape(0) == m, name + ": row_scale and row_offset must be float32" + rows);
  for (auto* v : {&col_scale, &col_sum})
    require(v->ndim() == 1 && v->shape(0) == n, name + ": col_scale and col_sum must be float32" + cols);
  if (!bias.is_none()) {
    held = bias.cast<rows_of<float>>();
    require(held.ndim() == 1 && held.shape(0) == n, name + ": bias must be float32" + cols + " or None");
  }
  return {row_scale.data(), row_offset.data(), col_scale.data(), col_sum.data(), bias.is_none() ? nullptr : held.data()};
}

static py::tuple py_quantize_rows(const rows_of<float>& x) {
  require(x.ndim() == 2, "quantize_rows: x must be float32[N, d]");
  const int64_t n = x.shape(0), d = x.shape(1);
  py::array_t<int8_t> q({n, d});
  py::array_t<float> scale(n), offset(n);
  int8_t* qd = q.mutable_data();
  float *sd = scale.mutable_data(), *od = offset.mutable_data();
  {
    py::gil_scoped_release release;
    quantize_rows(x.data(), n, d, qd, sd, od);
  }
  return py::make_tuple(q, scale, offset);
}

static void py_dequantize_rows(py::array acc, const rows_of<float>& row_scale, const rows_of<float>& row_offset,
                               const rows_of<float>& col_scale, const rows_of<float>& col_sum, py::object bias) {
  require(acc.ndim() == 2 && (acc.flags() & py::array::c_style) && acc.dtype().kind() == 'i' &&
              acc.itemsize() == 4 && acc.writeable(),
          "dequantize_rows: acc must be a writeable C-contiguous int32[N, d]");
  const int64_t n = acc.shape(0), d = acc.shape(1);
  rows_of<float> b;
  const Int8Epilogue e = epilogue_of("dequantize_rows", n, d, row_scale, row_offset, col_scale, col_sum, bias, b);
  void* data = acc.mutable_data();
  py::gil_scoped_release release;
  dequantize_rows(data, n, d, e);
}

// ---- the engine's own int8 matmul (int8_gemm.h), for CPUs without int8 dot products -----------
static py::array_t<int8_t> py_pack_int8_weights(const rows_of<int8_t>& w) {
  require(w.ndim() == 2, "pack_int8_weights: w must be int8[n, k]");
  const int64_t n = w.shape(0), k = w.shape(1);
  require(int8_pairs_fit(w.data(), n, k), "pack_int8_weights: a pair of inputs (2t, 2t + 1) has weights of one sign "
                                          "adding up to more than INT8_PAIR_MAX: its 16-bit sums could saturate");
  py::array_t<int8_t> packed(int8_packed_bytes(n, k));
  pack_int8_weights(w.data(), n, k, packed.mutable_data());
  return packed;
}

static py::tuple py_quantize_rows_u8(const rows_of<float>& x) {
  require(x.ndim() == 2, "quantize_rows_u8: x must be float32[N, d]");
  const int64_t n = x.shape(0), d = x.shape(1);
  py::array_t<uint8_t> q({n, int8_row_stride(d)});
  py::array_t<float> scale(n), offset(n);
  uint8_t* qd = q.mutable_data();
  float *sd = scale.mutable_data(), *od = offset.mutable_data();
  {
    py::gil_scoped_release release;
    quantize_rows_u8(x.data(), n, d, int8_row_stride(d), qd, sd, od);
  }
  return py::make_tuple(q, scale, offset);
}

// The rows of an int8 matmul's arguments (int8_linear and int8_linear_gelu_u8), after their shapes are checked.
static int64_t int8_matmul_rows(const char* name, const rows_of<uint8_t>& q, int64_t k, const rows_of<int8_t>& packed,
                                int64_t n) {
  require(k > 0 && n > 0, std::string(name) + ": k and n must be positive");
  require(q.ndim() == 2 && q.shape(1) == int8_row_stride(k), std::string(name) + ": q must be uint8[m, k rounded up to 4]");
  require(packed.ndim() == 1 && packed.shape(0) == int8_packed_bytes(n, k),
          std::string(name) + ": packed must be pack_int8_weights of an int8[n, k]");
  return q.shape(0);
}

static py::array_t<float> py_int8_linear(const rows_of<uint8_t>& q, int64_t k, const rows_of<int8_t>& packed, int64_t n,
                                         const rows_of<float>& row_scale, const rows_of<float>& row_offset,
                                         const rows_of<float>& col_scale, const rows_of<float>& col_sum, py::object bias) {
  const int64_t m = int8_matmul_rows("int8_linear", q, k, packed, n);
  rows_of<float> b;
  const Int8Epilogue e = epilogue_of("int8_linear", m, n, row_scale, row_offset, col_scale, col_sum, bias, b);
  py::array_t<float> out({m, n});
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    int8_linear(q.data(), m, k, packed.data(), n, e, o);
  }
  return out;
}

static py::tuple py_int8_linear_gelu_u8(const rows_of<uint8_t>& q, int64_t k, const rows_of<int8_t>& packed, int64_t n,
                                        const rows_of<float>& row_scale, const rows_of<float>& row_offset,
                                        const rows_of<float>& col_scale, const rows_of<float>& col_sum, py::object bias) {
  const int64_t m = int8_matmul_rows("int8_linear_gelu_u8", q, k, packed, n);
  rows_of<float> b;
  const Int8Epilogue e = epilogue_of("int8_linear_gelu_u8", m, n, row_scale, row_offset, col_scale, col_sum, bias, b);
  py::array_t<float> scale(m), offset(m);
  py::array_t<uint8_t> q_out({m, int8_row_stride(n)});
  float *sd = scale.mutable_data(), *od = offset.mutable_data();
  uint8_t* qd = q_out.mutable_data();
  {
    py::gil_scoped_release release;
    int8_linear_gelu_u8(q.data(), m, k, packed.data(), n, e, qd, sd, od);
  }
  return py::make_tuple(q_out, scale, offset);
}

static py::tuple py_int8_self_attention_u8(const rows_of<uint8_t>& q, int64_t k, const rows_of<int8_t>& packed,
                                           int64_t n, const rows_of<float>& row_scale, const rows_of<float>& row_offset,
                                           const rows_of<float>& col_scale, const rows_of<float>& col_sum,
                                           py::object bias, const rows_of<uint8_t>& key_mask, int64_t heads,
                                           int64_t queries) {
  const int64_t m = int8_matmul_rows("int8_self_attention_u8", q, k, packed, n);
  rows_of<float> b;
  const Int8Epilogue e = epilogue_of("int8_self_attention_u8", m, n, row_scale, row_offset, col_scale, col_sum, bias, b);
  require(heads > 0 && n % (3 * heads) == 0, "int8_self_attention_u8: n must be 3 * heads * dh with heads > 0");
  require(key_mask.ndim() == 2 && key_mask.shape(0) * key_mask.shape(1) == m,
          "int8_self_attention_u8: key_mask must be uint8[b, t] with b * t = q's rows");
  const int64_t rows = key_mask.shape(0), t = key_mask.shape(1), width = n / 3, answers = rows * queries;
  require(queries >= 1 && queries <= t, "int8_self_attention_u8: queries must be 1 .. t");
  py::array_t<float> out({rows, queries, width}), scale(answers), offset(answers);
  py::array_t<uint8_t> q_out({answers, int8_row_stride(width)});
  float *o = out.mutable_data(), *sd = scale.mutable_data(), *od = offset.mutable_data();
  uint8_t* qd = q_out.mutable_data();
  {
    py::gil_scoped_release release;
    int8_self_attention_u8(q.data(), rows, t, k, packed.data(), n, e, key_mask.data(), heads, queries, o, qd, sd, od);
  }
  return py::make_tuple(out, q_out, scale, offset);
}

// A LayerNorm binding's arguments: x float32[N, d] with d > 0, gamma and beta float32[d], and `added` (what
// the norm adds to x's rows) None or an array of T of x's shape, returned held (empty for None).
template <typename T>
static rows_of<T> checked_norm_arguments(const std::string& op, const rows_of<float>& x, const py::object& added,
                                         const std::string& added_rule, const rows_of<float>& gamma,
                                         const rows_of<float>& beta) {
  require(x.ndim() == 2 && x.shape(1) > 0, op + ": x must be float32[N, d] with d > 0");
  const int64_t d = x.shape(1);
  require(gamma.ndim() == 1 && gamma.shape(0) == d && beta.ndim() == 1 && beta.shape(0) == d,
          op + ": gamma and beta must be float32[d]");
  rows_of<T> held;
  if (!added.is_none()) {
    held = added.cast<rows_of<T>>();
    require(held.ndim() == 2 && held.shape(0) == x.shape(0) && held.shape(1) == d, op + ": " + added_rule);
  }
  return held;
}

static py::tuple py_layer_norm_u8(const rows_of<float>& x, const py::object& residual, const rows_of<float>& gamma,
                                   const rows_of<float>& beta, float eps) {
  const rows_of<float> held =
      checked_norm_arguments<float>("layer_norm_u8", x, residual, "residual must be x's shape or None", gamma, beta);
  const int64_t n = x.shape(0), d = x.shape(1);
  py::array_t<float> y({n, d}), scale(n), offset(n);
  py::array_t<uint8_t> q({n, int8_row_stride(d)});
  float *yd = y.mutable_data(), *sd = scale.mutable_data(), *od = offset.mutable_data();
  uint8_t* qd = q.mutable_data();
  {
    py::gil_scoped_release release;
    layer_norm_u8(x.data(), residual.is_none() ? nullptr : held.data(), n, d, gamma.data(), beta.data(), eps, yd,
                  int8_row_stride(d), qd, sd, od);
  }
  return py::make_tuple(y, q, scale, offset);
}

// bf16 travels as int16 bits (numpy has no bf16), both ways.
static py::tuple py_layer_norm_bf16(const py::object& sublayer, const rows_of<float>& x, const rows_of<float>& gamma,
                                    const rows_of<float>& beta, float eps) {
  const rows_of<int16_t> held = checked_norm_arguments<int16_t>(
      "layer_norm_bf16", x, sublayer, "sublayer must be x's shape (bf16 bits as int16) or None", gamma, beta);
  const int64_t n = x.shape(0), d = x.shape(1);
  py::array_t<float> y({n, d});
  py::array_t<int16_t> half({n, d});
  float* yd = y.mutable_data();
  auto* hd = reinterpret_cast<uint16_t*>(half.mutable_data());
  {
    py::gil_scoped_release release;
    layer_norm_bf16(sublayer.is_none() ? nullptr : reinterpret_cast<const uint16_t*>(held.data()), x.data(), n, d,
                    gamma.data(), beta.data(), eps, yd, hd);
  }
  return py::make_tuple(y, half);
}

static py::array_t<uint8_t> py_dropout_mask(uint64_t seed, int64_t count, int threshold) {
  require(count >= 0 && threshold >= 0 && threshold <= 65535,
          "dropout_mask: count must be >= 0 and threshold within [0, 65535]");
  py::array_t<uint8_t> keep(count);
  auto* k = keep.mutable_data();
  py::gil_scoped_release release;
  dropout_mask(seed, count, static_cast<uint16_t>(threshold), k);
  return keep;
}

static void py_masked_scale(const py::array& x, const std::string& kind, const py::array& keep, float scale,
                            py::array out) {
  require(kind == "f32" || kind == "bf16", "masked_scale: kind must be 'f32' or 'bf16'");
  const Dtype t = scoring::checked_rows(x, kind, "masked_scale: x", 1);
  scoring::checked_rows(out, kind, "masked_scale: out", 1);
  require(out.writeable(), "masked_scale: out must be writeable");
  require((keep.flags() & py::array::c_style) && keep.dtype().kind() == 'u' && keep.itemsize() == 1,
          "masked_scale: keep must be a C-contiguous uint8 array");
  require(keep.size() == x.size() && out.size() == x.size(), "masked_scale: x, keep and out differ in size");
  const int64_t count = x.size();
  const void* in = x.data();
  const auto* k = static_cast<const uint8_t*>(keep.data());
  void* o = out.mutable_data();
  py::gil_scoped_release release;
  masked_scale(in, t, count, k, scale, o);
}

static void py_gelu_bf16_(py::array x) {
  require((x.flags() & py::array::c_style) && x.dtype().kind() == 'i' && x.itemsize() == 2 && x.writeable(),
          "gelu_bf16_: x must be a writeable C-contiguous int16 array (bf16 bits)");
  auto* data = static_cast<uint16_t*>(x.mutable_data());
  const int64_t count = x.size();
  py::gil_scoped_release release;
  gelu_bf16_(data, count);
}

static py::array_t<float> py_gelu(const rows_of<float>& x) {
  py::array_t<float> out(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  std::memcpy(out.mutable_data(), x.data(), x.size() * sizeof(float));
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    gelu_(o, x.size());
  }
  return out;
}

// ---- attention for the int8 path and bf16 passes (attention.h) ---------------------------------
// attention or attention_bf16 into a new [b, queries, width] array of Out (bf16 travels as int16, as it came).
template <typename In, typename Out, typename Kernel>
static py::array attention_into(const py::array& qkv, const rows_of<uint8_t>& key_mask, int64_t b, int64_t t,
                                int64_t heads, int64_t dh, int64_t queries, Kernel kernel) {
  py::array_t<Out> out({b, queries, heads * dh});
  const auto* in = static_cast<const In*>(qkv.data());
  auto* o = reinterpret_cast<In*>(out.mutable_data());
  {
    py::gil_scoped_release release;
    kernel(in, key_mask.data(), b, t, heads, dh, queries, o);
  }
  return std::move(out);
}

static py::array py_attention(const py::array& qkv, const std::string& kind, const rows_of<uint8_t>& key_mask,
                              int64_t heads, int64_t queries) {
  require(kind == "f32" || kind == "bf16", "attention: kind must be 'f32' or 'bf16', got '" + kind + "'");
  scoring::checked_rows(qkv, kind, "attention: qkv", 3);
  require(heads > 0 && qkv.shape(2) > 0 && qkv.shape(2) % (3 * heads) == 0,
          "attention: qkv must be [b, t, 3 * heads * dh] with heads > 0");
  const int64_t b = qkv.shape(0), t = qkv.shape(1), dh = qkv.shape(2) / (3 * heads);
  require(key_mask.ndim() == 2 && key_mask.shape(0) == b && key_mask.shape(1) == t, "attention: key_mask must be uint8[b, t]");
  require(queries >= 1 && queries <= t, "attention: queries must be 1 .. t");
  if (kind == "bf16") return attention_into<uint16_t, int16_t>(qkv, key_mask, b, t, heads, dh, queries, attention_bf16);
  return attention_into<float, float>(qkv, key_mask, b, t, heads, dh, queries, attention);
}

// ---- the pairs-file reader's per-line work (transenc.readers' fast formats) ---------------------
static py::tuple py_scan_pairs(const py::bytes& buffer, int64_t start, int64_t line, int64_t max_rows, bool final,
                               const std::string& format, bool stop_at_bad, SentenceTable& table) {
  const PairFormat f = format == "tsv" ? PairFormat::tsv : format == "bars" ? PairFormat::bars
                     : format == "sts" ? PairFormat::sts : throw std::invalid_argument("scan_pairs: format must be tsv, bars or sts");
  char* data;
  Py_ssize_t n;
  PyBytes_AsStringAndSize(buffer.ptr(), &data, &n);
  require(start >= 0 && start <= n && max_rows >= 0, "scan_pairs: start must be inside the buffer, max_rows >= 0");
  ScanResult r;
  {
    py::gil_scoped_release release;
    r = scan_pairs(data, n, start, line, max_rows, final, f, stop_at_bad, table);
  }
  const auto rows = static_cast<int64_t>(r.labels.size());
  py::array_t<int32_t> ids({rows, int64_t{2}});
  std::copy(r.ids.begin(), r.ids.end(), ids.mutable_data());
  py::array_t<double> labels(rows, r.labels.data());
  py::list bad;
  for (auto& b : r.bad) bad.append(py::make_tuple(b.line, b.reason));
  py::object deferred = r.deferred_line ? py::object(py::make_tuple(r.deferred_line, py::str(r.deferred_text)))
                                        : py::object(py::none());
  return py::make_tuple(ids, labels, bad, deferred, r.end, r.line);
}

static py::bytes py_format_tsv(const SentenceTable& table, const carray<int32_t>& ids, const carray<float>& scores) {
  require(ids.ndim() == 2 && ids.shape(1) == 2 && scores.ndim() == 1 && scores.shape(0) == ids.shape(0),
          "format_tsv: ids must be int32[N, 2] and scores float32[N]");
  const int32_t* id = ids.data();
  for (int64_t i = 0; i < 2 * ids.shape(0); ++i)
    require(id[i] >= 0 && id[i] < table.size(), "format_tsv: sentence id out of range");
  // written straight into the bytes object that goes to the writer: no copy of the rows
  PyObject* out = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(tsv_rows_bound(table, id, ids.shape(0))));
  if (!out) throw py::error_already_set();
  size_t written;
  {
    py::gil_scoped_release release;
    written = format_tsv_rows(table, id, scores.data(), ids.shape(0), PyBytes_AS_STRING(out));
  }
  if (_PyBytes_Resize(&out, static_cast<Py_ssize_t>(written)) != 0) throw py::error_already_set();
  return py::reinterpret_steal<py::bytes>(out);
}

static void def_pairscan(py::module_& m) {
  py::class_<SentenceTable>(m, "SentenceTable", "unique sentences in first-appearance order; ids are positions")
      .def(py::init<>())
      .def("intern", [](SentenceTable& t, const std::string& s) { return t.intern(s); }, py::arg("text"))
      .def("__len__", &SentenceTable::size)
      .def("texts", [](const SentenceTable& t) {
             py::list out;
             for (int64_t i = 0; i < t.size(); ++i) out.append(py::str(t.text(i)));
             return out;
           }, "every sentence, in id order, as str")
      .def("__getitem__", [](const SentenceTable& t, int64_t id) {
             if (id < 0 || id >= t.size()) throw py::index_error("sentence id out of range");
             return py::str(t.text(id));
           }, py::arg("id"))
      .def("format_tsv", &py_format_tsv, py::arg("ids"), py::arg("scores"),
           "bytes of the rows s1<TAB>s2<TAB>score (%.9g) as the Python writer makes them");
  m.def("scan_pairs", &py_scan_pairs, py::arg("buffer"), py::arg("start"), py::arg("line"), py::arg("max_rows"),
        py::arg("final"), py::arg("format"), py::arg("stop_at_bad"), py::arg("table"),
        "(ids int32[R, 2], labels float64[R] (NaN: none), bad [(line, reason)], deferred (line, text) or None, "
        "end offset, last line)");
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "transenc C++ CPU engine";
  m.def("threads", &engine_threads, "Worker threads the engine uses");
  m.def("variant", [] { return std::string(isa_name(engine_isa())); },
        "the vector kernels' variant in use: one of VARIANTS (csrc/variants.h)");
  {
    py::list all;
    for (Isa isa : kIsas) all.append(isa_name(isa));
    m.attr("VARIANTS") = py::tuple(all);  // narrowest first: a CPU that runs one runs those before it
  }
  m.def("variants", [] {
    py::list out;
    for (Isa isa : kIsas)
      if (isa_supported(isa)) out.append(isa_name(isa));
    return out;
  }, "the variants this CPU runs");
  m.def("set_variant", &set_engine_isa, py::arg("name"),
        "auto or one of VARIANTS (ValueError where this CPU cannot run it); TRANSENC_ENGINE_ISA sets it at load");
  scoring::bind(m);
  def_packer(m);
  def_pairscan(m);
  m.def("quantize_rows", &py_quantize_rows, py::arg("x"),
        "(q int8[N, d], scale float32[N], offset float32[N]): x ~ q * scale + offset, per row");
  m.def("dequantize_rows", &py_dequantize_rows, py::arg("acc"), py::arg("row_scale"), py::arg("row_offset"),
        py::arg("col_scale"), py::arg("col_sum"), py::arg("bias"),
        "in place: int32 acc -> float acc * row_scale * col_scale + row_offset * col_sum + bias");
  m.attr("INT8_PAIR_MAX") = kInt8PairMax;
  m.def("pack_int8_weights", &py_pack_int8_weights, py::arg("w"),
        "int8[n, k] weights (one row per output) packed for int8_linear; ValueError where a same-sign pair of "
        "inputs (2t, 2t + 1) adds up to more than INT8_PAIR_MAX");
  m.def("quantize_rows_u8", &py_quantize_rows_u8, py::arg("x"),
        "(q uint8[N, d rounded up to 4], scale, offset): x ~ q * scale + offset, q in [0, 255]");
  m.def("int8_linear", &py_int8_linear, py::arg("q"), py::arg("k"), py::arg("packed"), py::arg("n"),
        py::arg("row_scale"), py::arg("row_offset"), py::arg("col_scale"), py::arg("col_sum"), py::arg("bias"),
        "float32[m, n]: the engine's int8 matmul of quantize_rows_u8 rows and packed weights, with the epilogue");
  m.def("int8_linear_gelu_u8", &py_int8_linear_gelu_u8, py::arg("q"), py::arg("k"), py::arg("packed"), py::arg("n"),
        py::arg("row_scale"), py::arg("row_offset"), py::arg("col_scale"), py::arg("col_sum"), py::arg("bias"),
        "(q uint8[m, n rounded up to 4], scale, offset): quantize_rows_u8 of GELU of int8_linear's output, "
        "which is not written out");
  m.def("int8_self_attention_u8", &py_int8_self_attention_u8, py::arg("q"), py::arg("k"), py::arg("packed"),
        py::arg("n"), py::arg("row_scale"), py::arg("row_offset"), py::arg("col_scale"), py::arg("col_sum"),
        py::arg("bias"), py::arg("key_mask"), py::arg("heads"), py::arg("queries"),
        "(out float32[b, queries, n / 3], q, scale, offset): attention over int8_linear's query/key/value projection "
        "of the rows q (b * t of them) with key_mask uint8[b, t] for each batch row's first `queries` tokens, and "
        "out's rows quantized as quantize_rows_u8 makes them");
  m.def("layer_norm_u8", &py_layer_norm_u8, py::arg("x"), py::arg("residual"), py::arg("gamma"), py::arg("beta"),
        py::arg("eps"),
        "(y float32[N, d], q uint8[N, d rounded up to 4], scale, offset): LayerNorm of the rows of x + residual "
        "(None: x), and y quantized as quantize_rows_u8 makes it");
  m.def("layer_norm_bf16", &py_layer_norm_bf16, py::arg("sublayer"), py::arg("x"), py::arg("gamma"),
        py::arg("beta"), py::arg("eps"),
        "(y float32[N, d], y's bf16 bits int16[N, d]): LayerNorm of the rows of sublayer (bf16 bits as int16, or "
        "None) + x, and y rounded to bf16 (to nearest even)");
  m.def("dropout_mask", &py_dropout_mask, py::arg("seed"), py::arg("count"), py::arg("threshold"),
        "uint8[count]: 1 where element i's 16-bit draw (splitmix64 of the seed and i / 4) is >= threshold");
  m.def("masked_scale", &py_masked_scale, py::arg("x"), py::arg("kind"), py::arg("keep"), py::arg("scale"),
        py::arg("out"), "out = x * (keep ? scale : 0), 1-D fp32 or bf16 bits (rounded to nearest even)");
  m.def("gelu_bf16_", &py_gelu_bf16_, py::arg("x"),
        "in place on bf16 bits (int16): GELU (erf's) of each widened value, rounded to bf16 (to nearest even)");
  m.def("gelu", &py_gelu, py::arg("x"), "float32 copy of x with GELU (erf's) applied, to within 1.5e-7 |x|");
  m.def("attention", &py_attention, py::arg("qkv"), py::arg("kind"), py::arg("key_mask"), py::arg("heads"),
        py::arg("queries"),
        "[b, queries, heads * dh] of qkv's kind ('f32': float32; 'bf16': its bits as int16, as it came): "
        "multi-head softmax attention of a layer's fused query/key/value projection qkv[b, t, 3 * heads * dh] over "
        "the keys where key_mask uint8[b, t] is nonzero, for each batch row's first `queries` tokens");
}

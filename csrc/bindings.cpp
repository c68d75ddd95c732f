// The one file of the engine that knows about Python: numpy buffers in, numpy arrays out.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "cosine.h"
#include "parallel.h"
#include "topk.h"

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

Dtype checked_rows(const py::array& x, const std::string& kind, const char* what) {
  require(x.ndim() == 2, std::string(what) + " must be 2-D");
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
                         bool exclude_self) {
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
    cosine_topk(queries.data(), qt, nq, corpus.data(), ct, nc, d, k, exclude_self, s, i);
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
        "(scores float32[Q, k], ids int64[Q, k]): exact cosine top-k, fused and tiled");
}

}  // namespace scoring
// ----------------------------- end of scoring engine bindings ---------------------------

PYBIND11_MODULE(_C, m) {
  m.doc() = "transenc C++ CPU engine";
  m.def("threads", &engine_threads, "Worker threads the engine uses");
  scoring::bind(m);
}

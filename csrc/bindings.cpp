// The one file of the engine that knows about Python: numpy buffers in, numpy arrays out.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "cosine.h"
#include "parallel.h"

namespace py = pybind11;
using namespace transenc;

template <typename T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

static void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

static py::array_t<float> py_pair_cosine(carray<float> a, carray<float> b) {
  require(a.ndim() == 2 && b.ndim() == 2, "pair_cosine: a and b must be 2-D");
  require(a.shape(0) == b.shape(0) && a.shape(1) == b.shape(1), "pair_cosine: a and b differ in shape");
  int64_t n = a.shape(0), d = a.shape(1);
  py::array_t<float> out(n);
  {
    py::gil_scoped_release release;
    pair_cosine_f32(a.data(), b.data(), n, d, out.mutable_data());
  }
  return out;
}

static py::array_t<float> py_pair_cosine_indexed(carray<float> table, carray<int32_t> idx) {
  require(table.ndim() == 2, "pair_cosine_indexed: table must be 2-D");
  require(idx.ndim() == 2 && idx.shape(1) == 2, "pair_cosine_indexed: idx must be int32[N, 2]");
  int64_t rows = table.shape(0), n = idx.shape(0);
  const int32_t* ids = idx.data();
  for (int64_t i = 0; i < 2 * n; ++i)
    require(ids[i] >= 0 && ids[i] < rows, "pair_cosine_indexed: index out of range");
  py::array_t<float> out(n);
  {
    py::gil_scoped_release release;
    pair_cosine_indexed_f32(table.data(), rows, table.shape(1), ids, n, out.mutable_data());
  }
  return out;
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "transenc C++ CPU engine";
  m.def("threads", &engine_threads, "Worker threads the engine uses");
  m.def("pair_cosine", &py_pair_cosine, py::arg("a"), py::arg("b"));
  m.def("pair_cosine_indexed", &py_pair_cosine_indexed, py::arg("table"), py::arg("idx"));
}

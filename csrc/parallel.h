// A tiny parallel-for on std::thread: the engine stays free of OpenMP so that it never
// fights torch's own OpenMP runtime inside one process.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

namespace transenc {

// All hardware threads, or TRANSENC_THREADS when set (machines shared with other jobs, and
// like-for-like benchmarks against single-threaded baselines). Read at every call: cheap.
inline int engine_threads() {
  if (const char* env = std::getenv("TRANSENC_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

// Calls body(begin, end) on contiguous chunks of [0, n), at most one chunk per thread.
template <typename Body>
void parallel_for(int64_t n, int64_t min_chunk, Body body) {
  int64_t chunks = std::min<int64_t>(engine_threads(), (n + min_chunk - 1) / std::max<int64_t>(min_chunk, 1));
  if (chunks <= 1) {
    if (n > 0) body(int64_t{0}, n);
    return;
  }
  int64_t step = (n + chunks - 1) / chunks;
  std::vector<std::thread> workers;
  for (int64_t c = 1; c < chunks; ++c) {
    int64_t begin = c * step, end = std::min(n, begin + step);
    if (begin < end) workers.emplace_back(body, begin, end);
  }
  body(int64_t{0}, std::min(n, step));
  for (auto& w : workers) w.join();
}

}  // namespace transenc

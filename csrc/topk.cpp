// Exact cosine top-k on the CPU.
//
// Shape of the computation (a GEMM with the selection fused into its micro-kernel):
//   queries  -> normalised once, packed in panels of 32 queries, layout [d][32], and taken
//               in chunks of panels that stay in cache while the corpus streams past
//   corpus   -> walked in L2-sized blocks; each block normalised and packed by the thread that
//               uses it into tiles of 14 rows, layout [d][14]: no copy of the whole corpus
//   kernel   -> a 14 x 32 tile of scores in 28 AVX-512 registers, one FMA chain per score
//               (a plain loop in the baseline variant, see variants.h)
//   select   -> each of the 28 score vectors compared with the 32 queries' current k-th
//               score; only a tile holding some candidate goes to the scalar heap update.
// Every score is the same sequential fp32 FMA chain over d, whatever its place in a tile,
// so equal rows get bit-equal scores and ties resolve by id exactly as the contract says.
#include "topk.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include "cosine.h"
#include "parallel.h"

namespace transenc {

namespace {

constexpr int kLanes = 32;  // queries per panel: two 16-float vectors
constexpr int kRows = 14;   // corpus rows per tile: 14 x 2 accumulators + 2 query vectors
constexpr int64_t kBlockBytes = 640 * 1024;  // packed corpus block, sized for a 1+ MB L2
constexpr int64_t kChunkBytes = 3 << 20;     // query panels per pass over the corpus (L2/L3)

constexpr float kInf = std::numeric_limits<float>::infinity();

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Floats = std::unique_ptr<float[], FreeDeleter>;

Floats aligned_floats(int64_t n) {
  size_t bytes = (size_t(std::max<int64_t>(n, 1)) * sizeof(float) + 63) / 64 * 64;
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  return Floats(p);
}

struct Entry {
  float score;
  int64_t id;
};

// "a ranks before b": higher score first, then lower id.
inline bool before(const Entry& a, const Entry& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

// The running top-k of every query over one range of the corpus. Each query keeps a heap
// whose top is its worst kept entry; threshold[q] mirrors that entry's score (-inf while the
// heap is not full, +inf for the padding lanes of the last panel) for the vector pre-test.
struct Selection {
  int64_t k;
  std::vector<Entry> heaps;
  std::vector<int64_t> sizes;
  Floats threshold;

  Selection(int64_t nq, int64_t padded_nq, int64_t k_)
      : k(k_), heaps(size_t(nq * k_)), sizes(size_t(nq), 0), threshold(aligned_floats(padded_nq)) {
    std::fill(threshold.get(), threshold.get() + nq, -kInf);
    std::fill(threshold.get() + nq, threshold.get() + padded_nq, kInf);
  }

  // Candidates of one query arrive in increasing id, so a score equal to the worst kept
  // one never displaces it: the lower id is already in.
  void offer(int64_t q, float score, int64_t id) {
    Entry* heap = heaps.data() + q * k;
    int64_t& n = sizes[q];
    if (n < k) {
      heap[n++] = {score, id};
      std::push_heap(heap, heap + n, before);
    } else if (score > heap[0].score) {
      std::pop_heap(heap, heap + k, before);
      heap[k - 1] = {score, id};
      std::push_heap(heap, heap + k, before);
    } else {
      return;
    }
    if (n == k) threshold[q] = heap[0].score;
  }
};

// One 14 x 32 tile of dot products, tile[r * 32 + lane] = sum_j c[j][r] * q[j][lane], tested
// against the 32 queries' thresholds while still in registers. Returns whether any score
// beats its query's threshold; only then is the tile written out. One per engine variant
// (variants.h): a call per tile is nothing beside its 14 * 32 * d multiply-adds.
using ScoreTile = bool (*)(const float* q, const float* c, int64_t d, const float* threshold, float* tile);

bool score_tile_baseline(const float* q, const float* c, int64_t d, const float* threshold, float* tile) {
  std::fill(tile, tile + kRows * kLanes, 0.f);
  for (int64_t j = 0; j < d; ++j)
    for (int r = 0; r < kRows; ++r)
      for (int l = 0; l < kLanes; ++l) tile[r * kLanes + l] += c[j * kRows + r] * q[j * kLanes + l];
  for (int i = 0; i < kRows * kLanes; ++i)
    if (tile[i] > threshold[i % kLanes]) return true;
  return false;
}

#ifdef TRANSENC_X86_VARIANTS
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
bool score_tile_avx512(const float* q, const float* c, int64_t d, const float* threshold, float* tile) {
  __m512 acc[kRows][2];
#pragma GCC unroll 14
  for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t j = 0; j < d; ++j) {
    __m512 q0 = _mm512_load_ps(q + j * kLanes), q1 = _mm512_load_ps(q + j * kLanes + 16);
    const float* cj = c + j * kRows;
#pragma GCC unroll 14
    for (int r = 0; r < kRows; ++r) {
      __m512 b = _mm512_set1_ps(cj[r]);
      acc[r][0] = _mm512_fmadd_ps(q0, b, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(q1, b, acc[r][1]);
    }
  }
  __m512 t0 = _mm512_load_ps(threshold), t1 = _mm512_load_ps(threshold + 16);
  __mmask16 hit = 0;
#pragma GCC unroll 14
  for (int r = 0; r < kRows; ++r)
    hit |= _mm512_cmp_ps_mask(acc[r][0], t0, _CMP_GT_OQ) | _mm512_cmp_ps_mask(acc[r][1], t1, _CMP_GT_OQ);
  if (hit == 0) return false;
#pragma GCC unroll 14
  for (int r = 0; r < kRows; ++r) {
    _mm512_store_ps(tile + r * kLanes, acc[r][0]);
    _mm512_store_ps(tile + r * kLanes + 16, acc[r][1]);
  }
  return true;
}
#pragma GCC pop_options
#endif

ScoreTile variant_score_tile() {
#ifdef TRANSENC_X86_VARIANTS
  if (engine_isa() >= Isa::avx512) return score_tile_avx512;
#endif
  return score_tile_baseline;
}

// Packs `count` corpus rows (count <= 14) normalised into a [d][14] tile; missing rows are 0.
template <typename E>
void pack_tile(const typename E::T* rows, int64_t count, int64_t d, const float* inv_norm,
               float* row_buf, float* tile) {
  for (int r = 0; r < kRows; ++r) {
    if (r >= count) {
      for (int64_t j = 0; j < d; ++j) tile[j * kRows + r] = 0.f;
      continue;
    }
    const typename E::T* src = rows + r * d;
    const float* x;
    if constexpr (std::is_same_v<E, F32>) {
      x = src;
    } else {
      for (int64_t j = 0; j < d; ++j) row_buf[j] = E::scalar(src + j);
      x = row_buf;
    }
    float s = inv_norm[r];
    for (int64_t j = 0; j < d; ++j) tile[j * kRows + r] = x[j] * s;
  }
}

struct Problem {
  const float* query_panels;  // [panels][d][32], normalised, zero padded
  int64_t nq, panels, d;
  const void* corpus;
  const float* corpus_inv_norm;
  bool exclude_self;
  int64_t first_query_id;  // query qi is corpus row first_query_id + qi
  int64_t tiles_per_block, panels_per_chunk;
  ScoreTile score_tile;
};

// Runs query panels [p0, p1) against corpus rows [c0, c1), feeding `sel`.
template <typename E>
void run(const Problem& pb, int64_t p0, int64_t p1, int64_t c0, int64_t c1, Selection& sel,
         float* block, float* row_buf) {
  using T = typename E::T;
  const T* corpus = static_cast<const T*>(pb.corpus);
  const int64_t d = pb.d, tile_floats = d * kRows;
  alignas(64) float tile[kRows * kLanes];
  // Query panels in chunks that stay in cache while the corpus streams past them once per
  // chunk: memory traffic stays bounded however many queries there are.
  for (int64_t pc = p0; pc < p1; pc += pb.panels_per_chunk) {
    const int64_t pe = std::min(p1, pc + pb.panels_per_chunk);
    for (int64_t cb = c0; cb < c1; cb += pb.tiles_per_block * kRows) {
      const int64_t ce = std::min(c1, cb + pb.tiles_per_block * kRows);
      const int64_t tiles = (ce - cb + kRows - 1) / kRows;
      for (int64_t t = 0; t < tiles; ++t) {
        int64_t first = cb + t * kRows;
        pack_tile<E>(corpus + first * d, std::min<int64_t>(kRows, ce - first), d,
                     pb.corpus_inv_norm + first, row_buf, block + t * tile_floats);
      }
      for (int64_t p = pc; p < pe; ++p) {
        const float* q = pb.query_panels + p * d * kLanes;
        const float* thr = sel.threshold.get() + p * kLanes;
        for (int64_t t = 0; t < tiles; ++t) {
          // The common case once heaps are full: no score in the tile beats its threshold.
          if (!pb.score_tile(q, block + t * tile_floats, d, thr, tile)) continue;
          const int64_t first = cb + t * kRows;
          const int rows = int(std::min<int64_t>(kRows, ce - first));  // padding rows score 0
          for (int r = 0; r < rows; ++r) {
            const int64_t id = first + r;
            for (int l = 0; l < kLanes; ++l) {
              const int64_t qi = p * kLanes + l;
              if (qi >= pb.nq) break;
              if (pb.exclude_self && id == pb.first_query_id + qi) continue;
              if (tile[r * kLanes + l] > thr[l]) sel.offer(qi, tile[r * kLanes + l], id);
            }
          }
        }
      }
    }
  }
}

template <typename E>
void pack_queries(const typename E::T* x, int64_t nq, int64_t d, float* panels) {
  parallel_for(nq, 256, [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const typename E::T* row = x + i * d;
      const float s = inverse_norm<E>(row, d);
      float* dst = panels + (i / kLanes) * d * kLanes + i % kLanes;
      for (int64_t j = 0; j < d; ++j) dst[j * kLanes] = E::scalar(row + j) * s;
    }
  });
}

template <typename E>
void corpus_inverse_norms(const typename E::T* x, int64_t nc, int64_t d, float* out) {
  parallel_for(nc, 1024, [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = inverse_norm<E>(x + i * d, d);
  });
}

// Writes the sorted top-k of queries [q0, q1) merged over all selections.
void finish(const std::vector<Selection>& sels, int64_t q0, int64_t q1, int64_t k, float* scores,
            int64_t* ids) {
  std::vector<Entry> all;
  for (int64_t q = q0; q < q1; ++q) {
    all.clear();
    for (const Selection& s : sels)
      all.insert(all.end(), s.heaps.begin() + q * k, s.heaps.begin() + q * k + s.sizes[q]);
    const int64_t n = std::min<int64_t>(k, int64_t(all.size()));
    std::partial_sort(all.begin(), all.begin() + n, all.end(), before);
    for (int64_t i = 0; i < k; ++i) {
      scores[q * k + i] = i < n ? all[i].score : -kInf;
      ids[q * k + i] = i < n ? all[i].id : -1;
    }
  }
}

}  // namespace

void cosine_topk(const void* queries, Dtype query_type, int64_t nq, const void* corpus,
                 Dtype corpus_type, int64_t nc, int64_t d, int64_t k, bool exclude_self,
                 int64_t first_query_id, float* scores, int64_t* ids) {
  if (nq == 0 || k == 0) return;
  const int64_t panels = (nq + kLanes - 1) / kLanes;

  Floats query_panels = aligned_floats(panels * d * kLanes);
  std::fill(query_panels.get(), query_panels.get() + panels * d * kLanes, 0.f);
  with_elements(query_type, [&](auto e) {
    using E = decltype(e);
    pack_queries<E>(static_cast<const typename E::T*>(queries), nq, d, query_panels.get());
  });
  Floats inv_norm = aligned_floats(nc);
  with_elements(corpus_type, [&](auto e) {
    using E = decltype(e);
    corpus_inverse_norms<E>(static_cast<const typename E::T*>(corpus), nc, d, inv_norm.get());
  });

  const int64_t row_bytes = std::max<int64_t>(d, 1) * 4;
  Problem pb{query_panels.get(), nq, panels, d, corpus, inv_norm.get(), exclude_self, first_query_id,
             std::max<int64_t>(1, kBlockBytes / (row_bytes * kRows)),
             std::max<int64_t>(1, kChunkBytes / (row_bytes * kLanes)), variant_score_tile()};
  const int threads = engine_threads();
  // Threads split the queries when each gets at least a chunk of them, else the corpus (one
  // selection per corpus range, merged at the end): either way a thread packs each corpus
  // block once per chunk of queries. Each selection sees the ids of its range in order.
  const bool split_corpus = panels < threads * pb.panels_per_chunk && nc >= 2 * kRows * threads;
  const int ranges = split_corpus ? threads : 1;
  std::vector<Selection> sels;
  for (int s = 0; s < ranges; ++s) sels.emplace_back(nq, panels * kLanes, k);
  std::vector<Floats> blocks, row_bufs;
  for (int t = 0; t < threads; ++t) {
    blocks.push_back(aligned_floats(pb.tiles_per_block * kRows * d));
    row_bufs.push_back(aligned_floats(d));
  }

  // One chunk per thread: thread t takes corpus range t (split_corpus) or query panels
  // [t * step, (t + 1) * step).
  const int64_t step = split_corpus ? (nc + threads - 1) / threads : (panels + threads - 1) / threads;
  with_elements(corpus_type, [&](auto e) {
    using E = decltype(e);
    parallel_for(threads, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t lo = t * step, hi = std::min(split_corpus ? nc : panels, (t + 1) * step);
        if (lo >= hi) continue;
        if (split_corpus)
          run<E>(pb, 0, panels, lo, hi, sels[t], blocks[t].get(), row_bufs[t].get());
        else
          run<E>(pb, lo, hi, 0, nc, sels[0], blocks[t].get(), row_bufs[t].get());
      }
    });
  });
  parallel_for(nq, 64, [&](int64_t begin, int64_t end) { finish(sels, begin, end, k, scores, ids); });
}

}  // namespace transenc

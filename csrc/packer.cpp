#include "packer.h"

#include <algorithm>

#include "parallel.h"

namespace transenc {

// Greedy cut of the rows sorted by length: a batch takes its first row whatever its length, and
// grows while (rows + 1) x the new, longest length fits the budget.
static void cut_batches(PackPlan& plan, const std::vector<int32_t>& sorted_length, int64_t budget) {
  const int64_t n = int64_t(sorted_length.size());
  plan.batch_rows.assign(1, 0);
  plan.batch_offset.assign(1, 0);
  plan.batch_width.clear();
  for (int64_t begin = 0; begin < n;) {
    int64_t end = begin + 1;
    while (end < n && (end + 1 - begin) * int64_t(sorted_length[end]) <= budget) ++end;
    const int64_t w = sorted_length[end - 1];
    plan.batch_rows.push_back(end);
    plan.batch_width.push_back(w);
    plan.batch_offset.push_back(plan.batch_offset.back() + (end - begin) * w);
    begin = end;
  }
}

PackPlan plan_packing(const int64_t* offsets, const int32_t* seq, int64_t n, int width,
                      const PackTemplate& t, int64_t max_length, int64_t token_budget,
                      double min_efficiency) {
  const int64_t specials = t.specials(width);
  const int64_t content = max_length - specials;  // tokens left for the sentences
  std::vector<int32_t> keep_a(n), keep_b(n), length(n);
  for (int64_t i = 0; i < n; ++i) {
    int32_t a = seq[i * width];
    int64_t la = offsets[a + 1] - offsets[a], lb = 0;
    if (width == 2) {
      int32_t b = seq[i * width + 1];
      lb = offsets[b + 1] - offsets[b];
      truncate_longest_first(la, lb, content);
    } else {
      la = std::min(la, content);
    }
    keep_a[i] = int32_t(la);
    keep_b[i] = int32_t(lb);
    length[i] = int32_t(la + lb + specials);
  }

  // Stable counting sort by row length (at most max_length): equal lengths keep input order.
  std::vector<int64_t> start(max_length + 2, 0);
  for (int64_t i = 0; i < n; ++i) ++start[length[i] + 1];
  for (int64_t l = 1; l <= max_length + 1; ++l) start[l] += start[l - 1];
  PackPlan plan;
  plan.rows.resize(n);
  for (int64_t i = 0; i < n; ++i) plan.rows[start[length[i]]++] = i;
  plan.keep_a.resize(n);
  plan.keep_b.resize(n);
  std::vector<int32_t> sorted_length(n);
  for (int64_t r = 0; r < n; ++r) {
    plan.keep_a[r] = keep_a[plan.rows[r]];
    plan.keep_b[r] = keep_b[plan.rows[r]];
    sorted_length[r] = length[plan.rows[r]];
    plan.real_tokens += sorted_length[r];
  }

  // Full-budget batches are the largest, and on many rows neighbours in length order differ by a
  // token or so. On few rows a full batch spans many lengths: shrink the budget by 10% steps until
  // padding is within the target, or the budget reaches max_length (or the given budget, if
  // smaller: a batch then holds one row). Each try is one O(n) pass.
  const int64_t floor = std::min(max_length, token_budget);
  for (int64_t budget = token_budget;; budget = std::max(floor, budget * 9 / 10)) {
    cut_batches(plan, sorted_length, budget);
    if (plan.real_tokens >= min_efficiency * double(plan.total_elements()) || budget == floor) break;
  }
  return plan;
}

template <typename Index>
static Index* put(Index* out, const int32_t* src, int64_t count) {
  return std::copy(src, src + count, out);
}

template <typename Index>
void fill_packing(const PackPlan& plan, const int32_t* ids, const int64_t* offsets,
                  const int32_t* seq, int width, const PackTemplate& t, int32_t pad_id,
                  Index* input_ids, Index* attention_mask, Index* token_type_ids) {
  const bool types = token_type_ids != nullptr && t.type_a >= 0;
  const int64_t first_part = int64_t(t.prefix.size()) + (width == 2 ? int64_t(t.middle.size()) : 0);
  // Batches hold about the same number of tokens (the budget), so chunks of batches balance.
  // Threads only from 64 batches a chunk: below that, starting them costs more than they save.
  parallel_for(plan.batches(), 64, [&](int64_t batch_begin, int64_t batch_end) {
    for (int64_t k = batch_begin; k < batch_end; ++k) {
      const int64_t w = plan.batch_width[k];
      for (int64_t r = plan.batch_rows[k]; r < plan.batch_rows[k + 1]; ++r) {
        const int64_t at = plan.batch_offset[k] + (r - plan.batch_rows[k]) * w;
        const int32_t* sa = seq + plan.rows[r] * width;
        const int64_t la = plan.keep_a[r], lb = plan.keep_b[r];
        Index* o = input_ids + at;
        o = put(o, t.prefix.data(), int64_t(t.prefix.size()));
        o = put(o, ids + offsets[sa[0]], la);
        if (width == 2) {
          o = put(o, t.middle.data(), int64_t(t.middle.size()));
          o = put(o, ids + offsets[sa[1]], lb);
        }
        o = put(o, t.suffix.data(), int64_t(t.suffix.size()));
        const int64_t len = o - (input_ids + at);
        std::fill(o, input_ids + at + w, Index(pad_id));
        std::fill(attention_mask + at, attention_mask + at + len, Index(1));
        std::fill(attention_mask + at + len, attention_mask + at + w, Index(0));
        if (types) {
          const int64_t len_first = first_part + la;
          std::fill(token_type_ids + at, token_type_ids + at + len_first, Index(t.type_a));
          std::fill(token_type_ids + at + len_first, token_type_ids + at + len, Index(t.type_b));
          std::fill(token_type_ids + at + len, token_type_ids + at + w, Index(0));
        }
      }
    }
  });
}

template void fill_packing<int32_t>(const PackPlan&, const int32_t*, const int64_t*, const int32_t*,
                                    int, const PackTemplate&, int32_t, int32_t*, int32_t*, int32_t*);
template void fill_packing<int64_t>(const PackPlan&, const int32_t*, const int64_t*, const int32_t*,
                                    int, const PackTemplate&, int32_t, int64_t*, int64_t*, int64_t*);

}  // namespace transenc

// Packs cached token ids into padded, length-sorted batches: `prefix a middle b suffix` rows
// for pairs, `prefix s suffix` for single sentences. Kept free of Python: bindings.cpp hands in
// numpy buffers and allocates the outputs from the plan.
#pragma once
#include <cstdint>
#include <vector>

namespace transenc {

// Special ids a tokenizer puts around a row (read off the tokenizer in Python, never hard-coded).
struct PackTemplate {
  std::vector<int32_t> prefix, middle, suffix;  // middle is unused for single sentences
  int32_t type_a = -1, type_b = -1;  // token type of (prefix a middle) and of (b suffix); -1: none
  int64_t specials(int width) const {
    return int64_t(prefix.size() + suffix.size()) + (width == 2 ? int64_t(middle.size()) : 0);
  }
};

// The lengths HF tokenizers keep under `longest_first` truncation of a pair to `budget` tokens
// (tokenizers' truncate_encodings): a pair that fits is kept whole; else a side no longer than
// half the budget is kept whole and the other cut to the rest; else both are cut to half, the
// odd token going to the longer side, and to b on a tie.
inline void truncate_longest_first(int64_t& len_a, int64_t& len_b, int64_t budget) {
  if (len_a + len_b <= budget) return;
  bool a_shorter = len_a <= len_b;
  int64_t shorter = a_shorter ? len_a : len_b;
  int64_t keep_short, keep_long;
  if (2 * shorter <= budget) {
    keep_short = shorter;
    keep_long = budget - shorter;
  } else {
    keep_short = budget / 2;
    keep_long = budget - keep_short;
  }
  len_a = a_shorter ? keep_short : keep_long;
  len_b = a_shorter ? keep_long : keep_short;
}

// Where every row goes: rows sorted by length, cut into batches under the token budget.
struct PackPlan {
  std::vector<int64_t> rows;          // request row of each packed row, batch after batch
  std::vector<int32_t> keep_a, keep_b;  // tokens kept of a and of b, per packed row
  std::vector<int64_t> batch_rows;    // [batches + 1]: first packed row of each batch
  std::vector<int64_t> batch_width;   // [batches]: padded width of each batch
  std::vector<int64_t> batch_offset;  // [batches + 1]: first element of each batch in the flat buffers
  int64_t real_tokens = 0;            // non-padding tokens, for the padding efficiency

  int64_t batches() const { return int64_t(batch_width.size()); }
  int64_t total_elements() const { return batch_offset.back(); }
};

// seq holds n rows of `width` sentence ids (width 2: pairs, width 1: single sentences) into the
// cache (offsets has sentences + 1 entries). Every batch's rows x width stays within token_budget
// (>= 1), but for a batch of one row longer than it; the budget shrinks (down to max_length) while
// real tokens / all tokens would fall below min_efficiency (0: always full-budget batches).
PackPlan plan_packing(const int64_t* offsets, const int32_t* seq, int64_t n, int width,
                      const PackTemplate& t, int64_t max_length, int64_t token_budget,
                      double min_efficiency);

// Writes each batch as a row-major [rows, width] block at its batch_offset: ids padded with
// pad_id, mask 1/0, types (when t has them and types is not null) 0 on padding.
template <typename Index>
void fill_packing(const PackPlan& plan, const int32_t* ids, const int64_t* offsets,
                  const int32_t* seq, int width, const PackTemplate& t, int32_t pad_id,
                  Index* input_ids, Index* attention_mask, Index* token_type_ids);

}  // namespace transenc

// Exact cosine top-k of queries against a corpus, fused with the score computation so that
// the query x corpus score matrix never exists beyond one 14 x 32 register tile.
#pragma once
#include <cstdint>

#include "elements.h"

namespace transenc {

// For each of the nq query rows, the k corpus rows of highest cosine, sorted by score
// descending then id ascending; scores[nq * k], ids[nq * k]. Missing entries (k larger than
// what the corpus offers) are -inf / -1. Rows are normalised (a zero row scores 0).
// With exclude_self, query i is corpus row first_query_id + i, never returned for it (mining,
// where the queries are a block of the corpus).
void cosine_topk(const void* queries, Dtype query_type, int64_t nq, const void* corpus,
                 Dtype corpus_type, int64_t nc, int64_t d, int64_t k, bool exclude_self,
                 int64_t first_query_id, float* scores, int64_t* ids);

}  // namespace transenc

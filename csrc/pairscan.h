// The pairs-file reader's per-line work for huge files (transenc.readers' fast formats: tsv, bars,
// sts): split lines, check UTF-8 and fields, intern sentences, and write score rows. Kept free of
// Python: bindings.cpp adapts it. A line whose meaning needs Python's own rules (Unicode whitespace,
// a score field that is not a plain decimal number) is handed back "deferred", so the fast reader
// and the Python reader accept and refuse exactly the same lines.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace transenc {

enum class PairFormat { tsv, bars, sts };

// Unique sentences in first-appearance order; ids are their positions.
class SentenceTable {
 public:
  int32_t intern(std::string_view text);
  int64_t size() const { return static_cast<int64_t>(texts_.size()); }
  const std::string& text(int64_t id) const { return texts_[id]; }
  // Whether the sentence holds a tab or a line break (which an output row must not).
  bool breaks_rows(int64_t id) const { return breaks_rows_[id]; }

 private:
  std::deque<std::string> texts_;  // a deque never moves its strings: the map's views stay valid
  std::vector<bool> breaks_rows_;
  std::unordered_map<std::string_view, int32_t> ids_;
};

// The most bytes format_tsv_rows writes for these rows.
size_t tsv_rows_bound(const SentenceTable& table, const int32_t* ids, int64_t n);

// Rows `s1<TAB>s2<TAB>score\n` (score as %.9g; tabs and line breaks inside a sentence become
// spaces) into `out`, which has room for tsv_rows_bound bytes: the Python writer's bytes exactly.
// Returns the bytes written.
size_t format_tsv_rows(const SentenceTable& table, const int32_t* ids, const float* scores, int64_t n, char* out);

struct BadLine {
  int64_t line;
  std::string reason;
};

struct ScanResult {
  std::vector<int32_t> ids;    // 2 per row
  std::vector<double> labels;  // NaN: no score
  std::vector<BadLine> bad;
  int64_t deferred_line = 0;   // > 0: the scan stopped at this line, for Python to read
  std::string deferred_text;   // (valid UTF-8, without its BOM and trailing \r\n)
  int64_t end = 0;   // the byte offset after the last line consumed
  int64_t line = 0;  // the number of the last line consumed
};

// Scans the complete lines of data[start:n) (and a last line without '\n' when `final`), the first
// of them numbered line + 1, until max_rows rows are out, a line is deferred, or (stop_at_bad) a
// line is bad. Stopping at a deferred line keeps the table in first-appearance order. Line 1 loses
// a leading BOM.
ScanResult scan_pairs(const char* data, int64_t n, int64_t start, int64_t line, int64_t max_rows, bool final,
                      PairFormat format, bool stop_at_bad, SentenceTable& table);

}  // namespace transenc

#include "pairscan.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace transenc {

int32_t SentenceTable::intern(std::string_view text) {
  auto found = ids_.find(text);
  if (found != ids_.end()) return found->second;
  const auto id = static_cast<int32_t>(texts_.size());
  texts_.emplace_back(text);
  breaks_rows_.push_back(text.find_first_of("\t\r\n") != std::string_view::npos);
  ids_.emplace(std::string_view(texts_.back()), id);
  return id;
}

// A sentence as a field of a TSV row at `out`: tabs and line breaks become spaces (rare: copied as is
// else). Returns the end of the field.
static char* put_field(char* out, const SentenceTable& table, int32_t id) {
  const std::string& text = table.text(id);
  std::memcpy(out, text.data(), text.size());
  if (table.breaks_rows(id))
    for (size_t i = 0; i < text.size(); ++i)
      if (out[i] == '\t' || out[i] == '\r' || out[i] == '\n') out[i] = ' ';
  return out + text.size();
}

constexpr size_t kScoreBytes = 16;  // %.9g of a float: at most "-1.23456789e-38"

size_t tsv_rows_bound(const SentenceTable& table, const int32_t* ids, int64_t n) {
  size_t bytes = (kScoreBytes + 3) * n;  // a score, two tabs and a newline a row
  for (int64_t i = 0; i < 2 * n; ++i) bytes += table.text(ids[i]).size();
  return bytes;
}

size_t format_tsv_rows(const SentenceTable& table, const int32_t* ids, const float* scores, int64_t n, char* out) {
  char* const start = out;
  for (int64_t i = 0; i < n; ++i) {
    out = put_field(out, table, ids[2 * i]);
    *out++ = '\t';
    out = put_field(out, table, ids[2 * i + 1]);
    *out++ = '\t';
    const double s = scores[i];
    // to_chars' general format at precision 9 is printf's %.9g, as Python's '.9g' (several times
    // faster than snprintf); Python writes float('nan') as 'nan' whatever its sign bit
    if (std::isnan(s)) {
      std::memcpy(out, "nan", 3);
      out += 3;
    } else {
      out = std::to_chars(out, out + kScoreBytes, s, std::chars_format::general, 9).ptr;
    }
    *out++ = '\n';
  }
  return static_cast<size_t>(out - start);
}

namespace {

// Python's str.isspace() within ASCII: \t \n \v \f \r, the separators \x1c-\x1f, and space.
bool ascii_space(unsigned char c) { return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20); }

enum class Blank { no, yes, unsure };  // unsure: only non-ASCII left, which may be Unicode whitespace

Blank blank(std::string_view s) {
  bool wide = false;
  for (unsigned char c : s) {
    if (c >= 0x80) wide = true;
    else if (!ascii_space(c)) return Blank::no;
  }
  return wide ? Blank::unsure : Blank::yes;
}

// The byte offset of the first invalid UTF-8 sequence (where Python's strict decoder puts
// UnicodeDecodeError.start), or -1.
int64_t invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const int64_t n = static_cast<int64_t>(s.size());
  int64_t i = 0;
  while (i < n) {
    uint64_t eight;
    if (i + 8 <= n && (std::memcpy(&eight, p + i, 8), (eight & 0x8080808080808080ull) == 0)) {
      i += 8;  // eight ASCII bytes at once: most text
      continue;
    }
    const unsigned char c = p[i];
    if (c < 0x80) { ++i; continue; }
    int more;
    unsigned char lo = 0x80, hi = 0xbf;  // the second byte's range
    if (c >= 0xc2 && c <= 0xdf) more = 1;
    else if (c >= 0xe0 && c <= 0xef) { more = 2; if (c == 0xe0) lo = 0xa0; if (c == 0xed) hi = 0x9f; }
    else if (c >= 0xf0 && c <= 0xf4) { more = 3; if (c == 0xf0) lo = 0x90; if (c == 0xf4) hi = 0x8f; }
    else return i;
    if (i + 1 >= n || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (int k = 2; k <= more; ++k)
      if (i + k >= n || p[i + k] < 0x80 || p[i + k] > 0xbf) return i;
    i += more + 1;
  }
  return -1;
}

std::string_view strip_ascii(std::string_view s) {
  while (!s.empty() && ascii_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && ascii_space(s.back())) s.remove_suffix(1);
  return s;
}

// A plain decimal number ([+-]digits[.digits][e[+-]digits], ASCII spaces around) as Python's float()
// reads it; false for anything else (inf, nan, '1_0', Unicode digits, overflow), which Python decides.
bool plain_number(std::string_view s, double& value) {
  s = strip_ascii(s);
  if (s.empty()) return false;
  size_t i = (s[0] == '+' || s[0] == '-') ? 1 : 0;
  size_t digits = 0;
  auto run = [&] { size_t k = 0; while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++k; return k; };
  digits += run();
  if (i < s.size() && s[i] == '.') { ++i; digits += run(); }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (run() == 0) return false;
  }
  if (i != s.size()) return false;
  const char* begin = s.data() + (s[0] == '+');  // from_chars takes no '+'
  auto [end, error] = std::from_chars(begin, s.data() + s.size(), value);
  // beyond float32's range: the labels are float32, so the Python parser refuses it as not finite
  return error == std::errc() && end == s.data() + s.size() &&
         std::fabs(value) <= std::numeric_limits<float>::max();
}

// The fields of a line split on the format's separator, as Python's str.split(sep) gives them.
void split(std::string_view text, PairFormat format, std::vector<std::string_view>& fields) {
  fields.clear();
  const std::string_view sep = format == PairFormat::bars ? "||" : "\t";
  size_t at = 0;
  for (;;) {
    const size_t next = text.find(sep, at);
    if (next == std::string_view::npos) { fields.push_back(text.substr(at)); return; }
    fields.push_back(text.substr(at, next - at));
    at = next + sep.size();
  }
}

}  // namespace

ScanResult scan_pairs(const char* data, int64_t n, int64_t start, int64_t line, int64_t max_rows, bool final,
                      PairFormat format, bool stop_at_bad, SentenceTable& table) {
  ScanResult r;
  std::vector<std::string_view> fields;
  const double none = std::numeric_limits<double>::quiet_NaN();
  int64_t at = start;
  auto rows = [&] { return static_cast<int64_t>(r.labels.size()); };
  while (at < n && rows() < max_rows && !(stop_at_bad && !r.bad.empty()) && !r.deferred_line) {
    const char* nl = static_cast<const char*>(memchr(data + at, '\n', n - at));
    if (!nl && !final) break;  // an incomplete last line waits for the next block
    const int64_t stop = nl ? nl - data : n;
    std::string_view text(data + at, stop - at);
    at = nl ? stop + 1 : n;
    ++line;
    const int64_t wrong = invalid_utf8(text);
    if (wrong >= 0) {
      r.bad.push_back({line, "invalid UTF-8 at byte " + std::to_string(wrong) + " of the line"});
      continue;
    }
    if (line == 1 && text.substr(0, 3) == "\xef\xbb\xbf") text.remove_prefix(3);
    while (!text.empty() && (text.back() == '\r' || text.back() == '\n')) text.remove_suffix(1);
    const Blank empty_line = blank(text);
    if (empty_line == Blank::yes) continue;
    auto defer = [&] {
      r.deferred_line = line;
      r.deferred_text = std::string(text);
    };
    if (empty_line == Blank::unsure) { defer(); continue; }
    split(text, format, fields);
    const size_t least = format == PairFormat::sts ? 7 : 2;
    if (fields.size() < least) {
      r.bad.push_back({line, format == PairFormat::sts
                                 ? "expected 7 tab-separated STS fields, found " + std::to_string(fields.size())
                             : format == PairFormat::bars ? "expected 'sentence1||sentence2'"
                                                          : "expected at least 2 tab-separated fields (sentence1, sentence2)"});
      continue;
    }
    const std::string_view a = format == PairFormat::sts ? fields[5] : fields[0];
    const std::string_view b = format == PairFormat::sts ? fields[6] : fields[1];
    double label = none;
    if (format == PairFormat::sts) {  // a required number, or blank for none
      if (!strip_ascii(fields[4]).empty() && !plain_number(fields[4], label)) { defer(); continue; }
    } else if (fields.size() > 2 && !plain_number(fields[2], label)) {
      label = none;  // any other third field is either no number (ignored) or one Python must read
      if (blank(fields[2]) != Blank::yes) { defer(); continue; }
    }
    const Blank blank_a = blank(a), blank_b = blank(b);
    if (blank_a == Blank::yes || blank_b == Blank::yes) { r.bad.push_back({line, "empty sentence"}); continue; }
    if (blank_a == Blank::unsure || blank_b == Blank::unsure) { defer(); continue; }
    if (a.find('\0') != std::string_view::npos || b.find('\0') != std::string_view::npos) {
      r.bad.push_back({line, "NUL byte in a sentence"});
      continue;
    }
    r.ids.push_back(table.intern(a));
    r.ids.push_back(table.intern(b));
    r.labels.push_back(label);
  }
  r.end = at;
  r.line = line;
  return r;
}

}  // namespace transenc

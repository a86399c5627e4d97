// An aligned plain-text table for a terminal: a header row, then rows, columns padded to the
// widest cell (counted in terminal columns: wide East Asian characters and emoji take two,
// combining marks none). Cells are made safe to print first: control and
// bidirectional-override characters, which anyone filling in the block page's form could send,
// are shown as escapes instead of reaching the terminal.
// A value type; not thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace hallpass::ctl {

// `text` with control characters (C0, DEL, C1) and bidi overrides written as visible escapes
// (\n, \t, \x1b, \u202e); invalid UTF-8 bytes as \xNN.
std::string printable(std::string_view text);

// The columns a terminal takes to show UTF-8 `text` (wcwidth of each code point under C.UTF-8;
// a byte that is not UTF-8 counts one).
std::size_t display_width(std::string_view text);

class text_table {
 public:
  explicit text_table(std::vector<std::string> header);

  // Cells beyond the header's count are ignored; missing ones are empty.
  void add_row(std::vector<std::string> cells);

  // Cuts column `column`'s cells to `width` columns with a trailing "...". The last
  // column is never padded, so long text there just runs on.
  void limit_width(std::size_t column, std::size_t width);

  bool empty() const { return rows_.empty(); }

  // Every line ends with '\n'; two spaces between columns.
  std::string render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<std::size_t> limits_;  // 0: no limit
};

}  // namespace hallpass::ctl

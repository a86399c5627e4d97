#include "ctl/text_table.hpp"

#include <locale.h>
#include <wchar.h>

#include <algorithm>
#include <cstdint>

#include "rules/utf8.hpp"

namespace hallpass::ctl {
namespace {

// The columns a terminal gives one code point: glibc's wcwidth under its built-in C.UTF-8
// locale (Unicode's East Asian width and zero-width marks: "日" is 2, a combining accent or a
// zero-width joiner 0, most emoji 2), asked through a locale object of our own so that the
// user's LANG does not matter. 1 where the locale is missing or the code point unassigned.
std::size_t columns_of(std::uint32_t cp) {
  static const locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  if (utf8 == static_cast<locale_t>(nullptr)) return 1;
  const locale_t before = uselocale(utf8);
  const int w = wcwidth(static_cast<wchar_t>(cp));
  uselocale(before);
  return w < 0 ? 1 : static_cast<std::size_t>(w);
}

// Printable text cut to `width` columns, ending in "..." when it was wider; a character that
// would straddle the cut is left out whole.
std::string cut(const std::string& text, std::size_t width) {
  if (width < 4 || display_width(text) <= width) return text;
  std::string out;
  std::size_t shown = 0;
  for (std::size_t i = 0; i < text.size();) {
    std::uint32_t cp = 0;
    const std::size_t length = std::max<std::size_t>(1, rules::utf8_sequence(text, i, cp));
    const std::size_t w = length == 1 && static_cast<unsigned char>(text[i]) >= 0x80 ? 1 : columns_of(cp);
    if (shown + w > width - 3) break;
    out.append(text, i, length);
    shown += w;
    i += length;
  }
  return out + "...";
}

}  // namespace

std::string printable(std::string_view text) { return rules::terminal_safe(text); }

std::size_t display_width(std::string_view text) {
  std::size_t width = 0;
  for (std::size_t i = 0; i < text.size();) {
    std::uint32_t cp = 0;
    const std::size_t length = rules::utf8_sequence(text, i, cp);
    width += length == 0 ? 1 : columns_of(cp);  // a byte that is not UTF-8: one column
    i += std::max<std::size_t>(1, length);
  }
  return width;
}

text_table::text_table(std::vector<std::string> header)
    : header_(std::move(header)), limits_(header_.size(), 0) {}

void text_table::add_row(std::vector<std::string> cells) {
  cells.resize(header_.size());
  for (auto& c : cells) c = printable(c);
  rows_.push_back(std::move(cells));
}

void text_table::limit_width(std::size_t column, std::size_t width) {
  if (column < limits_.size()) limits_[column] = width;
}

std::string text_table::render() const {
  std::vector<std::vector<std::string>> lines;
  lines.push_back(header_);
  for (const auto& row : rows_) {
    auto& line = lines.emplace_back();
    for (std::size_t c = 0; c < row.size(); ++c)
      line.push_back(limits_[c] ? cut(row[c], limits_[c]) : row[c]);
  }
  std::vector<std::size_t> widths(header_.size(), 0);
  for (const auto& line : lines) {
    for (std::size_t c = 0; c < line.size(); ++c)
      widths[c] = std::max(widths[c], display_width(line[c]));
  }
  std::string out;
  for (const auto& line : lines) {
    std::string text;
    for (std::size_t c = 0; c < line.size(); ++c) {
      text += line[c];
      if (c + 1 < line.size()) text.append(widths[c] - display_width(line[c]) + 2, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  }
  return out;
}

}  // namespace hallpass::ctl

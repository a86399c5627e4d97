#include "ctl/text_table.hpp"

#include <algorithm>
#include <cstdint>

#include "rules/utf8.hpp"

namespace hallpass::ctl {
namespace {

// Length of the valid UTF-8 sequence at text[i], or 0 when the bytes there are not one.
std::size_t sequence_length(std::string_view text, std::size_t i) {
  std::uint32_t cp = 0;
  return rules::utf8_sequence(text, i, cp);
}

// The first `width` code points of printable text, with "..." when it was longer.
std::string cut(const std::string& text, std::size_t width) {
  if (width < 4 || display_width(text) <= width) return text;
  std::string out;
  std::size_t shown = 0;
  for (std::size_t i = 0; i < text.size() && shown < width - 3; ++shown) {
    const std::size_t length = std::max<std::size_t>(1, sequence_length(text, i));
    out.append(text, i, length);
    i += length;
  }
  return out + "...";
}

}  // namespace

std::string printable(std::string_view text) { return rules::terminal_safe(text); }

std::size_t display_width(std::string_view text) {
  std::size_t width = 0;
  for (std::size_t i = 0; i < text.size(); ++width)
    i += std::max<std::size_t>(1, sequence_length(text, i));
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

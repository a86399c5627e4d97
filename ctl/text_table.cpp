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

std::uint32_t code_point(std::string_view text, std::size_t i, std::size_t) {
  std::uint32_t cp = 0;
  rules::utf8_sequence(text, i, cp);
  return cp;
}

// Characters that control a terminal or change how the text around them reads without
// showing themselves: shown as escapes.
bool is_unsafe(std::uint32_t cp) {
  return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) ||           // C0, DEL, C1
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||  // bidi embeddings, isolates
         (cp >= 0x200B && cp <= 0x200F) || cp == 0x061C ||                   // zero-width, LRM, RLM, ALM
         cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF || cp == 0x00AD ||       // separators, BOM, soft hyphen
         (cp >= 0xE0000 && cp <= 0xE007F);                                   // tag characters
}

std::string hex(std::uint32_t value, int digits) {
  static constexpr char table[] = "0123456789abcdef";
  std::string out(static_cast<std::size_t>(digits), '0');
  for (int d = digits - 1; d >= 0; --d, value >>= 4)
    out[static_cast<std::size_t>(d)] = table[value & 0xF];
  return out;
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

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t length = sequence_length(text, i);
    if (length == 0) {
      out += "\\x" + hex(static_cast<unsigned char>(text[i]), 2);
      ++i;
      continue;
    }
    const std::uint32_t cp = code_point(text, i, length);
    if (!is_unsafe(cp)) {
      out.append(text.substr(i, length));
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp < 0x80) {
      out += "\\x" + hex(cp, 2);
    } else {
      out += cp > 0xFFFF ? "\\U" + hex(cp, 8) : "\\u" + hex(cp, 4);
    }
    i += length;
  }
  return out;
}

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

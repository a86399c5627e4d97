// UTF-8 as RFC 3629 defines it (shortest form, no surrogates, at most U+10FFFF): reading one
// character, and making any bytes valid text. Header-only, so that hallpassctl (which links
// no project library) shares it with the daemon.
//
// Pure; any thread.
#pragma once

#include <algorithm>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hallpass::rules {

// The length of the valid UTF-8 sequence at s[i] (1 for ASCII), with its code point in cp; 0
// (cp untouched) when the bytes at i are not one.
inline std::size_t utf8_sequence(std::string_view s, std::size_t i, std::uint32_t& cp) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char lead = b(0);
  if (lead < 0x80) {
    cp = lead;
    return 1;
  }
  std::size_t length;
  std::uint32_t min;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    min = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    min = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + length > s.size()) return 0;
  std::uint32_t v = lead & (0x7Fu >> length);
  for (std::size_t k = 1; k < length; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(k) & 0x3Fu);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;  // overlong, beyond, surrogate
  cp = v;
  return length;
}

// Walks `s` one character at a time: `character(cp, bytes)` for each valid UTF-8 sequence,
// `stray(byte)` for each byte that starts none (it is then skipped alone).
template <typename Character, typename Stray>
void for_each_character(std::string_view s, Character&& character, Stray&& stray) {
  for (std::size_t i = 0; i < s.size();) {
    std::uint32_t cp = 0;
    const std::size_t n = utf8_sequence(s, i, cp);
    if (n == 0) {
      stray(static_cast<unsigned char>(s[i]));
      ++i;
    } else {
      character(cp, s.substr(i, n));
      i += n;
    }
  }
}

// `s` as valid UTF-8: each byte that does not start a valid sequence becomes U+FFFD (the
// replacement character). For text from outside (a form, a DHCP host name, a user name)
// before it is stored or sent as JSON, whose readers refuse invalid UTF-8.
inline std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for_each_character(
      s, [&](std::uint32_t, std::string_view bytes) { out.append(bytes); },
      [&](unsigned char) { out += "\xEF\xBF\xBD"; });
  return out;
}

// Appends code point cp (at most U+10FFFF) as UTF-8.
inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Characters as a person counts them in valid UTF-8: its code points.
inline std::size_t code_points(std::string_view s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

inline bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    std::uint32_t cp = 0;
    const std::size_t n = utf8_sequence(s, i, cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Characters that control a terminal or change how the text around them reads without
// showing themselves.
inline bool is_unsafe_on_a_terminal(std::uint32_t cp) {
  return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) ||           // C0, DEL, C1
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||  // bidi embeddings, isolates
         (cp >= 0x200B && cp <= 0x200F) || cp == 0x061C ||                   // zero-width, LRM, RLM, ALM
         cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF || cp == 0x00AD ||       // separators, BOM, soft hyphen
         (cp >= 0xE0000 && cp <= 0xE007F);                                   // tag characters
}

// Whether a character shows as a space or as nothing: the spaces (ASCII, no-break, the
// typographic ones, the ideographic one), line ends, tabs, and invisible characters.
inline bool shows_as_blank(std::uint32_t cp) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F || cp == 0x3000 ||
         (cp >= 0x2060 && cp <= 0x2064) || cp == 0x180E || cp == 0x034F || cp == 0x115F || cp == 0x1160 ||
         cp == 0x3164 || cp == 0xFFA0 || cp == 0x2800 || is_unsafe_on_a_terminal(cp);
}

// Whether `text` shows nothing: only spaces (ASCII, no-break, the typographic ones, the
// ideographic one), line ends, tabs and the invisible characters above. "   " in U+3000 or
// U+00A0 is no reason (audit, 2026-12-06: an incident of nothing but U+00A0 was recorded).
inline bool is_blank(std::string_view text) {
  bool blank = true;
  for (std::size_t i = 0; i < text.size() && blank;) {
    std::uint32_t cp = 0;
    const std::size_t n = utf8_sequence(text, i, cp);
    if (n == 0) return false;  // not UTF-8: something, whatever it is
    blank = shows_as_blank(cp);
    i += n;
  }
  return blank;
}

// `text` safe to print on a terminal: the characters above as visible escapes (\n, \t, \x1b,
// \u202e, \U000e0041), bytes that are not UTF-8 as \xNN; everything else as it is. For text
// that people outside the office can write (a form, a reason, a report) on its way to the
// headteacher's or technician's terminal (hallpassctl, hallpass explain).
inline std::string terminal_safe(std::string_view text) {
  static constexpr char digits[] = "0123456789abcdef";
  const auto hex = [](std::uint32_t value, int width) {
    std::string out(static_cast<std::size_t>(width), '0');
    for (int d = width - 1; d >= 0; --d, value >>= 4) out[static_cast<std::size_t>(d)] = digits[value & 0xF];
    return out;
  };
  std::string out;
  out.reserve(text.size());
  for_each_character(
      text,
      [&](std::uint32_t cp, std::string_view bytes) {
        if (!is_unsafe_on_a_terminal(cp)) {
          out.append(bytes);
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
      },
      [&](unsigned char byte) { out += "\\x" + hex(byte, 2); });
  return out;
}

}  // namespace hallpass::rules

#include "proxy/chunked_codec.hpp"

#include <algorithm>

#include "proxy/request_checks.hpp"

namespace hallpass {

void chunked_decoder::fail(std::string reason) {
  if (!error_) error_ = std::move(reason);
  state_ = state::failed;
}

void chunked_decoder::end_size_line() {
  if (auto problem = check_chunk_size_line(line_)) {
    fail(*problem);
    return;
  }
  // check_chunk_size_line allows at most 16 hex digits: the size fits in 64 bits.
  std::uint64_t size = 0;
  for (char c : line_) {
    const int d = hex_digit_value(c);
    if (d < 0) break;
    size = size * 16 + static_cast<std::uint64_t>(d);
  }
  line_.clear();
  if (size == 0) {
    state_ = state::trailer_line;
  } else {
    remaining_ = size;
    state_ = state::data;
  }
}

void chunked_decoder::end_trailer_line() {
  if (line_.empty()) {
    state_ = state::done;
    return;
  }
  trailer_bytes_ += line_.size() + 2;
  if (trailer_bytes_ > max_trailer_) {
    fail("trailer section too large");
    return;
  }
  // field-line = field-name ":" OWS field-value OWS; no obs-fold (a line starting with SP or HTAB).
  const auto colon = std::string_view(line_).find(':');
  if (colon == std::string_view::npos || !is_http_token(std::string_view(line_).substr(0, colon)) ||
      !is_field_value(std::string_view(line_).substr(colon + 1))) {
    fail("malformed trailer field");
    return;
  }
  line_.clear();
}

chunked_decoder::step chunked_decoder::next(std::string_view in) {
  step s;
  std::size_t i = 0;
  while (i < in.size()) {
    switch (state_) {
      case state::done:
      case state::failed:
        // Bytes after the last chunk belong to whatever follows the body: not ours.
        s.consumed = i;
        return s;
      case state::data: {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size() - i));
        s.data = in.substr(i, n);
        i += n;
        remaining_ -= n;
        body_bytes_ += n;
        if (remaining_ == 0) state_ = state::data_cr;
        s.consumed = i;
        return s;
      }
      case state::data_cr:
        if (in[i] != '\r') {
          fail("chunk data not followed by CRLF");
          break;
        }
        ++i;
        state_ = state::data_lf;
        break;
      case state::data_lf:
        if (in[i] != '\n') {
          fail("chunk data not followed by CRLF");
          break;
        }
        ++i;
        state_ = state::size_line;
        break;
      case state::size_line:
      case state::trailer_line: {
        const char c = in[i];
        if (line_cr_) {
          if (c != '\n') {
            fail("bare CR in chunk framing");
            break;
          }
          ++i;
          line_cr_ = false;
          if (state_ == state::size_line) {
            end_size_line();
          } else {
            end_trailer_line();
          }
          break;
        }
        if (c == '\r') {
          line_cr_ = true;
          ++i;
          break;
        }
        if (c == '\n') {
          fail("bare LF in chunk framing");
          break;
        }
        if (line_.size() >= max_line_) {
          fail(state_ == state::size_line ? "chunk size line too long" : "trailer line too long");
          break;
        }
        line_.push_back(c);
        ++i;
        break;
      }
    }
    if (state_ == state::failed) break;
  }
  s.consumed = i;
  return s;
}

void append_chunk(std::string& out, std::string_view data) {
  if (data.empty()) return;
  static constexpr char digits[] = "0123456789abcdef";
  char size[16];
  int n = 0;
  for (std::size_t v = data.size(); v > 0; v >>= 4) size[n++] = digits[v & 0xf];
  while (n > 0) out.push_back(size[--n]);
  out.append("\r\n");
  out.append(data);
  out.append("\r\n");
}

void append_last_chunk(std::string& out) { out.append("0\r\n\r\n"); }

}  // namespace hallpass

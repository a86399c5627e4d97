#include "proxy/response_head.hpp"

#include "proxy/request_checks.hpp"

namespace hallpass {

namespace {

constexpr int max_leading_empty_lines = 4;

bool is_reason_byte(unsigned char c) { return c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80; }

// The next line of `in` from `pos`, without its CRLF or bare LF. need_more when no LF has come
// yet.
head_parse next_line(std::string_view in, std::size_t& pos, std::string_view& line, std::string& error) {
  const auto lf = in.find('\n', pos);
  if (lf == std::string_view::npos) {
    // A CR followed by something other than LF is already wrong.
    const auto cr = in.find('\r', pos);
    if (cr != std::string_view::npos && cr + 1 < in.size()) {
      error = "bare CR in the response head";
      return head_parse::error;
    }
    return head_parse::need_more;
  }
  // RFC 9112 2.2: a recipient MAY take a bare LF as a line end. Browsers do in a response
  // (old embedded servers, printers, hand-written CGI answer so); the proxy writes its own head
  // for the client with CRLFs, so nothing of the origin's line ends reaches the client, and the
  // head ends where both the proxy and the client are told it does. Requests keep CRLF only
  // (request_parser): there a front end reading the lines otherwise is a smuggling risk.
  const bool crlf = lf > pos && in[lf - 1] == '\r';
  line = in.substr(pos, lf - pos - (crlf ? 1 : 0));
  if (line.find('\r') != std::string_view::npos) {
    error = "bare CR in the response head";
    return head_parse::error;
  }
  pos = lf + 1;
  return head_parse::complete;
}

bool parse_status_line(std::string_view line, response_head& out, std::string& error) {
  // HTTP-version SP status-code [ SP [ reason-phrase ] ]
  if (line.size() < 12 || line.substr(0, 5) != "HTTP/" || line[6] != '.' || line[8] != ' ') {
    error = "malformed status line";
    return false;
  }
  if (line[5] != '1' || (line[7] != '0' && line[7] != '1')) {
    error = "unsupported HTTP version in the response";
    return false;
  }
  out.version = line[7] == '1' ? 11 : 10;
  unsigned code = 0;
  for (int i = 9; i < 12; ++i) {
    const char c = line[static_cast<std::size_t>(i)];
    if (c < '0' || c > '9') {
      error = "malformed status code";
      return false;
    }
    code = code * 10 + static_cast<unsigned>(c - '0');
  }
  if (code < 100 || code > 599) {
    error = "status code out of range";
    return false;
  }
  out.status = code;
  std::string_view rest = line.substr(12);
  if (!rest.empty()) {
    if (rest.front() != ' ') {
      error = "malformed status line";
      return false;
    }
    rest.remove_prefix(1);
    for (unsigned char c : rest) {
      if (!is_reason_byte(c)) {
        error = "invalid byte in the reason phrase";
        return false;
      }
    }
  }
  out.reason = rest;
  return true;
}


bool is_dropped_field(const response_head& h, std::string_view name, bool upgrade) {
  static constexpr std::string_view always[] = {"connection", "keep-alive",      "proxy-connection",  "te",
                                                "trailer",    "transfer-encoding", "content-length", "proxy-authenticate"};
  for (auto n : always)
    if (ascii_iequals(name, n)) return true;
  if (ascii_iequals(name, "upgrade")) return !upgrade;
  // Fields named by Connection are for this hop only.
  for (const auto& f : h.fields) {
    if ((ascii_iequals(f.name, "connection") || ascii_iequals(f.name, "proxy-connection")) && list_has(f.value, name)) return true;
  }
  return false;
}

}  // namespace

std::string write_client_response_head(const response_head& h, const client_head_options& o) {
  std::string out;
  out.reserve(256);
  out.append(o.version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  out.append(std::to_string(h.status));
  out.push_back(' ');
  out.append(h.reason);
  out.append("\r\n");
  for (const auto& f : h.fields) {
    if (is_dropped_field(h, f.name, o.upgrade)) continue;
    out.append(f.name).append(": ").append(f.value).append("\r\n");
  }
  if (!o.via.empty()) out.append("Via: ").append(o.via).append("\r\n");
  switch (o.framing) {
    case client_framing::none:
    case client_framing::close: break;
    case client_framing::length_info:
    case client_framing::length: out.append("Content-Length: ").append(std::to_string(o.content_length)).append("\r\n"); break;
    case client_framing::chunked: out.append("Transfer-Encoding: chunked\r\n"); break;
  }
  if (o.upgrade) {
    out.append("Connection: Upgrade\r\n");
  } else if (h.status >= 200) {
    // HTTP/1.1 is persistent unless it says close; HTTP/1.0 only when it says keep-alive.
    if (!o.keep_alive && o.version == 11) out.append("Connection: close\r\n");
    if (o.keep_alive && o.version == 10) out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n");
  return out;
}

bool head_reparse_gate::worth_parsing(std::string_view in, std::size_t max_bytes) {
  constexpr std::size_t always = 8 * 1024;
  bool parse = !parsed_any_ || in.size() <= always || in.size() > max_bytes || in.size() / 2 >= last_parsed_;
  if (!parse) {
    // The bytes not looked through yet, with the two before them, which may begin the line.
    const auto fresh = in.substr(std::min(in.size(), searched_ >= 2 ? searched_ - 2 : 0));
    parse = fresh.find("\n\n") != std::string_view::npos || fresh.find("\n\r\n") != std::string_view::npos;
  }
  searched_ = in.size();
  if (parse) {
    parsed_any_ = true;
    last_parsed_ = in.size();
  }
  return parse;
}

head_parse parse_response_head(std::string_view in, std::size_t max_bytes, std::size_t max_fields,
                               response_head& out, std::string& error) {
  out = response_head{};
  // Look only at what the limit allows; a head that has not ended by then is too large.
  const bool truncated = in.size() > max_bytes;
  if (truncated) in = in.substr(0, max_bytes);
  auto need_more = [&] {
    if (truncated) {
      error = "response head larger than " + std::to_string(max_bytes / 1024) +
              " KiB (limits.response_header_bytes)";
      return head_parse::too_large;
    }
    return head_parse::need_more;
  };
  std::size_t pos = 0;
  std::string_view line;
  int empty_lines = 0;
  for (;;) {
    const auto r = next_line(in, pos, line, error);
    if (r == head_parse::need_more) return need_more();
    if (r == head_parse::error) return r;
    if (!line.empty()) break;
    if (++empty_lines > max_leading_empty_lines) {
      error = "too many empty lines before the status line";
      return head_parse::error;
    }
  }
  if (!parse_status_line(line, out, error)) return head_parse::error;
  for (;;) {
    const auto r = next_line(in, pos, line, error);
    if (r == head_parse::need_more) return need_more();
    if (r == head_parse::error) return r;
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t') {
      error = "obsolete line folding in the response head";
      return head_parse::error;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || !is_http_token(line.substr(0, colon))) {
      error = "malformed header field in the response";
      return head_parse::error;
    }
    const auto value = trim_ows(line.substr(colon + 1));
    if (!is_field_value(value)) {
      error = "invalid byte in a response header field";
      return head_parse::error;
    }
    if (out.fields.size() >= max_fields) {
      error = "more than " + std::to_string(max_fields) + " header fields in the response (limits.response_header_count)";
      return head_parse::too_large;
    }
    out.fields.push_back(head_field{line.substr(0, colon), value});
  }
  out.size = pos;
  return head_parse::complete;
}

}  // namespace hallpass

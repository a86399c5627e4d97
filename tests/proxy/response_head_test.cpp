#include <doctest/doctest.h>

#include <string>

#include "proxy/response_head.hpp"

using namespace hallpass;

namespace {

std::string error_of(std::string_view in) {
  response_head h;
  std::string error;
  const auto r = parse_response_head(in, 32 * 1024, 100, h, error);
  if (r == head_parse::need_more) return "need more";
  return r == head_parse::error ? error : "";
}

}  // namespace

TEST_CASE("a response head is parsed with its exact size") {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  spaced value \t\r\n\r\n";
  const std::string input = head + "hello";
  response_head h;
  std::string error;
  REQUIRE(parse_response_head(input, 32 * 1024, 100, h, error) == head_parse::complete);
  CHECK(h.version == 11);
  CHECK(h.status == 200);
  CHECK(h.reason == "OK");
  CHECK(h.size == head.size());
  REQUIRE(h.fields.size() == 2);
  CHECK(h.fields[0].name == "Content-Length");
  CHECK(h.fields[0].value == "5");
  CHECK(h.fields[1].value == "spaced value");
}

TEST_CASE("shapes common parsers accept are accepted") {
  CHECK(error_of("HTTP/1.1 301\r\nLocation: /x\r\n\r\n").empty());   // no reason phrase
  CHECK(error_of("HTTP/1.1 301 \r\nLocation: /x\r\n\r\n").empty());  // empty reason phrase
  CHECK(error_of("\r\nHTTP/1.1 200 OK\r\n\r\n").empty());            // an empty line first
  CHECK(error_of("HTTP/1.0 200 OK\r\n\r\n").empty());
  response_head h;
  std::string error;
  REQUIRE(parse_response_head("\r\n\r\nHTTP/1.0 404 Not Found\r\n\r\n", 1024, 10, h, error) == head_parse::complete);
  CHECK(h.version == 10);
  CHECK(h.status == 404);
  CHECK(h.size == 30);
}

TEST_CASE("incomplete heads ask for more, until the limit") {
  CHECK(error_of("HTTP/1.1 200 OK\r\nContent-") == "need more");
  CHECK(error_of("HTTP/1.1 200 OK\r\n\r") == "need more");
  CHECK(error_of("") == "need more");
  response_head h;
  std::string error;
  const std::string big = "HTTP/1.1 200 OK\r\nX: " + std::string(2000, 'a');
  CHECK(parse_response_head(big, 1024, 100, h, error) == head_parse::too_large);  // the limit, not malformed
  CHECK(error == "response head larger than 1 KiB (limits.response_header_bytes)");
}

TEST_CASE("lines ended by a bare LF are read as browsers read them (RFC 9112 2.2)") {
  response_head h;
  std::string error;
  const std::string_view lf = "HTTP/1.1 200 OK\nContent-Length: 5\n\nhello";
  REQUIRE(parse_response_head(lf, 1024, 10, h, error) == head_parse::complete);
  CHECK(h.status == 200);
  CHECK(h.reason == "OK");
  REQUIRE(h.fields.size() == 1);
  CHECK(h.fields[0].name == "Content-Length");
  CHECK(h.fields[0].value == "5");
  CHECK(h.size == lf.size() - 5);
  // Mixed line ends, and a bare LF as the empty line that ends a CRLF head.
  const std::string_view mixed = "\nHTTP/1.0 302 Found\r\nLocation: /x\nX-A: b\r\n\nbody";
  REQUIRE(parse_response_head(mixed, 1024, 10, h, error) == head_parse::complete);
  CHECK(h.version == 10);
  CHECK(h.status == 302);
  REQUIRE(h.fields.size() == 2);
  CHECK(h.fields[0].value == "/x");
  CHECK(h.fields[1].value == "b");
  CHECK(h.size == mixed.size() - 4);
  CHECK(error_of("HTTP/1.1 200 OK\r\nContent-Length: 5\n\r\n").empty());
  CHECK(error_of("HTTP/1.1 200 OK\nX: a") == "need more");
  // The proxy's own head for the client has CRLFs only.
  REQUIRE(parse_response_head(lf, 1024, 10, h, error) == head_parse::complete);
  client_head_options o;
  o.framing = client_framing::length;
  o.content_length = 5;
  CHECK(write_client_response_head(h, o) == "HTTP/1.1 200 OK\r\nVia: 1.1 hallpass\r\nContent-Length: 5\r\n\r\n");
}

TEST_CASE("heads that could be read two ways are refused") {
  CHECK(error_of("HTTP/1.1 200 OK\r\nX: a\r\r\n\r\n") == "bare CR in the response head");
  CHECK(error_of("HTTP/1.1 200 OK\rContent-Length: 5\r\n\r\n") == "bare CR in the response head");
  CHECK(error_of("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n") == "bare CR in the response head");
  CHECK(error_of("HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n") == "obsolete line folding in the response head");
  CHECK(error_of("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n") == "malformed header field in the response");
  CHECK(error_of("HTTP/1.1 200 OK\r\nX: \x01\r\n\r\n") == "invalid byte in a response header field");
  CHECK(error_of("HTTP/2.0 200 OK\r\n\r\n") == "unsupported HTTP version in the response");
  CHECK(error_of("HTTP/1.1 099 Low\r\n\r\n") == "status code out of range");
  CHECK(error_of("HTTP/1.1 600 High\r\n\r\n") == "status code out of range");
  CHECK(error_of("HTTP/1.1 20 OK\r\n\r\n") == "malformed status code");
  CHECK(error_of("HTTP/1.1 2000 OK\r\n\r\n") == "malformed status line");
  CHECK(error_of("HTTP/1.1  200 OK\r\n\r\n") == "malformed status code");
  CHECK(error_of("HTTP/1.1 200 OK\x7f\r\n\r\n") == "invalid byte in the reason phrase");
  CHECK(error_of("\r\n\r\n\r\n\r\n\r\nHTTP/1.1 200 OK\r\n\r\n") == "too many empty lines before the status line");
  CHECK(error_of("ICY 200 OK\r\n\r\n") == "malformed status line");
}

TEST_CASE("the field count is bounded") {
  std::string head = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 11; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
  head += "\r\n";
  response_head h;
  std::string error;
  CHECK(parse_response_head(head, 32 * 1024, 10, h, error) == head_parse::too_large);
  CHECK(error == "more than 10 header fields in the response (limits.response_header_count)");
  CHECK(parse_response_head(head, 32 * 1024, 11, h, error) == head_parse::complete);
}

TEST_CASE("no content for 1xx, 204 and 304") {
  CHECK(status_has_no_content(100));
  CHECK(status_has_no_content(103));
  CHECK(status_has_no_content(204));
  CHECK(status_has_no_content(304));
  CHECK_FALSE(status_has_no_content(200));
  CHECK_FALSE(status_has_no_content(404));
}

TEST_CASE("a head that comes a byte at a time is parsed and searched in linear time, and found at once") {
  // A 120 KiB head of valid fields, fed one byte at a time as a hostile origin can send it; the
  // loop is read_response_head's. Parsing after every read scanned about 7.6 GB here.
  std::string full = "HTTP/1.1 200 OK\r\n";
  while (full.size() < 120 * 1024) full += "X-Filler: " + std::string(50, 'a') + "\r\n";
  full += "Content-Length: 0\r\n\r\n";
  const std::size_t max_bytes = 128 * 1024;
  std::size_t scanned = 0, parses = 0;
  head_reparse_gate gate;
  head_parse result = head_parse::need_more;
  std::size_t complete_at = 0;
  for (std::size_t have = 1; have <= full.size(); ++have) {
    const std::string_view view(full.data(), have);
    if (!gate.worth_parsing(view, max_bytes)) continue;
    response_head h;
    std::string error;
    result = parse_response_head(view, max_bytes, 10000, h, error);
    scanned += have;
    ++parses;
    if (result != head_parse::need_more) {
      complete_at = have;
      break;
    }
  }
  CHECK(result == head_parse::complete);
  CHECK(complete_at == full.size());  // found with its last byte, not later
  // Every read while the head is under 8 KiB (8,192 parses, 34 MB in all), then four more
  // (doubling, and the end): about 34 MB, against 7.6 GB for a parse after every byte.
  const std::size_t every_read = full.size() * (full.size() + 1) / 2;
  CHECK(scanned < 36 * 1024 * 1024);
  CHECK(scanned * 200 < every_read);
  CHECK(parses < 8 * 1024 + 10);
}

TEST_CASE("head_reparse_gate: the first read, small heads, a possible end, doubling, the limit") {
  const std::string big(20000, 'a');
  const std::string_view v(big);
  head_reparse_gate gate;
  CHECK(gate.worth_parsing(v.substr(0, 100), 131072));     // the first read
  CHECK(gate.worth_parsing(v.substr(0, 8000), 131072));    // small: every read
  CHECK(gate.worth_parsing(v.substr(0, 16000), 131072));   // doubled since 8,000
  CHECK_FALSE(gate.worth_parsing(v.substr(0, 16001), 131072));
  CHECK_FALSE(gate.worth_parsing(v.substr(0, 19999), 131072));
  CHECK(gate.worth_parsing(v, 16384));                     // over the limit
  // An ending line that straddles what was looked through before.
  std::string ending = big;
  ending.replace(19997, 3, "\n\r\n");
  head_reparse_gate g2;
  CHECK(g2.worth_parsing(std::string_view(ending).substr(0, 10000), 131072));
  CHECK_FALSE(g2.worth_parsing(std::string_view(ending).substr(0, 19998), 131072));
  CHECK(g2.worth_parsing(ending, 131072));
  ending = big;
  ending.replace(19998, 2, "\n\n");
  head_reparse_gate g3;
  CHECK(g3.worth_parsing(std::string_view(ending).substr(0, 10000), 131072));
  CHECK_FALSE(g3.worth_parsing(std::string_view(ending).substr(0, 19999), 131072));
  CHECK(g3.worth_parsing(ending, 131072));
}

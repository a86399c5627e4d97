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

TEST_CASE("heads that could be read two ways are refused") {
  CHECK(error_of("HTTP/1.1 200 OK\nContent-Length: 5\n\n") == "bare LF in the response head");
  CHECK(error_of("HTTP/1.1 200 OK\r\nContent-Length: 5\n\r\n") == "bare LF in the response head");
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

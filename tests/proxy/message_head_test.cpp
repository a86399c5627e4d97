// The fast path's own head serialisation must write exactly what Beast's serializer writes.
#include <doctest/doctest.h>

#include <sstream>

#include "proxy/message_head.hpp"

namespace hallpass {
namespace {

template <bool isRequest>
std::string beast_head(const http::header<isRequest>& h) {
  std::ostringstream os;
  os << h;
  return os.str();
}

}  // namespace

TEST_CASE("a request head is serialised as Beast serialises it") {
  http::request<http::empty_body> req{http::verb::post, "/w/index.php?title=X&action=edit", 11};
  req.set(http::field::host, "en.wikipedia.org");
  req.set(http::field::user_agent, "curl/7.88.1");
  req.insert("X-Repeated", "one");
  req.insert("X-Repeated", "two");
  req.set(http::field::content_length, "5");
  req.set(http::field::via, "1.1 hallpass");
  const std::string ours = serialize_request_head(req.base());
  CHECK(ours == beast_head(req.base()));
  CHECK(ours.starts_with("POST /w/index.php?title=X&action=edit HTTP/1.1\r\nHost: en.wikipedia.org\r\n"));
  CHECK(ours.ends_with("Via: 1.1 hallpass\r\n\r\n"));
}

TEST_CASE("a request with an unknown method keeps its method string") {
  http::request<http::empty_body> req;
  req.method_string("PURGE");
  req.target("/x");
  req.version(10);
  CHECK(serialize_request_head(req.base()) == "PURGE /x HTTP/1.0\r\n\r\n");
}

TEST_CASE("a response head keeps the origin's reason phrase, or uses the standard one") {
  http::response<http::empty_body> res{http::status::not_modified, 11};
  res.set(http::field::etag, "\"abc\"");
  CHECK(serialize_response_head(res.base()) == beast_head(res.base()));
  CHECK(serialize_response_head(res.base()) == "HTTP/1.1 304 Not Modified\r\nETag: \"abc\"\r\n\r\n");

  res.result(http::status::ok);
  res.reason("Fine Thanks");
  res.version(10);
  CHECK(serialize_response_head(res.base()) == beast_head(res.base()));
  CHECK(serialize_response_head(res.base()).starts_with("HTTP/1.0 200 Fine Thanks\r\n"));

  res.result(599);  // a code Beast has no name for
  res.reason("");
  CHECK(serialize_response_head(res.base()) == beast_head(res.base()));
}

}  // namespace hallpass

#include <doctest/doctest.h>

#include <string>

#include "proxy/chunked_codec.hpp"

using namespace hallpass;

namespace {

struct decoded {
  std::string body;
  std::size_t consumed = 0;
  bool done = false;
  std::string error;
};

// Feeds `in` to a decoder in pieces of `piece` bytes, as reads from a socket would arrive.
decoded decode(std::string_view in, std::size_t piece = 1 << 20) {
  chunked_decoder d;
  decoded r;
  while (r.consumed < in.size() && !d.done() && !d.error()) {
    std::string_view window = in.substr(r.consumed, piece);
    while (!window.empty() && !d.done() && !d.error()) {
      const auto s = d.next(window);
      r.body.append(s.data);
      window.remove_prefix(s.consumed);
      r.consumed += s.consumed;
      if (s.consumed == 0) break;
    }
  }
  r.done = d.done();
  if (d.error()) r.error = *d.error();
  return r;
}

}  // namespace

TEST_CASE("chunked bodies decode, whatever the read boundaries") {
  const std::string body = "4\r\nWiki\r\n5;ext=\"a b\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n";
  for (std::size_t piece : {1u, 2u, 3u, 7u, 1000u}) {
    CAPTURE(piece);
    const auto r = decode(body, piece);
    CHECK(r.error.empty());
    CHECK(r.done);
    CHECK(r.body == "Wikipedia in\r\n\r\nchunks.");
    CHECK(r.consumed == body.size());
  }
}

TEST_CASE("the decoder stops at the end of the body and leaves what follows") {
  const std::string next = "GET http://www.facebook.com/ HTTP/1.1\r\n\r\n";
  const auto r = decode("3\r\nabc\r\n0\r\n\r\n" + next);
  CHECK(r.done);
  CHECK(r.body == "abc");
  CHECK(r.consumed == 13);
}

TEST_CASE("an empty chunked body is just the last chunk") {
  const auto r = decode("0\r\n\r\n");
  CHECK(r.done);
  CHECK(r.body.empty());
  CHECK(r.consumed == 5);
}

TEST_CASE("trailer fields are read and dropped") {
  const auto r = decode("2\r\nok\r\n0\r\nX-Checksum: abc\r\nExpires: never\r\n\r\n");
  CHECK(r.done);
  CHECK(r.body == "ok");
  CHECK(decode("0\r\nbad trailer\r\n\r\n").error == "malformed trailer field");
  CHECK(decode("0\r\n folded\r\n\r\n").error == "malformed trailer field");
}

TEST_CASE("framing that could be read two ways is refused") {
  CHECK(decode("3\nabc\r\n0\r\n\r\n").error == "bare LF in chunk framing");
  CHECK(decode("3\rabc\r\n0\r\n\r\n").error == "bare CR in chunk framing");
  CHECK(decode("3\r\nabc\n0\r\n\r\n").error == "chunk data not followed by CRLF");
  CHECK(decode("3\r\nabcd\r\n0\r\n\r\n").error == "chunk data not followed by CRLF");
  CHECK(decode("0\r\n\n").error == "bare LF in chunk framing");
  CHECK_FALSE(decode("-3\r\nabc\r\n0\r\n\r\n").error.empty());
  CHECK_FALSE(decode("+3\r\nabc\r\n0\r\n\r\n").error.empty());
  CHECK_FALSE(decode("0x3\r\nabc\r\n0\r\n\r\n").error.empty());
  CHECK_FALSE(decode(" 3\r\nabc\r\n0\r\n\r\n").error.empty());
  CHECK_FALSE(decode("\r\n3\r\nabc\r\n0\r\n\r\n").error.empty());
  CHECK_FALSE(decode("3 junk\r\nabc\r\n0\r\n\r\n").error.empty());
  CHECK(decode("11111111111111111\r\n").error == "chunk size too large");  // 17 hex digits
  CHECK(decode(std::string(5000, 'a')).error == "chunk size line too long");
}

TEST_CASE("a huge declared chunk is streamed, not buffered") {
  chunked_decoder d;
  auto s = d.next("ffffffffffffffff\r\nabc");
  // The size line is consumed first, then the data in a second call.
  while (s.data.empty() && !d.error()) s = d.next(std::string_view("ffffffffffffffff\r\nabc").substr(18));
  CHECK_FALSE(d.error());
  CHECK(s.data == "abc");
  CHECK_FALSE(d.done());
}

TEST_CASE("the encoder writes one framing, and decodes back to the same bytes") {
  std::string out;
  append_chunk(out, "hello");
  append_chunk(out, "");  // nothing: an empty chunk would end the body
  append_chunk(out, std::string(300, 'x'));
  append_last_chunk(out);
  CHECK(out.starts_with("5\r\nhello\r\n12c\r\n"));
  CHECK(out.ends_with("\r\n0\r\n\r\n"));
  const auto r = decode(out);
  CHECK(r.done);
  CHECK(r.body == "hello" + std::string(300, 'x'));
}

// libFuzzer target: chunked_decoder and the chunk encoder (proxy/chunked_codec.hpp), the
// chunked bodies the proxy reads from clients and origins and re-frames.
//
// Asserted beyond "no crash, no sanitizer report":
//  - the result does not depend on how the bytes arrive: fed whole, byte by byte, or in pieces
//    whose sizes the input chooses, the decoder gives the same body, the same end, the same
//    error, and consumes the same number of bytes;
//  - it never consumes a byte after the last chunk (what follows belongs to the next message);
//  - a decoded body, re-encoded by us in the input-chosen pieces, decodes back to itself and
//    ends exactly at our last chunk.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/chunked_codec.hpp"
#include "tests/fuzz/fuzz_require.hpp"

using namespace hallpass;

namespace {

struct outcome {
  std::string body;
  std::size_t consumed = 0;
  bool done = false;
  std::optional<std::string> error;
  bool operator==(const outcome&) const = default;
};

outcome decode(std::string_view in, std::size_t piece) {
  chunked_decoder d(256, 1024);
  outcome o;
  while (o.consumed < in.size() && !d.done() && !d.error()) {
    std::string_view window = in.substr(o.consumed, piece);
    while (!window.empty() && !d.done() && !d.error()) {
      const auto s = d.next(window);
      FUZZ_REQUIRE(s.consumed <= window.size());
      FUZZ_REQUIRE(s.data.empty() || (s.data.data() >= window.data() &&
                                      s.data.data() + s.data.size() <= window.data() + s.consumed));
      o.body.append(s.data);
      window.remove_prefix(s.consumed);
      o.consumed += s.consumed;
      if (s.consumed == 0) break;
    }
  }
  o.done = d.done();
  o.error = d.error();
  FUZZ_REQUIRE(d.body_bytes() == o.body.size());
  FUZZ_REQUIRE(!(o.done && o.error));
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t piece = 1 + data[0] % 17;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto whole = decode(in, in.size() + 1);
  FUZZ_REQUIRE(decode(in, 1) == whole);
  FUZZ_REQUIRE(decode(in, piece) == whole);
  if (whole.done) {
    // Nothing after the end was taken: the same input with more bytes ends at the same place.
    const std::string longer = std::string(in.substr(0, whole.consumed)) + "GET / HTTP/1.1\r\n\r\n";
    const auto again = decode(longer, piece);
    FUZZ_REQUIRE(again.done && again.consumed == whole.consumed && again.body == whole.body);
  }
  // Our own framing of what was decoded reads back to the same bytes.
  std::string encoded;
  for (std::size_t i = 0; i < whole.body.size(); i += piece * 7) {
    append_chunk(encoded, std::string_view(whole.body).substr(i, piece * 7));
  }
  append_last_chunk(encoded);
  const auto back = decode(encoded, piece);
  FUZZ_REQUIRE(back.done && !back.error && back.body == whole.body && back.consumed == encoded.size());
  return 0;
}

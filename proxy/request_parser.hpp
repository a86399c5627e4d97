// The parser a client's request is read with: Beast reads the head, and the body is pulled
// through caller-supplied buffers (forwarded as it arrives, or read whole for the form).
// One per request, on its session's coroutine frame; not thread-safe.
#pragma once

#include "proxy/net.hpp"

namespace hallpass {

using request_parser = http::request_parser<http::buffer_body>;

// Parses a request head from what was read, with no read (serve_request reads until
// request_checks.hpp's scan_head finds the head whole, or until it is over the header limit).
// Beast can still ask for more of a whole head (a request line ending in a version shorter
// than "HTTP/1.1", such as "GET / 1"): waiting then would be waiting for bytes that are not part
// of this head, and with no 408 deadline, so it is refused as malformed instead. `used`: the
// bytes taken from the buffer. tests/fuzz/fuzz_request_head.cpp checks the pair.
inline error_code parse_buffered_head(request_parser& rp, beast::flat_buffer& buffer, bool whole, std::size_t& used) {
  error_code ec;
  used = 0;
  while (!rp.is_header_done()) {
    const std::size_t n = rp.put(buffer.data(), ec);
    buffer.consume(n);
    used += n;
    if (ec == http::error::need_more || (!ec && n == 0)) {
      return whole ? error_code(http::error::bad_version) : error_code(http::error::header_limit);
    }
    if (ec) return ec;
  }
  return ec;
}

}  // namespace hallpass

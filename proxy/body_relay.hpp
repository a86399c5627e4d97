// Message bodies between a client and an origin, in either direction, for forwarded requests
// and responses. The proxy always writes its own framing: relay_fixed sends exactly the
// declared length; relay_decoded decodes a chunked or close-delimited body and writes it either
// as our own chunks or, for an HTTP/1.0 client, as raw bytes ended by closing. Each read is
// written out before the next one is made, so a streamed body (server-sent events, a chunked
// upload) goes through as it arrives, with back-pressure, and at most one read's worth
// (16 KiB, plus what the head's read brought along) is held per direction.
//
// Runs on the session's worker thread; the streams belong to that thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "proxy/body_pace.hpp"
#include "proxy/duplex_stream.hpp"
#include "proxy/net.hpp"
#include "proxy/read_deadline.hpp"

namespace hallpass {

class worker;

// A client's body read under a pace (body_pace.hpp), with the client connection's read timer
// and its state (client_connection::read_timer, read_state): a read the pace runs out on is
// cancelled, not closed by the stream's own timeout (read_deadline.hpp), so that the client
// can still be answered 408.
struct body_pacing {
  body_pace& pace;
  net::steady_timer& timer;
  std::shared_ptr<read_deadline_state>& state;
};

struct relay_result {
  error_code read_error;   // from the side being read (eof before the end: the body was cut short)
  error_code write_error;  // from the side being written
  std::optional<std::string> framing_error;  // a chunked body that cannot be read one way only
  bool over_limit = false;                   // more body bytes than the limit allowed
  std::uint64_t moved = 0;    // body bytes read (decoded)
  std::uint64_t written = 0;  // bytes written: the head, the body and its framing
  explicit operator bool() const { return !read_error && !write_error && !framing_error && !over_limit; }
};

// Sends `head` followed by exactly `length` body bytes taken first from `in_buffer` (what the
// head's read brought along) and then straight from `in`: no parser and no extra copy; spliced
// in the kernel when much is left. The head and the first bytes go out in one write. Bytes
// beyond `length` stay in `in_buffer`. `stop`, when given and set, ends the relay before its
// next read or write with a write_error of operation_aborted (the origin refused an upload
// while it went up: response_reader.hpp). `paced`, when given, bounds the reads of `in` as its
// pace says; when the client falls behind, the read_error is a timeout, pace.too_slow is set,
// and `in` is still open.
net::awaitable<relay_result> relay_fixed(worker& w, duplex_stream& in, beast::flat_buffer& in_buffer,
                                         duplex_stream& out, const std::string& head, std::uint64_t length,
                                         std::chrono::milliseconds idle, const bool* stop = nullptr,
                                         const body_pacing* paced = nullptr);

enum class body_source : std::uint8_t {
  chunked,      // the sender's chunked coding, decoded strictly (chunked_codec.hpp); trailers dropped
  until_close,  // everything until the sender closes cleanly (an origin's response without
                // framing); a TLS close without close_notify is a read error, not the end
};

struct decoded_relay {
  body_source source = body_source::chunked;
  bool encode_chunked = true;  // false: raw bytes (the receiver reads until the connection closes)
  std::uint64_t limit = 0;     // body bytes allowed; 0: no limit
  std::chrono::milliseconds idle{120000};
  const bool* stop = nullptr;  // as relay_fixed's
  const body_pacing* paced = nullptr;  // as relay_fixed's
};

// Sends `head`, then the body read from `in_buffer` and `in`, re-framed as `how` says, until
// the body's end. When body bytes are already buffered they go out with the head in one write;
// when none are, the head goes out at once (a streamed response is not held back). So when
// `written` is 0 on a framing error, nothing has reached the receiver and the caller may still
// answer with an error page. A chunked body stops exactly at its end; what follows stays in
// `in_buffer`.
// `head` is consumed (moved from); it is a reference, not a by-value parameter, so that no
// string is built inside the caller's co_await expression (proxy/README.md, GCC 12 rule 2).
net::awaitable<relay_result> relay_decoded(duplex_stream& in, beast::flat_buffer& in_buffer,
                                           duplex_stream& out, std::string& head, const decoded_relay& how);

}  // namespace hallpass

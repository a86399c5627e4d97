// Reading an origin's answer: its response head, and a watch for an answer that comes while the
// request body is still on its way.
//
// The watch (RFC 9112 9.5: a client sending a body "SHOULD monitor the
// network connection for an error response while it is transmitting the request"): an origin
// that refuses an upload from its head (413, 401, a redirect to a sign-in page) may answer and
// then stop reading without closing. Without the watch the proxy heard that answer only once
// its own write failed, and a write that merely stalls fails only after upstream.idle_timeout,
// by closing the socket with the answer unread (a 502 to the client). With it, the answer is
// read alongside the upload: a final answer of 300 or more, or a malformed head, stops the
// upload at once (the client's read and the origin's write are cancelled) and is passed on
// (the malformed one as a 502). Interim responses (100, 102, 103) are stepped over, left in
// up.buffer for the response loop, and the watch reads on for the final answer. A 2xx (an
// origin that streams its answer while it reads, in full duplex) leaves the upload going, and
// its head waits in up.buffer for the response loop.
//
// Runs on the session's worker thread; the streams belong to that thread.
#pragma once

#include <memory>
#include <string>

#include "proxy/daemon_config.hpp"
#include "proxy/net.hpp"
#include "proxy/response_head.hpp"

namespace hallpass {

struct upstream_connection;

// Interim (1xx) responses an origin may send before its final one; more is refused.
constexpr int max_interim_responses = 16;

struct head_read {
  head_parse result = head_parse::need_more;  // need_more here means the read failed: see ec
  error_code ec;
  std::size_t bytes_read = 0;
  std::string error;
};

// Reads from the origin until up.buffer starts with a complete response head (parsed into
// `head`, whose views point into up.buffer until it is consumed), the head proves malformed
// or too large, or a read fails. The caller has set the stream's deadline.
net::awaitable<head_read> read_response_head(upstream_connection& up, response_head& head,
                                             const daemon_config::limit_settings& limits);

class early_answer_watch {
 public:
  // Starts reading up's answer into up.buffer while the caller sends the request body from
  // `client` (whose pending read is cancelled, with up's write, when the origin refuses).
  // The upstream stream's read deadline is cleared: the upload's own deadlines bound the watch.
  early_answer_watch(upstream_connection& up, tcp::socket& client, const daemon_config::limit_settings& limits);
  ~early_answer_watch();
  early_answer_watch(const early_answer_watch&) = delete;
  early_answer_watch& operator=(const early_answer_watch&) = delete;

  // Ends the watch (its read, if still pending, is cancelled) and waits for it. True when a
  // final answer of 300 or more (or a malformed head) arrived and the upload was stopped for it
  // (if the upload had not ended already). Either way what the
  // watch read stays in up.buffer, where read_response_head finds it. Must be awaited before
  // `up` or `client` go.
  net::awaitable<bool> stop();
  // Set when the origin refused the upload: the relays' `stop` (body_relay.hpp), which ends
  // the upload even where the watch's cancel found no operation pending to end.
  const bool* refused_flag() const;

  struct state;  // shared with the watch's coroutine (response_reader.cpp)

 private:
  std::shared_ptr<state> s_;
};

}  // namespace hallpass

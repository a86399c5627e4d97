// A watch on a client that waits for an origin's answer: when the client goes (its end closes
// or resets, with nothing unread before that), the origin's pending read is cancelled, so the
// request ends at once instead of at upstream.response_timeout.
//
// Without it, a pupil who gave up on a slow site (a reload, a closed tab) left the proxy
// holding both sockets for up to the response timeout (60 s by default), and the line then said
// 504 as if a page had been sent to a client long gone (audit of the CONNECT path, 2026-12-06).
// nginx does the same by default (proxy_ignore_client_abort off, its 499).
//
// What counts as gone: a peek at the client's socket that finds its end of stream or an error.
// Bytes from the client (a pipelined request, a TLS record inside an inspected tunnel, the
// rest of a body the origin did not wait for) end the watch without a verdict: they are the
// next request's, and nothing can be read past them without taking them. So a TLS client that
// sends close_notify before its FIN is not seen to go; one that only closes or resets is.
// A client that half-closes after its request (shutdown(SHUT_WR)) counts as gone, as in nginx.
//
// Runs on the session's worker thread; the sockets belong to that thread. The destructor ends
// the watch (cancelling its wait on the client's socket while it is pending: cancel() ends
// every operation on that socket, reads and writes, so none may be pending then; forward.cpp
// destroys it before the answer is written), so no path needs to await anything. It is armed
// only once the request's body was read whole and no byte of a next request is read in.
#pragma once

#include <cstdint>
#include <memory>

#include "proxy/net.hpp"

namespace hallpass {

struct upstream_connection;

// A non-blocking peek at a client's socket: bytes are waiting, nothing has come yet, or its end
// has closed or reset with nothing unread before it. Also used by an inspected handshake that
// is about to ask for a leaf (inspection.cpp).
enum class client_peek : std::uint8_t { bytes, nothing_yet, gone };
client_peek peek_client(tcp::socket& s);

class client_departure_watch {
 public:
  client_departure_watch(tcp::socket& client, upstream_connection& up);
  ~client_departure_watch();
  client_departure_watch(const client_departure_watch&) = delete;
  client_departure_watch& operator=(const client_departure_watch&) = delete;

  // Whether the client went while the watch ran (the origin's read was then cancelled).
  bool client_left() const;

  struct state;  // shared with the watch's coroutine (client_departure.cpp)

 private:
  std::shared_ptr<state> s_;
};

}  // namespace hallpass

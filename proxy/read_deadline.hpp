// A deadline for reading from a client that cancels the read instead of closing the socket.
//
// beast::tcp_stream's own timeout (expires_after) closes the socket when it fires, so nothing
// can be written afterwards: no 408 for a request head that did not arrive in time, and no TLS
// close_notify for an inspected connection that idled out. The waits for a client's next
// request and for its head use this instead: when it fires, the read ends with
// operation_aborted, expired() says why, and the socket is still open for the answer.
//
// One steady_timer per connection (client_connection::read_timer), armed per wait. The timer's
// handler holds only a small shared state, never the connection, so a handler already queued
// when the connection ends touches nothing freed; the generation makes a late handler of an
// earlier wait a no-op.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "proxy/net.hpp"

namespace hallpass {

struct read_deadline_state {
  tcp::socket* socket = nullptr;  // valid while a wait is armed (the connection outlives it)
  std::uint64_t generation = 0;   // bumped by every arm and disarm
  bool expired = false;
};

class read_deadline {
 public:
  // Arms `timer` for `after`; when it fires first, the pending operations on `socket` are
  // cancelled. `stream` must not have a timeout of its own for the read (expires_never()).
  read_deadline(net::steady_timer& timer, std::shared_ptr<read_deadline_state>& state, tcp::socket& socket,
                std::chrono::steady_clock::duration after)
      : timer_(timer) {
    if (!state) state = std::make_shared<read_deadline_state>();
    state_ = state;
    state_->socket = &socket;
    state_->expired = false;
    const std::uint64_t armed = ++state_->generation;
    timer_.expires_after(after);
    timer_.async_wait([s = state_, armed](const error_code& ec) {
      if (ec || s->generation != armed) return;
      s->expired = true;
      error_code ignored;
      s->socket->cancel(ignored);
    });
  }
  ~read_deadline() { disarm(); }
  read_deadline(const read_deadline&) = delete;
  read_deadline& operator=(const read_deadline&) = delete;

  // Ends the wait: a handler that has not run yet does nothing. Idempotent.
  void disarm() {
    if (state_->socket == nullptr) return;
    ++state_->generation;
    state_->socket = nullptr;
    timer_.cancel();
  }
  // Whether the deadline fired before disarm(): the read then ended with operation_aborted.
  bool expired() const { return state_->expired; }

 private:
  net::steady_timer& timer_;
  std::shared_ptr<read_deadline_state> state_;
};

}  // namespace hallpass

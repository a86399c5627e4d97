// Moves bytes from one TCP socket to another through a kernel pipe with splice(2): the data
// never enters user space, which cuts the relay's CPU (copying 64 KiB buffers in and out
// of the proxy cost about three times as much on this project's 2-core machine). Used by
// CONNECT tunnels, WebSocket relays and large Content-Length bodies.
//
// The sockets are switched to non-blocking mode; the coroutine waits for readiness with
// async_wait on the socket's own executor, so a slow side applies back-pressure: at most a
// pipe's worth (64 KiB) is ever in flight inside the proxy for one direction.
//
// Thread-safety: a splice_pipe and the sockets belong to one worker thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "proxy/body_pace.hpp"
#include "proxy/net.hpp"

namespace hallpass {

// A pipe for splicing. Empty (pending() == 0) when it goes back to a worker's free list.
class splice_pipe {
 public:
  // Opens a pipe, or returns nullptr when the system refuses one (too many open files): the
  // caller falls back to copying.
  static std::unique_ptr<splice_pipe> open();
  ~splice_pipe();
  splice_pipe(const splice_pipe&) = delete;
  splice_pipe& operator=(const splice_pipe&) = delete;

  int read_end() const { return fds_[0]; }
  int write_end() const { return fds_[1]; }
  std::size_t& pending() { return pending_; }  // bytes in the pipe, not yet written out

 private:
  splice_pipe() = default;
  int fds_[2] = {-1, -1};
  std::size_t pending_ = 0;
};

struct splice_result {
  error_code read_error;   // reading `from` (eof is not an error: `ended` says so)
  error_code write_error;  // writing `to`
  std::uint64_t moved = 0;
  bool ended = false;  // `from` reached its end (before `limit`, if one was given)
};

// What a splice has done so far, kept outside it for a caller that may cancel it (an idle
// watchdog): the bytes moved, and which side it was waiting for.
struct splice_progress {
  std::uint64_t moved = 0;
  bool waiting_to_write = false;  // false: waiting to read (or not waiting)
  // The time spent waiting for `from` to be readable: the waits that ended, and when the one
  // under way began (the epoch when none is). What a body's pace counts (body_pace.hpp).
  std::chrono::steady_clock::duration read_waited{};
  std::chrono::steady_clock::time_point read_wait_began{};
};

// A relay's stop check, the same in every relay here and in body_relay.cpp: true when `stop` is
// given and set, with `write_error` then operation_aborted, as each relay reports a stop.
inline bool stop_requested(const bool* stop, error_code& write_error) {
  if (stop == nullptr || !*stop) return false;
  write_error = net::error::operation_aborted;
  return true;
}

// Moves bytes from `from` to `to` until `from` ends, `limit` bytes have moved, or an error.
// `activity`, when given, is set to the time of each move (for an idle watchdog); `progress`,
// when given, follows the moves and waits. `stop`, when given and set, ends it before its next
// move or wait with a write_error of operation_aborted (set it, then cancel the sockets to end
// a wait already begun: a cancel alone misses an operation whose completion is queued).
// The pipe is left empty unless a write failed.
net::awaitable<splice_result> splice_bytes(tcp::socket& from, tcp::socket& to, splice_pipe& pipe,
                                           std::optional<std::uint64_t> limit,
                                           std::chrono::steady_clock::time_point* activity,
                                           splice_progress* progress = nullptr, const bool* stop = nullptr);

// Completes when nothing has moved for `idle`: `activity` has not been set for that long.
// Raced against a relay (awaitable operator ||) it ends a stalled one.
net::awaitable<void> idle_watchdog(const std::chrono::steady_clock::time_point& activity,
                                   std::chrono::milliseconds idle);

// splice_bytes() that gives up when nothing moves for `idle`: then `moved` still counts what
// did move, and the timeout is a write_error when `to` had stopped taking bytes (an origin
// that stopped reading an upload), else a read_error (`from` fell silent). `pace`, when given,
// also ends it when `from` falls behind (body_pace.hpp; looked at every 250 ms at most, the
// waits to read counted exactly), counting `paced_before` bytes of the body moved before this
// splice: a read_error of timeout, with pace->too_slow set.
net::awaitable<splice_result> splice_bytes_or_idle(tcp::socket& from, tcp::socket& to, splice_pipe& pipe,
                                                   std::uint64_t limit, std::chrono::milliseconds idle,
                                                   const bool* stop = nullptr, body_pace* pace = nullptr,
                                                   std::uint64_t paced_before = 0);

}  // namespace hallpass

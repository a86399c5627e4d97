#include "proxy/byte_relay.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "proxy/shared_state.hpp"
#include "proxy/splice_pump.hpp"
#include "proxy/worker.hpp"

namespace hallpass {
namespace {

using namespace net::experimental::awaitable_operators;

struct relay_state {
  std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();
};

// Ends the sending direction of `to` after `from` reached EOF: a TCP half-close on a plain
// stream, so the other direction can still finish; a TLS stream cannot half-close, so it is
// closed (the relay of an inspected WebSocket ends with either side).
void end_direction(duplex_stream& from, duplex_stream& to, bool eof) {
  error_code ignored;
  if (eof && !to.is_tls()) {
    to.socket().shutdown(tcp::socket::shutdown_send, ignored);
  } else {
    from.socket().close(ignored);
    to.socket().close(ignored);
  }
}

// Moves from -> to until EOF or error, with back-pressure (the next read waits for the
// write): spliced in the kernel when both are plain TCP and a pipe is to be had, else copied
// through a worker buffer (always for TLS). On EOF the other side's sending half is shut
// down, so both directions end cleanly.
net::awaitable<void> pump(worker& w, duplex_stream& from, duplex_stream& to, beast::flat_buffer& leftover,
                          std::uint64_t& count, relay_state& st) {
  if (leftover.size() > 0) {
    auto [ec, n] = co_await net::async_write(to, leftover.data(), nothrow);
    leftover.consume(leftover.size());
    count += n;
    if (ec) {
      end_direction(from, to, false);
      co_return;
    }
  }
  if (!from.is_tls() && !to.is_tls()) {
    if (auto pipe = w.take_pipe()) {
      // In the kernel, socket to pipe to socket: the bytes never enter the proxy.
      const auto r = co_await splice_bytes(from.socket(), to.socket(), *pipe, std::nullopt, &st.last_activity);
      count += r.moved;
      end_direction(from, to, r.ended && !r.write_error);
      w.give_pipe(std::move(pipe));
      co_return;
    }
  }
  // No pipe to be had (out of file descriptors), or TLS on either side: copy through a buffer.
  auto buf = w.take_buffer();
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(net::buffer(buf.get(), worker::relay_buffer_size), nothrow);
    if (ec) {
      end_direction(from, to, closed_by_peer(ec));
      break;
    }
    st.last_activity = std::chrono::steady_clock::now();
    auto [wec, wn] = co_await net::async_write(to, net::buffer(buf.get(), n), nothrow);
    count += wn;
    if (wec) {
      end_direction(from, to, false);
      break;
    }
    st.last_activity = std::chrono::steady_clock::now();
  }
  w.give_buffer(std::move(buf));
}

// Ends when `still_allowed` says false, asked once a second.
net::awaitable<void> decision_watchdog(const relay_check& still_allowed) {
  net::steady_timer t(co_await net::this_coro::executor);
  for (;;) {
    t.expires_after(std::chrono::seconds(1));
    auto [ec] = co_await t.async_wait(nothrow);
    if (ec || !still_allowed()) co_return;
  }
}

}  // namespace

net::awaitable<std::pair<std::uint64_t, std::uint64_t>> relay(worker& w, duplex_stream& a,
                                                               beast::flat_buffer& a_buffer, duplex_stream& b,
                                                               beast::flat_buffer& b_buffer,
                                                               std::chrono::milliseconds idle,
                                                               relay_check still_allowed) {
  a.expires_never();
  b.expires_never();
  relay_state st;
  std::uint64_t a_to_b = 0, b_to_a = 0;
  w.state().metrics.active_tunnels.Increment();
  if (still_allowed) {
    co_await ((pump(w, a, b, a_buffer, a_to_b, st) && pump(w, b, a, b_buffer, b_to_a, st)) ||
              idle_watchdog(st.last_activity, idle) || decision_watchdog(still_allowed));
  } else {
    co_await ((pump(w, a, b, a_buffer, a_to_b, st) && pump(w, b, a, b_buffer, b_to_a, st)) ||
              idle_watchdog(st.last_activity, idle));
  }
  w.state().metrics.active_tunnels.Decrement();
  error_code ignored;
  a.socket().close(ignored);
  b.socket().close(ignored);
  co_return std::make_pair(a_to_b, b_to_a);
}

}  // namespace hallpass

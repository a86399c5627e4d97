#include "proxy/byte_relay.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "proxy/shared_state.hpp"
#include "proxy/splice_pump.hpp"
#include "proxy/worker.hpp"

namespace hallpass {
namespace {

constexpr auto nothrow = net::as_tuple(net::use_awaitable);
using namespace net::experimental::awaitable_operators;

struct relay_state {
  std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();
};

// Moves from -> to until EOF or error, with back-pressure (the next read waits for the
// write): spliced in the kernel, or copied when no pipe can be opened. On EOF the other side's sending half is shut down, so both directions end cleanly.
net::awaitable<void> pump(worker& w, tcp::socket& from, tcp::socket& to, beast::flat_buffer& leftover,
                          std::uint64_t& count, relay_state& st) {
  error_code ignored;
  if (leftover.size() > 0) {
    auto [ec, n] = co_await net::async_write(to, leftover.data(), nothrow);
    leftover.consume(leftover.size());
    count += n;
    if (ec) {
      from.close(ignored);
      to.close(ignored);
      co_return;
    }
  }
  if (auto pipe = w.take_pipe()) {
    // In the kernel, socket to pipe to socket: the bytes never enter the proxy.
    const auto r = co_await splice_bytes(from, to, *pipe, std::nullopt, &st.last_activity);
    count += r.moved;
    if (r.ended && !r.write_error) {
      to.shutdown(tcp::socket::shutdown_send, ignored);
    } else {
      from.close(ignored);
      to.close(ignored);
    }
    w.give_pipe(std::move(pipe));
    co_return;
  }
  // No pipe to be had (out of file descriptors): copy through a buffer instead.
  auto buf = w.take_buffer();
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(net::buffer(buf.get(), worker::relay_buffer_size), nothrow);
    if (ec) {
      if (ec == net::error::eof) {
        to.shutdown(tcp::socket::shutdown_send, ignored);
      } else {
        from.close(ignored);
        to.close(ignored);
      }
      break;
    }
    st.last_activity = std::chrono::steady_clock::now();
    auto [wec, wn] = co_await net::async_write(to, net::buffer(buf.get(), n), nothrow);
    count += wn;
    if (wec) {
      from.close(ignored);
      to.close(ignored);
      break;
    }
    st.last_activity = std::chrono::steady_clock::now();
  }
  w.give_buffer(std::move(buf));
}

}  // namespace

net::awaitable<std::pair<std::uint64_t, std::uint64_t>> relay(worker& w, beast::tcp_stream& a,
                                                               beast::flat_buffer& a_buffer, beast::tcp_stream& b,
                                                               beast::flat_buffer& b_buffer,
                                                               std::chrono::milliseconds idle) {
  a.expires_never();
  b.expires_never();
  relay_state st;
  std::uint64_t a_to_b = 0, b_to_a = 0;
  w.state().metrics.active_tunnels.Increment();
  co_await ((pump(w, a.socket(), b.socket(), a_buffer, a_to_b, st) &&
             pump(w, b.socket(), a.socket(), b_buffer, b_to_a, st)) ||
            idle_watchdog(st.last_activity, idle));
  w.state().metrics.active_tunnels.Decrement();
  error_code ignored;
  a.socket().close(ignored);
  b.socket().close(ignored);
  co_return std::make_pair(a_to_b, b_to_a);
}

}  // namespace hallpass

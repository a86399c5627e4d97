// accept_next: the next connection on a listening socket (TCP or Unix-domain) for the accept
// loops of the side endpoints (pac_server, admin_server). A coroutine on the acceptor's
// executor; like the acceptor it is not for use from another thread.
#pragma once

#include <chrono>
#include <optional>

#include "proxy/net.hpp"

namespace hallpass {

// The next accepted socket, or nullopt once the acceptor has been closed (the owner's stop()).
// After any other error (EMFILE and friends) it waits 100 ms and accepts again: spinning would
// burn the CPU, and giving up would shut the endpoint for good while the daemon kept running.
template <class Acceptor>
net::awaitable<std::optional<typename Acceptor::protocol_type::socket>> accept_next(
    Acceptor& acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(nothrow);
    if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return std::nullopt;
    if (!ec) co_return std::move(socket);
    net::steady_timer t(acceptor.get_executor(), std::chrono::milliseconds(100));
    co_await t.async_wait(nothrow);
  }
}

}  // namespace hallpass

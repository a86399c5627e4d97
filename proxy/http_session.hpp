// One client connection from accept to close: reads each request head under a deadline,
// rejects smuggling shapes and oversize heads, decides the request with the pinned policy,
// then answers locally (block page, error page), forwards it upstream (streaming bodies both
// ways, pooled upstream connections, WebSocket upgrades), or hands CONNECT to the tunnel.
//
// Runs on its worker's thread; errors are values, and exceptions are caught once here.
#pragma once

#include <memory>

#include "proxy/net.hpp"

namespace hallpass {

class worker;
struct client_connection;

net::awaitable<void> run_http_session(worker& w, std::shared_ptr<client_connection> c);

}  // namespace hallpass

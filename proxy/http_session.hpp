// One client connection from accept to close: the connection loop, and each request's
// dispatch from top to bottom: read the head under a deadline, the framing and size checks,
// the target, the decision with the policy in force when the head arrived, then the hand-off:
// a refusal or block page (local_response.hpp), the request form (request_form_handler.hpp),
// forwarding (forward.hpp) or the tunnel (tunnel.hpp).
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

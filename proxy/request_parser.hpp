// The parser a client's request is read with: Beast reads the head, and the body is pulled
// through caller-supplied buffers (forwarded as it arrives, or read whole for the form).
// One per request, on its session's coroutine frame; not thread-safe.
#pragma once

#include "proxy/net.hpp"

namespace hallpass {

using request_parser = http::request_parser<http::buffer_body>;

}  // namespace hallpass

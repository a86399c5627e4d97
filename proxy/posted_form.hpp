// A small body posted to one of the proxy's own pages (the request form, the sign-in page),
// read whole under one deadline. Runs on the session's worker thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "proxy/net.hpp"
#include "proxy/request_parser.hpp"

namespace hallpass {

struct client_connection;

enum class posted_read : std::uint8_t {
  whole,      // `body` holds it all
  too_large,  // declared or counted over `max` (what was read is wiped: it may hold a password)
  gone,       // the client closed, or the deadline passed
};

// Reads the body `rp`'s head announced into `body`: at most `max` bytes, all of it within
// `within` (one deadline for the whole body, not each read: a body trickled a byte at a time,
// each just inside a per-read timeout, held the connection for days). The read buffer is wiped
// afterwards.
net::awaitable<posted_read> read_posted_form(client_connection& c, request_parser& rp, std::size_t max,
                                             std::string& body,
                                             std::chrono::seconds within = std::chrono::seconds(60));

}  // namespace hallpass

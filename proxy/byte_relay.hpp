// Relays raw bytes both ways between two TCP streams until both directions have ended or
// the pair has been idle too long: a CONNECT tunnel, or a WebSocket after its 101. Spliced in
// the kernel (splice_pump.hpp) when a pipe is to be had, copied through a worker buffer
// otherwise; back-pressure by waiting for each write; counted in hallpass_tunnels_active.
//
// Runs on the worker thread that owns both streams.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <utility>

#include "proxy/duplex_stream.hpp"
#include "proxy/net.hpp"

namespace hallpass {

class worker;

// Asked once a second while a relay runs (on its worker's thread): false ends the relay, for a
// decision that no longer holds (exchange.hpp, decision_still_holds).
using relay_check = std::function<bool()>;

// Relays until both directions have ended, one side is idle for `idle`, or `still_allowed`
// (when given) says false. Bytes already read into a_buffer / b_buffer are sent first.
// Returns (bytes a->b, bytes b->a).
net::awaitable<std::pair<std::uint64_t, std::uint64_t>> relay(worker& w, duplex_stream& a,
                                                               beast::flat_buffer& a_buffer,
                                                               duplex_stream& b,
                                                               beast::flat_buffer& b_buffer,
                                                               std::chrono::milliseconds idle,
                                                               relay_check still_allowed = {});

}  // namespace hallpass

// The daemon's two side endpoints, the PAC file (pac_server.hpp) and /metrics (metrics.hpp),
// served by one small HTTP/1.1 server each, on an event loop and a thread of their own, so that
// a flood of fetches or scrapes never delays the proxy's workers.
//
// Strict and small: one request per connection ("Connection: close"), a head of at most 8 KiB
// that must arrive within 5 s, no request body, the answer written within 5 s, at most
// max_connections at once and max_per_client from one address (more are closed unanswered). A
// malformed or oversized request gets a plain 400. The handler builds the whole answer
// (small_http_response() below).
//
// It stops at once: stop() closes the listener and ends the loop, whatever is being served (the
// prometheus-cpp Exposer it replaces for /metrics polled its listener in 2 s steps, so every
// stop of the daemon took 2 s). Works on IPv4 and IPv6 alike.
//
// Thread-safety: bind(), start() and stop() from one thread (the server's), in that order. The
// handler and `refused` run on the endpoint's own thread only.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "proxy/net.hpp"

namespace hallpass {

// A whole HTTP/1.1 response: status line ("200 OK"), Content-Type, Content-Length,
// Cache-Control: no-cache, X-Content-Type-Options: nosniff, `extra` fields (each ending in
// CRLF), Connection: close, then the body unless head_only.
std::string small_http_response(std::string_view status, std::string_view type, std::string_view body,
                                bool head_only, std::string_view extra = {});

class small_http_server {
 public:
  // The whole answer to a request read in full (method and target as sent; `local` is the
  // address the connection arrived on).
  using handler = std::function<std::string(std::string_view method, std::string_view target,
                                            const net::ip::address& local)>;
  struct options {
    const char* name;  // "PAC endpoint", "metrics endpoint": in messages (a literal)
    std::size_t max_connections = 256;
    // Called for each connection closed without an answer (too many at once, nothing asked in
    // time) or answered 400: for the endpoint's refusal counter. May be empty.
    std::function<void()> refused;
    // At most this many of them from one client address: one device holding all 256 made every
    // other device's fetch fail (audit3, 2026-12-05, F4). A browser fetches the PAC file once.
    // The last quarter of max_connections only takes clients holding fewer than two.
    std::size_t max_per_client = 16;
  };

  small_http_server(options o, handler h);
  ~small_http_server();
  small_http_server(const small_http_server&) = delete;
  small_http_server& operator=(const small_http_server&) = delete;

  // Binds and listens. Before privileges are dropped, so that a low port works when started as
  // root. Returns the system's error (net::error::address_in_use when another socket has the
  // port: listen_error_text adds the hint), or none.
  error_code bind(const tcp::endpoint& ep);
  // The bound address and port (the port chosen for port 0).
  std::optional<tcp::endpoint> endpoint() const;
  void start();
  void stop();

 private:
  net::awaitable<void> accept_loop();
  net::awaitable<void> serve(tcp::socket socket, net::ip::address client);

  options options_;
  handler handler_;
  net::io_context ioc_{1};
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::thread thread_;
  std::size_t live_ = 0;  // connections being served (event loop thread only)
  std::map<net::ip::address, std::size_t> per_client_;  // of them, per client address (likewise)
};

// A bind's error for a person: the system's reason, and for a port in use, that another process
// may hold it (metrics.listen, pac.listen).
std::string listen_error_text(const error_code& ec);

}  // namespace hallpass

// The upstream side of one worker: name resolution (the config's `hosts:` map, then DNS
// through Asio's resolver thread, with a small positive cache), the destination check
// (loopback and the proxy's own ports refused unless allowed), connecting with a deadline,
// and a bounded pool of idle keep-alive connections per origin.
//
// Belongs to one worker: use only from that worker's event-loop thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/configuration.hpp"
#include "proxy/net.hpp"

namespace hallpass {

class shared_state;

struct upstream_connection {
  explicit upstream_connection(net::any_io_executor ex) : stream(ex) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  std::string key;  // "host:port" of the origin, for returning it to the pool
  bool reused = false;
  std::chrono::steady_clock::time_point idle_since;
};

enum class upstream_error { none, bad_name, dns, refused_destination, connect_refused, connect_timeout, connect_failed };
std::string_view describe(upstream_error e);

struct acquire_result {
  std::unique_ptr<upstream_connection> conn;
  upstream_error error = upstream_error::none;
  std::string detail;
};

class upstream {
 public:
  upstream(net::any_io_executor ex, shared_state& state) : ex_(ex), resolver_(ex), state_(state) {}

  // A connection to host:port: from the pool when one is idle there (allow_pooled), else a
  // new one. With check_pooled, a pooled connection is first checked with a non-blocking
  // peek (one system call) and dropped if the origin has closed it: for requests that could
  // not be retried on a fresh connection should the origin have closed it meanwhile.
  net::awaitable<acquire_result> acquire(std::string host, std::uint16_t port, const configuration& cfg,
                                         bool allow_pooled = true, bool check_pooled = true);
  // Returns a connection whose last response was complete and kept alive.
  void release(std::unique_ptr<upstream_connection> c, const configuration& cfg);
  // Closes pooled connections idle for longer than pool_idle. Called by the worker's timer.
  void sweep(std::chrono::milliseconds pool_idle);
  void close_all();

 private:
  struct cached_name {
    std::vector<tcp::endpoint> endpoints;
    std::chrono::steady_clock::time_point expires;
  };
  net::awaitable<std::pair<std::vector<tcp::endpoint>, std::string>> resolve(const std::string& host, std::uint16_t port,
                                                                             const configuration& cfg);
  bool destination_allowed(const tcp::endpoint& e, const configuration& cfg) const;

  net::any_io_executor ex_;
  tcp::resolver resolver_;
  shared_state& state_;
  std::unordered_map<std::string, cached_name> dns_cache_;
  // Idle connections per "host:port", oldest first. An emptied entry stays until the sweep, so
  // a busy origin does not allocate its key again on every request.
  std::unordered_map<std::string, std::vector<std::unique_ptr<upstream_connection>>> idle_;
  std::size_t idle_count_ = 0;
};

}  // namespace hallpass

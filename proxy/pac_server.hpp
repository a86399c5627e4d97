// The PAC endpoint: serves GET and HEAD /proxy.pac and /wpad.dat on pac.listen, so that DHCP
// option 252, a DNS `wpad` name or device policy can point devices at the proxy
// (deploy/README.md, "Pointing devices at the proxy"). The script is generated from the
// configuration in force (pac_script.hpp), so a reload changes it for the next fetch.
//
// Strict and small: those two paths only (404 otherwise), GET and HEAD only (405), and the
// limits of small_http_server.hpp (no request body, one request per connection, a head of at
// most 8 KiB within 5 s, at most 256 connections at once), on an event loop and a thread of its
// own, so a flood of PAC fetches never delays the proxy's workers; it reads nothing from disk
// and looks nothing up.
//
// Thread-safety: bind(), start() and stop() from the server's thread, in that order. The
// event loop's state is touched only on its own thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/net.hpp"
#include "proxy/small_http_server.hpp"

namespace hallpass {

class config_store;
class metrics;

// The whole HTTP response to one PAC request (status line, fields, and the body unless HEAD):
// 200 with the script for GET or HEAD of /proxy.pac or /wpad.dat (a query string is ignored),
// 503 when `script` is null (no proxy address to name), 405 for other methods, 404 for other
// targets. Always "Connection: close". Pure; thread-safe.
std::string pac_http_response(std::string_view method, std::string_view target,
                              const std::string* script);

class pac_server {
 public:
  pac_server(config_store& configs, metrics& m);
  ~pac_server();
  pac_server(const pac_server&) = delete;
  pac_server& operator=(const pac_server&) = delete;

  // Binds `listen` ("ADDRESS:PORT"; port 0 picks one). Before privileges are dropped, so that
  // port 80 works when started as root. Returns "" or the error.
  std::string bind(const std::string& listen);
  // The bound address and port (the port chosen for port 0).
  std::optional<tcp::endpoint> endpoint() const;
  void start();
  void stop();

 private:
  // The answer to one request, on the endpoint's thread; counts it as served or refused.
  std::string answer(std::string_view method, std::string_view target, const net::ip::address& local);
  // The script for a connection that arrived on `local`, from a cache of one per generation and
  // local address; null when it would name no proxy.
  std::shared_ptr<const std::string> script_for(const net::ip::address& local);

  config_store& configs_;
  metrics& metrics_;
  struct cached_script {
    std::uint64_t generation = 0;
    std::string local;
    std::shared_ptr<const std::string> script;
  };
  cached_script cache_[4];  // a gateway serves the PAC on one or two addresses (endpoint thread only)
  std::size_t next_slot_ = 0;
  small_http_server server_;  // declared last: stopped first, while the cache still exists
};

}  // namespace hallpass

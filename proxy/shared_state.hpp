// What every worker thread shares: the configuration store, metrics, the access log, the
// connection limits and the drain flag. Owned by the server; outlives every worker.
// All members are safe to use from any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/net.hpp"
#include "proxy/stderr_lines.hpp"
#include "proxy/access_log.hpp"
#include "proxy/access_request_form.hpp"
#include "proxy/circumvention_tracker.hpp"
#include "proxy/configuration.hpp"
#include "proxy/dhcp_leases.hpp"
#include "proxy/metrics.hpp"
#include "proxy/signin_table.hpp"
#include "rules/exception_index.hpp"

namespace hallpass {

class shared_state {
 public:
  shared_state(config_store& configs, class metrics& m, class access_log& log)
      : configs(configs), metrics(m), access_log(log) {}

  config_store& configs;
  class metrics& metrics;
  class access_log& access_log;
  std::atomic<bool> draining{false};
  class admin_server* admin = nullptr;
  class login_service* logins = nullptr;  // set before the workers start when logins.ldap is configured
  class negotiate_acceptor* negotiate = nullptr;  // logins.negotiate's GSS-API acceptor; set with logins
  class alert_sender* alerts = nullptr;  // alerts for the DSL (proxy/alerts.hpp); set before the workers start
  hallpass::form_keys form_keys;                                            // CSRF tokens for the request form
  // The event loops' lines for standard error, written by a thread of their own (stderr_lines.hpp).
  stderr_lines diagnostics;
  // When a shortage of file descriptors was last said on standard error (report_descriptor_shortage).
  std::atomic<std::int64_t> descriptor_shortage_said{0};
  // When a refused client connection was last said on standard error, and how many were
  // refused since without a word (report_refused_connection).
  std::atomic<std::int64_t> refused_connection_said{0};
  std::atomic<std::uint64_t> refused_connections_unsaid{0};
  std::atomic<int> forms_in_flight{0};  // request forms waiting for the store thread (request_form_handler.cpp)
  submission_limiter form_limiter{5, std::chrono::seconds(600)};            // per client address  // set before the workers start, cleared after they stop
  // Exceptions and local entries, rebuilt by the admin thread after every change.
  std::atomic<std::shared_ptr<const rules::exception_index>> exceptions;
  // Circumvention attempts counted for bans.threshold (finish_exchange; 000 7.2).
  circumvention_tracker circumvention;
  std::vector<std::pair<std::string, std::uint16_t>> own_listeners;  // (address, port): never a destination
  // The gateway's own addresses (gateway_addresses, destination.hpp): never a destination
  // unless allowed. Read before the workers start and again every second (server.cpp).
  std::atomic<std::shared_ptr<const std::vector<rules::ip_address>>> gateway_addresses;
  // Device names from the DHCP leases file (dhcp_leases), published by the lease_watcher's
  // thread; null when none are configured or none could be read yet.
  std::atomic<std::shared_ptr<const device_table>> devices;
  // Devices signed in through the sign-in page (`login: page`): kept across reloads.
  signin_table signins;

  // Connection limits. Returns false (and counts nothing) when over a limit.
  //
  // The last tenth of `total_limit` is kept for clients holding fewer than reserved_share
  // connections (or an eighth of that tenth, if fewer: with a small limit one device's 16 must
  // not fill it): a few devices at their per-client limit (40 at the shipped 256 and 10,000)
  // filled it and every other device was refused (resource audit, 2026-12-06). Now they stop
  // at nine tenths, and a device with a browser's few connections still gets in.
  static constexpr std::size_t reserved_share = 16;
  enum class admission { admitted, proxy_full, device_full, reserve_kept };
  // A device holding at least this many is kept out of the last tenth of `total_limit`.
  static std::size_t reserve_share(std::size_t total_limit) {
    return std::max<std::size_t>(1, std::min(reserved_share, total_limit / 10 / 8));
  }
  admission admit(const std::string& client, std::size_t total_limit, std::size_t per_client_limit) {
    std::lock_guard lock(mutex_);
    if (total_ >= total_limit) return admission::proxy_full;
    const auto it = per_client_.find(client);
    const std::size_t held = it == per_client_.end() ? 0 : it->second;
    if (held >= per_client_limit) return admission::device_full;
    const std::size_t reserve = total_limit / 10;
    if (held >= reserve_share(total_limit) && total_ >= total_limit - reserve) return admission::reserve_kept;
    ++per_client_[client];
    ++total_;
    return admission::admitted;
  }
  void release(const std::string& client) {
    std::lock_guard lock(mutex_);
    if (auto it = per_client_.find(client); it != per_client_.end() && --it->second == 0) per_client_.erase(it);
    --total_;
  }
  std::size_t connections() const {
    std::lock_guard lock(mutex_);
    return total_;
  }

 private:
  mutable std::mutex mutex_;
  std::size_t total_ = 0;
  std::unordered_map<std::string, std::size_t> per_client_;
};

// Whether `ec` says the process (or the system) has no file descriptor left: EMFILE, ENFILE.
inline bool is_descriptor_shortage(const error_code& ec) {
  return ec == boost::system::errc::too_many_files_open || ec == boost::system::errc::too_many_files_open_in_system;
}

// Whether the process cannot open a socket now for want of a descriptor (a socket opened and
// closed at once). For a failure whose error does not say why.
bool descriptors_exhausted();

// Counts a shortage of descriptors (`what`: "a client connection", "an origin connection") and
// says so on standard error at most once a minute, with what to do about it.
void report_descriptor_shortage(shared_state& state, std::string_view what);

// Counts a client connection refused by a connection limit (closed unanswered: no request, so
// no access-log line) and says on standard error, at most once a minute, which device was
// refused, under which limit, and how many others were refused meanwhile without a word. A
// device's 257th connection was closed with only a metric to show for it (known gap, eighth
// session): the technician asked why a device "cannot get online" had nothing to read.
void report_refused_connection(shared_state& state, std::string_view client, shared_state::admission why,
                               std::size_t total_limit, std::size_t per_client_limit);

}  // namespace hallpass

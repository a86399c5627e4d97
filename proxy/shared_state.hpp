// What every worker thread shares: the configuration store, metrics, the access log, the
// connection limits and the drain flag. Owned by the server; outlives every worker.
// All members are safe to use from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

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
  std::atomic<int> forms_in_flight{0};  // request forms waiting for the store thread (request_form_handler.cpp)
  submission_limiter form_limiter{5, std::chrono::seconds(600)};            // per client address  // set before the workers start, cleared after they stop
  // Exceptions and local entries, rebuilt by the admin thread after every change.
  std::atomic<std::shared_ptr<const rules::exception_index>> exceptions;
  // Circumvention attempts counted for bans.threshold (finish_exchange; 000 7.2).
  circumvention_tracker circumvention;
  std::vector<std::pair<std::string, std::uint16_t>> own_listeners;  // (address, port): never a destination
  // Device names from the DHCP leases file (dhcp_leases), published by the lease_watcher's
  // thread; null when none are configured or none could be read yet.
  std::atomic<std::shared_ptr<const device_table>> devices;
  // Devices signed in through the sign-in page (`login: page`): kept across reloads.
  signin_table signins;

  // Connection limits. Returns false (and counts nothing) when over a limit.
  bool admit(const std::string& client, std::size_t total_limit, std::size_t per_client_limit) {
    std::lock_guard lock(mutex_);
    if (total_ >= total_limit) return false;
    auto& n = per_client_[client];
    if (n >= per_client_limit) return false;
    ++n;
    ++total_;
    return true;
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

}  // namespace hallpass

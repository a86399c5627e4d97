// One loaded configuration: the compiled policy and the daemon settings from the same file,
// with the command-line overrides applied. Immutable; shared by every request that pinned it.
//
// config_store holds the current one. A reload loads a complete new configuration aside (on
// the caller's thread, never an event loop) and publishes it with one atomic store; on any
// error the running configuration stays in force. Readers may call current() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "certs/fetched_issuers.hpp"
#include "certs/leaf_cache.hpp"
#include "proxy/daemon_config.hpp"
#include "rules/diagnostic.hpp"
#include "rules/policy.hpp"

namespace hallpass {

// Flags given to `hallpass run` that override the file (for packaging and tests).
// The configuration file `feeds update` reads when given no --config (the systemd units' file).
inline constexpr const char* default_config_path = "/etc/hallpass/school.yaml";

struct overrides {
  std::vector<std::string> listen;
  std::optional<std::string> access_log;
  std::optional<std::string> state_dir;
  std::optional<std::string> metrics_listen;
  std::optional<std::string> admin_socket;
  std::optional<std::string> ca_dir;
  // Set by `run`: make the TLS contexts of inspection (offline commands only validate).
  bool serving = false;
  // Set by `feeds update`: a missing feed is no error even with feeds.required.
  bool feeds_may_be_missing = false;
};

struct configuration {
  std::string path;
  std::uint64_t generation = 0;
  std::shared_ptr<const rules::policy> policy;
  daemon_config daemon;
  // HTTPS inspection, when tls.ca_dir names a usable CA: the ready leaf contexts of inspected
  // hosts (kept across reloads while the CA is the same), and the client context for origins
  // (system trust store + upstream.ca_file; verification, SNI, TLS 1.2+, ALPN http/1.1).
  std::shared_ptr<certs::leaf_cache> leaves;
  std::shared_ptr<SSL_CTX> origin_tls;
  // Intermediates fetched from origins' "CA Issuers" addresses (certs/fetched_issuers.hpp),
  // offered to origin_tls's chain building when upstream.fetch_issuers is on; kept across
  // reloads (they are never trusted by themselves).
  std::shared_ptr<certs::fetched_issuers> issuers;
  bool inspecting() const { return leaves != nullptr; }
};

struct config_load_result {
  std::shared_ptr<const configuration> config;  // null on error
  rules::diagnostics errors, warnings;
  std::string state_dir_in_file;  // the file's state_dir (or the default), before --state-dir
};

// `previous` (may be null): the configuration in force, whose leaf cache is kept when the CA is
// the same one.
config_load_result load_configuration(const std::string& path, const overrides& o, std::uint64_t generation,
                                      const configuration* previous = nullptr);

// A configuration is destroyed where its last reference is dropped, and that is usually a
// worker: each caches the configuration in force and drops the old one when it sees a new
// generation. Freeing a policy with millions of entries takes long enough to stall an event
// loop (bench/README.md, issue 11), so on a thread marked here the destruction is queued for one
// release thread (started by the first call, before the loop runs: releasing never creates a
// thread on a loop). Every configuration from load_configuration behaves so.
void mark_event_loop_thread();
// For a clean exit: waits, at most `limit`, for configurations still being destroyed.
void wait_for_released_configurations(std::chrono::milliseconds limit);

class config_store {
 public:
  config_store(std::string path, overrides o) : path_(std::move(path)), overrides_(std::move(o)) {}

  // Loads the file; on success publishes it. Serialised: one reload at a time.
  config_load_result reload();
  std::shared_ptr<const configuration> current() const { return current_.load(std::memory_order_acquire); }
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  std::string path_;
  overrides overrides_;
  std::mutex reload_mutex_;
  std::atomic<std::shared_ptr<const configuration>> current_;
  std::atomic<std::uint64_t> generation_{0};
};

}  // namespace hallpass

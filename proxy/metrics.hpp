// The daemon's Prometheus metrics: one registry, every family and counter resolved once, and
// an optional HTTP endpoint (GET /metrics on its own address, never the proxy port; served by
// small_http_server.hpp on a thread of its own). Names and labels are listed in proxy/README.md, "Metrics".
//
// Besides the hallpass_* families, the endpoint serves the standard process_* metrics (memory,
// descriptors, CPU, start time), read from /proc/self at each scrape on the endpoint's own
// thread, never on an event loop.
//
// Labels are bounded by design: role (from the policy), action, reason, kind, direction,
// status class, version.
// Nothing is ever labelled by host, URL, client or user: those belong in the access log.
//
// Thread-safety: every member is safe to call from any thread. The public references are
// prometheus-cpp metrics, which are themselves thread-safe (counters and gauges are atomics;
// a histogram takes a short mutex per observation).
//
// Ownership: owns the registry and the endpoint. The references and the pointers handed out by
// resolve_roles() stay valid for the lifetime of this object. Not copyable or movable.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

namespace prometheus {
class Collectable;
class Registry;
}  // namespace prometheus

namespace hallpass {

enum class alert_kind : std::uint8_t;  // proxy/alerts.hpp

class small_http_server;

class metrics {
 public:
  // `listen` is "host:port" with a numeric address ("127.0.0.1:9131", "0.0.0.0:9131",
  // "[::1]:9131"); port 0 picks a free port (see port()). Empty or "off": metrics are collected
  // but not served. Throws std::runtime_error naming the address if it is malformed or cannot
  // be bound. The endpoint serves GET and HEAD of /metrics (404 elsewhere, 405 for other
  // methods) with the limits of small_http_server.hpp.
  explicit metrics(const std::string& listen);
  ~metrics();  // stops the endpoint at once
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  // The port the endpoint listens on; 0 when there is no endpoint.
  std::uint16_t port() const { return port_; }

  // hallpass_requests_total{role, action="allow"|"block"}, one pair per role name, in the
  // order given. Call once per policy generation (on load and on each reload), off the request
  // path. Counters for a role name are the same objects across generations, so counts survive
  // reloads; a role removed from the policy keeps its last value.
  struct role_counters {
    prometheus::Counter* allowed;
    prometheus::Counter* blocked;
  };
  std::vector<role_counters> resolve_roles(const std::vector<std::string>& role_names);

  // hallpass_bans_total{how="command"|"confirmed"|"automatic"}: bans put in force (000 7.2).
  // Called on the store thread only, once per ban.
  prometheus::Counter& bans(const std::string& how);

  // hallpass_rejected_total{reason}: requests or connections refused before a decision.
  enum class rejection {
    malformed,
    smuggling,
    head_too_large,
    head_timeout,
    body_too_large,
    connection_limit,
    port_not_allowed,
    loopback_refused,
    destination_denied,  // upstream.deny_networks or the gateway's own addresses
    body_too_slow,       // a request body slower than limits.body_min_rate
    http2_only,          // a client that speaks only HTTP/2 (its connection preface)
  };
  prometheus::Counter& rejected(rejection r) { return *rejected_[static_cast<std::size_t>(r)]; }

  // hallpass_upstream_failures_total{kind}: why a request to an origin failed.
  enum class upstream_failure { dns, connect, timeout, reset, refused, malformed };
  prometheus::Counter& upstream_failed(upstream_failure f) {
    return *upstream_failed_[static_cast<std::size_t>(f)];
  }

  // One HTTP exchange has ended (a forwarded request, a local answer such as a block page, or
  // the proxy's answer to CONNECT; not a tunnel's lifetime). Observes `seconds`, from the
  // request head's arrival to the response's last byte, in hallpass_request_duration_seconds,
  // and counts `status` in hallpass_responses_total{code="1xx".."5xx"}. A status outside
  // 100..599 (0: nothing was sent) is timed but counted as no response. A few atomic
  // increments and one short mutex (the histogram's); safe from any thread.
  void observe_exchange(int status, double seconds);

  // The policy's feeds as a scrape sees them: hallpass_feed_missing{feed} (1 before the first
  // successful update), hallpass_feed_age_seconds{feed} (now - fetched_at, computed at each
  // scrape, so it grows between reloads) and hallpass_feed_entries{feed,category} (entries
  // loaded from each feed list the policy uses; category is the feed's own list name).
  struct feed_sample {
    std::string feed;
    bool present = false;
    std::optional<std::int64_t> fetched_at;  // Unix seconds
    std::vector<std::pair<std::string, std::size_t>> lists;
  };
  // `source` is called on the endpoint's thread at each scrape (and by scrape()); it
  // must be thread-safe and cheap (the server's reads the pinned current policy).
  void set_feed_source(std::function<std::vector<feed_sample>()> source);

  // The text exposition format of everything served, exactly what a scrape returns.
  std::string scrape();

  // 1, 2.5 and 5 times each power of ten from 10^from_exponent up to 10^to_exponent
  // (included), built from exact decimal text so that each bound is the double nearest its
  // decimal value and prints as written ("1e-05", not "9.999999999999999e-06").
  static std::vector<double> decade_buckets(int from_exponent, int to_exponent);

 private:
  // Declared before the public references, which are bound to metrics inside it.
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;

 public:
  prometheus::Gauge& active_connections;    // client connections open now
  prometheus::Gauge& active_tunnels;        // CONNECT tunnels relaying now
  prometheus::Counter& bytes_from_clients;  // request bytes read from clients (incl. tunnels)
  prometheus::Counter& bytes_to_clients;    // response bytes written to clients (incl. tunnels)
  prometheus::Counter& circumvention_attempts;
  prometheus::Counter& reloads;               // successful reloads
  prometheus::Counter& reload_failures;       // reloads refused; the old policy kept serving
  prometheus::Counter& log_write_failures;    // failed opens and writes of the access log
  prometheus::Counter& log_dropped;           // access log lines lost (queue full or disk failing)
  prometheus::Counter& descriptor_shortages;  // accepts and origin connections failed: no descriptor left
  prometheus::Counter& upstream_pool_reused;  // requests sent on a pooled upstream connection
  // HTTPS inspection (proxy/inspection.hpp).
  prometheus::Counter& tls_inspected;          // hallpass_tls_inspected_total: tunnels decrypted
  prometheus::Counter& tls_leaf_cached;        // hallpass_tls_leaf_contexts_total{source="cache"}
  prometheus::Counter& tls_leaf_minted;        // {source="minted"}: started for this tunnel, or waited for
  prometheus::Counter& tls_client_rejected_ca;  // hallpass_tls_client_failures_total{reason="rejected_ca"}
  prometheus::Counter& tls_client_failed;       // {reason="handshake"}: other client handshake failures
  prometheus::Counter& tls_origin_unverified;   // hallpass_tls_origin_failures_total{kind="verify"}
  prometheus::Counter& tls_origin_failed;       // {kind="handshake"}
  prometheus::Counter& tls_origin_full;         // hallpass_tls_origin_handshakes_total{kind="full"}
  prometheus::Counter& tls_origin_resumed;      // {kind="resumed"}: a kept session (certs/origin_sessions.hpp)
  // hallpass_tls_issuer_fetches_total{result="fetched"|"failed"}: intermediates an origin left
  // out, fetched from its certificate's "CA Issuers" address (proxy/issuer_fetch.hpp).
  prometheus::Counter& tls_issuer_fetched;
  prometheus::Counter& tls_issuer_fetch_failed;
  prometheus::Gauge& log_queue_depth;         // access log lines waiting for the writer
  prometheus::Gauge& policy_generation;       // 1 at start, +1 per successful reload
  prometheus::Histogram& decision_seconds;    // time in the policy engine per decision
  prometheus::Histogram& upstream_seconds;    // request sent -> upstream response head received
  prometheus::Histogram&
      request_seconds;  // request head -> last byte of the response (observe_exchange)
  // The PAC endpoint (proxy/pac_server.hpp) and device names (proxy/dhcp_leases.hpp).
  prometheus::Counter& pac_served;          // hallpass_pac_requests_total{result="served"}
  prometheus::Counter& pac_refused;         // {result="refused"}: another path or method, malformed, too slow
  prometheus::Gauge& dhcp_devices;          // hallpass_dhcp_lease_devices: addresses with a device name
  prometheus::Counter& dhcp_skipped;        // hallpass_dhcp_lease_entries_skipped_total: malformed entries
  prometheus::Counter& dhcp_read_failures;  // hallpass_dhcp_lease_read_failures_total
  // hallpass_logins_total{result}: sign-ins on the explicit proxy (proxy/login_gate.hpp), one
  // counter per result in login_service::result_kind's order, made at start so that a sign-in
  // pays no label lookup (Family::Add locks, allocates and hashes) and every series starts at 0.
  static constexpr std::array<std::string_view, 6> login_results{"ok",           "cached",      "bad_credentials",
                                                                 "rate_limited", "unavailable", "busy"};
  std::array<prometheus::Counter*, login_results.size()> logins{};
  // Alerts for the DSL (proxy/alerts.hpp): hallpass_alerts_total{kind} (kind as an index:
  // 0 category, 1 circumvention, 2 ban, alert_kind's order), repeats held, messages lost.
  prometheus::Counter& alert_raised(alert_kind k) { return *alerts_[static_cast<std::size_t>(k)]; }
  prometheus::Counter& alerts_held;
  prometheus::Counter& alert_failures;

 private:
  static constexpr std::size_t rejection_count = 11;
  static constexpr std::size_t upstream_failure_count = 6;
  std::array<prometheus::Counter*, rejection_count> rejected_{};
  std::array<prometheus::Counter*, upstream_failure_count> upstream_failed_{};
  std::array<prometheus::Counter*, 5> responses_{};   // hallpass_responses_total, 1xx..5xx
  std::array<prometheus::Counter*, 4> alerts_{};      // hallpass_alerts_total, by alert_kind
  std::shared_ptr<prometheus::Collectable> process_;  // process_* from /proc/self
  std::shared_ptr<prometheus::Collectable> feeds_;    // hallpass_feed_* from set_feed_source
  std::unique_ptr<small_http_server> endpoint_;  // declared last: stops serving first
  std::uint16_t port_ = 0;
};

}  // namespace hallpass

#include "proxy/metrics.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <exception>
#include <stdexcept>

#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace hallpass {

namespace {

using prometheus::Histogram;

prometheus::Family<prometheus::Counter>& counter_family(prometheus::Registry& r,
                                                        const std::string& name,
                                                        const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

prometheus::Counter& counter(prometheus::Registry& r, const std::string& name,
                             const std::string& help) {
  return counter_family(r, name, help).Add({});
}

prometheus::Gauge& gauge(prometheus::Registry& r, const std::string& name,
                         const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

prometheus::Histogram& histogram(prometheus::Registry& r, const std::string& name,
                                 const std::string& help, Histogram::BucketBoundaries buckets) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add({}, std::move(buckets));
}

// 1, 2.5, 5 per decade from `from` up to and including `to`.
Histogram::BucketBoundaries decades(double from, double to) {
  Histogram::BucketBoundaries b;
  for (double d = from; d <= to * 1.0001; d *= 10) {
    for (double m : {1.0, 2.5, 5.0}) {
      if (d * m <= to * 1.0001) b.push_back(d * m);
    }
  }
  return b;
}

// Called once per direction: the registry (InsertBehavior::Merge) returns the existing family
// the second time.
prometheus::Family<prometheus::Counter>& bytes_family(prometheus::Registry& r) {
  return counter_family(r, "hallpass_bytes_total",
                        "Bytes relayed, by direction: from_client (requests, tunnel uploads) or "
                        "to_client (responses, tunnel downloads).");
}

// "host:port" with a numeric host; IPv6 in brackets. Returns the text civetweb expects, or an
// empty string when malformed. Validated here so a typo fails with our message, not civetweb's.
std::string civetweb_address(const std::string& listen) {
  std::string host, port;
  if (!listen.empty() && listen.front() == '[') {
    const auto close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':')
      return {};
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
    in6_addr a6{};
    if (inet_pton(AF_INET6, host.c_str(), &a6) != 1) return {};
  } else {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0) return {};
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
    in_addr a4{};
    if (inet_pton(AF_INET, host.c_str(), &a4) != 1) return {};
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535)
    return {};
  return listen;
}

}  // namespace

metrics::metrics(const std::string& listen)
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(counter_family(*registry_, "hallpass_requests_total",
                               "Requests and tunnels decided, by role and action (allow, block).")),
      active_connections(
          gauge(*registry_, "hallpass_active_connections", "Client connections open now.")),
      active_tunnels(gauge(*registry_, "hallpass_tunnels_active", "CONNECT tunnels relaying now.")),
      bytes_from_clients(bytes_family(*registry_).Add({{"direction", "from_client"}})),
      bytes_to_clients(bytes_family(*registry_).Add({{"direction", "to_client"}})),
      circumvention_attempts(
          counter(*registry_, "hallpass_circumvention_attempts_total",
                  "Tunnels whose TLS ClientHello had no SNI, was not TLS, or named "
                  "another host than the CONNECT request.")),
      reloads(counter(*registry_, "hallpass_reloads_total", "Successful policy reloads.")),
      reload_failures(counter(*registry_, "hallpass_reload_failures_total",
                              "Policy reloads refused because the new file had errors; the running "
                              "policy kept serving.")),
      log_write_failures(counter(*registry_, "hallpass_access_log_write_failures_total",
                                 "Failed opens and writes of the access log file.")),
      log_dropped(counter(*registry_, "hallpass_access_log_dropped_total",
                          "Access log lines lost: queue full, or the file could not be written.")),
      upstream_pool_reused(counter(*registry_, "hallpass_upstream_connections_reused_total",
                                   "Requests sent on a pooled keep-alive upstream connection.")),
      log_queue_depth(
          gauge(*registry_, "hallpass_access_log_queue_depth",
                "Access log lines waiting for the writer thread (sampled by the writer at "
                "least once a second).")),
      policy_generation(
          gauge(*registry_, "hallpass_policy_generation",
                "Generation of the policy in force: 1 at start, +1 per successful reload.")),
      decision_seconds(histogram(*registry_, "hallpass_decision_seconds",
                                 "Time spent in the policy engine deciding one request.",
                                 decades(1e-7, 1e-2))),
      upstream_seconds(
          histogram(*registry_, "hallpass_upstream_response_seconds",
                    "From sending a request upstream to receiving its response head.",
                    {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30})) {
  auto& rejected =
      counter_family(*registry_, "hallpass_rejected_total",
                     "Requests or connections refused before a policy decision, by reason.");
  static constexpr const char* rejection_names[rejection_count] = {
      "malformed",      "smuggling",        "head_too_large",   "head_timeout",
      "body_too_large", "connection_limit", "port_not_allowed", "loopback_refused",
      "destination_denied"};
  for (std::size_t i = 0; i < rejection_count; ++i)
    rejected_[i] = &rejected.Add({{"reason", rejection_names[i]}});

  auto& upstream =
      counter_family(*registry_, "hallpass_upstream_failures_total",
                     "Requests and tunnels that could not reach their origin, by kind.");
  static constexpr const char* failure_names[upstream_failure_count] = {"dns", "connect", "timeout",
                                                                        "reset", "refused"};
  for (std::size_t i = 0; i < upstream_failure_count; ++i)
    upstream_failed_[i] = &upstream.Add({{"kind", failure_names[i]}});

  if (listen.empty() || listen == "off") return;
  const std::string address = civetweb_address(listen);
  if (address.empty()) {
    throw std::runtime_error(
        "metrics.listen \"" + listen +
        "\": expected a numeric address and port, such as 127.0.0.1:9131 or [::1]:9131");
  }
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address, 2);
  } catch (const std::exception& e) {
    const bool ipv6 = listen.front() == '[';
    throw std::runtime_error("metrics.listen " + listen + ": cannot listen (" + e.what() + "); " +
                             (ipv6 ? "the civetweb library under prometheus-cpp may be built "
                                     "without IPv6 (Debian 12's is): "
                                     "use an IPv4 address such as 127.0.0.1:9131"
                                   : "is the port in use by another process?"));
  }
  exposer_->RegisterCollectable(registry_);
  const auto ports = exposer_->GetListeningPorts();
  if (!ports.empty()) port_ = static_cast<std::uint16_t>(ports.front());
}

metrics::~metrics() = default;

std::vector<metrics::role_counters> metrics::resolve_roles(
    const std::vector<std::string>& role_names) {
  std::vector<role_counters> out;
  out.reserve(role_names.size());
  for (const auto& name : role_names) {
    out.push_back({&requests_.Add({{"role", name}, {"action", "allow"}}),
                   &requests_.Add({{"role", name}, {"action", "block"}})});
  }
  return out;
}

std::string metrics::scrape_for_tests() {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace hallpass

#include "proxy/metrics.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "proxy/daemon_config.hpp"
#include "proxy/small_http_server.hpp"

namespace hallpass {

namespace {

using prometheus::Histogram;

prometheus::Family<prometheus::Counter>& counter_family(prometheus::Registry& r,
                                                        const std::string& name,
                                                        const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

const std::string leaf_help =
    "Leaf certificates for inspected handshakes: minted (for this tunnel, started at its CONNECT, "
    "or the handshake waited for a mint in flight), or from the cache (ready when the handshake "
    "asked, this tunnel having started no mint).";
const std::string client_help =
    "Inspected handshakes that failed on the client's side: rejected_ca when the client refused "
    "the school CA (a device without the CA installed, or an app that pins its certificates).";
const std::string pac_help =
    "Requests to the PAC endpoint (pac.listen): served (/proxy.pac or /wpad.dat), or refused (another "
    "path or method, malformed, too large or too slow).";
const std::string origin_handshake_help =
    "TLS handshakes with origins of inspected requests that succeeded: full, or resumed from the "
    "session kept for that origin (no certificate sent or verified).";
const std::string issuer_fetch_help =
    "Intermediate certificates that origins of inspected requests left out, fetched from the "
    "\"CA Issuers\" address in their certificate (as browsers do): fetched, or failed (no answer, "
    "not a CA certificate, refused destination).";
const std::string origin_help =
    "Origins of inspected requests whose TLS failed: verify (their certificate could not be "
    "trusted) or handshake.";

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

// hallpass_feed_*: computed from the policy in force at each scrape (the age keeps growing
// between updates, which is what an alert on a stale feed needs).
class feed_collector : public prometheus::Collectable {
 public:
  void set(std::function<std::vector<metrics::feed_sample>()> source) {
    std::lock_guard lock(mutex_);
    source_ = std::move(source);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::function<std::vector<metrics::feed_sample>()> source;
    {
      std::lock_guard lock(mutex_);
      source = source_;
    }
    if (!source) return {};
    const auto samples = source();
    if (samples.empty()) return {};
    prometheus::MetricFamily missing{"hallpass_feed_missing",
                                     "1 when a feed of the policy has never been fetched (its categories block nothing "
                                     "from it), else 0.",
                                     prometheus::MetricType::Gauge,
                                     {}};
    prometheus::MetricFamily age{"hallpass_feed_age_seconds",
                                 "Seconds since the feed in force was fetched by `hallpass feeds update`.",
                                 prometheus::MetricType::Gauge,
                                 {}};
    prometheus::MetricFamily entries{"hallpass_feed_entries",
                                     "Entries loaded from each list of a feed that the policy uses.",
                                     prometheus::MetricType::Gauge,
                                     {}};
    const double now = static_cast<double>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    for (const auto& s : samples) {
      prometheus::ClientMetric m;
      m.label = {{"feed", s.feed}};
      m.gauge.value = s.present ? 0 : 1;
      missing.metric.push_back(m);
      if (s.fetched_at) {
        m.gauge.value = std::max(0.0, now - static_cast<double>(*s.fetched_at));
        age.metric.push_back(m);
      }
      for (const auto& [list, n] : s.lists) {
        prometheus::ClientMetric e;
        e.label = {{"category", list}, {"feed", s.feed}};
        e.gauge.value = static_cast<double>(n);
        entries.metric.push_back(e);
      }
    }
    std::vector<prometheus::MetricFamily> out;
    out.push_back(std::move(missing));
    if (!age.metric.empty()) out.push_back(std::move(age));
    if (!entries.metric.empty()) out.push_back(std::move(entries));
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::function<std::vector<metrics::feed_sample>()> source_;
};

// The standard process metrics (the names every Prometheus client library uses), read from
// /proc/self when scraped. Collect() runs on the endpoint's thread. A value that cannot be read
// is left out rather than reported as 0.
class process_collector : public prometheus::Collectable {
 public:
  process_collector() : start_time_(read_start_time()) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    auto add = [&](const char* name, const char* help, prometheus::MetricType type, double value) {
      prometheus::MetricFamily f;
      f.name = name;
      f.help = help;
      f.type = type;
      prometheus::ClientMetric m;
      if (type == prometheus::MetricType::Counter)
        m.counter.value = value;
      else
        m.gauge.value = value;
      f.metric.push_back(m);
      out.push_back(std::move(f));
    };
    using prometheus::MetricType;
    if (const auto st = read_stat()) {
      const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
      add("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
          MetricType::Counter, static_cast<double>(st->utime + st->stime) / ticks);
      add("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
          static_cast<double>(st->vsize));
      add("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
          static_cast<double>(st->rss_pages) * static_cast<double>(::sysconf(_SC_PAGESIZE)));
    }
    std::error_code ec;
    std::size_t fds = 0;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
         it.increment(ec))
      ++fds;
    // The directory iterator's own descriptor is one of those counted.
    if (!ec && fds > 0)
      add("process_open_fds", "Number of open file descriptors.", MetricType::Gauge,
          static_cast<double>(fds - 1));
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
      add("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
          rl.rlim_cur == RLIM_INFINITY ? -1.0 : static_cast<double>(rl.rlim_cur));
    }
    add("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
        MetricType::Gauge, start_time_);
    return out;
  }

 private:
  struct stat_fields {
    unsigned long long utime = 0, stime = 0, starttime = 0, vsize = 0;
    long long rss_pages = 0;
  };

  // /proc/self/stat (proc(5)); the command name in parentheses may hold spaces, so fields are
  // counted from the last ')'.
  static std::optional<stat_fields> read_stat() {
    std::ifstream f("/proc/self/stat");
    std::string line;
    if (!std::getline(f, line)) return std::nullopt;
    const auto close = line.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream in(line.substr(close + 1));
    std::vector<std::string> fields;  // fields[0] is field 3, "state"
    for (std::string w; in >> w && fields.size() < 22;) fields.push_back(w);
    if (fields.size() < 22) return std::nullopt;
    stat_fields s;
    try {
      s.utime = std::stoull(fields[11]);
      s.stime = std::stoull(fields[12]);
      s.starttime = std::stoull(fields[19]);
      s.vsize = std::stoull(fields[20]);
      s.rss_pages = std::stoll(fields[21]);
    } catch (const std::exception&) {
      return std::nullopt;
    }
    return s;
  }

  // Boot time (/proc/stat btime) plus the process's start in ticks after boot. Under systemd's
  // ProcSubset=pid /proc/stat is hidden: then the time this collector was made, which is
  // within milliseconds of the start (the metrics are made first thing in `hallpass run`).
  static double read_start_time() {
    const auto now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::ifstream f("/proc/stat");
    std::string key;
    double btime = 0;
    for (std::string line; std::getline(f, line);) {
      std::istringstream in(line);
      if (in >> key && key == "btime" && in >> btime) break;
      btime = 0;
    }
    const auto st = read_stat();
    if (btime <= 0 || !st) return now;
    return btime + static_cast<double>(st->starttime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }

  double start_time_;
};

// Called once per direction: the registry (InsertBehavior::Merge) returns the existing family
// the second time.
prometheus::Family<prometheus::Counter>& bytes_family(prometheus::Registry& r) {
  return counter_family(r, "hallpass_bytes_total",
                        "Bytes relayed, by direction: from_client (requests, tunnel uploads) or "
                        "to_client (responses, tunnel downloads).");
}

// GET or HEAD /metrics (a query string is ignored): the exposition text.
std::string metrics_answer(std::string_view method, std::string_view target, metrics& m) {
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    return small_http_response("405 Method Not Allowed", "text/plain; charset=utf-8",
                               "Only GET and HEAD are served here.\n", false, "Allow: GET, HEAD\r\n");
  }
  if (target.substr(0, target.find('?')) != "/metrics") {
    return small_http_response("404 Not Found", "text/plain; charset=utf-8",
                               "Not found. The metrics are at /metrics.\n", head);
  }
  return small_http_response("200 OK", "text/plain; version=0.0.4; charset=utf-8", m.scrape(), head);
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
                  "Attempts to get round the filter (000 7.2; 002): requests and tunnels blocked "
                  "in a circumvention category, and tunnels whose TLS ClientHello had no SNI, was "
                  "not TLS, or named another host than the CONNECT request.")),
      reloads(counter(*registry_, "hallpass_reloads_total", "Successful policy reloads.")),
      reload_failures(counter(*registry_, "hallpass_reload_failures_total",
                              "Policy reloads refused because the new file had errors; the running "
                              "policy kept serving.")),
      log_write_failures(counter(*registry_, "hallpass_access_log_write_failures_total",
                                 "Failed opens and writes of the access log file.")),
      log_dropped(counter(*registry_, "hallpass_access_log_dropped_total",
                          "Access log lines lost: queue full, or the file could not be written.")),
      descriptor_shortages(counter(*registry_, "hallpass_descriptor_shortages_total",
                                   "Client connections not accepted and origin connections not made because the "
                                   "process had no file descriptor left (EMFILE, ENFILE).")),
      upstream_pool_reused(counter(*registry_, "hallpass_upstream_connections_reused_total",
                                   "Requests sent on a pooled keep-alive upstream connection.")),
      tls_inspected(counter(*registry_, "hallpass_tls_inspected_total",
                            "CONNECT tunnels decrypted with the school CA (HTTPS inspection), including "
                            "those opened only to show the HTTPS block page.")),
      tls_leaf_cached(counter_family(*registry_, "hallpass_tls_leaf_contexts_total", leaf_help)
                          .Add({{"source", "cache"}})),
      tls_leaf_minted(counter_family(*registry_, "hallpass_tls_leaf_contexts_total", leaf_help)
                          .Add({{"source", "minted"}})),
      tls_client_rejected_ca(counter_family(*registry_, "hallpass_tls_client_failures_total", client_help)
                                 .Add({{"reason", "rejected_ca"}})),
      tls_client_failed(counter_family(*registry_, "hallpass_tls_client_failures_total", client_help)
                            .Add({{"reason", "handshake"}})),
      tls_origin_unverified(counter_family(*registry_, "hallpass_tls_origin_failures_total", origin_help)
                                .Add({{"kind", "verify"}})),
      tls_origin_failed(counter_family(*registry_, "hallpass_tls_origin_failures_total", origin_help)
                            .Add({{"kind", "handshake"}})),
      tls_origin_full(counter_family(*registry_, "hallpass_tls_origin_handshakes_total", origin_handshake_help)
                          .Add({{"kind", "full"}})),
      tls_origin_resumed(counter_family(*registry_, "hallpass_tls_origin_handshakes_total", origin_handshake_help)
                             .Add({{"kind", "resumed"}})),
      tls_issuer_fetched(counter_family(*registry_, "hallpass_tls_issuer_fetches_total", issuer_fetch_help)
                             .Add({{"result", "fetched"}})),
      tls_issuer_fetch_failed(counter_family(*registry_, "hallpass_tls_issuer_fetches_total", issuer_fetch_help)
                                  .Add({{"result", "failed"}})),
      log_queue_depth(
          gauge(*registry_, "hallpass_access_log_queue_depth",
                "Access log lines waiting for the writer thread (sampled by the writer at "
                "least once a second).")),
      policy_generation(
          gauge(*registry_, "hallpass_policy_generation",
                "Generation of the policy in force: 1 at start, +1 per successful reload.")),
      decision_seconds(histogram(*registry_, "hallpass_decision_seconds",
                                 "Time spent in the policy engine deciding one request.",
                                 decade_buckets(-7, -2))),
      upstream_seconds(
          histogram(*registry_, "hallpass_upstream_response_seconds",
                    "From sending a request upstream to receiving its response head.",
                    {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30})),
      request_seconds(histogram(
          *registry_, "hallpass_request_duration_seconds",
          "From a request head's arrival to the last byte of its response "
          "(forwarded, refused or answered locally; for CONNECT, until the "
          "proxy's answer).",
          {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60})),
      pac_served(counter_family(*registry_, "hallpass_pac_requests_total", pac_help).Add({{"result", "served"}})),
      pac_refused(counter_family(*registry_, "hallpass_pac_requests_total", pac_help).Add({{"result", "refused"}})),
      dhcp_devices(gauge(*registry_, "hallpass_dhcp_lease_devices",
                         "Addresses the DHCP leases file names a device for (dhcp_leases), at the last read.")),
      dhcp_skipped(counter(*registry_, "hallpass_dhcp_lease_entries_skipped_total",
                           "Malformed lines, blocks or rows of the DHCP leases file, skipped at each read.")),
      dhcp_read_failures(counter(*registry_, "hallpass_dhcp_lease_read_failures_total",
                                 "Reads of the DHCP leases file that failed (missing, unreadable, too large).")),
      alerts_held(counter(*registry_, "hallpass_alerts_held_total",
                          "Alerts for the DSL held back as repeats: one per person or device, kind and category "
                          "per alerts.every (the next alert counts them).")),
      alert_failures(counter(*registry_, "hallpass_alert_failures_total",
                             "Alerts not mailed: alerts.command failed or timed out, too many waited, the mail "
                             "limit was reached, or the proxy stopped. Each is still in the access log.")),
      process_(std::make_shared<process_collector>()),
      feeds_(std::make_shared<feed_collector>()) {
  auto& alerts_family = counter_family(*registry_, "hallpass_alerts_total",
                                       "Alerts for the DSL that went out (access log line, and alerts.command "
                                       "when set), by kind: category (a block in a category alerts.categories "
                                       "names), circumvention, ban (a ban the proxy put in force by itself), report_unblocked "
                                       "(a block a report of inappropriate content put on a page, removed).");
  alerts_[0] = &alerts_family.Add({{"kind", "category"}});
  alerts_[1] = &alerts_family.Add({{"kind", "circumvention"}});
  alerts_[2] = &alerts_family.Add({{"kind", "ban"}});
  alerts_[3] = &alerts_family.Add({{"kind", "report_unblocked"}});
  auto& logins_family = counter_family(*registry_, "hallpass_logins_total",
                                       "Proxy sign-ins, by result: ok (the directory said yes), cached (a recent "
                                       "success, no directory call), bad_credentials, rate_limited (refused after "
                                       "too many failures), unavailable (the directory failed or did not answer in "
                                       "time), busy (too many sign-ins waiting).");
  for (std::size_t i = 0; i < login_results.size(); ++i) {
    logins[i] = &logins_family.Add({{"result", std::string(login_results[i])}});
  }
  auto& responses = counter_family(*registry_, "hallpass_responses_total",
                                   "Responses sent to clients, by status class.");
  static constexpr const char* classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  for (std::size_t i = 0; i < responses_.size(); ++i)
    responses_[i] = &responses.Add({{"code", classes[i]}});
  prometheus::BuildGauge()
      .Name("hallpass_build_info")
      .Help("Always 1; the labels say which hallpass is running.")
      .Register(*registry_)
      .Add({{"version", HALLPASS_VERSION}})
      .Set(1);

  auto& rejected =
      counter_family(*registry_, "hallpass_rejected_total",
                     "Requests or connections refused before a policy decision, by reason.");
  static constexpr const char* rejection_names[rejection_count] = {
      "malformed",      "smuggling",        "head_too_large",   "head_timeout",
      "body_too_large", "connection_limit", "port_not_allowed", "loopback_refused",
      "destination_denied", "body_too_slow", "http2_only"};
  for (std::size_t i = 0; i < rejection_count; ++i)
    rejected_[i] = &rejected.Add({{"reason", rejection_names[i]}});

  auto& upstream =
      counter_family(*registry_, "hallpass_upstream_failures_total",
                     "Requests and tunnels that could not reach their origin, by kind.");
  static constexpr const char* failure_names[upstream_failure_count] = {"dns",   "connect", "timeout",
                                                                        "reset", "refused", "malformed"};
  for (std::size_t i = 0; i < upstream_failure_count; ++i)
    upstream_failed_[i] = &upstream.Add({{"kind", failure_names[i]}});
  // Every way a ban comes into force, at 0 from the start, so that an alert on
  // increase(hallpass_bans_total{how="automatic"}[...]) has a series before the first ban.
  for (const char* how : {"command", "confirmed", "automatic"}) bans(how);

  if (listen.empty() || listen == "off") return;
  const auto address = parse_listen_address(listen);  // the daemon's own listen syntax
  if (!address) {
    throw std::runtime_error(
        "metrics.listen \"" + listen +
        "\": expected a numeric address and port, such as 127.0.0.1:9131 or [::1]:9131");
  }
  endpoint_ = std::make_unique<small_http_server>(
      small_http_server::options{"metrics endpoint", 64, {}},
      [this](std::string_view method, std::string_view target, const net::ip::address&) {
        return metrics_answer(method, target, *this);
      });
  if (auto ec = endpoint_->bind(tcp::endpoint(net::ip::make_address(address->host), address->port))) {
    throw std::runtime_error("metrics.listen " + listen + ": cannot listen: " + listen_error_text(ec));
  }
  if (const auto ep = endpoint_->endpoint()) port_ = ep->port();
  endpoint_->start();
}

metrics::~metrics() = default;

void metrics::set_feed_source(std::function<std::vector<feed_sample>()> source) {
  static_cast<feed_collector&>(*feeds_).set(std::move(source));
}

prometheus::Counter& metrics::bans(const std::string& how) {
  return counter_family(*registry_, "hallpass_bans_total",
                        "Bans put in force (000 7.2; 002): by command (the DSL or the headteacher), a "
                        "technician's proposal confirmed, or automatic (bans.threshold).")
      .Add({{"how", how}});
}

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

void metrics::observe_exchange(int status, double seconds) {
  request_seconds.Observe(seconds);
  if (status >= 100 && status <= 599)
    responses_[static_cast<std::size_t>(status / 100 - 1)]->Increment();
}

std::string metrics::scrape() {
  auto families = registry_->Collect();
  for (auto& f : process_->Collect()) families.push_back(std::move(f));
  for (auto& f : feeds_->Collect()) families.push_back(std::move(f));
  return prometheus::TextSerializer().Serialize(families);
}

std::vector<double> metrics::decade_buckets(int from_exponent, int to_exponent) {
  std::vector<double> b;
  for (int e = from_exponent; e <= to_exponent; ++e) {
    for (const char* m : {"1", "2.5", "5"}) {
      if (e == to_exponent && m[0] != '1') break;
      const std::string text = std::string(m) + "e" + std::to_string(e);
      double v = 0;
      std::from_chars(text.data(), text.data() + text.size(), v);
      b.push_back(v);
    }
  }
  return b;
}

}  // namespace hallpass

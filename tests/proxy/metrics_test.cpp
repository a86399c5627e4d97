#include "proxy/metrics.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <ctime>

#include <cerrno>
#include <set>
#include <stdexcept>
#include <string>

using hallpass::metrics;

namespace {

bool has_line(const std::string& scrape, const std::string& line) {
  return scrape.find("\n" + line + "\n") != std::string::npos || scrape.rfind(line + "\n", 0) == 0;
}

// A listening TCP socket on 127.0.0.1 and a free port; closed on destruction.
struct loopback_socket {
  int fd = -1;
  std::uint16_t port = 0;
  explicit loopback_socket(bool listen_on_it) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
    if (listen_on_it) REQUIRE(::listen(fd, 4) == 0);
  }
  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  ~loopback_socket() { close(); }
};

// A whole HTTP/1.0 exchange over a raw socket to 127.0.0.1 (or [::1]): the request, then
// everything until the server closes. Empty on a connection failure.
std::string http_request(std::uint16_t port, const std::string& method, const std::string& target, bool ipv6 = false) {
  const int fd = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  sockaddr_in6 a6{};
  a6.sin6_family = AF_INET6;
  a6.sin6_addr = in6addr_loopback;
  a6.sin6_port = htons(port);
  const int connected = ipv6 ? ::connect(fd, reinterpret_cast<sockaddr*>(&a6), sizeof a6)
                             : ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  if (connected != 0) {
    ::close(fd);
    return {};
  }
  const std::string request = method + " " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  std::string response;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    response.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return response;
}

std::string http_get(std::uint16_t port, const std::string& target) {
  return http_request(port, "GET", target);
}

}  // namespace

TEST_CASE("metrics: every documented family is in the scrape") {
  metrics m("off");
  CHECK(m.port() == 0);
  m.resolve_roles({"pupils"});
  const std::string scrape = m.scrape();
  for (const char* name : {"hallpass_requests_total",
                           "hallpass_active_connections",
                           "hallpass_tunnels_active",
                           "hallpass_bytes_total",
                           "hallpass_decision_seconds",
                           "hallpass_upstream_response_seconds",
                           "hallpass_reloads_total",
                           "hallpass_reload_failures_total",
                           "hallpass_access_log_queue_depth",
                           "hallpass_access_log_write_failures_total",
                           "hallpass_access_log_dropped_total",
                           "hallpass_rejected_total",
                           "hallpass_upstream_failures_total",
                           "hallpass_circumvention_attempts_total",
                           "hallpass_policy_generation",
                           "hallpass_upstream_connections_reused_total",
                           "hallpass_request_duration_seconds",
                           "hallpass_responses_total",
                           "hallpass_build_info",
                           "process_resident_memory_bytes",
                           "process_virtual_memory_bytes",
                           "process_open_fds",
                           "process_max_fds",
                           "process_cpu_seconds_total",
                           "process_start_time_seconds"}) {
    CHECK_MESSAGE(scrape.find(std::string("# TYPE ") + name + " ") != std::string::npos, name);
  }
  // Every metric name is ours or the standard process_ set; nothing else was registered.
  std::size_t at = 0;
  while ((at = scrape.find("# TYPE ", at)) != std::string::npos) {
    at += 7;
    CHECK((scrape.compare(at, 9, "hallpass_") == 0 || scrape.compare(at, 8, "process_") == 0));
  }
}

// The value of the first sample line that starts with `prefix` (name and labels), or -1.
static double sample(const std::string& scrape, const std::string& prefix) {
  const auto at = scrape.find("\n" + prefix + " ");
  if (at == std::string::npos) return -1;
  return std::stod(scrape.substr(at + 1 + prefix.size() + 1));
}

TEST_CASE("metrics: observe_exchange times the exchange and counts its status class") {
  metrics m("off");
  m.observe_exchange(200, 0.003);
  m.observe_exchange(204, 0.2);
  m.observe_exchange(403, 0.0004);
  m.observe_exchange(502, 3.5);
  m.observe_exchange(101, 0.01);
  m.observe_exchange(0, 0.5);    // nothing sent: timed, not a response
  m.observe_exchange(999, 0.5);  // not a status: the same
  const std::string s = m.scrape();
  INFO(s);
  CHECK(has_line(s, "hallpass_responses_total{code=\"1xx\"} 1"));
  CHECK(has_line(s, "hallpass_responses_total{code=\"2xx\"} 2"));
  CHECK(has_line(s, "hallpass_responses_total{code=\"3xx\"} 0"));
  CHECK(has_line(s, "hallpass_responses_total{code=\"4xx\"} 1"));
  CHECK(has_line(s, "hallpass_responses_total{code=\"5xx\"} 1"));
  CHECK(has_line(s, "hallpass_request_duration_seconds_count 7"));
  CHECK(has_line(s, "hallpass_request_duration_seconds_bucket{le=\"0.001\"} 1"));
  CHECK(has_line(s, "hallpass_request_duration_seconds_bucket{le=\"0.005\"} 2"));
  CHECK(has_line(s, "hallpass_request_duration_seconds_bucket{le=\"0.25\"} 4"));
  CHECK(has_line(s, "hallpass_request_duration_seconds_bucket{le=\"0.5\"} 6"));
  CHECK(has_line(s, "hallpass_request_duration_seconds_bucket{le=\"5\"} 7"));
  CHECK(has_line(s, "hallpass_request_duration_seconds_bucket{le=\"60\"} 7"));
}

TEST_CASE("metrics: build info names the version") {
  metrics m("off");
  CHECK(has_line(m.scrape(),
                 std::string("hallpass_build_info{version=\"") + HALLPASS_VERSION + "\"} 1"));
}

TEST_CASE("metrics: process metrics describe this process") {
  metrics m("off");
  const std::string s = m.scrape();
  INFO(s);
  CHECK(sample(s, "process_resident_memory_bytes") > 1e6);
  CHECK(sample(s, "process_virtual_memory_bytes") >= sample(s, "process_resident_memory_bytes"));
  CHECK(sample(s, "process_cpu_seconds_total") >= 0);
  rlimit rl{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &rl) == 0);
  CHECK(sample(s, "process_max_fds") == static_cast<double>(rl.rlim_cur));
  // Opening one more descriptor shows up in the next scrape.
  const double fds = sample(s, "process_open_fds");
  CHECK(fds >= 3);
  const int extra = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(extra >= 0);
  CHECK(sample(m.scrape(), "process_open_fds") == fds + 1);
  ::close(extra);
  const double now = static_cast<double>(::time(nullptr));
  const double start = sample(s, "process_start_time_seconds");
  CHECK(start <= now + 1);
  CHECK(start > now - 24 * 3600);  // this test process started less than a day ago
}

TEST_CASE("metrics: bucket bounds are exact decimals and print as written") {
  const auto b = metrics::decade_buckets(-7, -2);
  REQUIRE(b.size() == 16);
  CHECK(b.front() == 1e-7);
  CHECK(b[6] == 1e-5);
  CHECK(b[7] == 2.5e-5);
  CHECK(b.back() == 1e-2);

  metrics m("off");
  const std::string s = m.scrape();
  INFO(s);
  CHECK(has_line(s, "hallpass_decision_seconds_bucket{le=\"1e-05\"} 0"));
  CHECK(has_line(s, "hallpass_decision_seconds_bucket{le=\"1e-06\"} 0"));
  CHECK(has_line(s, "hallpass_decision_seconds_bucket{le=\"2.5e-05\"} 0"));
  // No bound anywhere prints with float noise (9.999999999999999e-06, 0.30000000000000004).
  std::size_t at = 0;
  while ((at = s.find("{le=\"", at)) != std::string::npos) {
    at += 5;
    const std::string label = s.substr(at, s.find('"', at) - at);
    CAPTURE(label);
    CHECK(label.size() <= 7);
  }
}

TEST_CASE("metrics: increments show up with their labels and counts") {
  metrics m("off");
  const auto roles = m.resolve_roles({"pupils", "staff"});
  roles[0].blocked->Increment();
  roles[0].blocked->Increment();
  roles[0].allowed->Increment();
  roles[1].allowed->Increment(5);
  m.rejected(metrics::rejection::smuggling).Increment();
  m.rejected(metrics::rejection::smuggling).Increment();
  m.rejected(metrics::rejection::head_timeout).Increment();
  m.upstream_failed(metrics::upstream_failure::timeout).Increment();
  m.bytes_from_clients.Increment(1000);
  m.bytes_to_clients.Increment(250000);
  m.active_connections.Increment();
  m.active_connections.Increment();
  m.active_connections.Decrement();
  m.active_tunnels.Set(3);
  m.circumvention_attempts.Increment();
  m.reloads.Increment();
  m.reload_failures.Increment();
  m.policy_generation.Set(2);
  m.log_queue_depth.Set(17);
  m.log_write_failures.Increment();
  m.log_dropped.Increment(4);
  m.upstream_pool_reused.Increment(6);
  m.decision_seconds.Observe(3e-6);
  m.upstream_seconds.Observe(0.2);

  const std::string s = m.scrape();
  INFO(s);
  CHECK(has_line(s, "hallpass_requests_total{action=\"block\",role=\"pupils\"} 2"));
  CHECK(has_line(s, "hallpass_requests_total{action=\"allow\",role=\"pupils\"} 1"));
  CHECK(has_line(s, "hallpass_requests_total{action=\"allow\",role=\"staff\"} 5"));
  CHECK(has_line(s, "hallpass_requests_total{action=\"block\",role=\"staff\"} 0"));
  CHECK(has_line(s, "hallpass_rejected_total{reason=\"smuggling\"} 2"));
  CHECK(has_line(s, "hallpass_rejected_total{reason=\"head_timeout\"} 1"));
  CHECK(has_line(s, "hallpass_rejected_total{reason=\"loopback_refused\"} 0"));
  CHECK(has_line(s, "hallpass_upstream_failures_total{kind=\"timeout\"} 1"));
  CHECK(has_line(s, "hallpass_upstream_failures_total{kind=\"dns\"} 0"));
  CHECK(has_line(s, "hallpass_bytes_total{direction=\"from_client\"} 1000"));
  CHECK(has_line(s, "hallpass_bytes_total{direction=\"to_client\"} 250000"));
  CHECK(has_line(s, "hallpass_active_connections 1"));
  CHECK(has_line(s, "hallpass_tunnels_active 3"));
  CHECK(has_line(s, "hallpass_circumvention_attempts_total 1"));
  CHECK(has_line(s, "hallpass_reloads_total 1"));
  CHECK(has_line(s, "hallpass_reload_failures_total 1"));
  CHECK(has_line(s, "hallpass_policy_generation 2"));
  CHECK(has_line(s, "hallpass_access_log_queue_depth 17"));
  CHECK(has_line(s, "hallpass_access_log_write_failures_total 1"));
  CHECK(has_line(s, "hallpass_access_log_dropped_total 4"));
  CHECK(has_line(s, "hallpass_upstream_connections_reused_total 6"));
  CHECK(has_line(s, "hallpass_decision_seconds_count 1"));
  CHECK(has_line(s, "hallpass_decision_seconds_bucket{le=\"1e-07\"} 0"));
  CHECK(has_line(s, "hallpass_decision_seconds_bucket{le=\"5e-06\"} 1"));
  CHECK(has_line(s, "hallpass_decision_seconds_bucket{le=\"0.01\"} 1"));
  CHECK(has_line(s, "hallpass_upstream_response_seconds_bucket{le=\"0.1\"} 0"));
  CHECK(has_line(s, "hallpass_upstream_response_seconds_bucket{le=\"0.25\"} 1"));
  CHECK(has_line(s, "hallpass_upstream_response_seconds_bucket{le=\"30\"} 1"));
  CHECK(has_line(s, "hallpass_upstream_response_seconds_count 1"));
}

TEST_CASE("metrics: resolve_roles gives distinct counters, stable across policy generations") {
  metrics m("off");
  const auto first = m.resolve_roles({"pupils", "staff", "office", "guests"});
  REQUIRE(first.size() == 4);
  std::set<prometheus::Counter*> seen;
  for (const auto& r : first) {
    seen.insert(r.allowed);
    seen.insert(r.blocked);
  }
  CHECK(seen.size() == 8);

  first[1].blocked->Increment();
  // A reload with the roles in another order and one new role.
  const auto second = m.resolve_roles({"staff", "visitors", "pupils"});
  REQUIRE(second.size() == 3);
  CHECK(second[0].blocked == first[1].blocked);
  CHECK(second[0].blocked->Value() == 1);
  CHECK(second[2].allowed == first[0].allowed);
  CHECK(seen.count(second[1].allowed) == 0);
  CHECK(seen.count(second[1].blocked) == 0);
  CHECK(m.resolve_roles({}).empty());
}

TEST_CASE("metrics: the endpoint answers a scrape over HTTP") {
  loopback_socket probe(false);
  const std::uint16_t port = probe.port;
  probe.close();  // free again: the endpoint binds it

  metrics m("127.0.0.1:" + std::to_string(port));
  CHECK(m.port() == port);
  m.resolve_roles({"pupils"})[0].blocked->Increment(7);
  m.rejected(metrics::rejection::smuggling).Increment();

  const std::string response = http_get(port, "/metrics");
  INFO(response);
  REQUIRE(response.rfind("HTTP/1.", 0) == 0);
  CHECK(response.find(" 200 ") != std::string::npos);
  CHECK(response.find("hallpass_requests_total{action=\"block\",role=\"pupils\"} 7") !=
        std::string::npos);
  CHECK(response.find("hallpass_rejected_total{reason=\"smuggling\"} 1") != std::string::npos);
}

TEST_CASE("metrics: port 0 picks a free port and reports it") {
  metrics m("127.0.0.1:0");
  REQUIRE(m.port() != 0);
  const std::string response = http_get(m.port(), "/metrics");
  CHECK(response.find("hallpass_policy_generation") != std::string::npos);
}

TEST_CASE("metrics: a bad or busy address is a clear error, not a silent no-endpoint") {
  for (const char* bad : {"9131", "localhost:9131", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999",
                          "127.0.0.1:91x", "::1:9131", "[::1]", "[::1]9131", "[nonsense]:9131",
                          "127.1:9131"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(metrics{bad}, doctest::Contains(bad), std::runtime_error);
  }

  loopback_socket busy(true);  // someone else is listening there
  const std::string address = "127.0.0.1:" + std::to_string(busy.port);
  CHECK_THROWS_WITH_AS(metrics{address}, doctest::Contains(address.c_str()), std::runtime_error);
}

TEST_CASE("metrics: an IPv6 address serves") {
  metrics m("[::1]:0");
  REQUIRE(m.port() != 0);
  const std::string response = http_request(m.port(), "GET", "/metrics", true);
  CHECK(response.find(" 200 ") != std::string::npos);
  CHECK(response.find("hallpass_policy_generation") != std::string::npos);
}

TEST_CASE("metrics: only GET and HEAD of /metrics are answered, and the endpoint stops at once") {
  const auto started = std::chrono::steady_clock::now();
  {
    metrics m("127.0.0.1:0");
    const std::string head = http_request(m.port(), "HEAD", "/metrics");
    CHECK(head.rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(head.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != std::string::npos);
    CHECK(head.ends_with("\r\n\r\n"));  // no body
    CHECK(http_request(m.port(), "GET", "/metrics?name[]=x").find(" 200 ") != std::string::npos);
    CHECK(http_request(m.port(), "GET", "/").rfind("HTTP/1.1 404 ", 0) == 0);
    CHECK(http_request(m.port(), "GET", "/metrics/x").rfind("HTTP/1.1 404 ", 0) == 0);
    const std::string post = http_request(m.port(), "POST", "/metrics");
    CHECK(post.rfind("HTTP/1.1 405 ", 0) == 0);
    CHECK(post.find("Allow: GET, HEAD\r\n") != std::string::npos);
    CHECK(http_request(m.port(), "GE(T", "/metrics").rfind("HTTP/1.1 400 ", 0) == 0);  // not a method
  }
  // prometheus-cpp's Exposer, used before, took 2 s to stop (its listener polled in 2 s steps),
  // and so did every stop of the daemon.
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
}

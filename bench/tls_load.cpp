// tls_load: an HTTPS load generator for the HTTPS-inspection bench (issue 10, bench/README.md
// "Issue 10 (HTTPS inspection)"). Through a forward proxy (CONNECT, then TLS with SNI to the
// tunnel's host, trusting a given CA file) or directly (TLS to a TLS-terminating server such as
// nginx as a reverse proxy), then HTTP/1.1 GETs. Plain sockets, one thread per connection,
// blocking I/O with socket timeouts (bench/ includes no Asio/Beast); OpenSSL for TLS.
//
// Modes (each prints one JSON line on standard output, errors on standard error):
//   keepalive   N kept-alive connections, GETs back to back for --duration seconds
//               (or paced at --rate requests per second per connection)
//   newconn     --connections loops of: connect, CONNECT, full TLS handshake (no resumption),
//               one GET with Connection: close, close; for --duration seconds
//   firstvisit  --hosts names from --host-format (h%04d.bench.test), each visited once as in
//               newconn (the first visit) and once more (warm, after --pause seconds): with
//               --order paired (the default) each thread alternates a new name's first visit
//               with the warm visit of a name that became due, so first and warm visits share
//               the machine's moment; with --order passes all names first, then all again. Meanwhile --background
//               kept-alive connections to --host paced at --rate, whose latencies are reported
//               for a baseline before the burst, during the visits and for a window after
//   download    one connection, one GET of --path, the body read and discarded: MB/s
//
// Every loop is bounded by the duration or a count, and every socket has a receive and send
// timeout (--io-timeout), so a stuck peer ends the run with an error, never a hang.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <csignal>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "load_client.hpp"

namespace {

using namespace hallpass::bench;

using steady = std::chrono::steady_clock;

struct options {
  std::string mode;
  std::string proxy;   // "127.0.0.1:PORT", empty: direct
  std::string connect;  // direct mode: the TCP address ("127.0.0.1:PORT")
  std::string host = "www.bench.test";  // SNI, Host and the CONNECT authority's name
  int port = 443;                       // the CONNECT authority's port (and Host's)
  std::string cafile;
  std::string path = "/small";
  std::string host_format = "h%04d.bench.test";
  int hosts = 1000;
  int first_host = 1;
  int connections = 50;
  int background = 8;
  double rate = 0;  // per connection; 0: back to back
  double duration = 10;
  double baseline = 3;  // firstvisit: seconds of background alone before the burst
  double pause = 0;     // firstvisit: seconds between the first and the warm pass (passes)
  bool paired = true;   // firstvisit: --order paired (each new name visited twice in a row) or passes
  double io_timeout = 10;
  double max_seconds = 300;  // download: stop (and say so) after this long
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "tls_load: %s\n"
               "usage: tls_load MODE [options]   MODE: keepalive | newconn | firstvisit | download\n"
               "  --proxy ADDR:PORT      forward proxy (CONNECT); without it: --connect\n"
               "  --connect ADDR:PORT    direct TLS to this address (nginx as a reverse proxy)\n"
               "  --host NAME --port N   SNI, Host and CONNECT target (default www.bench.test 443)\n"
               "  --cafile FILE          the CA the client trusts (required)\n"
               "  --path P               default /small\n"
               "  --connections N        keepalive, newconn: concurrent connections (default 50)\n"
               "  --duration S           keepalive, newconn: seconds (default 10)\n"
               "  --rate R               keepalive: requests per second per connection (default: unpaced)\n"
               "  --hosts N --first-host N --host-format F   firstvisit names (1000, 1, h%%04d.bench.test)\n"
               "  --background N --baseline S               firstvisit: paced keep-alive connections (8, 3 s)\n"
               "  --order paired|passes  firstvisit: warm visits interleaved with first visits (paired,\n"
               "                         the default) or a second pass over all names after the first\n"
               "  --pause S              firstvisit: at least S seconds between a name's two visits (0)\n"
               "  --io-timeout S         per read or write (default 10)\n"
               "  --max-seconds S        download: give up after S seconds (default 300)\n",
               why.c_str());
  std::exit(2);
}

options parse(int argc, char** argv) {
  if (argc < 2) usage("no mode");
  options o;
  o.mode = argv[1];
  if (o.mode != "keepalive" && o.mode != "newconn" && o.mode != "firstvisit" && o.mode != "download")
    usage("unknown mode " + o.mode);
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) usage("no value for " + k);
    const std::string v = argv[++i];
    if (k == "--proxy") o.proxy = v;
    else if (k == "--connect") o.connect = v;
    else if (k == "--host") o.host = v;
    else if (k == "--port") o.port = std::stoi(v);
    else if (k == "--cafile") o.cafile = v;
    else if (k == "--path") o.path = v;
    else if (k == "--host-format") o.host_format = v;
    else if (k == "--hosts") o.hosts = std::stoi(v);
    else if (k == "--first-host") o.first_host = std::stoi(v);
    else if (k == "--connections") o.connections = std::stoi(v);
    else if (k == "--background") o.background = std::stoi(v);
    else if (k == "--rate") o.rate = std::stod(v);
    else if (k == "--duration") o.duration = std::stod(v);
    else if (k == "--baseline") o.baseline = std::stod(v);
    else if (k == "--pause") o.pause = std::stod(v);
    else if (k == "--order" && (v == "paired" || v == "passes")) o.paired = v == "paired";
    else if (k == "--io-timeout") o.io_timeout = std::stod(v);
    else if (k == "--max-seconds") o.max_seconds = std::stod(v);
    else usage("unknown option " + k);
  }
  if (o.cafile.empty()) usage("--cafile is required");
  if (o.proxy.empty() == o.connect.empty()) usage("exactly one of --proxy and --connect");
  if (o.connections < 1 || o.connections > 2000 || o.hosts < 1 || o.hosts > 100000 || o.background < 0 ||
      o.background > 2000)
    usage("a count out of range");
  return o;
}

// ---------------------------------------------------------------------------------------
// Errors (load_client.hpp's error_counts) and their text.

error_counts errors;
std::atomic<std::uint64_t> connections_opened{0};  // keepalive: more than --connections: the peer closed some

std::string ssl_error_text() {
  std::string s;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!s.empty()) s += "; ";
    s += buf;
  }
  return s.empty() ? std::string(std::strerror(errno)) : s;
}

// ---------------------------------------------------------------------------------------
// One client connection: TCP, optionally CONNECT through the proxy, TLS, HTTP/1.1.

// The issuer of the certificate the peer presented, kept by the verify callback even when
// verification fails (so that "not inspected: the origin's own certificate" can be told).
thread_local std::string presented_issuer;

int remember_issuer(int preverify_ok, X509_STORE_CTX* store) {
  if (X509_STORE_CTX_get_error_depth(store) == 0) {
    if (X509* c = X509_STORE_CTX_get_current_cert(store)) {
      char issuer[256];
      X509_NAME_oneline(X509_get_issuer_name(c), issuer, sizeof issuer);
      presented_issuer = issuer;
    }
  }
  return preverify_ok;
}

sockaddr_in address(const std::string& hostport) {
  const auto a = ipv4_address(hostport);
  if (!a) usage("not an IPv4 ADDR:PORT: " + hostport);
  return *a;
}

class connection {
 public:
  connection() = default;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection() { close(); }

  // Connects (through the proxy if any) and completes the TLS handshake for `host`.
  std::optional<failure> open(const options& o, SSL_CTX* ctx, const std::string& host) {
    if (auto f = connect_tcp(fd_, address(o.proxy.empty() ? o.connect : o.proxy), o.io_timeout)) return f;
    if (!o.proxy.empty()) {
      if (auto f = proxy_connect(host, o.port)) return f;
    }
    presented_issuer.clear();
    ssl_ = SSL_new(ctx);
    SSL_set_fd(ssl_, fd_);
    SSL_set_tlsext_host_name(ssl_, host.c_str());
    SSL_set1_host(ssl_, host.c_str());  // the certificate must name the host
    if (SSL_connect(ssl_) != 1) {
      const long v = SSL_get_verify_result(ssl_);
      std::string m = ssl_error_text();
      if (v != X509_V_OK) m = std::string("certificate: ") + X509_verify_cert_error_string(v) + "; " + m;
      if (!presented_issuer.empty()) m += "; the certificate presented was issued by " + presented_issuer;
      return failure{"tls", m};
    }
    return std::nullopt;
  }

  // One GET; reads the whole response and discards its body. `body_bytes` gets its length.
  std::optional<failure> get(const std::string& host, int port, const std::string& path, bool close_after,
                             std::uint64_t* body_bytes = nullptr) {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + host + (port == 443 ? "" : ":" + std::to_string(port)) +
                      "\r\nUser-Agent: tls_load\r\n" + (close_after ? "Connection: close\r\n" : "") + "\r\n";
    if (SSL_write(ssl_, req.data(), static_cast<int>(req.size())) != static_cast<int>(req.size()))
      return failure{"write", ssl_error_text()};
    // The head.
    std::size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (buf_.size() > 65536) return failure{"http", "response head over 64 KiB"};
      if (!fill()) return failure{"read", "connection ended before the response head: " + last_error_};
    }
    const std::string head = buf_.substr(0, end + 4);
    buf_.erase(0, end + 4);
    if (head.compare(0, 9, "HTTP/1.1 ") != 0 && head.compare(0, 9, "HTTP/1.0 ") != 0)
      return failure{"http", "not an HTTP response: " + head.substr(0, 40)};
    const int status = std::atoi(head.c_str() + 9);
    const auto field = [&](std::string_view name) -> std::optional<std::string> {
      std::string lower = head;
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      const auto at = lower.find("\r\n" + std::string(name) + ":");
      if (at == std::string::npos) return std::nullopt;
      const auto from = at + 3 + name.size();
      auto v = lower.substr(from, lower.find("\r\n", from) - from);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    };
    std::uint64_t got = 0;
    if (const auto te = field("transfer-encoding"); te && te->find("chunked") != std::string::npos) {
      for (int chunks = 0; chunks < 10'000'000; ++chunks) {
        std::size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos)
          if (!fill()) return failure{"read", "connection ended in a chunk size"};
        const std::uint64_t n = std::strtoull(buf_.c_str(), nullptr, 16);
        buf_.erase(0, eol + 2);
        if (auto f = skip(n + 2)) return f;  // data and its CRLF
        got += n;
        if (n == 0) break;  // (trailers are not expected from these peers)
      }
    } else if (const auto cl = field("content-length")) {
      const std::uint64_t n = std::strtoull(cl->c_str(), nullptr, 10);
      if (auto f = skip(n)) return f;
      got = n;
    } else {
      return failure{"http", "response without Content-Length or chunked: " + head.substr(0, 60)};
    }
    if (body_bytes) *body_bytes = got;
    if (status != 200) return failure{"status", head.substr(0, head.find("\r\n"))};
    if (const auto c = field("connection"); c && *c == "close" && !close_after) closed_by_peer_ = true;
    return std::nullopt;
  }

  bool closed_by_peer() const { return closed_by_peer_; }

  // Bodies still being read at this time are abandoned (a download too slow to finish).
  void set_deadline(steady::time_point t) { deadline_ = t; }

  // Body bytes read from the socket so far (a download's progress, kept when it fails).
  std::uint64_t body_bytes_read() const { return skipped_; }

  void close() {
    if (ssl_) {
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    if (fd_ >= 0) ::close(fd_), fd_ = -1;
    buf_.clear();
    closed_by_peer_ = false;
  }

 private:
  std::optional<failure> proxy_connect(const std::string& host, int port) {
    const std::string authority = host + ":" + std::to_string(port);
    const std::string req = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
      return failure{"connect", std::string("CONNECT write: ") + std::strerror(errno)};
    // Read byte-wise up to the end of the head: nothing past it may be consumed (TLS follows).
    std::string head;
    while (head.size() < 8192 && (head.size() < 4 || head.compare(head.size() - 4, 4, "\r\n\r\n") != 0)) {
      char c;
      const ssize_t n = ::recv(fd_, &c, 1, 0);
      if (n <= 0) return failure{"connect", "proxy closed or timed out before answering CONNECT"};
      head += c;
    }
    if (head.size() < 12 || head.compare(9, 3, "200") != 0)
      return failure{"connect", "CONNECT " + authority + ": " + head.substr(0, head.find("\r\n"))};
    return std::nullopt;
  }

  bool fill() {
    char tmp[65536];
    const int n = SSL_read(ssl_, tmp, sizeof tmp);
    if (n <= 0) {
      last_error_ = ssl_error_text();
      return false;
    }
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }

  // Consumes n bytes of body without keeping them (large downloads read straight through).
  std::optional<failure> skip(std::uint64_t n) {
    const std::uint64_t have = std::min<std::uint64_t>(n, buf_.size());
    buf_.erase(0, have);
    skipped_ += have;
    n -= have;
    char tmp[65536];
    while (n > 0) {
      if (steady::now() > deadline_)
        return failure{"timeout", "gave up with " + std::to_string(n) + " bytes of the body still to come"};
      const int r = SSL_read(ssl_, tmp, static_cast<int>(std::min<std::uint64_t>(n, sizeof tmp)));
      if (r <= 0) return failure{"read", "connection ended in a body, " + std::to_string(n) + " bytes short: " + ssl_error_text()};
      n -= static_cast<std::uint64_t>(r);
      skipped_ += static_cast<std::uint64_t>(r);
    }
    return std::nullopt;
  }

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  std::string buf_;
  std::string last_error_;
  bool closed_by_peer_ = false;
  steady::time_point deadline_ = steady::time_point::max();
  std::uint64_t skipped_ = 0;
};

SSL_CTX* client_context(const options& o) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // No session cache: every new connection is a full handshake, as a new device's would be.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (SSL_CTX_load_verify_locations(ctx, o.cafile.c_str(), nullptr) != 1) {
    std::fprintf(stderr, "tls_load: cannot read --cafile %s: %s\n", o.cafile.c_str(), ssl_error_text().c_str());
    std::exit(1);
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, remember_issuer);
  static const unsigned char alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn);
  SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
  return ctx;
}

// ---------------------------------------------------------------------------------------
// Latencies, per thread, merged at the end.

struct samples {
  std::vector<std::uint32_t> us;  // microseconds
  void add(steady::duration d) {
    us.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(d).count(), UINT32_MAX)));
  }
};

std::string summary_json(std::vector<std::uint32_t> v, double seconds) {
  char out[512];
  if (v.empty()) {
    std::snprintf(out, sizeof out, "{\"count\":0,\"seconds\":%.3f}", seconds);
    return out;
  }
  std::sort(v.begin(), v.end());
  const auto pct = [&](double p) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size())))] / 1000.0;
  };
  double sum = 0;
  for (auto x : v) sum += x;
  std::snprintf(out, sizeof out,
                "{\"count\":%zu,\"seconds\":%.3f,\"per_s\":%.1f,\"mean_ms\":%.3f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
                "\"p99_ms\":%.3f,\"max_ms\":%.3f}",
                v.size(), seconds, seconds > 0 ? static_cast<double>(v.size()) / seconds : 0.0,
                sum / static_cast<double>(v.size()) / 1000.0, pct(50), pct(90), pct(99), v.back() / 1000.0);
  return out;
}

std::vector<std::uint32_t> merge(const std::vector<samples>& parts) {
  std::vector<std::uint32_t> all;
  for (const auto& p : parts) all.insert(all.end(), p.us.begin(), p.us.end());
  return all;
}

double seconds_since(steady::time_point t) { return std::chrono::duration<double>(steady::now() - t).count(); }

// ---------------------------------------------------------------------------------------
// keepalive: back to back or paced. `phase_of_sample` (firstvisit's background) tags each
// sample with the phase in which its request started.

void keepalive_worker(const options& o, SSL_CTX* ctx, const std::atomic<bool>& stop, std::vector<samples>& per_phase,
                      const std::atomic<int>* phase) {
  connection c;
  bool open = false;
  const auto interval = o.rate > 0 ? std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(1.0 / o.rate))
                                   : steady::duration::zero();
  auto next = steady::now();
  for (std::uint64_t n = 0; n < 1'000'000'000 && !stop.load(std::memory_order_relaxed); ++n) {
    if (!open) {
      if (auto f = c.open(o, ctx, o.host)) {
        errors.add(f->kind, f->message);
        c.close();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // do not spin on a refusing peer
        continue;
      }
      open = true;
      connections_opened.fetch_add(1, std::memory_order_relaxed);
    }
    if (interval != steady::duration::zero()) {
      next += interval;
      const auto now = steady::now();
      if (next > now) std::this_thread::sleep_for(next - now);
      else if (now - next > interval * 10) next = now;  // fell far behind: do not burst to catch up
      if (stop.load(std::memory_order_relaxed)) break;
    }
    const int ph = phase ? phase->load(std::memory_order_relaxed) : 0;
    const auto t0 = steady::now();
    if (auto f = c.get(o.host, o.port, o.path, false)) {
      errors.add(f->kind, f->message);
      c.close();
      open = false;
      continue;
    }
    per_phase[static_cast<std::size_t>(ph)].add(steady::now() - t0);
    if (c.closed_by_peer()) c.close(), open = false;
  }
}

int run_keepalive(const options& o, SSL_CTX* ctx) {
  std::atomic<bool> stop{false};
  std::vector<std::vector<samples>> res(static_cast<std::size_t>(o.connections), std::vector<samples>(1));
  std::vector<std::thread> threads;
  const auto t0 = steady::now();
  for (int i = 0; i < o.connections; ++i)
    threads.emplace_back([&, i] { keepalive_worker(o, ctx, stop, res[static_cast<std::size_t>(i)], nullptr); });
  std::this_thread::sleep_for(std::chrono::duration<double>(o.duration));
  stop = true;
  for (auto& t : threads) t.join();
  const double secs = seconds_since(t0);
  std::vector<samples> flat;
  for (auto& r : res) flat.push_back(std::move(r[0]));
  std::printf("{\"mode\":\"keepalive\",\"connections\":%d,\"connections_opened\":%llu,\"requests\":%s,"
              "\"errors\":%s,\"error_count\":%llu}\n",
              o.connections, static_cast<unsigned long long>(connections_opened.load()),
              summary_json(merge(flat), secs).c_str(), errors.json().c_str(),
              static_cast<unsigned long long>(errors.total()));
  return 0;
}

// ---------------------------------------------------------------------------------------
// newconn and firstvisit: a whole visit per sample.

// `opened`: when the connection was ready for the GET (CONNECT answered, handshake done).
std::optional<failure> visit(const options& o, SSL_CTX* ctx, const std::string& host,
                             steady::time_point* opened = nullptr) {
  connection c;
  if (auto f = c.open(o, ctx, host)) return f;
  if (opened) *opened = steady::now();
  return c.get(host, o.port, o.path, true);
}

int run_newconn(const options& o, SSL_CTX* ctx) {
  std::atomic<bool> stop{false};
  std::vector<samples> res(static_cast<std::size_t>(o.connections));
  std::vector<std::thread> threads;
  const auto t0 = steady::now();
  for (int i = 0; i < o.connections; ++i)
    threads.emplace_back([&, i] {
      for (std::uint64_t n = 0; n < 1'000'000'000 && !stop.load(std::memory_order_relaxed); ++n) {
        const auto s = steady::now();
        if (auto f = visit(o, ctx, o.host)) {
          errors.add(f->kind, f->message);
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
        res[static_cast<std::size_t>(i)].add(steady::now() - s);
      }
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(o.duration));
  stop = true;
  for (auto& t : threads) t.join();
  std::printf("{\"mode\":\"newconn\",\"connections\":%d,\"visits\":%s,\"errors\":%s,\"error_count\":%llu}\n",
              o.connections, summary_json(merge(res), seconds_since(t0)).c_str(), errors.json().c_str(),
              static_cast<unsigned long long>(errors.total()));
  return 0;
}

// Visits every host once from --connections threads taking the next name in turn; returns the
// latencies of the successful visits and how long the pass took.
struct pass_result {
  std::vector<std::uint32_t> first, again;
  double seconds = 0;
  std::vector<std::uint32_t> first_open, again_open;  // paired: the part up to the handshake's end
};

pass_result visit_all(const options& o, SSL_CTX* ctx) {
  std::atomic<int> next{0};
  std::vector<samples> res(static_cast<std::size_t>(o.connections));
  std::vector<std::thread> threads;
  const auto t0 = steady::now();
  for (int i = 0; i < o.connections; ++i)
    threads.emplace_back([&, i] {
      for (int k; (k = next.fetch_add(1)) < o.hosts;) {
        char name[256];
        std::snprintf(name, sizeof name, o.host_format.c_str(), o.first_host + k);
        const auto s = steady::now();
        if (auto f = visit(o, ctx, name)) {
          errors.add(f->kind, std::string(name) + ": " + f->message);
          continue;
        }
        res[static_cast<std::size_t>(i)].add(steady::now() - s);
      }
    });
  for (auto& t : threads) t.join();
  return {merge(res), {}, seconds_since(t0)};
}

// --order paired: each thread alternates a first visit to the next new name with the warm visit
// of a name whose first visit ended at least --pause seconds ago (so that, as in --order
// passes, the peer's pooled origin connection for it has expired and only the leaf is warm).
// After the first --pause seconds, first and warm visits therefore run side by side and share
// whatever else the machine is doing at that moment; the warm visits left when the names run
// out follow at the pace their first visits had.
pass_result visit_paired(const options& o, SSL_CTX* ctx) {
  std::atomic<int> next{0};
  std::mutex m;
  std::deque<std::pair<steady::time_point, int>> due;  // names visited once, by when their first visit ended
  std::atomic<int> first_done{0};                      // first visits ended, successful or not
  std::vector<samples> first(static_cast<std::size_t>(o.connections)), again(first.size());
  std::vector<samples> first_open(first.size()), again_open(first.size());  // connect to handshake done
  const auto pause = std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.pause));
  const auto name_of = [&](int k) {
    char name[256];
    std::snprintf(name, sizeof name, o.host_format.c_str(), o.first_host + k);
    return std::string(name);
  };
  std::vector<std::thread> threads;
  const auto t0 = steady::now();
  for (int i = 0; i < o.connections; ++i)
    threads.emplace_back([&, i] {
      // Each turn makes at most two visits and at least one, or waits for a due name (at
      // most --pause): bounded by 2 * --hosts turns with visits.
      for (int turn = 0; turn < 4 * o.hosts + 16; ++turn) {
        std::optional<int> warm;
        std::optional<steady::time_point> wait_until;
        {
          std::lock_guard lk(m);
          if (!due.empty()) {
            if (due.front().first + pause <= steady::now()) warm = due.front().second, due.pop_front();
            else wait_until = due.front().first + pause;
          }
        }
        if (warm) {
          const auto name = name_of(*warm);
          const auto s = steady::now();
          steady::time_point opened;
          if (auto f = visit(o, ctx, name, &opened)) errors.add(f->kind, name + " (warm): " + f->message);
          else {
            again[static_cast<std::size_t>(i)].add(steady::now() - s);
            again_open[static_cast<std::size_t>(i)].add(opened - s);
          }
        }
        if (const int k = next.fetch_add(1); k < o.hosts) {
          const auto name = name_of(k);
          const auto s = steady::now();
          steady::time_point opened;
          auto f = visit(o, ctx, name, &opened);
          const auto e = steady::now();
          if (f) errors.add(f->kind, name + ": " + f->message);
          else {
            first[static_cast<std::size_t>(i)].add(e - s);
            first_open[static_cast<std::size_t>(i)].add(opened - s);
            std::lock_guard lk(m);
            due.emplace_back(e, k);
          }
          first_done.fetch_add(1);
          continue;
        }
        if (warm) continue;
        // No new name left and nothing due yet: done when every first visit has ended and
        // nothing waits; otherwise wait for the next due name (or a first visit still running).
        if (first_done.load() >= o.hosts && !wait_until) {
          std::lock_guard lk(m);
          if (due.empty()) break;
          continue;
        }
        std::this_thread::sleep_until(wait_until.value_or(steady::now() + std::chrono::milliseconds(5)));
      }
    });
  for (auto& t : threads) t.join();
  return {merge(first), merge(again), seconds_since(t0), merge(first_open), merge(again_open)};
}

int run_firstvisit(options o, SSL_CTX* ctx) {
  if (o.rate <= 0) o.rate = 50;
  enum : int { baseline = 0, first = 1, between = 2, warm = 3, after = 4, phases = 5 };
  std::atomic<int> phase{baseline};
  std::atomic<bool> stop{false};
  std::vector<std::vector<samples>> bg(static_cast<std::size_t>(o.background), std::vector<samples>(phases));
  std::vector<std::thread> threads;
  for (int i = 0; i < o.background; ++i)
    threads.emplace_back([&, i] { keepalive_worker(o, ctx, stop, bg[static_cast<std::size_t>(i)], &phase); });
  const auto t0 = steady::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.baseline));
  const double baseline_s = seconds_since(t0);
  phase = first;
  pass_result firsts = o.paired ? visit_paired(o, ctx) : visit_all(o, ctx);
  pass_result warms;
  if (!o.paired) {
    phase = between;  // (an idle pause lets the peer's pooled origin connections expire, see README)
    std::this_thread::sleep_for(std::chrono::duration<double>(o.pause));
    phase = warm;
    warms = visit_all(o, ctx);
    warms.again = std::move(warms.first);
  } else {
    warms.again = std::move(firsts.again);
    warms.again_open = std::move(firsts.again_open);
    warms.seconds = firsts.seconds;
  }
  // The background alone again for as long as the baseline: a second sample of the quiet
  // state, so that a disturbance of the machine in one window does not make the baseline.
  phase = after;
  const auto t1 = steady::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.baseline));
  const double after_s = seconds_since(t1);
  stop = true;
  for (auto& t : threads) t.join();
  std::vector<std::vector<std::uint32_t>> bgp(phases);
  for (auto& b : bg)
    for (std::size_t p = 0; p < phases; ++p) bgp[p].insert(bgp[p].end(), b[p].us.begin(), b[p].us.end());
  std::vector<std::uint32_t> quiet = bgp[baseline];  // before and after the burst, together
  quiet.insert(quiet.end(), bgp[after].begin(), bgp[after].end());
  std::printf("{\"mode\":\"firstvisit\",\"order\":\"%s\",\"hosts\":%d,\"connections\":%d,\"first\":%s,"
              "\"warm\":%s,\"background\":{\"connections\":%d,\"rate_per_conn\":%.1f,\"baseline\":%s,"
              "\"during_first\":%s,\"during_warm\":%s,\"after\":%s,\"quiet\":%s},\"first_handshake\":%s,"
              "\"warm_handshake\":%s,\"errors\":%s,\"error_count\":%llu}\n",
              o.paired ? "paired" : "passes", o.hosts, o.connections, summary_json(firsts.first, firsts.seconds).c_str(),
              summary_json(warms.again, warms.seconds).c_str(), o.background, o.rate,
              summary_json(bgp[baseline], baseline_s).c_str(), summary_json(bgp[first], firsts.seconds).c_str(),
              summary_json(bgp[warm], warms.seconds).c_str(), summary_json(bgp[after], after_s).c_str(),
              summary_json(quiet, baseline_s + after_s).c_str(), summary_json(firsts.first_open, firsts.seconds).c_str(),
              summary_json(warms.again_open, warms.seconds).c_str(),
              errors.json().c_str(), static_cast<unsigned long long>(errors.total()));
  return 0;
}

int run_download(const options& o, SSL_CTX* ctx) {
  connection c;
  const auto t0 = steady::now();
  std::uint64_t bytes = 0;
  c.set_deadline(t0 + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.max_seconds)));
  auto f = c.open(o, ctx, o.host);
  if (!f) f = c.get(o.host, o.port, o.path, true, &bytes);
  if (f) bytes = c.body_bytes_read();
  const double secs = seconds_since(t0);
  if (f) errors.add(f->kind, f->message);
  std::printf("{\"mode\":\"download\",\"bytes\":%llu,\"seconds\":%.3f,\"mb_s\":%.1f,\"errors\":%s,\"error_count\":%llu}\n",
              static_cast<unsigned long long>(bytes), secs, secs > 0 ? static_cast<double>(bytes) / secs / 1e6 : 0.0,
              errors.json().c_str(), static_cast<unsigned long long>(errors.total()));
  return f ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);  // a peer that closes mid-write is an error to count, not the end of the run
  SSL_CTX* ctx = client_context(o);
  int rc;
  if (o.mode == "keepalive") rc = run_keepalive(o, ctx);
  else if (o.mode == "newconn") rc = run_newconn(o, ctx);
  else if (o.mode == "firstvisit") rc = run_firstvisit(o, ctx);
  else rc = run_download(o, ctx);
  std::fflush(stdout);
  SSL_CTX_free(ctx);
  return rc;
}

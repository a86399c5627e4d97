// negotiate_load: the Negotiate (Kerberos/SPNEGO) load client of the logins bench (issue 12,
// bench/README.md "Issue 12: logins"). Plain HTTP/1.1 GETs in absolute form through a forward
// proxy, signed in with a SPNEGO token made by MIT's GSS-API (libgssapi_krb5) from the ticket
// in the caller's credential cache (KRB5CCNAME, after kinit). One thread per connection,
// blocking sockets with receive and send timeouts (bench/ includes no Asio/Beast).
//
// Modes (each prints one JSON line on standard output, errors on standard error):
//   keepalive   --connections kept-alive connections for --duration seconds. Each connection
//               sends a fresh token on its first request only, as a browser does: Negotiate
//               signs in a connection (RFC 4559 section 6), so its later requests carry no
//               header. A 407 on a later request (a peer that does not keep the connection's
//               sign-in) is answered with a new token on the same request and counted
//               ("reauth"), so such a peer is measured as it would serve a browser.
//   newconn     --connections loops of: connect, GET with a fresh token and Connection: close,
//               read the response, close; for --duration seconds.
// The token is sent pre-emptively (no first 407 round trip), for every peer alike; it is made
// with no mutual-authentication flag, so a single leg completes the sign-in.
// --tokens no sends none at all (and a 407 is an error): the same client against a proxy
// without logins, the baseline a Negotiate figure is compared with (the bench's wrk figures
// come from another client, whose own CPU cost differs).
//
// Every loop is bounded by the duration, and every socket has --io-timeout, so a stuck peer
// ends the run with errors, never a hang. Thread-safety: the counters are atomics; GSS-API
// (MIT krb5) is thread-safe for separate contexts sharing one credential cache.
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <openssl/evp.h>

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
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "load_client.hpp"

namespace {

using namespace hallpass::bench;

using steady = std::chrono::steady_clock;

struct options {
  std::string mode;
  std::string proxy;                  // "127.0.0.1:PORT"
  std::string spn;                    // GSS host-based service name: "HTTP@proxy.bench.test"
  std::string url;                    // absolute-form target: "http://127.0.0.1:PORT/small"
  int connections = 50;
  double duration = 10;
  double io_timeout = 10;
  bool tokens = true;                 // --tokens yes|no
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "negotiate_load: %s\n"
               "usage: negotiate_load MODE --proxy ADDR:PORT --spn HTTP@NAME --url URL [options]\n"
               "  MODE: keepalive | newconn\n"
               "  --connections N   concurrent connections (default 50)\n"
               "  --duration S      seconds (default 10)\n"
               "  --io-timeout S    per read or write (default 10)\n"
               "  --tokens yes|no   sign in with Negotiate (default yes); no: the same load unsigned\n"
               "The ticket comes from KRB5CCNAME (kinit first).\n",
               why.c_str());
  std::exit(2);
}

options parse(int argc, char** argv) {
  if (argc < 2) usage("no mode");
  options o;
  o.mode = argv[1];
  if (o.mode != "keepalive" && o.mode != "newconn") usage("unknown mode " + o.mode);
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) usage("no value for " + k);
    const std::string v = argv[++i];
    if (k == "--proxy") o.proxy = v;
    else if (k == "--spn") o.spn = v;
    else if (k == "--url") o.url = v;
    else if (k == "--connections") o.connections = std::stoi(v);
    else if (k == "--duration") o.duration = std::stod(v);
    else if (k == "--io-timeout") o.io_timeout = std::stod(v);
    else if (k == "--tokens" && (v == "yes" || v == "no")) o.tokens = v == "yes";
    else usage("unknown option " + k);
  }
  if (o.proxy.empty() || o.spn.empty() || o.url.rfind("http://", 0) != 0) usage("--proxy, --spn and an http:// --url");
  if (o.connections < 1 || o.connections > 2000 || o.duration <= 0 || o.duration > 3600) usage("a value out of range");
  return o;
}

error_counts errors;
std::atomic<std::uint64_t> requests_ok{0}, tokens_made{0}, reauths{0}, connections_opened{0};
std::atomic<std::uint64_t> latency_us_total{0};

std::string gss_text(OM_uint32 major, OM_uint32 minor) {
  std::string s;
  for (const auto& [code, type] : {std::pair{major, GSS_C_GSS_CODE}, std::pair{minor, GSS_C_MECH_CODE}}) {
    OM_uint32 ctx = 0, min = 0;
    for (int i = 0; i < 8; ++i) {  // bounded: a message is a few parts at most
      gss_buffer_desc b{};
      gss_display_status(&min, code, type, GSS_C_NO_OID, &ctx, &b);
      if (!s.empty()) s += "; ";
      s.append(static_cast<const char*>(b.value), b.length);
      gss_release_buffer(&min, &b);
      if (ctx == 0) break;
    }
  }
  return s;
}

// A fresh SPNEGO initial token for the service, base64: what "Proxy-Authorization: Negotiate"
// carries. Each call is a new security context (a new authenticator), as a new connection's is.
std::optional<std::string> negotiate_token(const options& o, failure& why) {
  static gss_OID_desc spnego{6, const_cast<char*>("\x2b\x06\x01\x05\x05\x02")};  // 1.3.6.1.5.5.2
  OM_uint32 minor = 0;
  gss_buffer_desc name_buf{o.spn.size(), const_cast<char*>(o.spn.data())};
  gss_name_t target = GSS_C_NO_NAME;
  OM_uint32 major = gss_import_name(&minor, &name_buf, GSS_C_NT_HOSTBASED_SERVICE, &target);
  if (GSS_ERROR(major)) {
    why = {"gss", "gss_import_name: " + gss_text(major, minor)};
    return std::nullopt;
  }
  gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
  gss_buffer_desc out{};
  major = gss_init_sec_context(&minor, GSS_C_NO_CREDENTIAL, &ctx, target, &spnego, 0, 0, GSS_C_NO_CHANNEL_BINDINGS,
                               GSS_C_NO_BUFFER, nullptr, &out, nullptr, nullptr);
  gss_release_name(&minor, &target);
  std::optional<std::string> token;
  if (GSS_ERROR(major) || out.length == 0) {
    why = {"gss", "gss_init_sec_context: " + gss_text(major, minor)};
  } else {
    std::string b64(4 * ((out.length + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                                  static_cast<const unsigned char*>(out.value), static_cast<int>(out.length));
    b64.resize(static_cast<std::size_t>(n));
    token = std::move(b64);
    ++tokens_made;
  }
  gss_release_buffer(&minor, &out);
  if (ctx != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
  return token;
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

  std::optional<failure> open(const options& o) {
    if (auto f = connect_tcp(fd_, address(o.proxy), o.io_timeout)) return f;
    ++connections_opened;
    return std::nullopt;
  }

  // One GET with an optional Negotiate token; the response is read whole (Content-Length or
  // chunked) and its status returned. `peer_closes` is set when the response says so.
  std::optional<failure> get(const options& o, const std::string* token, bool close_after, int& status) {
    const auto host_at = o.url.find("://") + 3;
    const std::string host = o.url.substr(host_at, o.url.find('/', host_at) - host_at);
    std::string req = "GET " + o.url + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: negotiate_load\r\n";
    if (token) req += "Proxy-Authorization: Negotiate " + *token + "\r\n";
    if (close_after) req += "Connection: close\r\n";
    req += "\r\n";
    for (std::size_t sent = 0; sent < req.size();) {
      const ssize_t n = ::send(fd_, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return failure{"write", std::strerror(errno)};
      sent += static_cast<std::size_t>(n);
    }
    std::size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (buf_.size() > 65536) return failure{"http", "response head over 64 KiB"};
      if (!fill()) return failure{"read", "connection ended before the response head"};
    }
    std::string head = buf_.substr(0, end + 4);
    buf_.erase(0, end + 4);
    if (head.compare(0, 7, "HTTP/1.") != 0) return failure{"http", "not an HTTP response"};
    status = std::atoi(head.c_str() + 9);
    std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return std::tolower(c); });
    const auto field = [&](const std::string& name) -> std::optional<std::string> {
      const auto at = head.find("\r\n" + name + ":");
      if (at == std::string::npos) return std::nullopt;
      const auto from = at + 3 + name.size();
      std::string v = head.substr(from, head.find("\r\n", from) - from);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    };
    if (const auto te = field("transfer-encoding"); te && te->find("chunked") != std::string::npos) {
      for (int chunks = 0; chunks < 1'000'000; ++chunks) {
        std::size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos)
          if (!fill()) return failure{"read", "connection ended in a chunk size"};
        const std::uint64_t n = std::strtoull(buf_.c_str(), nullptr, 16);
        buf_.erase(0, eol + 2);
        if (auto f = skip(n + 2)) return f;
        if (n == 0) break;
      }
    } else if (const auto cl = field("content-length")) {
      if (auto f = skip(std::strtoull(cl->c_str(), nullptr, 10))) return f;
    } else if (status != 304 && status != 204) {
      return failure{"http", "response without Content-Length or chunked"};
    }
    const auto c = field("connection");
    peer_closes_ = (c && c->find("close") != std::string::npos) || head.compare(0, 8, "http/1.0") == 0;
    return std::nullopt;
  }

  bool peer_closes() const { return peer_closes_; }

  void close() {
    if (fd_ >= 0) ::close(fd_), fd_ = -1;
    buf_.clear();
    peer_closes_ = false;
  }

 private:
  bool fill() {
    char tmp[16384];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }
  std::optional<failure> skip(std::uint64_t n) {
    for (int reads = 0; buf_.size() < n; ++reads) {  // bounded by the body size and the read timeout
      if (reads > 1'000'000 || !fill()) return failure{"read", "connection ended in a body"};
    }
    buf_.erase(0, n);
    return std::nullopt;
  }

  int fd_ = -1;
  std::string buf_;
  bool peer_closes_ = false;
};

// Sends one signed-in request: with `token` if given; a 407 is answered once with a new token.
bool signed_get(const options& o, connection& c, bool with_token, bool close_after, steady::time_point t0) {
  failure why;
  std::optional<std::string> token;
  with_token = with_token && o.tokens;
  if (with_token && !(token = negotiate_token(o, why))) {
    errors.add(why.kind, why.message);
    return false;
  }
  int status = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (auto f = c.get(o, token ? &*token : nullptr, close_after, status)) {
      errors.add(f->kind, f->message);
      return false;
    }
    if (status != 407 || attempt == 1 || c.peer_closes() || !o.tokens) break;
    ++reauths;  // the peer did not keep the connection's sign-in: sign in again on it
    if (!(token = negotiate_token(o, why))) {
      errors.add(why.kind, why.message);
      return false;
    }
  }
  if (status != 200) {
    errors.add("status", "HTTP " + std::to_string(status));
    return false;
  }
  ++requests_ok;
  latency_us_total += static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - t0).count());
  return true;
}

void keepalive_worker(const options& o, steady::time_point end) {
  connection c;
  bool open = false;
  for (std::uint64_t i = 0; i < 100'000'000 && steady::now() < end; ++i) {
    bool first = false;
    if (!open) {
      if (auto f = c.open(o)) {
        errors.add(f->kind, f->message);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      open = first = true;
    }
    if (!signed_get(o, c, first, false, steady::now()) || c.peer_closes()) {
      c.close();
      open = false;
    }
  }
}

void newconn_worker(const options& o, steady::time_point end) {
  for (std::uint64_t i = 0; i < 100'000'000 && steady::now() < end; ++i) {
    const auto t0 = steady::now();
    connection c;
    if (auto f = c.open(o)) {
      errors.add(f->kind, f->message);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    signed_get(o, c, true, true, t0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  // One token first: a missing ticket or unknown service is reported at once, not per thread.
  failure why;
  if (o.tokens && !negotiate_token(o, why)) {
    std::fprintf(stderr, "negotiate_load: no token for %s: %s\n", o.spn.c_str(), why.message.c_str());
    return 1;
  }
  tokens_made = 0;
  const auto start = steady::now();
  const auto end = start + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.duration));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(o.connections));
  for (int i = 0; i < o.connections; ++i)
    threads.emplace_back(o.mode == "keepalive" ? keepalive_worker : newconn_worker, std::cref(o), end);
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(steady::now() - start).count();
  const std::uint64_t ok = requests_ok.load();
  std::printf("NEGOTIATE_RESULT {\"mode\":\"%s\",\"connections\":%d,\"seconds\":%.3f,\"requests\":%llu,"
              "\"rps\":%.1f,\"connections_opened\":%llu,\"tokens\":%llu,\"reauths\":%llu,\"mean_ms\":%.3f,"
              "\"failed\":%llu,\"errors\":%s}\n",
              o.mode.c_str(), o.connections, secs, static_cast<unsigned long long>(ok), static_cast<double>(ok) / secs,
              static_cast<unsigned long long>(connections_opened.load()),
              static_cast<unsigned long long>(tokens_made.load()), static_cast<unsigned long long>(reauths.load()),
              ok ? static_cast<double>(latency_us_total.load()) / static_cast<double>(ok) / 1000.0 : 0.0,
              static_cast<unsigned long long>(errors.total()), errors.json().c_str());
  std::fflush(stdout);
  return ok > 0 ? 0 : 1;
}

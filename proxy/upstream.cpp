#include "proxy/upstream.hpp"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "certs/origin_context.hpp"
#include "proxy/issuer_fetch.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/socket_options.hpp"

namespace hallpass {
namespace {
constexpr std::size_t max_dns_cache = 10000;
constexpr std::size_t max_idle_total = 1024;
constexpr std::size_t upstream_buffer_size = 16 * 1024;
// TLS sessions kept per worker, one per origin (pool key): a few KB each (the session and the
// origin's certificate), so at most a few MB per worker.
constexpr std::size_t max_origin_sessions = 1024;

rules::ip_address to_rules(const net::ip::address& a) {
  rules::ip_address r;
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), r.bytes.begin());
  } else {
    r.v6 = true;
    const auto b = a.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), r.bytes.begin());
  }
  return r;
}


// The TLS session key: "scheme://host:port", plus "@connect_host" when the addresses are
// another name's (SafeSearch), or "@address:port" for a transparent connection's original
// destination. The pool's key adds "#device" (origin_address::client).
void write_session_key(const origin_address& to, std::string& out) {
  out.assign(to.tls ? "https://" : "http://").append(to.host).append(":").append(std::to_string(to.port));
  if (!to.connect_host.empty()) {
    out.append("@").append(to.connect_host);
  } else if (to.address) {  // a transparent connection's original destination: its own pool
    out.append("@").append(to.address->address().to_string()).append(":").append(std::to_string(to.address->port()));
  }
}

void write_pool_key(const origin_address& to, std::string& out) {
  write_session_key(to, out);
  if (!to.client.empty()) out.append("#").append(to.client);
}

// Nothing held inside OpenSSL on a TLS connection: no decrypted bytes and no undecrypted TLS
// record that arrived with the response's last one. No system call.
bool nothing_held(upstream_connection& c) {
  if (!c.tls) return true;
  SSL* ssl = c.tls->native_handle();
  return SSL_pending(ssl) == 0 && SSL_has_pending(ssl) == 0 && BIO_ctrl_pending(SSL_get_rbio(ssl)) == 0;
}

// Whether raw[0, n) is whole TLS records: every header's length ends inside it and the last
// ends exactly at n. A partial record handed to OpenSSL would wait in its record buffer, out
// of sight of every check, and be completed by whatever the origin sends next.
bool whole_records(const unsigned char* raw, std::size_t n) {
  std::size_t off = 0;
  while (off + 5 <= n) off += 5 + ((static_cast<std::size_t>(raw[off + 3]) << 8) | raw[off + 4]);
  return off == n;
}

// Runs `call(mem)` with a new, empty memory BIO in place of the SSL's own BIO on one side, then
// puts its own back (freeing mem). For the few OpenSSL calls made outside Asio's engine
// (absorb_post_handshake, ~upstream_connection): the engine owns the BIO pair and finds it as
// it left it. A memory BIO's empty read asks to retry (a static buffer's would be EOF). The
// error queue is cleared before (SSL_get_error reads it) and after. False when no BIO could be
// made; `call` did not run then.
enum class bio_side { read, write };
template <class Call>
bool with_memory_bio(SSL* ssl, bio_side side, Call&& call) {
  BIO* own = side == bio_side::read ? SSL_get_rbio(ssl) : SSL_get_wbio(ssl);
  BIO* mem = own != nullptr ? BIO_new(BIO_s_mem()) : nullptr;
  if (mem == nullptr) return false;
  const auto set = side == bio_side::read ? &SSL_set0_rbio : &SSL_set0_wbio;
  BIO_up_ref(own);  // the reference set() drops now and takes back below
  set(ssl, mem);    // the SSL owns mem until its own is set back
  ERR_clear_error();
  call(mem);
  set(ssl, own);  // frees mem
  ERR_clear_error();
  return true;
}

// What a TLS origin sent on a connection that carried no request yet, read through OpenSSL:
// true when it was only handshake messages (TLS 1.3 session tickets), now consumed, or nothing
// at all; false for anything else: application data, an alert, EOF, a partial record, more
// than one read's worth, or a message OpenSSL answers (a key update, a renegotiation
// request: its answer would wait in the stream's output). The bytes are read from the socket
// here and handed to one SSL_read through a memory BIO (with_memory_bio).
bool absorb_post_handshake(upstream_connection& c) {
  if (!c.tls) return true;
  if (!nothing_held(c)) return false;
  SSL* ssl = c.tls->native_handle();
  if (SSL_is_init_finished(ssl) != 1) return false;
  std::array<unsigned char, 16384> raw;
  const ssize_t n = ::recv(c.stream.socket().native_handle(), raw.data(), raw.size(), MSG_DONTWAIT);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;  // nothing arrived
  if (n == 0 || static_cast<std::size_t>(n) == raw.size()) return false;  // EOF, or more than tickets
  if (!whole_records(raw.data(), static_cast<std::size_t>(n))) return false;
  const std::size_t out_before = BIO_ctrl_wpending(SSL_get_wbio(ssl));
  bool absorbed = false;
  const bool ran = with_memory_bio(ssl, bio_side::read, [&](BIO* mem) {
    if (BIO_write(mem, raw.data(), static_cast<int>(n)) != static_cast<int>(n)) return;
    char byte;
    const int r = SSL_read(ssl, &byte, 1);
    absorbed = r <= 0 && SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ && BIO_ctrl_pending(mem) == 0;
  });
  return ran && absorbed && SSL_has_pending(ssl) == 0 && BIO_ctrl_wpending(SSL_get_wbio(ssl)) == out_before;
}

// Nothing readable on a pooled connection: no stray bytes, no EOF, no error. One system call.
bool quiet(upstream_connection& c) {
  if (!nothing_held(c)) return false;
  char probe;
  const ssize_t n = ::recv(c.stream.socket().native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}
}  // namespace

std::string_view describe(upstream_error e) {
  switch (e) {
    case upstream_error::none: return "ok";
    case upstream_error::bad_name: return "the host name is not valid";
    case upstream_error::dns: return "the site's name could not be found";
    case upstream_error::dns_timeout: return "the site's name could not be found in time";
    case upstream_error::dns_failed: return "the school's name server failed to look the site's name up";
    case upstream_error::refused_destination: return "the destination is not allowed";
    case upstream_error::connect_refused: return "the site refused the connection";
    case upstream_error::connect_timeout: return "the site did not answer in time";
    case upstream_error::connect_failed: return "the connection to the site failed";
    case upstream_error::tls_unverified: return "the site's certificate could not be trusted";
    case upstream_error::tls_outdated: return "the site offers only an outdated secure connection";
    case upstream_error::tls_failed: return "the secure connection to the site failed";
    case upstream_error::tls_needs_direct: return "the site cannot be opened with inspection";
    case upstream_error::no_descriptors: return "the web filter has no file descriptor left (too many open files)";
  }
  return "error";
}

upstream::upstream(net::any_io_executor ex, shared_state& state)
    : ex_(ex), resolver_(ex), state_(state) {
  // A family that answered after its lookup (dns_resolver::family_grace): added to the name's
  // cached answer, so that the next request can fall back to it.
  resolver_.on_late_addresses([this](const std::string& name, const std::vector<net::ip::address>& addresses) {
    const auto it = dns_cache_.find(name);
    if (it == dns_cache_.end()) return;
    for (const auto& a : addresses) {
      const tcp::endpoint e(a, 0);
      const bool known = std::any_of(it->second.endpoints.begin(), it->second.endpoints.end(),
                                     [&](const tcp::endpoint& k) { return k.address() == a; });
      if (!known) it->second.endpoints.push_back(e);
    }
  });
}

const destination_rules& upstream::rules_for(const configuration& cfg) {
  auto gateway = state_.gateway_addresses.load(std::memory_order_acquire);
  if (cfg.generation == rules_generation_ && gateway == rules_gateway_) return rules_;
  rules_ = destination_rules_of(cfg.daemon, *cfg.policy, gateway ? *gateway : std::vector<rules::ip_address>(),
                                state_.own_listeners);
  rules_generation_ = cfg.generation;
  rules_gateway_ = std::move(gateway);
  return rules_;
}

destination_verdict upstream::check(const tcp::endpoint& e, const configuration& cfg) {
  return check_destination(to_rules(e.address()), e.port(), rules_for(cfg));
}

void upstream::count_refused(destination_verdict v) {
  state_.metrics
      .rejected(v == destination_verdict::denied_network ? metrics::rejection::destination_denied
                                                         : metrics::rejection::loopback_refused)
      .Increment();
}

net::awaitable<std::pair<std::vector<tcp::endpoint>, upstream_error>> upstream::resolve(const std::string& host,
                                                                                        std::uint16_t port,
                                                                                        const configuration& cfg,
                                                                                        std::string& detail) {
  std::vector<tcp::endpoint> out;
  error_code ec;
  // An IP literal (brackets already removed by the engine's normalisation).
  const auto literal = net::ip::make_address(host, ec);
  if (!ec) {
    out.emplace_back(literal, port);
    co_return std::make_pair(std::move(out), upstream_error::none);
  }
  if (auto it = cfg.daemon.hosts.find(host); it != cfg.daemon.hosts.end()) {
    for (const auto& ip : it->second) {
      out.emplace_back(net::ip::make_address(ip.to_string()), port);
    }
    co_return std::make_pair(std::move(out), upstream_error::none);
  }
  const auto now = std::chrono::steady_clock::now();
  if (auto it = dns_cache_.find(host); it != dns_cache_.end()) {
    if (it->second.expires > now) {
      for (auto e : it->second.endpoints) {
        e.port(port);
        out.push_back(e);
      }
      co_return std::make_pair(std::move(out), upstream_error::none);
    }
    dns_cache_.erase(it);
  }
  const auto& u = cfg.daemon.upstream;
  resolver_.use_servers(u.dns_servers);
  auto answer = co_await resolver_.lookup(host, u.dns_timeout);
  if (answer.result != dns_resolver::status::ok) {
    detail = std::move(answer.detail);
    // A name server that fails (SERVFAIL, REFUSED) is not a misspelt name: its own page (DNS
    // audit, 2026-12-07, D4: it said "check the address for spelling mistakes").
    const auto error = answer.result == dns_resolver::status::timeout  ? upstream_error::dns_timeout
                       : answer.result == dns_resolver::status::failed ? upstream_error::dns_failed
                                                                        : upstream_error::dns;
    co_return std::make_pair(std::move(out), error);
  }
  for (const auto& a : answer.addresses) out.emplace_back(a, port);
  if (u.dns_cache.count() > 0) {
    const auto at = std::chrono::steady_clock::now();
    if (dns_cache_.size() >= max_dns_cache && at >= next_dns_sweep_) {
      std::erase_if(dns_cache_, [at](const auto& e) { return e.second.expires <= at; });
      next_dns_sweep_ = at + std::chrono::seconds(1);
    }
    if (dns_cache_.size() < max_dns_cache) dns_cache_[host] = cached_name{out, at + u.dns_cache};
  }
  co_return std::make_pair(std::move(out), upstream_error::none);
}

net::awaitable<upstream::destination_check> upstream::check_destination_of(const origin_address& to,
                                                                          const configuration& cfg) {
  destination_check out;
  std::vector<tcp::endpoint> endpoints;
  if (to.fixed_address()) {
    endpoints.push_back(*to.address);
  } else {
    auto resolved = co_await resolve(to.looked_up_name(), to.port, cfg, out.detail);
    if (resolved.second != upstream_error::none || resolved.first.empty()) {
      out.lookup = resolved.second == upstream_error::none ? upstream_error::dns : resolved.second;
      if (out.detail.empty()) out.detail = "no addresses";
      co_return out;
    }
    endpoints = std::move(resolved.first);
  }
  for (const auto& e : endpoints) {
    const auto v = check(e, cfg);
    if (v == destination_verdict::allowed) {
      out.refused.reset();
      co_return out;
    }
    if (!out.refused) {
      out.refused = v;
      out.address = e.address().to_string();
    }
  }
  co_return out;
}

net::awaitable<acquire_result> upstream::acquire(const origin_address& to, const configuration& cfg,
                                                 upstream_use use, bool allow_pooled) {
  acquire_result r;
  const std::uint16_t port = to.port;
  const std::string& host = to.looked_up_name();
  if (use == upstream_use::http && !cfg.daemon.upstream.any_port) {
    const auto& u = cfg.daemon.upstream;
    const auto& ports = u.ports_set ? u.ports : default_http_ports();
    if (std::find(ports.begin(), ports.end(), port) == ports.end()) {
      r.error = upstream_error::refused_destination;
      r.reason = "requests to this port are not allowed";
      r.detail = "port " + std::to_string(port);
      state_.metrics.rejected(metrics::rejection::port_not_allowed).Increment();
      co_return r;
    }
  }
  const bool fixed_address = to.fixed_address();
  if (allow_pooled) {
    // The key is written into a string kept across requests (no allocation per request) and
    // used before any co_await: another request on this worker rewrites it.
    write_pool_key(to, key_scratch_);
    if (auto it = idle_.find(key_scratch_); it != idle_.end()) {
      // Most recently used first: the connection the origin is least likely to have closed.
      auto& list = it->second;
      while (!list.empty()) {
        auto c = std::move(list.back());
        list.pop_back();
        --idle_count_;
        // Anything readable (stray bytes from the origin, or EOF) closes it: those bytes are
        // no answer to this request. A reload may have denied its address meanwhile, or
        // changed what is trusted (upstream.ca_file): a TLS connection verified under another
        // generation's origin context is closed, as its sessions are (handshake()).
        const bool same_trust = !c->tls || SSL_get_SSL_CTX(c->tls->native_handle()) == cfg.origin_tls.get();
        // A reload may have moved the name (`hosts:`): a busy kept-alive connection to the old
        // address was reused for as long as it stayed busy (outside-in audit of reloads,
        // 2026-12-07, finding 1). A connection to an address given with the request
        // (transparent mode's original destination) goes where it was asked to.
        if (c->generation != cfg.generation && !fixed_address && !still_named(*c, host, cfg)) continue;
        c->generation = cfg.generation;
        if (same_trust && quiet(*c) && check(c->peer, cfg) == destination_verdict::allowed) {
          c->reused = true;
          state_.metrics.upstream_pool_reused.Increment();
          r.conn = std::move(c);
          co_return r;
        }
      }
    }
  }
  std::string dns_detail;
  std::pair<std::vector<tcp::endpoint>, upstream_error> resolved;
  if (fixed_address) {
    resolved.first.push_back(*to.address);
    resolved.second = upstream_error::none;
  } else {
    resolved = co_await resolve(host, port, cfg, dns_detail);
  }
  const auto& endpoints = resolved.first;
  const upstream_error dns_error = resolved.second;
  if (dns_error != upstream_error::none || endpoints.empty()) {
    r.error = dns_error == upstream_error::none ? upstream_error::dns : dns_error;
    r.reason = describe(r.error);
    r.detail = dns_detail.empty() ? "no addresses" : dns_detail;
    state_.metrics.upstream_failed(metrics::upstream_failure::dns).Increment();
    co_return r;
  }
  std::vector<tcp::endpoint> allowed;
  destination_verdict refusal = destination_verdict::allowed;
  for (const auto& e : endpoints) {
    const auto v = check(e, cfg);
    if (v == destination_verdict::allowed) {
      allowed.push_back(e);
    } else if (refusal == destination_verdict::allowed) {
      refusal = v;
    }
  }
  if (allowed.empty()) {
    r.error = upstream_error::refused_destination;
    r.reason = describe(refusal);
    r.detail = endpoints.front().address().to_string();
    count_refused(refusal);
    co_return r;
  }
  // An origin that left out its intermediate: fetch it from the address its certificate names
  // for it, as browsers do, and connect once more (at most twice more: rarely two are missing).
  std::string missing_issuer;
  for (int fetched = 0;; ++fetched) {
    if (co_await connect_new(allowed, to, cfg, r, missing_issuer)) co_return r;
    if (r.error != upstream_error::tls_unverified || missing_issuer.empty() || fetched == 2) co_return r;
    if (!co_await learn_issuer(missing_issuer, cfg, r)) co_return r;
    r = acquire_result{};
    missing_issuer.clear();
  }
}

net::awaitable<bool> upstream::learn_issuer(const std::string& url, const configuration& cfg, acquire_result& r) {
  if (!cfg.daemon.upstream.fetch_issuers || !cfg.issuers) co_return false;
  // Each address once in a while: one that failed, or whose certificate did not complete the
  // chain, is not fetched again for every request to the site.
  const auto now = std::chrono::steady_clock::now();
  if (auto it = issuer_tries_.find(url); it != issuer_tries_.end() && it->second > now) {
    r.detail += "; its certificate names " + url + " for the missing one, fetched in the last ten minutes";
    co_return false;
  }
  if (issuer_tries_.size() >= max_issuer_tries) issuer_tries_.clear();
  issuer_tries_[url] = now + issuer_retry_after;
  auto got = co_await fetch_issuer(*this, url, cfg);
  if (!got.error.empty()) {
    state_.metrics.tls_issuer_fetch_failed.Increment();
    r.detail += "; fetching the missing certificate from " + url + " failed: " + got.error;
    co_return false;
  }
  state_.metrics.tls_issuer_fetched.Increment();
  cfg.issuers->add(std::move(got.certs));
  co_return true;
}

namespace {

// `endpoints` in the resolver's order, the families alternating from the first one's.
std::vector<tcp::endpoint> alternate_families(const std::vector<tcp::endpoint>& endpoints) {
  if (endpoints.size() < 2) return endpoints;
  const bool first_v6 = endpoints.front().address().is_v6();
  std::vector<tcp::endpoint> same, other, out;
  for (const auto& e : endpoints) (e.address().is_v6() == first_v6 ? same : other).push_back(e);
  for (std::size_t i = 0; i < std::max(same.size(), other.size()); ++i) {
    if (i < same.size()) out.push_back(same[i]);
    if (i < other.size()) out.push_back(other[i]);
  }
  return out;
}

}  // namespace

net::awaitable<bool> upstream::connect_new(const std::vector<tcp::endpoint>& allowed, const origin_address& to,
                                           const configuration& cfg, acquire_result& r, std::string& missing_issuer) {
  auto c = std::make_unique<upstream_connection>(ex_);
  write_pool_key(to, c->key);
  c->generation = cfg.generation;
  c->named_by_hosts = !to.fixed_address() && cfg.daemon.hosts.contains(to.looked_up_name());
  write_session_key(to, c->session_key);
  // One address after another, the families alternating (RFC 8305 4: a name's first address,
  // then the other family's first, ...), each given at most a share of connect_timeout while
  // another address is left to try: one that drops what is sent to it (IPv6 routed at the
  // gateway and dropped upstream, a stale AAAA record) took the whole connect_timeout, and every
  // dual-stack site failed with a 504 where a browser connecting itself fell back to IPv4 in a
  // moment (outside-in audit with real clients, 2026-12-07, H2). Not in parallel: a school's
  // origins are few and the proxy's connections many.
  auto order = alternate_families(allowed);
  // Addresses that did not answer lately go last, in their order (unanswered_).
  const auto started = std::chrono::steady_clock::now();
  const auto lately_unanswered = [&](const tcp::endpoint& e) {
    const auto it = unanswered_.find(e.address().to_string());
    return it != unanswered_.end() && it->second > started;
  };
  if (!unanswered_.empty()) std::stable_partition(order.begin(), order.end(), [&](const auto& e) { return !lately_unanswered(e); });
  const auto budget = cfg.daemon.upstream.connect_timeout;
  const auto share = std::clamp<std::chrono::steady_clock::duration>(budget / 4, std::chrono::milliseconds(500),
                                                                      std::chrono::seconds(2));
  const auto deadline = std::chrono::steady_clock::now() + budget;
  error_code ec = beast::error::timeout;
  tcp::endpoint ep;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) {
      ec = beast::error::timeout;
      break;
    }
    c->stream.expires_after(i + 1 < order.size() ? std::min(left, share) : left);
    auto [attempt] = co_await c->stream.async_connect(order[i], nothrow);
    ec = attempt;
    if (!ec) {
      ep = order[i];
      if (!unanswered_.empty()) unanswered_.erase(ep.address().to_string());
      break;
    }
    if (is_descriptor_shortage(ec)) break;
    if (ec == beast::error::timeout && i + 1 < order.size()) {
      if (unanswered_.size() >= max_unanswered) {
        std::erase_if(unanswered_, [&](const auto& u) { return u.second <= started; });
        if (unanswered_.size() >= max_unanswered) unanswered_.clear();
      }
      unanswered_[order[i].address().to_string()] = started + unanswered_for;
    }
    error_code ignored;
    c->stream.socket().close(ignored);  // the next address gets a socket of its own
  }
  if (ec) {
    if (ec == beast::error::timeout) {
      r.error = upstream_error::connect_timeout;
      state_.metrics.upstream_failed(metrics::upstream_failure::timeout).Increment();
    } else if (ec == net::error::connection_refused) {
      r.error = upstream_error::connect_refused;
      state_.metrics.upstream_failed(metrics::upstream_failure::refused).Increment();
    } else if (is_descriptor_shortage(ec) || descriptors_exhausted()) {
      // The proxy's own shortage, not the site's: a 503 that says so (it was a 502 blaming the
      // site, counted as a connect failure: resource audit, 2026-12-06). The range connect
      // reports a socket it could not open as "Operation canceled", so a failure is checked.
      r.error = upstream_error::no_descriptors;
      report_descriptor_shortage(state_, "an origin connection");
    } else {
      r.error = upstream_error::connect_failed;
      state_.metrics.upstream_failed(metrics::upstream_failure::connect).Increment();
    }
    r.reason = describe(r.error);
    r.detail = ec.message();
    co_return false;
  }
  c->peer = ep;
  c->stream.expires_never();
  set_proxy_socket_options(c->stream.socket());
  // Beast reads into this buffer at most its free capacity at a time (512 bytes when it is
  // empty): without room, a 1 KiB response took three reads and a 1 MiB body 2,048.
  c->buffer.reserve(upstream_buffer_size);
  if (to.tls) {
    if (!co_await handshake(*c, to.host, cfg, r)) {
      // No TLS stream when handshake() could not set one up (no origin context after a reload
      // turned inspection off; a name SNI cannot carry): read through null, it crashed the
      // daemon (outside-in audit of HTTPS, 2026-12-07, finding 1).
      missing_issuer = c->tls ? certs::missing_issuer_url(c->tls->native_handle()) : std::string();
      co_return false;
    }
  }
  r.conn = std::move(c);
  co_return true;
}

namespace {

// The origin's TLS is older than the 1.2 we require (origin_context.hpp), or it speaks no
// version we do: an answer that trying again will not change.
bool outdated_protocol(const error_code& ec) {
  if (ec.category() != net::error::get_ssl_category()) return false;
  switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::optional<std::string> origin_wants(const upstream_connection& c, std::string_view error) {
  // The origin asked for a client certificate and then ended the connection: its alert
  // (certificate_required, handshake_failure, bad_certificate) is often lost to the reset that
  // follows it, so the request alone decides. (A timeout never comes here: refuse_unanswered.)
  if (c.tls && certs::asked_for_client_certificate(c.tls->native_handle())) {
    return "it asks for a client certificate, which only the device itself can present (the site belongs in "
           "inspection.never; " + std::string(error) + ")";
  }
  // HTTP/2 frames where an HTTP/1.1 answer should be (the site ignored ALPN, which offered
  // http/1.1 only): a 9-byte frame header on stream 0, SETTINGS (4) or GOAWAY (7). Or the
  // site's refusal of ALPN itself ("no application protocol").
  const auto* b = static_cast<const unsigned char*>(c.buffer.data().data());
  const bool h2_frame = c.tls && c.buffer.size() >= 9 && b[0] == 0 && (b[3] == 4 || b[3] == 7) && b[5] == 0 && b[6] == 0 &&
                        b[7] == 0 && (b[8] & 0x7F) == 0;
  if (h2_frame || (c.tls && error.find("no application protocol") != std::string_view::npos)) {
    return "it speaks only HTTP/2, which the checks do not read yet (the site belongs in inspection.never; " +
           std::string(error) + ")";
  }
  return std::nullopt;
}

net::awaitable<bool> upstream::handshake(upstream_connection& c, const std::string& name, const configuration& cfg,
                                         acquire_result& r) {
  SSL* ssl = cfg.origin_tls ? SSL_new(cfg.origin_tls.get()) : nullptr;
  if (ssl == nullptr || !certs::prepare_origin_ssl(ssl, name)) {
    if (ssl != nullptr) SSL_free(ssl);
    r.error = upstream_error::tls_failed;
    r.reason = describe(r.error);
    r.detail = "cannot set up TLS for '" + name + "'";
    state_.metrics.tls_origin_failed.Increment();
    co_return false;
  }
  c.tls = std::make_unique<tls_stream>(c.stream, ssl);  // owns ssl from here
  // The session kept for this origin, if any; sessions the origin issues replace it. Same
  // context only: a session verified under another generation's trust is never resumed.
  if (sessions_context_.owner_before(cfg.origin_tls) || cfg.origin_tls.owner_before(sessions_context_) || !sessions_) {
    sessions_ = std::make_shared<certs::origin_sessions>(max_origin_sessions);
    sessions_context_ = cfg.origin_tls;
  }
  c.sessions = sessions_;
  c.sessions->attach(ssl, c.session_key);
  c.stream.expires_after(cfg.daemon.upstream.connect_timeout);
  auto [ec] = co_await c.tls->async_handshake(net::ssl::stream_base::client, nothrow);
  c.stream.expires_never();
  if (ec) {
    c.sessions->forget(c.session_key);
    // Verification first: the school CA must never vouch for a site that failed it, and the
    // page says which check failed.
    std::string why = certs::verify_failure(c.tls->native_handle());
    if (!why.empty()) {
      r.error = upstream_error::tls_unverified;
      r.detail = std::move(why);
      state_.metrics.tls_origin_unverified.Increment();
    } else {
      auto wants = origin_wants(c, ec.message());
      r.error = ec == beast::error::timeout ? upstream_error::connect_timeout
                : outdated_protocol(ec)         ? upstream_error::tls_outdated
                : wants                         ? upstream_error::tls_needs_direct
                                                : upstream_error::tls_failed;
      r.detail = wants ? std::move(*wants) : ec.message();
      // An answer in plain HTTP to our ClientHello reads to OpenSSL as a record of an unknown
      // version: said as what it is (outside-in audit of HTTPS, 2026-12-07).
      if (!wants && ec.category() == net::error::get_ssl_category() &&
          ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_WRONG_VERSION_NUMBER) {
        r.detail = "the site answered without TLS (plain HTTP on a port for HTTPS?): " + ec.message();
      }
      state_.metrics.tls_origin_failed.Increment();
    }
    r.reason = describe(r.error);
    co_return false;
  }
  (SSL_session_reused(ssl) == 1 ? state_.metrics.tls_origin_resumed : state_.metrics.tls_origin_full).Increment();
  c.io.use_tls(*c.tls);
  co_return true;
}

bool upstream::still_named(const upstream_connection& c, const std::string& host, const configuration& cfg) {
  const auto it = cfg.daemon.hosts.find(host);
  if (it == cfg.daemon.hosts.end()) return !c.named_by_hosts;  // a removed entry: the name is looked up now
  return std::find(it->second.begin(), it->second.end(), to_rules(c.peer.address())) != it->second.end();
}

bool upstream::still_allowed(const upstream_connection& c, const configuration& cfg) {
  return check(c.peer, cfg) == destination_verdict::allowed;
}

void upstream::release(std::unique_ptr<upstream_connection> c, const configuration& cfg) {
  const unsigned per_origin = cfg.daemon.upstream.pool_per_origin;
  if (per_origin == 0 || idle_count_ >= max_idle_total || c->buffer.size() != 0) return;
  // Bytes after the end of the response already read or decrypted: out of step with its
  // framing. What is still in the socket (a late body after a 204, an EOF) is found by the
  // peek before reuse, which sees everything a peek here would and what arrived since: one
  // recv per request, not two (bench/README.md, issue 10 keep-alive).
  if (!nothing_held(*c)) return;
  auto& list = idle_[c->key];
  if (list.size() >= per_origin) return;
  c->stream.expires_never();
  c->idle_since = std::chrono::steady_clock::now();
  c->reused = false;
  list.push_back(std::move(c));
  ++idle_count_;
}

upstream_connection::~upstream_connection() {
  // The alert is written by SSL_shutdown into a memory BIO put in place of the stream's own
  // output BIO (Asio's engine would need an asynchronous write to send it) and sent straight
  // to the socket without waiting; a full send buffer or a closed peer just loses it. Skipped
  // when the stream's output BIO still holds bytes (they must go first), nothing was
  // established, or a write was cut part way (write_cut).
  if (!tls || write_cut || !stream.socket().is_open()) return;
  SSL* ssl = tls->native_handle();
  if (SSL_is_init_finished(ssl) != 1 || (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) != 0 ||
      BIO_ctrl_wpending(SSL_get_wbio(ssl)) != 0)
    return;
  with_memory_bio(ssl, bio_side::write, [&](BIO* mem) {
    // As if the origin's close_notify had come: SSL_shutdown writes ours and does not wait.
    SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_RECEIVED_SHUTDOWN);
    if (SSL_shutdown(ssl) < 0) return;
    char* data = nullptr;
    const long n = BIO_get_mem_data(mem, &data);
    if (n > 0) (void)::send(stream.socket().native_handle(), data, static_cast<std::size_t>(n), MSG_DONTWAIT | MSG_NOSIGNAL);
  });
}

void upstream::give_back_unused(std::unique_ptr<upstream_connection> c, const configuration& cfg) {
  if (!absorb_post_handshake(*c)) return;
  release(std::move(c), cfg);
}

void upstream::drop_pinned(std::uint64_t origin_sign_in) {
  const std::string suffix = " #" + std::to_string(origin_sign_in);  // pool_client's ending (exchange.cpp)
  for (auto it = idle_.begin(); it != idle_.end();) {
    if (it->first.ends_with(suffix)) {
      idle_count_ -= it->second.size();
      it = idle_.erase(it);
    } else {
      ++it;
    }
  }
}

void upstream::sweep(std::chrono::milliseconds pool_idle) {
  const auto cutoff = std::chrono::steady_clock::now() - pool_idle;
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    // Oldest first (release() appends): drop the stale prefix.
    std::size_t stale = 0;
    while (stale < list.size() && list[stale]->idle_since < cutoff) ++stale;
    list.erase(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(stale));
    idle_count_ -= stale;
    it = list.empty() ? idle_.erase(it) : std::next(it);
  }
}

void upstream::close_all() {
  idle_.clear();
  idle_count_ = 0;
}

}  // namespace hallpass

// The upstream side of one worker: name resolution (the config's `hosts:` map, then DNS
// through the worker's c-ares resolver with a deadline per request, with a small positive
// cache), the destination check before any packet is sent (proxy/destination.hpp: the
// proxy's own ports, loopback, link-local, upstream.deny_networks / allow_networks, and for
// plain HTTP upstream.ports), connecting with a deadline, and a bounded pool of idle
// keep-alive connections per origin.
//
// The pool never hands one user's bytes to another: a connection goes back to the pool only
// when its response ended exactly where its framing said (the caller's promise) and nothing
// more has been read (its buffer, and for TLS OpenSSL's, are empty); before reuse a
// non-blocking peek must find nothing more from the origin (no late body after a 204 or a
// HEAD, no EOF), or the connection is closed instead. One recv(MSG_PEEK | MSG_DONTWAIT) per
// reuse: the peek is made once, as late as possible, not also at release.
//
// A new TLS connection to an origin offers the session kept from the last connection to the
// same pool key (certs/origin_sessions.hpp, at most max_origin_sessions per worker), so a
// reconnection resumes instead of paying a full handshake and chain verification.
//
// Belongs to one worker: use only from that worker's event-loop thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "certs/origin_sessions.hpp"
#include "proxy/configuration.hpp"
#include "proxy/destination.hpp"
#include "proxy/dns_resolver.hpp"
#include "proxy/duplex_stream.hpp"
#include "proxy/net.hpp"

namespace hallpass {

class shared_state;

struct upstream_connection {
  explicit upstream_connection(net::any_io_executor ex) : stream(ex) {}
  // A TLS connection whose handshake completed ends with a close_notify to the origin (sent
  // without waiting: one non-blocking send), so the origin sees a clean end, not a truncation.
  ~upstream_connection();
  upstream_connection(const upstream_connection&) = delete;
  upstream_connection& operator=(const upstream_connection&) = delete;
  beast::tcp_stream stream;  // the TCP connection: deadlines, splice
  duplex_stream io{stream};  // what requests are written to and responses read from
  // The TLS session store this connection's SSL hands new sessions to: a ticket may arrive
  // with any response, even after a reload replaced the worker's store. Declared before tls.
  std::shared_ptr<certs::origin_sessions> sessions;
  std::unique_ptr<tls_stream> tls;  // set for an https origin, after its verified handshake
  beast::flat_buffer buffer;
  // The pool's key: "scheme://host:port" (+ "@address host" when that differs, + "#device"
  // for a device's own connection: origin_address::client).
  std::string key;
  // The TLS session kept for resumption: the pool key without the device (a session verified
  // for one name is offered for that name only, whichever device asks).
  std::string session_key;
  tcp::endpoint peer;  // checked again against the destination rules before reuse
  // The configuration it was connected (or last reused) under, and whether a `hosts:` entry
  // gave its address: a reload that adds, changes or removes the name's entry moves the name at
  // once, pooled connections too (upstream::acquire).
  std::uint64_t generation = 0;
  bool named_by_hosts = false;
  bool reused = false;
  // A write to it was cancelled part way (the origin refused an upload while it went up:
  // response_reader.hpp), perhaps inside a TLS record: no close_notify follows it.
  bool write_cut = false;
  std::chrono::steady_clock::time_point idle_since;
};

enum class upstream_error {
  none,
  bad_name,
  dns,                  // the name does not exist or the lookup failed: 502
  dns_timeout,          // no answer within upstream.dns_timeout: 504
  dns_failed,           // the name servers failed (SERVFAIL, REFUSED, unreachable): 502, not "misspelt"
  refused_destination,  // the destination check or the port: 403, before any connection
  connect_refused,
  connect_timeout,
  connect_failed,
  tls_unverified,  // an https origin's certificate failed verification: 502 naming the check
  tls_outdated,    // an https origin offers only TLS older than 1.2: 502 saying retrying cannot help
  tls_failed,      // an https origin's handshake failed otherwise
  tls_needs_direct,  // an https origin wants what an inspecting proxy cannot give (origin_wants)
  no_descriptors     // the proxy has no file descriptor left for the connection: 503, not the site's fault
};
std::string_view describe(upstream_error e);

// What a request is for: plain HTTP is held to upstream.ports; a tunnel's port was checked
// against connect.ports by the session.
enum class upstream_use { http, tunnel };

// Where a request goes: the site (its Host, and for TLS its SNI and the name its certificate
// must carry), the port, whether it is https, and the name whose addresses to connect to
// instead when the policy says so (SafeSearch); "" for the site's own.
struct origin_address {
  std::string host;
  std::uint16_t port = 80;
  bool tls = false;
  std::string connect_host;
  // Transparent mode (transparent.hpp): connect to exactly this address, the client's original
  // destination, instead of any address of `host` (unless connect_host is set: SafeSearch's
  // front end is the policy's choice, not the client's). Still held to the destination check.
  std::optional<tcp::endpoint> address;
  // The device the request came from (its address, as logged): pooled connections are each
  // device's own, so that whatever an origin sends late on one (a second answer after a 204,
  // the answer to a request hidden in a body it misread) can reach no other device. Empty:
  // not a device's (issuer fetches, never pooled).
  std::string client;

  // The name whose addresses are used: the site's, or the one the policy connects to instead
  // (SafeSearch: forcesafesearch.google.com for www.google.com).
  const std::string& looked_up_name() const { return connect_host.empty() ? host : connect_host; }
  // Whether `address` is where it goes (transparent mode's original destination), no name
  // looked up.
  bool fixed_address() const { return address && connect_host.empty(); }
};

// For an origin connection that ended without an answer (a failed TLS handshake, or no response
// head): what the site wanted that an inspecting proxy cannot give, in words for the page and
// the log, when its TLS session or its first bytes say so (it asked for a client certificate;
// it speaks only HTTP/2); nullopt otherwise. The fix is inspection.never for the site: the
// device then talks to it directly. Not for a timeout: a slow site is only slow.
std::optional<std::string> origin_wants(const upstream_connection& c, std::string_view error);

struct acquire_result {
  std::unique_ptr<upstream_connection> conn;
  upstream_error error = upstream_error::none;
  std::string_view reason;  // a sentence for the error page and the log (describe(error) or finer)
  std::string detail;
};

class upstream {
 public:
  // Sets up the worker's resolver (reads /etc/resolv.conf) and finds the gateway's own
  // addresses (getifaddrs): at worker start, on the main thread.
  upstream(net::any_io_executor ex, shared_state& state);

  // A connection to host:port: from the pool when one is idle there (allow_pooled) and
  // passes the peek, else a new one. Refused (refused_destination) before any lookup when
  // the port is not allowed for `use`, and before connecting when no resolved address passes
  // the destination check.
  // An https origin is connected with TLS (cfg.origin_tls: verified, SNI, TLS 1.2+) before it
  // is returned; its failures are tls_unverified (with OpenSSL's reason in `detail`) or
  // tls_failed. Pooled connections are keyed by scheme, host, port, connect_host and the
  // device (origin_address::client); TLS sessions by the same without the device.
  net::awaitable<acquire_result> acquire(const origin_address& to, const configuration& cfg, upstream_use use,
                                         bool allow_pooled = true);
  // Offers back a connection whose last response was complete (ended where its framing said)
  // and kept alive. REQUIRES: nothing of a later message was read into c->buffer by the
  // caller. Taken only when its buffer (and OpenSSL's) is empty; else closed.
  void release(std::unique_ptr<upstream_connection> c, const configuration& cfg);
  // Offers back a connection that never carried a request (an inspected tunnel's prefetched
  // one that no request took). A TLS 1.3 origin sends its session tickets after the handshake;
  // unread, they would fail the peek before reuse and the connection would be closed there.
  // What has arrived is read through OpenSSL first (no system call beyond one recv): tickets
  // and other handshake messages are taken (a ticket is kept for resumption), and anything
  // else (application data, an alert, EOF, a partial record) closes the connection.
  void give_back_unused(std::unique_ptr<upstream_connection> c, const configuration& cfg);
  // Whether c's address is still allowed by cfg's destination rules (a reload may have denied
  // it since c was connected): what acquire() checks of a pooled connection before reuse, for
  // one that waited elsewhere (origin_prefetch.hpp). Not the peek: a TLS 1.3 origin's session
  // tickets, unread after the handshake, would fail it.
  bool still_allowed(const upstream_connection& c, const configuration& cfg);
  // Whether cfg still sends `host` to c's address: its `hosts:` entry names it, or, for a
  // connection whose address DNS gave, the name has no entry (a pooled connection made under
  // another configuration is reused only then).
  static bool still_named(const upstream_connection& c, const std::string& host, const configuration& cfg);
  // Closes pooled connections idle for longer than pool_idle. Called by the worker's timer.
  void sweep(std::chrono::milliseconds pool_idle);
  // Closes the idle connections of a client connection that signed in to origins by connection
  // (client_connection::origin_sign_in), when it ends: no other request can ever take them, and
  // they would hold places of max_idle_total until the sweep (review, 2026-12-07).
  void drop_pinned(std::uint64_t origin_sign_in);
  void close_all();

  // The addresses of host (an IP literal, a `hosts:` entry, the cache or DNS), or an error
  // (dns, dns_timeout) with c-ares' words in `detail`. Public for transparent mode, which
  // checks that a Host or SNI leads to the connection's original destination.
  net::awaitable<std::pair<std::vector<tcp::endpoint>, upstream_error>> resolve(const std::string& host,
                                                                                std::uint16_t port,
                                                                                const configuration& cfg,
                                                                                std::string& detail);

  // Where an inspected tunnel's requests will go, checked before its 200 as a relayed tunnel's
  // connection is (its failure is the CONNECT's answer): `refused` with the verdict and the
  // first address check() refuses, when every address of `to` is one the school does not
  // open; `lookup` (dns, dns_timeout, with c-ares' words in `detail`) when the name could not
  // be looked up, which the caller hands to the prefetch (origin_prefetch.hpp) so that the
  // first request shows it on the HTTPS error page without asking again. A successful lookup
  // lands in the DNS cache, so the prefetch's acquire() asks nothing again either.
  struct destination_check {
    std::optional<destination_verdict> refused;
    std::string address;
    upstream_error lookup = upstream_error::none;
    std::string detail;
  };
  net::awaitable<destination_check> check_destination_of(const origin_address& to, const configuration& cfg);

  // Whether `e` may be connected to under cfg (destination.hpp: loopback, link-local,
  // upstream.deny_networks, the gateway's own addresses); acquire() asks it of every address.
  destination_verdict check(const tcp::endpoint& e, const configuration& cfg);
  // Counts a destination check()'s refusal in hallpass_rejected_total.
  void count_refused(destination_verdict v);

 private:
  struct cached_name {
    std::vector<tcp::endpoint> endpoints;
    std::chrono::steady_clock::time_point expires;
  };
  // The TLS handshake with an https origin, verified against cfg.origin_tls's trust. Fills r
  // on failure.
  net::awaitable<bool> handshake(upstream_connection& c, const std::string& name, const configuration& cfg,
                                 acquire_result& r);
  // A new connection to one of `allowed` (and its handshake for TLS): true with r.conn set, or
  // false with r's error filled and, when the origin's chain lacked an issuer, the address its
  // certificate names for it in missing_issuer.
  net::awaitable<bool> connect_new(const std::vector<tcp::endpoint>& allowed, const origin_address& to,
                                   const configuration& cfg, acquire_result& r, std::string& missing_issuer);
  // Fetches the certificate at `url` into cfg.issuers (issuer_fetch.hpp): true when one was
  // fetched (connect again); false, saying why in r.detail, when upstream.fetch_issuers is off,
  // the address was tried in the last issuer_retry_after, or the fetch failed.
  net::awaitable<bool> learn_issuer(const std::string& url, const configuration& cfg, acquire_result& r);
  // The destination rules for cfg's generation and the gateway's addresses as last read, built
  // again when either changes.
  const destination_rules& rules_for(const configuration& cfg);

  net::any_io_executor ex_;
  dns_resolver resolver_;
  shared_state& state_;
  destination_rules rules_;
  std::shared_ptr<const std::vector<rules::ip_address>> rules_gateway_;  // the addresses rules_ was built with
  std::uint64_t rules_generation_ = ~std::uint64_t{0};
  std::unordered_map<std::string, cached_name> dns_cache_;
  // A full cache drops its expired answers, at most once a second; while it stays full a new
  // name is not cached. (It was emptied whole: one device resolving 10,000 names under a
  // wildcard domain flushed every cached answer, resource audit, 2026-12-06.)
  std::chrono::steady_clock::time_point next_dns_sweep_{};
  // Idle connections per "host:port", oldest first. An emptied entry stays until the sweep, so
  // a busy origin does not allocate its key again on every request.
  std::unordered_map<std::string, std::vector<std::unique_ptr<upstream_connection>>> idle_;
  std::size_t idle_count_ = 0;
  // Addresses whose last connect timed out while another address of the name was left to try
  // (connect_new), until when they are tried last: each device's first connection to a
  // dual-stack site behind broken IPv6 would otherwise wait a share of connect_timeout again
  // (review, 2026-12-07). At most max_unanswered, this worker's own.
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> unanswered_;
  static constexpr std::size_t max_unanswered = 1024;
  static constexpr auto unanswered_for = std::chrono::minutes(5);
  // CA Issuers addresses fetched lately, until when not to fetch them again.
  static constexpr std::size_t max_issuer_tries = 1024;
  static constexpr std::chrono::minutes issuer_retry_after{10};
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> issuer_tries_;
  std::string key_scratch_;  // acquire()'s pool key, reused so a lookup allocates nothing
  // TLS sessions per pool key for resumption (certs/origin_sessions.hpp), for one origin
  // context: a reload's new context (new trust) starts an empty store.
  std::shared_ptr<certs::origin_sessions> sessions_;
  std::weak_ptr<SSL_CTX> sessions_context_;
};

}  // namespace hallpass

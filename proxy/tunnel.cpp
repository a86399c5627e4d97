#include "proxy/tunnel.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "proxy/byte_relay.hpp"
#include "proxy/client_hello.hpp"
#include "proxy/local_response.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/splice_pump.hpp"
#include "proxy/worker.hpp"

namespace hallpass {
namespace {

using namespace net::experimental::awaitable_operators;

}  // namespace

namespace {
// RFC 9110 5.6.2's tchar: what a method is made of.
bool is_tchar(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(ch) != std::string_view::npos;
}
// Empty lines a request may follow (RFC 9112 2.2: a server ignores at least one), at most a few,
// for the guess only (request_checks.hpp's leading_empty_lines is what the session drops).
std::size_t sniffed_empty_lines(std::string_view bytes) {
  std::size_t i = 0;
  while (i < bytes.size() && i < 8 && (bytes[i] == '\r' || bytes[i] == '\n')) ++i;
  return i;
}
}  // namespace

http_start http_request_start(std::string_view bytes) {
  std::size_t i = sniffed_empty_lines(bytes);
  const std::size_t method = i;
  while (i < bytes.size() && i - method < max_method_length && is_tchar(bytes[i])) ++i;
  if (i == bytes.size()) return i - method < max_method_length ? http_start::need_more : http_start::no;
  return i > method && bytes[i] == ' ' ? http_start::yes : http_start::no;
}

net::awaitable<hello_result> read_client_hello(client_connection& c, std::chrono::milliseconds timeout) {
  hello_result hello;
  c.stream.expires_after(timeout);
  for (;;) {
    const auto data = c.buffer.cdata();
    hello = parse_client_hello(std::string_view(static_cast<const char*>(data.data()), data.size()));
    if (hello.status != hello_status::need_more) co_return hello;
    if (c.buffer.size() >= max_client_hello_bytes) {
      hello.status = hello_status::malformed;
      hello.error = "ClientHello too large";
      co_return hello;
    }
    auto [rec, n] = co_await c.stream.async_read_some(c.buffer.prepare(4096), nothrow);
    if (rec) {
      hello.error = rec == beast::error::timeout ? "no TLS ClientHello in time" : "client closed before the TLS ClientHello";
      co_return hello;
    }
    c.buffer.commit(n);
  }
}

net::awaitable<tunnel_end> run_tunnel(worker& w, client_connection& c, exchange& ex, tunnel_mode mode) {
  const auto& daemon = ex.cfg->daemon;
  const bool own_page = mode == tunnel_mode::own_page;
  const bool inspect = mode == tunnel_mode::inspect || own_page;
  const bool http_only = mode == tunnel_mode::http_only;
  // A relayed tunnel connects to the origin first (its failure is the CONNECT's answer); an
  // inspected one, or one for plain HTTP only, connects per request, so none is made here.
  acquire_result acquired;
  if (mode == tunnel_mode::relay) {
    origin_address to;
    to.host = ex.host;
    to.port = ex.port;
    to.connect_host = ex.connect_host;
    acquired = co_await w.upstream().acquire(to, *ex.cfg, upstream_use::tunnel, false);
  }
  if (mode == tunnel_mode::relay && !acquired.conn) {
    // The refusal table's row for the upstream's failure (local_response.hpp), as for a
    // forwarded request: its status, metric, log reason and page (naming the address tried).
    ex.note = acquired.detail;
    co_await refuse(w, c, ex, refusal_for(acquired.error), acquired.reason);
    co_return tunnel_end::closed;
  }
  auto up = std::move(acquired.conn);  // null when inspecting

  static constexpr std::string_view established = "HTTP/1.1 200 Connection established\r\n\r\n";
  c.stream.expires_after(std::chrono::seconds(10));
  auto [wec, wn] = co_await net::async_write(c.stream, net::buffer(established), nothrow);
  ex.bytes_out += wn;
  ex.status = 200;
  ex.answered = std::chrono::steady_clock::now();  // a tunnel's request is timed to its 200, not to its end
  if (wec) co_return tunnel_end::closed;

  // Peek at the ClientHello before relaying anything.
  hello_result hello = co_await read_client_hello(c, daemon.connect.hello_timeout);
  std::optional<std::string> sni_host;  // the SNI, when it names another host than the CONNECT
  if (hello.status == hello_status::need_more) {
    ex.note = std::move(hello.error);
    ex.bytes_in += c.buffer.size();
    co_return tunnel_end::closed;
  }

  bool blocked = false;
  if (http_only && hello.status != hello_status::not_tls) {
    // TLS (or a broken ClientHello) on a port for plain HTTP only (connect.http_ports).
    ex.circumvention = true;
    ex.note = "TLS in a tunnel to a port for plain HTTP only";
    ex.reason_override = "tunnels to this port may carry plain HTTP only";
    ex.rule_override = "connect.http_ports";
    blocked = true;
  }
  if (!blocked) switch (hello.status) {
    case hello_status::ok: {
      if (!hello.hello.sni || hello.hello.sni_is_address) {
        ex.note = hello.hello.sni ? "TLS with an IP address as its server name (SNI '" + *hello.hello.sni + "')"
                                  : "TLS without a server name (SNI)";
        // A browser sends no server name to an address (https://192.0.2.1/, RFC 6066 3). A
        // tunnel for the proxy's own page serves it under a certificate for the CONNECT host (an
        // address's names it: certs/leaf_minter.hpp), and nothing goes to any site: the page
        // is shown. Before 2026-12-07 connect.require_sni closed it, and the browser showed a
        // connection error where explain promised the block page (explain audit, ninth session).
        if (own_page) break;
        // Otherwise the site inside is unknown (an address as the SNI names no host either).
        // An attempt to get round the filter where the school refuses it (require_sni), or where
        // the CONNECT named a host; not a visit to an address the school allows (a printer's
        // page: every client sends no SNI to an address, and each visit counted towards a ban:
        // outside-in audit of HTTPS, 2026-12-07, finding 3).
        blocked = daemon.connect.require_sni;
        ex.circumvention = blocked || !rules::ip_address::parse(ex.host);
        if (blocked) {
          ex.reason_override = "HTTPS without a server name is not allowed on the school network";
          ex.rule_override = "connect.require_sni";
        }
        break;
      }
      auto sni = rules::normalize_host(*hello.hello.sni);
      if (!sni || sni->text != ex.host) {
        // Domain fronting or a mismatched tunnel: decide again on the name the client sent.
        ex.circumvention = true;
        ex.note = "SNI '" + *hello.hello.sni + "' differs from the CONNECT host '" + ex.host + "'";
        // The SNI's own plan, as if the CONNECT had named it (a copy of the exchange: the same
        // client, time and policy, and nothing of the CONNECT host's decision): blocked, or
        // filtered in a way a relay to the CONNECT host would skip (inspected for its paths or
        // SafeSearch parameters, or sent to SafeSearch's locked front end), closes the tunnel.
        // A block is logged with the SNI's host and rule; otherwise the log line keeps the
        // CONNECT host's decision, and the note names the SNI.
        exchange as_sni = ex;
        as_sni.host = sni ? sni->text : *hello.hello.sni;
        sni_host = as_sni.host;  // decided again with the CONNECT host while the relay runs
        as_sni.connect_host.clear();
        const tunnel_plan sni_plan = plan_tunnel(w, c, as_sni, {});
        if (sni_plan == tunnel_plan::refuse || sni_plan == tunnel_plan::block_page) {
          blocked = true;
          ex.host = std::move(as_sni.host);
          ex.verdict = std::move(as_sni.verdict);
          ex.exceptions = std::move(as_sni.exceptions);  // the verdict may point into it
        } else if (!inspect && (sni_plan == tunnel_plan::inspect || as_sni.connect_host != ex.connect_host)) {
          blocked = true;
          ex.reason_override =
              "the site named inside this tunnel is filtered page by page (or by SafeSearch), which a tunnel "
              "opened to another name would get round";
        }
      }
      break;
    }
    case hello_status::not_tls: {
      // Plain HTTP inside the tunnel (Chromium and Firefox send a ws:// WebSocket through a
      // CONNECT, RFC 6455 4.1): served as requests, each decided on its method and path like
      // any other, never relayed unseen. The method and its space may come in later reads
      // than the first byte (under the ClientHello's deadline, at most a method's length).
      const auto buffered = [&] {
        return std::string_view(static_cast<const char*>(c.buffer.cdata().data()), c.buffer.size());
      };
      auto start = http_request_start(buffered());
      while (start == http_start::need_more) {
        auto [rec, n] = co_await c.stream.async_read_some(c.buffer.prepare(64), nothrow);
        if (rec) break;
        c.buffer.commit(n);
        start = http_request_start(buffered());
      }
      if (start == http_start::yes) co_return tunnel_end::http;
      ex.circumvention = true;
      ex.note = "the tunnel does not carry TLS";
      blocked = !daemon.connect.allow_non_tls || inspect || http_only;
      if (blocked) ex.reason_override = "tunnels must carry HTTPS";
      break;
    }
    default:
      ex.circumvention = true;
      ex.note = "malformed TLS ClientHello: " + hello.error;
      blocked = true;
      ex.reason_override = "the TLS handshake is malformed";
      break;
  }
  if (blocked) {
    // The 200 is already sent; closing is the only answer a TLS client can receive here.
    ex.action = outcome::block;
    ex.status = 403;
    ex.bytes_in += c.buffer.size();
    co_return tunnel_end::closed;
  }
  if (inspect) co_return tunnel_end::inspect;  // the ClientHello stays in c.buffer for the handshake
  if (sni_host && mode == tunnel_mode::relay && ex.connect_host.empty()) {
    // The bytes must reach the site that was decided on: the SNI's. A relay to the CONNECT
    // host's server would let an allowed SNI carry a blocked site's requests to that server
    // (a CONNECT to a blocked site's address with an allowed SNI: audit of pupils' ways round
    // the filter, 2026-12-06; transparent mode does the same since audit18 D1). The connection
    // made stays when the SNI's name leads to the same address (a client that resolved the
    // name itself and CONNECTs to one of its addresses); otherwise the SNI's own server is
    // connected to, and the tunnel closes when it cannot be reached or its name not looked up
    // (logged as a forwarded request's failure would be: 504 for a lookup out of time). A
    // tunnel to SafeSearch's front end (connect_host) goes there whatever the SNI: the SNI's
    // own plan has the same front end, or the tunnel was closed above.
    std::string detail;
    auto resolved = co_await w.upstream().resolve(*sni_host, ex.port, *ex.cfg, detail);
    auto close_unreached = [&](upstream_error error, std::string_view reason, const std::string& why) {
      ex.add_note("the server named by the SNI could not be reached: " + why);
      ex.action = outcome::error;
      ex.status = refusal_info(refusal_for(error)).status;
      ex.reason_override = reason;
      ex.bytes_in += c.buffer.size();
    };
    if (resolved.second != upstream_error::none || resolved.first.empty()) {
      w.state().metrics.upstream_failed(metrics::upstream_failure::dns).Increment();
      const auto error = resolved.second == upstream_error::none ? upstream_error::dns : resolved.second;
      close_unreached(error, "the name in the TLS handshake (SNI) could not be looked up",
                      detail.empty() ? std::string("no addresses") : detail);
      co_return tunnel_end::closed;
    }
    bool leads_there = false;
    for (const auto& e : resolved.first) leads_there = leads_there || same_ip(e.address(), up->peer.address());
    if (!leads_there) {
      origin_address to;
      to.host = *sni_host;
      to.port = ex.port;
      auto to_sni = co_await w.upstream().acquire(to, *ex.cfg, upstream_use::tunnel, false);
      if (!to_sni.conn) {
        close_unreached(to_sni.error, to_sni.reason, to_sni.detail);
        co_return tunnel_end::closed;
      }
      ex.add_note("relayed to the SNI's own server, not the CONNECT host's");
      up = std::move(to_sni.conn);
    }
  }
  // A named local, moved in (proxy/README.md, GCC 12 rule 2).
  relay_check still_allowed = decision_still_holds(w, c, ex, std::nullopt, std::move(sni_host));
  auto [in, out] = co_await relay(w, c.io, c.buffer, up->io, up->buffer, daemon.upstream.idle_timeout,
                                  std::move(still_allowed));
  ex.bytes_in += in;
  ex.bytes_out += out;
  co_return tunnel_end::closed;
}

}  // namespace hallpass

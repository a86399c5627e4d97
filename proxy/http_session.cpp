#include "proxy/http_session.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <string_view>

#include "proxy/access_request_form.hpp"
#include "proxy/block_page.hpp"
#include "proxy/exchange.hpp"
#include "proxy/forward.hpp"
#include "proxy/inspection.hpp"
#include "proxy/origin_prefetch.hpp"
#include "proxy/read_deadline.hpp"
#include "proxy/local_response.hpp"
#include "proxy/login_gate.hpp"
#include "proxy/request_checks.hpp"
#include "proxy/request_form_handler.hpp"
#include "proxy/request_parser.hpp"
#include "proxy/request_target.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/signin_handler.hpp"
#include "proxy/transparent.hpp"
#include "proxy/tunnel.hpp"
#include "proxy/worker.hpp"
#include "rules/safesearch.hpp"

namespace hallpass {
namespace {

constexpr std::size_t client_buffer_kept = 4096;

// The first line of HTTP/2's connection preface (RFC 9113 3.4).
constexpr std::string_view http2_preface_line = "PRI * HTTP/2.0\r\n";

// A request refused before its target was read (its framing, its size, a head Beast could not
// read) is still logged with the method and the site its request line names, so that the
// technician can see which site a device sent such requests to; they were logged with neither
// (audit of the request path, 2026-12-06). For the log only: nothing is decided on them.
void note_refused_request(const client_connection& c, exchange& ex, std::string_view method, std::string_view target) {
  if (ex.method.empty() && method.size() <= max_forwarded_method_length && is_http_token(method)) ex.method = method;
  if (c.inside || c.transparent || !ex.host.empty()) return;  // a tunnel's host is set already
  std::string error;
  if (auto t = parse_request_target(target, method == "CONNECT", error)) {
    ex.scheme = t->scheme;
    ex.host = without_brackets(t->host);
    ex.port = t->port;
    ex.path = t->path;
  }
}

// The same from the buffered request line, when Beast could not read the head.
void note_refused_request(const client_connection& c, exchange& ex, std::string_view buffered) {
  const std::size_t end = buffered.find_first_of("\r\n");
  if (end == std::string_view::npos || end > 8192) return;  // no whole line: nothing to name
  const std::string_view line = buffered.substr(0, end);
  const std::size_t sp = line.find(' ');
  if (sp == std::string_view::npos) return;
  const std::string_view rest = line.substr(sp + 1);
  note_refused_request(c, ex, line.substr(0, sp), rest.substr(0, rest.find(' ')));
}

// A CONNECT, from the decision to the end of its tunnel. Returns whether the connection goes on
// carrying requests: only when it became an inspected tunnel (its requests follow, decrypted).
net::awaitable<bool> serve_connect(worker& w, client_connection& c, exchange& ex, std::string_view user_agent,
                                   unsigned version) {
  // What the tunnel will be: refused, relayed, or inspected (exchange.hpp's plan_tunnel,
  // which makes the decision and the inspection choice together).
  const auto plan = plan_tunnel(w, c, ex, user_agent);
  // A browser's tunnel decrypted for the HTTPS block page is not an attempt by itself: the
  // request inside is, when it is a navigation (a page's image of a VPN site is not). Every
  // other CONNECT counts, a browser's refused one too (a client sends any User-Agent it likes:
  // review of 2026-12-06), and one whose handshake for the block page fails (no school CA on the
  // device, or not a browser at all) once it has (below). Bursts count once (bans.threshold.apart).
  ex.maybe_embedded = plan == tunnel_plan::block_page;
  const auto& connect = ex.cfg->daemon.connect;
  const auto listed = [&](const std::vector<std::uint16_t>& ports) {
    return std::find(ports.begin(), ports.end(), ex.port) != ports.end();
  };
  // A blocked host is refused by its block first, whatever the port: to a port outside
  // connect.ports a browser's block page was the port's bare refusal, with no rule, no
  // category and no circumvention count, where explain and other clients had the policy's
  // block (explain audit, 2026-12-06, L1).
  if (plan == tunnel_plan::refuse || (plan == tunnel_plan::block_page && !listed(connect.ports))) {
    if (plan == tunnel_plan::block_page) ex.note.clear();  // its "inspected" note: nothing is decrypted
    co_await write_connect_block(c, ex, version);
    finish_exchange(w, c, ex);
    co_return false;
  }
  const bool any_tunnel = listed(connect.ports);
  if (!any_tunnel && !listed(connect.http_ports)) {
    const std::string port = std::to_string(ex.port);
    // Refused by the daemon's settings, not by the policy: the log names no rule (the role stays).
    ex.asker_role = ex.verdict ? ex.verdict->chosen_role : nullptr;
    ex.verdict.reset();
    ex.note.clear();  // what the plan said of inspection: nothing is decrypted
    co_await refuse(w, c, ex, refusal::port_not_allowed, port, version);
    finish_exchange(w, c, ex);
    co_return false;
  }
  // run_tunnel changes the action when the ClientHello or the upstream says otherwise.
  ex.action = plan == tunnel_plan::block_page ? outcome::block : outcome::allow;
  const auto mode = !any_tunnel                       ? tunnel_mode::http_only
                    : plan == tunnel_plan::relay      ? tunnel_mode::relay
                    : plan == tunnel_plan::block_page ? tunnel_mode::own_page
                                                      : tunnel_mode::inspect;
  if (mode == tunnel_mode::inspect || mode == tunnel_mode::own_page) {
    // The host's leaf is minted on a minting thread from here, while the destination is looked
    // up and checked and the 200 travels (below).
    ex.leaf_prepared = ex.cfg->leaves->prepare(ex.host, c.mint_interest());
    origin_address to;
    bool plan_prefetch = plan == tunnel_plan::inspect;
    if (plan == tunnel_plan::inspect) {
      // Where its requests will go, checked before the 200, as a relayed tunnel's connection
      // is: a destination the school does not open (a private network, the gateway itself,
      // link-local, upstream.deny_networks) is refused here with the relay's 403 and log
      // reason. Before 2026-12-06 it got its 200 and a school-CA handshake, was logged
      // "allow", and only the first request inside was refused (audit of the CONNECT path).
      to = inspected_tunnel_origin(c, ex);
      const auto checked = co_await w.upstream().check_destination_of(to, *ex.cfg);
      if (checked.refused) {
        w.upstream().count_refused(*checked.refused);
        ex.note = checked.address;
        const refusal row = refusal_for(upstream_error::refused_destination);
        const std::string_view reason = describe(*checked.refused);
        co_await refuse(w, c, ex, row, reason, version);
        finish_exchange(w, c, ex);
        co_return false;
      }
      if (checked.lookup != upstream_error::none) {
        prefetch_failed(w, c, std::move(to), checked.lookup, checked.detail);
        plan_prefetch = false;
      }
    }
    // Before the 200: an inspected site's origin connected and its handshake run, while the
    // 200 travels and the client sends its ClientHello and handshakes. A tunnel that then
    // turns out not to carry TLS has cost one origin connection (a relayed tunnel connects
    // before its 200 too); an unused one goes back to the pool when the client's connection
    // ends. The lookup above is in the DNS cache, and a failed one is handed over: none is repeated.
    if (plan_prefetch) prefetch_tunnel_origin(w, c, ex, std::move(to));
  }
  const auto end = co_await run_tunnel(w, c, ex, mode);
  if (end == tunnel_end::http) {
    // Plain HTTP requests follow on this connection, each for the tunnel's host and port and
    // each decided; the CONNECT's own line says so.
    c.inside = client_connection::tunnel_origin{ex.host, ex.port, false, ex.login, tunnel_identity_until(c)};
    ex.note = "the tunnel carries HTTP: each request inside is decided";
    ex.scheme = "http";  // not https: what it carried (a browser's ws:// WebSocket, say)
    finish_exchange(w, c, ex);
    co_return true;
  }
  if (end == tunnel_end::inspect) {
    // The connection now carries decrypted requests: the loop goes on reading them.
    const bool inspected = co_await start_inspection(w, c, ex);
    if (!inspected) ex.maybe_embedded = false;  // no page was shown: the CONNECT is the attempt
    if (inspected && plan == tunnel_plan::block_page) {
      ex.note = "inspected to show the HTTPS block page";
      if (c.inside) {
        c.inside->block_page_only = true;
        c.inside->decided_path_later = ex.decided_path_later;
      }
    }
    finish_exchange(w, c, ex);
    co_return inspected;
  }
  finish_exchange(w, c, ex);
  co_return false;
}

// One request on the connection, from its head to the end of its answer. Returns whether
// the connection may carry another. A function of its own, so that its large coroutine frame
// (the parser, the exchange) exists only while a request is in hand, not while the
// connection waits idle for the next one.
net::awaitable<bool> serve_request(worker& w, client_connection& c, std::shared_ptr<const configuration> cfg) {
  // One rule for a request's limits: its head is read under those in force when the connection
  // began to wait for it (they must be known before it arrives); from the head's arrival on,
  // the decision and every later check and limit (header count, body size, the relays) are the
  // configuration's in force then. `waited_with` stays pinned to the end of the request:
  // `head_limits` refers into it, and pinned only by ex.cfg it was freed when ex.cfg moved on
  // after a reload (a use-after-free that the startup configuration, held for the daemon's
  // life until 2026-12-05, hid for the first reload: AddressSanitizer, proxy_lifecycle_test).
  const std::shared_ptr<const configuration> waited_with = std::move(cfg);
  const auto& head_limits = waited_with->daemon.limits;
  exchange ex;
  ex.cfg = waited_with;
  if (c.inside) {
    // Inside an inspected tunnel every request is for the tunnel's host, so even one refused
    // before its target is read (400, 408, 431) is logged with that host and as inspected.
    // (A tunnel carrying plain HTTP is not inspected: nothing was decrypted.)
    ex.inspected = c.inside->tls;
    ex.scheme = c.inside->tls ? "https" : "http";
    ex.host = c.inside->host;
    ex.port = c.inside->port;
  }
  request_parser rp;
  rp.header_limit(static_cast<std::uint32_t>(head_limits.header_bytes));
  if (head_limits.body_bytes > 0) {
    rp.body_limit(head_limits.body_bytes);
  } else {
    rp.body_limit(boost::none);
  }
  // Read until the head is whole (then parsed from the buffer with no read), or until a line of
  // it ends in a bare LF: Beast waits for a CRLF CRLF that never comes, and such a head met
  // the head timeout's 408 (audit of the request path, 2026-12-06); it is refused at once.
  head_scan scan = scan_head(buffered(c.buffer), 0);
  std::size_t scanned = c.buffer.size();
  // The head's deadline (read_deadline.hpp: a 408 can still be sent when it fires). A head
  // already whole in the buffer (the usual case: it came with the wait's read) needs no read;
  // the timer is not armed for it, and the stream's own deadline covers the unlikely read
  // (then closing without a 408).
  std::optional<read_deadline> deadline;
  if (scan != head_scan::incomplete) {
    c.stream.expires_after(head_limits.head_timeout);
  } else {
    c.stream.expires_never();
    deadline.emplace(c.read_timer, c.read_state, c.stream.socket(), head_limits.head_timeout);
  }
  error_code ec;
  std::size_t n = 0;
  while (scan == head_scan::incomplete && c.buffer.size() <= head_limits.header_bytes) {
    auto [rec, rn] = co_await c.io.async_read_some(c.buffer.prepare(4096), nothrow);
    if (rec) {
      // A head begun and then closed is refused as Beast refused it ("partial message").
      ec = rec == net::error::eof && c.buffer.size() > 0 ? error_code(http::error::partial_message) : rec;
      break;
    }
    c.buffer.commit(rn);
    scan = scan_head(buffered(c.buffer), scanned);
    scanned = c.buffer.size();
  }
  const bool bare_lf = scan == head_scan::bare_lf;
  if (!ec && !bare_lf) {
    ec = parse_buffered_head(rp, c.buffer, scan == head_scan::whole, n);
  }
  if (deadline) {
    deadline->disarm();
    if (ec && deadline->expired()) ec = beast::error::timeout;  // the read was cancelled: answer 408
  }
  ex.bytes_in += n;
  if (bare_lf && !ec) {
    ex.bytes_in += c.buffer.size();
    note_refused_request(c, ex, buffered(c.buffer));
    co_await refuse(w, c, ex, refusal::malformed, "a line of the request head ends in a bare LF, without CR");
    finish_exchange(w, c, ex);
    co_return false;
  }
  if (ec) {
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset) co_return false;
    if (ec == beast::error::timeout) {
      co_await refuse(w, c, ex, refusal::head_timeout, "head timeout");
      finish_exchange(w, c, ex);
      co_return false;
    }
    // Beast has taken the request line when the fields were what it refused; otherwise the
    // line is still in the buffer.
    if (const auto& started = rp.get(); !started.target().empty()) {
      note_refused_request(c, ex, started.method_string(), started.target());
    } else {
      note_refused_request(c, ex, buffered(c.buffer));
    }
    if (ec == http::error::body_limit) {
      // Beast checks a declared Content-Length against the limit while reading the head.
      co_await refuse(w, c, ex, refusal::body_too_large);
    } else if (ec == http::error::header_limit) {
      co_await refuse(w, c, ex, refusal::head_too_large);
    } else if (buffered(c.buffer).starts_with(http2_preface_line)) {
      // HTTP/2's connection preface (RFC 9113 3.4), which Beast refuses for its version: an
      // HTTP/2-only client (an app offering only h2 in its TLS ALPN, which inspection does not
      // select; h2c with prior knowledge). An HTTP/1.1 400 would read to it as a broken
      // connection: it is told in HTTP/2, and the line says what it was.
      ex.method = "PRI";
      co_await refuse(w, c, ex, refusal::http2_only);
    } else {
      // Beast's "bad version" is also what a whole head cut short in its request line gets
      // (parse_buffered_head): the words say what is wrong either way.
      const std::string problem =
          ec == http::error::bad_version ? "the request line does not end in HTTP/1.0 or HTTP/1.1" : ec.message();
      co_await refuse(w, c, ex, refusal::malformed, problem);
    }
    finish_exchange(w, c, ex);
    co_return false;
  }
  // The policy this request is decided by: the one in force now that its head has arrived, not
  // the one in force when a kept-alive connection began to wait (a reload in between must
  // apply). The exception index is pinned with the decision (decide_exchange). ex.cfg is not
  // replaced again in this request, so `limits` may refer into it.
  ex.cfg = w.config();
  const auto& limits = ex.cfg->daemon.limits;
  // Never left without a deadline: what follows sets its own before each read or write, and
  // anything that did not would still be bounded. (The refusals above write under
  // local_response's own deadline.)
  c.stream.expires_after(limits.head_timeout);
  // A body read through the parser (the forms') is held to these too. (A declared length over
  // the head's limits was refused while the head was read.)
  if (limits.body_bytes > 0) {
    rp.body_limit(limits.body_bytes);
  } else {
    rp.body_limit(boost::none);
  }
  auto& req = rp.get();
  // A request whose body was not read to its end, here (refused, blocked, a 407) or by
  // forward() (its own relay reads it: unreachable site, early answer), marks the connection
  // for a lingering close, whichever way the exchange ends.
  struct unread_body_mark {
    client_connection& c;
    const request_parser& rp;
    const exchange& ex;
    ~unread_body_mark() {
      if (!rp.is_done() && !ex.request_body_read) c.request_body_unread = true;
    }
  } unread_body{c, rp, ex};
  ex.method = std::string(req.method_string());
  const unsigned version = req.version();
  if (ex.method.size() > max_forwarded_method_length) {
    // Not forwarded, nor written whole into the log line (a 10 KB method made the line 10 KB:
    // audit, 2026-12-06), whatever else is wrong with the request.
    ex.method = ex.method.substr(0, max_forwarded_method_length) + "...";
    note_refused_request(c, ex, ex.method, req.target());
    co_await refuse(w, c, ex, refusal::method_too_long, {}, version);
    finish_exchange(w, c, ex);
    co_return false;
  }

  // Framing and grammar checks Beast's parser does not make (request smuggling).
  framing_check fc;
  std::size_t fields = 0;
  for (const auto& f : req) {
    fc.add(f.name_string(), f.value());
    if (is_method_override_field(f.name_string())) add_method_override(ex.method_overrides, ex.method, f.value());
    ++fields;
  }
  std::optional<std::string> problem = fc.finish(version);
  if (!problem && version >= 11 && !fc.has_host()) problem = "an HTTP/1.1 request without a Host field";
  if (!problem && fields > limits.header_count) problem = "too many header fields";
  if (problem) {
    note_refused_request(c, ex, ex.method, req.target());
    const auto kind = fields > limits.header_count ? refusal::too_many_fields : refusal::ambiguous_framing;
    co_await refuse(w, c, ex, kind, *problem);
    finish_exchange(w, c, ex);
    co_return false;
  }
  if (limits.body_bytes > 0 && rp.content_length() && *rp.content_length() > limits.body_bytes) {
    note_refused_request(c, ex, ex.method, req.target());
    co_await refuse(w, c, ex, refusal::body_too_large);
    finish_exchange(w, c, ex);
    co_return false;
  }

  const bool is_connect = req.method() == http::verb::connect;
  // Whether an attempt to get round the filter here may count towards a ban (exchange.hpp).
  // (A CONNECT's is set by serve_connect, by what becomes of its tunnel.)
  ex.maybe_embedded = !is_connect && !own_doing(req["Sec-Fetch-Mode"], req["Sec-Fetch-Dest"],
                                                req[http::field::user_agent], req["Upgrade-Insecure-Requests"]);
  if (is_connect && ((rp.content_length() && *rp.content_length() > 0) ||
                     req.find(http::field::transfer_encoding) != req.end())) {
    // A CONNECT has no content (RFC 9110 9.3.6): what follows its head is the tunnel's. One
    // that announces a body is read one way by a proxy in front that sends the body on, and
    // another here, where those bytes would become the tunnel's first (audit, 2026-12-06).
    note_refused_request(c, ex, ex.method, req.target());
    co_await refuse(w, c, ex, refusal::ambiguous_framing, "a CONNECT announcing a body", version);
    finish_exchange(w, c, ex);
    co_return false;
  }
  std::string target_error;
  std::optional<parsed_target> target;
  // Origin-form names its site in Host (nullopt: none, HTTP/1.0). A proxy request's
  // absolute-form names the site itself, and Host is replaced from it.
  const std::optional<std::string_view> host_field =
      req.find(http::field::host) != req.end() ? std::optional<std::string_view>(req[http::field::host]) : std::nullopt;
  if (c.inside) {
    // Inside an inspected tunnel: origin-form with a Host naming the tunnel's host.
    bool other_site = false;
    if (!is_connect) {
      target = parse_tunnel_request_target(req.target(), host_field, c.inside->host, c.inside->port,
                                           target_error, c.inside->tls, &other_site);
    } else {
      target_error = "CONNECT inside a tunnel";
    }
    if (!target) {
      // The path asked for still goes in the log line (only the Host named another site). A
      // request for another site inside a tunnel opened for one is domain fronting: no browser
      // sends it, so it counts as a way round the filter, as a differing SNI does (000 7.2).
      if (const std::string_view t = req.target(); t.starts_with('/')) ex.path = t.substr(0, t.find('?'));
      if (other_site || is_connect) ex.circumvention = true;  // counted by finish_exchange
      // 421 for a request naming another site (or a CONNECT) inside the tunnel; a target the
      // proxy cannot read (a raw non-ASCII byte, say) is a 400 as outside a tunnel, which
      // explain says too (it was a 421: differential audit of explain, 2026-12-05).
      const refusal kind = other_site || is_connect ? refusal::misdirected : refusal::bad_target;
      co_await refuse(w, c, ex, kind, target_error, version);
      finish_exchange(w, c, ex);
      co_return false;
    }
  } else if (c.transparent) {
    // Redirected by nftables: origin-form with a Host; the port is the original destination's.
    if (!is_connect) {
      target = parse_transparent_request_target(req.target(), host_field, c.transparent->dst.ip.to_string(),
                                                c.transparent->dst.port, target_error);
    } else {
      target_error = "CONNECT on a transparent listener";
    }
  } else {
    target = parse_request_target(req.target(), is_connect, target_error);
  }
  if (target && target->no_path && req.target() == "*" && req.method() != http::verb::options) {
    target.reset();
    target_error = "'*' as a request target is only for OPTIONS";
  }
  if (!target) {
    if (target_error == "origin-form") {
      co_await answer_local(w, c, ex, version);
    } else if (target_error == "asterisk-form" && req.method() == http::verb::options) {
      // OPTIONS * asks about the proxy itself (RFC 9110 9.3.7): what it can forward.
      ex.action = outcome::allow;
      const bool keep = rp.keep_alive() && rp.is_done();
      const bool ok = co_await answer_as_last_hop(c, ex, req.base(), keep, version);
      finish_exchange(w, c, ex);
      co_return ok && keep;
    } else if (target_error == "asterisk-form") {
      co_await refuse(w, c, ex, refusal::bad_target, "'*' as a request target is only for OPTIONS");
    } else {
      co_await refuse(w, c, ex, refusal::bad_target, target_error);
    }
    finish_exchange(w, c, ex);
    co_return false;
  }
  ex.scheme = target->scheme;
  // As the decision will normalise it (and the log writes it): an IPv6 literal without the
  // brackets its URL and Host field give it. URLs put them back (request_target.hpp, url_of).
  ex.host = without_brackets(target->host);
  ex.port = target->port;
  ex.path = target->path;
  ex.query = target->query;

  // Who is asking (logins.networks): a 407, 429 or 503 ends the request here.
  bool again = false;
  const bool may_continue = rp.keep_alive() && rp.is_done();
  const auto login = co_await sign_in(w, c, ex, req[http::field::proxy_authorization], version, may_continue, &again);
  if (login == login_step::answered || login == login_step::lapsed) {
    finish_exchange(w, c, ex);
    co_return again;  // false when lapsed: the tunnel closes unanswered
  }
  if (login == login_step::page) co_return co_await serve_signin(w, c, ex, rp, req[http::field::user_agent], version);

  // The block page's form (access_request_form.hpp): on the blocked site's own address where
  // that is how the device reaches the proxy (an inspected tunnel, a transparent listener).
  const bool same_site_form = c.inside || c.transparent;
  if (!is_connect && (same_site_form ? target->path == tunnel_form_path : beast::iequals(target->host, form_host))) {
    if (!same_site_form && target->path == details_path) {
      co_await answer_block_details(w, c, ex, rp);
    } else {
      co_await answer_form(w, c, ex, rp);
      // The form's own query (a token, the pupil's words, in a crafted GET) is never logged,
      // whatever keep_query says (audit of privacy, 2026-12-06, L3).
      ex.query.clear();
    }
    finish_exchange(w, c, ex);
    co_return false;
  }

  std::optional<std::string_view> path_for_rules;
  std::string path_and_query = target->path + (target->query.empty() ? "" : "?" + target->query);
  if (!is_connect) path_for_rules = path_and_query;
  if (is_connect) co_return co_await serve_connect(w, c, ex, req[http::field::user_agent], version);
  if (c.transparent && !c.inside) {
    // Decided on the Host, which also says where the request goes (transparent.hpp). The
    // co_await's result in a named local (proxy/README.md, GCC 12 rule 4).
    const bool decided = co_await decide_transparent_request(w, c, ex, path_for_rules, version);
    if (!decided) {
      finish_exchange(w, c, ex);
      co_return false;
    }
  } else if (c.inside && c.inside->block_page_only) {
    if (decide_as_its_connect(w, c, ex).act != rules::action::block) {
      // No longer blocked (an exception, a reload): closed unanswered, so that the browser's
      // new CONNECT is planned afresh (a relayed or inspected tunnel, with its origin).
      ex.add_note("closed: the host this tunnel was opened to block is no longer blocked");
      finish_exchange(w, c, ex);
      co_return false;
    }
  } else {
    const auto index = c.inside && c.inside->tls ? w.state().exceptions.load(std::memory_order_acquire) : nullptr;
    if (c.inside && c.inside->tls && !c.inside->inspected_under(ex.cfg->generation, index)) {
      // After a reload or a change of the store: still a tunnel the proxy would decrypt? If
      // not (no CA, its host on the never-inspect list now, the local block that made it
      // inspected removed), closed unanswered, so that the browser's new CONNECT is planned
      // with the policy in force (exchange.hpp, tunnel_no_longer_inspected).
      if (auto why = tunnel_no_longer_inspected(w, c, ex, ex.cfg, index.get()); !why.empty()) {
        ex.add_note("closed: HTTPS to " + c.inside->host + " is no longer inspected (" + why + ")");
        finish_exchange(w, c, ex);
        co_return false;
      }
      c.inside->mark_inspected_under(ex.cfg->generation, index);
    }
    decide_exchange(w, c, ex, path_for_rules);
  }
  const auto& v = *ex.verdict;
  if (!v.host.text.empty()) ex.host = v.host.text;
  // The search terms of a search, allowed or blocked (the DfE standard asks for the term of a
  // block), only where the school keeps them.
  if (ex.cfg->daemon.access_log.search_terms != daemon_config::access_log_settings::search_terms_kept::none) {
    if (auto terms = rules::search_terms(ex.host, path_and_query)) ex.search_terms = std::move(*terms);
  }

  if (v.act == rules::action::block) {
    ex.action = outcome::block;
    // A request body that was not read would be taken for the next request: close instead.
    const bool unread_body = !rp.is_done();
    const std::string url = url_of(target->scheme, target->host, target->port, path_and_query);
    // On the explicit proxy the page is served as the site (plain HTTP), where browsers send
    // no Fetch Metadata: the site's scripts could read it, so it never names the person and
    // links to their page at the proxy's own address instead (block_page_html).
    const bool explicit_proxy = !c.inside && !c.transparent;
    const bool for_the_person =
        !explicit_proxy && block_page_for_the_person(req["Sec-Fetch-Mode"], req["Sec-Fetch-Dest"]);
    const bool keep = rp.keep_alive() && !unread_body;
    const bool ok = co_await write_block_page(w, c, ex, url, keep, version, for_the_person);
    finish_exchange(w, c, ex);
    if (!ok || unread_body || !rp.keep_alive()) co_return false;
    co_return true;
  }

  ex.action = outcome::allow;
  // OPTIONS and TRACE count their hops (RFC 9110 7.6.2): at Max-Forwards 0 the proxy is the
  // last recipient and answers itself; otherwise one hop fewer goes on.
  if (req.method() == http::verb::options || req.method() == http::verb::trace) {
    if (const auto left = max_forwards_value(req[http::field::max_forwards])) {
      if (*left == 0) {
        const bool keep = rp.keep_alive() && rp.is_done();
        const bool ok = co_await answer_as_last_hop(c, ex, req.base(), keep, version);
        finish_exchange(w, c, ex);
        co_return ok && keep;
      }
      req.set(http::field::max_forwards, std::to_string(*left - 1));
    }
  }
  const auto outcome = co_await forward(w, c, ex, rp, *target);
  finish_exchange(w, c, ex);
  co_return outcome == forward_outcome::keep_alive;
}

net::awaitable<void> session_loop(worker& w, client_connection& c) {
  constexpr int max_empty_reads = 2;
  bool first = true;
  int empty_reads = 0;  // reads in a row that brought only empty lines
  for (;;) {
    auto cfg = w.config();
    const auto& limits = cfg->daemon.limits;
    // Wait for the next request: keep-alive timeout while idle, then the head deadline.
    c.idle = true;
    if (no_request_line_yet(buffered(c.buffer))) {
      // A connection keeps a 4 KiB buffer between requests (a request head usually arrives
      // in one read), never more; a new one has none until its first bytes have arrived.
      if (c.buffer.capacity() > client_buffer_kept) c.buffer.shrink_to_fit();
      if (w.state().draining) co_return;
      // A new connection's first bytes go into a few bytes inside the connection, so that one
      // that sends nothing holds no buffer (it costs one more read for its first request).
      // (Chosen before the co_await: GCC 12 evaluated both arms of a conditional written
      // inside the co_await expression, allocating the buffer anyway; massif showed it.)
      net::mutable_buffer into(c.first_bytes.data(), c.first_bytes.size());
      if (!first) into = c.buffer.prepare(client_buffer_kept);
      // The deadline cancels the read and leaves the socket open: an inspected connection that
      // idled out still ends with a close_notify (run_http_session).
      c.stream.expires_never();
      read_deadline deadline(c.read_timer, c.read_state, c.stream.socket(),
                             first ? limits.head_timeout : limits.keepalive_timeout);
      auto [ec, n] = co_await c.io.async_read_some(into, nothrow);
      deadline.disarm();
      if (ec) {
        if (deadline.expired() && first) w.state().metrics.rejected(metrics::rejection::head_timeout).Increment();
        co_return;
      }
      if (first) net::buffer_copy(c.buffer.prepare(client_buffer_kept), net::buffer(c.first_bytes.data(), n));
      c.buffer.commit(n);
    }
    c.idle = false;
    first = false;
    // RFC 9112 2.2: empty lines before a request line are ignored (older clients send a CRLF
    // after a POST's body). A few reads of nothing else are tolerated, not a stream of them.
    c.buffer.consume(leading_empty_lines(buffered(c.buffer)));
    if (no_request_line_yet(buffered(c.buffer))) {
      if (++empty_reads > max_empty_reads) co_return;
      continue;
    }
    empty_reads = 0;
    const bool was_inside = c.inside.has_value();
    if (!co_await serve_request(w, c, std::move(cfg))) co_return;
    // The CONNECT that opened a tunnel was answered on the outer stream: the tunnel's first
    // request is the first of its own stream.
    c.stream_reused = c.inside.has_value() == was_inside;
  }
}

// Closing a socket with bytes still unread makes the kernel send a reset, which can destroy an
// answer the client has not read yet: an early 413 (ours or the origin's) while it uploads, a
// block page for a POST. So when bytes are waiting, or a request's body was left unread (the
// rest may not have arrived yet), our sending side is shut down first and
// what the client still sends is read and dropped (a lingering close, as nginx and Apache do)
// until it closes, pauses for linger_pause, or linger_total has passed.
constexpr auto linger_pause = std::chrono::seconds(2);
constexpr auto linger_total = std::chrono::seconds(10);

net::awaitable<void> linger_close(worker& w, client_connection& c) {
  auto& socket = c.stream.socket();
  if (!socket.is_open() || w.state().draining) co_return;  // a drain closes at once
  char probe;
  if (!c.request_body_unread && ::recv(socket.native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) {
    co_return;  // nothing waiting, and nothing known to be on its way
  }
  error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  c.idle = true;  // a drain closes it at once, as an idle connection
  const auto until = std::chrono::steady_clock::now() + linger_total;
  auto buf = w.take_buffer();
  while (std::chrono::steady_clock::now() < until) {
    c.stream.expires_after(std::min<std::chrono::steady_clock::duration>(linger_pause, until - std::chrono::steady_clock::now()));
    auto [ec, n] = co_await c.stream.async_read_some(net::buffer(buf.get(), worker::relay_buffer_size), nothrow);
    if (ec) break;
  }
  w.give_buffer(std::move(buf));
}

}  // namespace

net::awaitable<void> run_http_session(worker& w, std::shared_ptr<client_connection> c) {
  w.register_connection(c.get());
  w.state().metrics.active_connections.Increment();
  try {
    // A transparent connection first: refused when not redirected; a TLS one is relayed or
    // becomes an inspected connection, whose requests the loop then reads.
    bool requests = true;
    if (c->transparent) requests = co_await start_transparent(w, *c);
    if (requests) co_await session_loop(w, *c);
  } catch (const std::exception& e) {
    w.state().diagnostics.say("hallpass: session for " + c->ip_text + " ended by an unexpected error: " + e.what());
  }
  return_unused_prefetch(w, *c);             // an origin connection no request took: to the pool
  if (c->origin_sign_in != 0) w.upstream().drop_pinned(c->origin_sign_in);  // signed in: nobody else's
  // The close_notify of an inspected connection; none after an answer cut short, whose end
  // must not look like a clean one.
  if (c->tls && !c->answer_cut_short) co_await end_inspection(*c);
  error_code ignored;
  // An answer whose decision no longer held (client_connection::body_cut) ends with a reset
  // too, plain or TLS: what the kernel still holds unsent for the client is dropped with it
  // (up to megabytes on a slow reader: the review of the session, 2026-12-07), not delivered
  // after the block.
  if ((c->cut_short_unframed && !c->tls) || c->body_cut) {
    // A plain connection whose answer the origin cut short, read by the client until the
    // close, ends with a reset: an orderly close is what a complete body read until the close
    // looks like (RFC 9112 6.3, 8). (A length or our chunks tell the client otherwise; over
    // TLS the missing close_notify says it.) What is still unsent is lost with the reset: the
    // answer was incomplete anyway, and now says so.
    // No shutdown first: it would send the FIN this is to avoid.
    c->stream.socket().set_option(net::socket_base::linger(true, 0), ignored);
  } else {
    co_await linger_close(w, *c);  // a client still sending: its answer is not destroyed by a reset
    c->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  }
  c->stream.socket().close(ignored);
  w.state().metrics.active_connections.Decrement();
  w.unregister_connection(c.get());
  w.state().release(c->ip_text);
}

}  // namespace hallpass

#include "proxy/forward.hpp"

#include "certs/origin_context.hpp"

#include "proxy/body_relay.hpp"
#include "proxy/client_departure.hpp"
#include "proxy/local_response.hpp"
#include "proxy/message_head.hpp"
#include "proxy/origin_prefetch.hpp"
#include "proxy/read_deadline.hpp"
#include "proxy/request_checks.hpp"
#include "proxy/response_head.hpp"
#include "proxy/response_reader.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/transparent.hpp"
#include "proxy/byte_relay.hpp"
#include "proxy/worker.hpp"
#include "rules/safesearch.hpp"

namespace hallpass {
namespace {

constexpr std::string_view via_value = "1.1 hallpass";

bool iequals(std::string_view a, std::string_view b) { return beast::iequals(a, b); }

// Removes the hop-by-hop fields (RFC 9110 7.6.1), including those named by Connection.
// With keep_upgrade a WebSocket handshake's upgrade goes on as `Upgrade: websocket` and
// `Connection: Upgrade`, and only that: another protocol offered beside it (`Upgrade: h2c,
// websocket`) is dropped, since after a 101 the proxy relays bytes it no longer reads, and an
// origin that switched to h2c would take HTTP/2 requests for any path on that connection,
// unseen by the rules ("h2c smuggling").
template <bool isRequest, class Body>
void strip_hop_by_hop(http::message<isRequest, Body>& m, bool keep_upgrade) {
  std::vector<std::string> named;
  for (auto field : {http::field::connection, http::field::proxy_connection}) {
    auto range = m.base().equal_range(field);
    // Split as list_has splits (for_each_list_item, request_checks.hpp): Beast's token_list
    // stopped at the first character outside a token, so "Connection: foo/1, X-Secret" kept
    // X-Secret (review, 2026-12-05).
    for (auto it = range.first; it != range.second; ++it) {
      for_each_list_item(it->value(), [&](std::string_view item) {
        named.emplace_back(item);
        return false;
      });
    }
  }
  for (const auto& n : named) {
    if (keep_upgrade && iequals(n, "upgrade")) continue;
    if (iequals(n, "close") || iequals(n, "keep-alive")) continue;
    m.erase(n);
  }
  m.erase(http::field::proxy_connection);
  m.erase(http::field::keep_alive);
  m.erase(http::field::te);
  m.erase(http::field::trailer);
  m.erase(http::field::proxy_authorization);
  m.erase(http::field::proxy_authenticate);
  m.erase(http::field::connection);
  if (keep_upgrade) {
    m.set(http::field::upgrade, "websocket");
    m.set(http::field::connection, "Upgrade");
  } else {
    m.erase(http::field::upgrade);
  }
}

void add_via(http::fields& f) {
  if (auto it = f.find(http::field::via); it != f.end()) {
    std::string v(it->value());
    v.append(", ").append(via_value);
    f.set(http::field::via, v);
  } else {
    f.set(http::field::via, via_value);
  }
}

// How long an answer the origin sent before it stopped reading the request body (an early 413
// or 401) is waited for once sending the body has failed: it has usually arrived already.
constexpr std::chrono::seconds early_answer_wait{2};
// How long an origin asked to continue (Expect: 100-continue) has to answer before the body is
// sent anyway and the client gets the proxy's own 100: curl waits 1 s, as RFC 9110 10.1.1
// lets a client.
constexpr std::chrono::seconds expect_wait{1};

// A 101's Upgrade names WebSocket and nothing else (RFC 6455 4.2.2: "Upgrade: websocket";
// RFC 9110 7.8: the protocols switched to, in layer order). Field values come trimmed of
// whitespace (parse_response_head).
bool upgrades_to_websocket(const response_head& h) {
  int seen = 0;
  for (const auto& f : h.fields) {
    if (!iequals(f.name, "upgrade")) continue;
    if (++seen > 1 || !iequals(f.value, "websocket")) return false;
  }
  return seen == 1;
}

bool connection_has(const response_head& h, std::string_view option) {
  for (const auto& f : h.fields) {
    if (iequals(f.name, "connection") && list_has(f.value, option)) return true;
  }
  return false;
}

// Passes an interim response (100, 103) on to the client with our Via. False when the client
// is gone.
net::awaitable<bool> send_interim(client_connection& c, exchange& ex, const response_head& head,
                                  std::chrono::milliseconds idle) {
  client_head_options interim_head;
  interim_head.via = via_value;
  const std::string text = write_client_response_head(head, interim_head);
  c.stream.expires_after(idle);
  auto [ec, n] = co_await net::async_write(c.io, net::buffer(text), nothrow);
  ex.bytes_out += n;
  co_return !ec;
}

// One interim response read from the origin (its head in `head`, at the front of up.buffer):
// counted against max_interim_responses (more is the origin's fault: a 502), passed on to the
// client when `pass_on` says so, and consumed. False when the exchange is over: the 502 was
// sent, or the client is gone.
net::awaitable<bool> step_over_interim(worker& w, client_connection& c, exchange& ex, upstream_connection& up,
                                       const response_head& head, int& seen, bool pass_on, int client_version,
                                       std::chrono::milliseconds idle) {
  if (++seen > max_interim_responses) {
    co_await refuse(w, c, ex, refusal::upstream_malformed, "too many interim responses", client_version);
    co_return false;
  }
  if (pass_on) {
    // A named result, not `if (!co_await send_interim(...)) co_return false;`: g++ 12.2 built
    // that form here into a resume that hit ud2 (SIGILL in proxy_smuggling_test's 103 case).
    const bool sent = co_await send_interim(c, ex, head, idle);
    if (!sent) co_return false;
  }
  up.buffer.consume(head.size);
  co_return true;
}

// The log's note for a body that came too slowly: what came, in how long, against what bound.
std::string too_slow_detail(std::uint64_t moved, const body_pace& pace, const daemon_config::limit_settings& limits) {
  const auto waited = std::chrono::duration_cast<std::chrono::seconds>(pace.waited).count();
  return std::to_string(moved) + " bytes of the body in " + std::to_string(waited) + " s of waiting for it; " +
         "the school asks for " + std::to_string(limits.body_min_rate) + " bytes a second after " +
         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(limits.body_grace).count()) +
         " s (limits.body_min_rate, limits.body_grace)";
}

// Refuses an exchange whose origin ended without an answer, as `kind` says, unless the origin's
// TLS session or first bytes say it wanted what an inspecting proxy cannot give (a client
// certificate, HTTP/2: upstream.hpp origin_wants), which has a page of its own.
net::awaitable<void> refuse_unanswered(worker& w, client_connection& c, exchange& ex, const upstream_connection& up,
                                       refusal kind, std::string_view problem, int client_version) {
  if (auto wants = kind == refusal::upstream_no_answer ? std::nullopt : origin_wants(up, problem)) {
    co_await refuse(w, c, ex, refusal::upstream_needs_direct, *wants, client_version);
  } else {
    co_await refuse(w, c, ex, kind, problem, client_version);
  }
}

}  // namespace

// Forwards an allowed plain-HTTP request and streams the response back. The proxy frames
// both messages itself: the request with the length it read or its own chunks, the response
// with its own version, length or chunks (body_relay.hpp, response_head.hpp). An upstream
// connection goes back to the pool only after a response that ended exactly where its framing
// said, with no byte read beyond it.
net::awaitable<forward_outcome> forward(worker& w, client_connection& c, exchange& ex, request_parser& rp,
                                        const parsed_target& target) {
  auto& req = rp.get();
  // SafeSearch, locked for the role: the search engine's own safe mode by its parameters and
  // headers, and its locked front end's address (rules/safesearch.hpp). Only a search
  // engine's host costs anything here: no string is built or copied for any other request.
  parsed_target rewritten;
  bool rewrote = false;
  decltype(rules::safesearch_rewrite::set_headers) safesearch_headers;
  const auto& policy = *ex.cfg->policy;
  if (ex.verdict && rules::search_service_of(ex.host) != rules::search_service::none) {
    const std::string path_and_query = target.path + (target.query.empty() ? "" : "?" + target.query);
    auto rewrite = rules::safesearch_request(policy, *ex.verdict, ex.host, path_and_query);
    if (rewrite.target) {
      rewritten = target;
      const auto q = rewrite.target->find('?');
      rewritten.path = rewrite.target->substr(0, q);
      rewritten.query = q == std::string::npos ? std::string() : rewrite.target->substr(q + 1);
      rewrote = true;
    }
    // The headers are set after strip_hop_by_hop (below): a client's `Connection:
    // YouTube-Restrict` would otherwise name the header the lock just set, and take it out
    // (outside-in audit, 2026-12-05).
    if (!rewrite.empty()) ex.note = "SafeSearch enforced";
    safesearch_headers = std::move(rewrite.set_headers);
    if (const auto mapped = rules::safesearch_connect_host(policy, *ex.verdict, ex.host)) {
      ex.connect_host = std::string(*mapped);
    }
  }
  const parsed_target& t = rewrote ? rewritten : target;
  const auto& daemon = ex.cfg->daemon;
  const unsigned client_version = req.version();
  const bool client_keep_alive = rp.keep_alive();
  const bool is_head = req.method() == http::verb::head;
  const bool websocket = rp.upgrade() && list_has(req[http::field::upgrade], "websocket");
  const bool chunked_body = rp.chunked();
  const std::uint64_t body_length = rp.content_length() ? *rp.content_length() : 0;
  const bool has_body = chunked_body || body_length > 0;
  // May go again on a fresh upstream connection if a pooled one turns out to be closed: no
  // body to replay, and a method that may be repeated (RFC 9110 9.2.2). (Every pooled
  // connection is peeked before reuse: see upstream.hpp.)
  const auto verb = req.method();
  const bool retryable = !has_body && (verb == http::verb::get || verb == http::verb::head ||
                                       verb == http::verb::options || verb == http::verb::trace ||
                                       verb == http::verb::put || verb == http::verb::delete_);
  // A request the proxy may not repeat goes out on a pooled origin connection only when it is
  // not the first of its client stream. The origin may close a pooled connection in the very
  // instant the request goes out on it (no peek sees a close that has not happened yet), and a
  // client resends a request itself only on a connection that carried an earlier one: the
  // proxy then closes the client's connection unanswered too (leave_to_client below), as the
  // origin's own close would look to a client connected directly, and the resend arrives as
  // the first request of a new connection, which takes a new origin connection. (Browsers and
  // curl resend so, a POST with its body too; HAProxy's `http-reuse safe` is the same rule.)
  const bool client_resends = c.stream_reused;
  // Ignored from an HTTP/1.0 client (RFC 9110 10.1.1), which cannot read a 100.
  const bool expect_continue = client_version >= 11 && list_has(req[http::field::expect], "100-continue");

  strip_hop_by_hop(req, websocket);
  // A path given again in a header, which IIS's URL Rewrite and several web frameworks serve
  // instead of the request line's: a request for an allowed page could fetch a page a path
  // rule or a reported-page block covers, out of sight of the decision (hostile-input audit,
  // 2026-12-05). They are for a site's own front end to set; no browser sends them.
  req.erase("X-Original-URL");
  req.erase("X-Rewrite-URL");
  for (auto& [name, value] : safesearch_headers) req.set(name, value);
  req.erase(http::field::expect);
  // A client that asks to be told before it sends its body: the origin is asked (RFC 9110
  // 10.1.1: a proxy forwards the expectation), so it can refuse an upload before it is sent.
  const bool ask_origin_first = expect_continue && has_body;
  if (ask_origin_first) req.set(http::field::expect, "100-continue");
  // Via on what goes to the origin only from the explicit proxy's plain HTTP. Inside an
  // inspected tunnel and on the transparent gateway the browser believes it talks to the site
  // itself, and the site should see what a browser sends: nginx's default (gzip_proxied off)
  // sends no compressed answer to a request with Via, so pupils' pages came about six times
  // larger through inspection (outside-in audit of real clients, 2026-12-05, F1). The answer
  // to the client carries Via as before.
  if (!c.inside && !c.transparent) add_via(req.base());
  // An OPTIONS for the server as a whole ("http://h" with no path, or "*") goes on as "*"
  // (RFC 9112 3.2.4).
  if (verb == http::verb::options && t.no_path) {
    req.target("*");
  } else {
    req.target(t.path + (t.query.empty() ? "" : "?" + t.query));
  }
  // The host as decided (lower case, no trailing dot, escapes decoded, an IDN in its xn--
  // form), not as the client spelt it: an origin would refuse "www.g%6fogle.com" (audit of
  // ways round the filter, 2026-12-06, F7).
  req.set(http::field::host, authority_of(t.scheme, ex.host, t.port));
  req.version(11);
  if (!websocket) req.keep_alive(true);
  // Our own framing: the length as we read it (never the client's spelling, "010" say), or our
  // own chunks.
  req.erase(http::field::content_length);
  req.erase(http::field::transfer_encoding);
  if (chunked_body) {
    req.set(http::field::transfer_encoding, "chunked");
  } else if (rp.content_length()) {
    req.set(http::field::content_length, std::to_string(body_length));
  }
  std::string request_head = serialize_request_head(req.base());

  std::unique_ptr<upstream_connection> up;
  response_head head;
  bool sent_continue = false;
  bool final_before_body = false;  // the origin answered the head alone (Expect: 100-continue)
  // Sending the request failed, and the origin may have answered before it stopped reading
  // (RFC 9110 15.5.14: a 413 may close the connection): that answer, if any, is the client's.
  std::optional<std::string> send_failure;
  // The origin refused the body before it had all of it, even if all of it then went: whether
  // it read the rest is its own affair, so its connection is not reused.
  bool refused_early = false;
  // Whether the origin's close of a pooled connection, before a byte of its answer, is left to
  // the client to resend (client_resends above): nothing has gone to the client yet, the error
  // is a close or a reset (not a stall), and it came within resend_window of the request going
  // out, as the close of an idle connection crossing the request does. (A close long after, an
  // origin that failed while it worked on the request, is a 502: it may have acted on it.)
  // Sets up the log line; the caller then closes.
  constexpr std::chrono::seconds resend_window{1};
  std::chrono::steady_clock::time_point sent_at{};
  auto leave_to_client = [&](const upstream_connection& u, const error_code& why) {
    if (retryable || !client_resends || !u.reused || sent_continue || u.buffer.size() != 0) return false;
    if (!closed_by_peer(why) && why != net::error::connection_reset && why != net::error::broken_pipe) return false;
    if (std::chrono::steady_clock::now() - sent_at > resend_window) return false;
    w.state().metrics.upstream_failed(metrics::upstream_failure::reset).Increment();
    ex.action = outcome::error;
    ex.reason_override = "the site closed a kept-alive connection as the request went out";
    ex.add_note("upstream: " + why.message() + "; the client's connection was closed unanswered, for it to send "
                "the request again (the proxy does not repeat a " + std::string(req.method_string()) + " itself)");
    return true;
  };
  const auto upstream_started = std::chrono::steady_clock::now();
  note_origin_sign_in(c, req[http::field::authorization]);
  for (int attempt = 0; attempt < 2; ++attempt) {
    origin_address to;
    to.host = ex.host;
    to.port = t.port;
    to.tls = t.scheme == "https";
    to.connect_host = ex.connect_host;
    to.address = original_endpoint(c);  // transparent mode: where the client was going
    to.client = pool_client(c, ex);     // the device's (and user's) own pooled connections
    // An inspected request's port was held to connect.ports when its tunnel was opened; plain
    // HTTP, inside a tunnel too (a ws:// WebSocket), is held to upstream.ports as any is.
    const auto use = to.tls ? upstream_use::tunnel : upstream_use::http;
    // An inspected tunnel's first request: the connection made during its handshake. Only a
    // retryable one: the connection may have waited long (a browser's preconnect) and been
    // closed by the origin meanwhile, which the retry below covers, and no peek can see (a
    // TLS 1.3 origin's unread session tickets look like data). A request with a body takes a
    // pooled or new connection, and leaves the prefetched one to the next request.
    std::optional<acquire_result> early;
    if (attempt == 0 && retryable && c.prefetch) early = co_await take_prefetched(c.prefetch, to);
    // It was connected under the tunnel's configuration: a reload meanwhile may have denied its
    // address, as acquire() checks of a pooled connection. Denied: acquire() decides afresh.
    if (early && early->conn && !w.upstream().still_allowed(*early->conn, *ex.cfg)) early.reset();
    acquire_result acquired;
    if (early) {
      acquired = std::move(*early);
    } else {
      acquired = co_await w.upstream().acquire(to, *ex.cfg, use, attempt == 0 && (retryable || client_resends));
    }
    if (!acquired.conn) {
      // The upstream's reason (a static string) is the log reason and the page text; a failed
      // certificate check's page says which check failed, and the log note of both TLS
      // refusals has OpenSSL's words.
      ex.add_note(std::string(acquired.reason) + ": " + acquired.detail);
      const bool tls_detail = acquired.error == upstream_error::tls_unverified ||
                              acquired.error == upstream_error::tls_outdated ||
                              acquired.error == upstream_error::tls_needs_direct;
      const std::string_view detail = tls_detail ? std::string_view(acquired.detail) : acquired.reason;
      co_await refuse(w, c, ex, refusal_for(acquired.error), detail, client_version);
      co_return forward_outcome::close;
    }
    up = std::move(acquired.conn);
    sent_at = std::chrono::steady_clock::now();
    // The head alone first, then at most expect_wait for the origin's word: its 100 goes to the
    // client, which then sends the body; a final answer goes to the client in place of the
    // exchange, with the body never read; silence (an origin that ignores the expectation)
    // gets the client our own 100, as a client itself would stop waiting.
    if (ask_origin_first) {
      up->stream.expires_after(daemon.upstream.idle_timeout);
      auto [hec, hn] = co_await net::async_write(up->io, net::buffer(request_head), nothrow);
      if (hec) {
        if (leave_to_client(*up, hec)) co_return forward_outcome::close;
        const std::string problem = hec.message();
        co_await refuse(w, c, ex, refusal::upstream_send_failed, problem, client_version);
        co_return forward_outcome::close;
      }
      request_head.clear();
      // A deadline that cancels the read rather than closing the socket (read_deadline.hpp):
      // the body still goes on the same connection when it fires.
      up->stream.expires_never();
      net::steady_timer wait_timer(up->stream.get_executor());
      std::shared_ptr<read_deadline_state> wait_state;
      for (int interim_seen = 0;;) {
        read_deadline deadline(wait_timer, wait_state, up->stream.socket(), expect_wait);
        auto hr = co_await read_response_head(*up, head, daemon.limits);
        deadline.disarm();
        if (hr.result == head_parse::need_more && deadline.expired()) break;  // no word in time
        if (hr.result == head_parse::error || hr.result == head_parse::too_large) {
          const refusal kind = hr.result == head_parse::error ? refusal::upstream_malformed : refusal::upstream_head_too_large;
          co_await refuse(w, c, ex, kind, hr.error, client_version);
          co_return forward_outcome::close;
        }
        if (hr.result == head_parse::need_more) {
          if (interim_seen == 0 && leave_to_client(*up, hr.ec)) co_return forward_outcome::close;
          const std::string problem = hr.ec.message();
          co_await refuse(w, c, ex, refusal::upstream_closed, problem, client_version);
          co_return forward_outcome::close;
        }
        if (head.status >= 200 || head.status == 101) {
          final_before_body = true;
          break;
        }
        const bool stepped = co_await step_over_interim(w, c, ex, *up, head, interim_seen, true, client_version,
                                                        daemon.upstream.idle_timeout);
        if (!stepped) co_return forward_outcome::close;
        if (head.status == 100) {
          sent_continue = true;  // the client has its 100: a second from the origin is dropped
          break;
        }
      }
      if (final_before_body) break;  // the answer is in `head`; the body is never sent
    }
    if (expect_continue && !sent_continue) {
      static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      c.stream.expires_after(daemon.upstream.idle_timeout);
      auto [cec, cn] = co_await net::async_write(c.io, net::buffer(cont), nothrow);
      if (cec) co_return forward_outcome::close;
      ex.bytes_out += cn;
      sent_continue = true;
    }
    // While the body goes up, the origin's answer is read alongside it: one that refuses the
    // upload stops it at once and is passed on (response_reader.hpp).
    std::optional<early_answer_watch> watch;
    if (has_body) watch.emplace(*up, c.io.socket(), daemon.limits);
    const bool* refused = watch ? watch->refused_flag() : nullptr;
    // The client must keep its body coming (limits.body_min_rate; body_pace.hpp).
    body_pace pace;
    pace.min_rate = daemon.limits.body_min_rate;
    pace.grace = daemon.limits.body_grace;
    const body_pacing paced{pace, c.read_timer, c.read_state};
    const body_pacing* pacing = pace.active() ? &paced : nullptr;
    relay_result body;
    if (!chunked_body) {
      // The fast path: our own head, then a Content-Length body (if any) as raw bytes.
      body = co_await relay_fixed(w, c.io, c.buffer, up->io, request_head, body_length,
                                  daemon.upstream.idle_timeout, refused, pacing);
    } else {
      // A chunked body: decoded strictly, each chunk sent on as our own as soon as it arrives.
      decoded_relay how;
      how.source = body_source::chunked;
      how.encode_chunked = true;
      how.limit = daemon.limits.body_bytes;
      how.idle = daemon.upstream.idle_timeout;
      how.stop = refused;
      how.paced = pacing;
      // Consumes request_head: a request with a body is never retried, so no copy is kept.
      body = co_await relay_decoded(c.io, c.buffer, up->io, request_head, how);
    }
    ex.bytes_in += body.moved;
    if (watch) refused_early = co_await watch->stop();
    watch.reset();
    if (refused_early && !body) {
      // The origin refused the body while it was on its way; its answer is in up->buffer. Our
      // write to it was cancelled, perhaps inside a TLS record: nothing more is sent on it.
      // (The client's read was cancelled too: its read_error says nothing about the client.)
      up->write_cut = true;
      send_failure = "the origin answered while the body was on its way";
    } else {
      if (body.over_limit) {
        co_await refuse(w, c, ex, refusal::body_too_large, {}, client_version);
        co_return forward_outcome::close;
      }
      if (body.framing_error) {
        // The client's chunks are malformed: the client's fault, a 400. The origin's half-sent
        // request dies with its connection.
        co_await refuse(w, c, ex, refusal::malformed_body, *body.framing_error, client_version);
        co_return forward_outcome::close;
      }
      if (pace.too_slow) {
        // The origin's half-sent request dies with its connection, as below.
        const std::string detail = too_slow_detail(body.moved, pace, daemon.limits);
        co_await refuse(w, c, ex, refusal::body_too_slow, detail, client_version);
        co_return forward_outcome::close;
      }
      if (body.read_error) {
        ex.note = "client body: " + body.read_error.message();
        co_return forward_outcome::close;  // the client went away mid-upload
      }
      if (body.write_error) {
        // A pooled connection the origin closed meanwhile: try once more on a fresh one.
        if (up->reused && retryable && attempt == 0) continue;
        send_failure = body.write_error.message();
      } else {
        ex.request_body_read = true;  // all of it, from the client (a body-less request's nothing)
      }
    }
    // The response head. Interim responses (100 Continue, 103 Early Hints) go on to an
    // HTTP/1.1 client (RFC 9110 15.2), except a 100 when the proxy sent its own.
    bool retry = false;
    int interim = 0;
    up->stream.expires_after(send_failure ? std::chrono::milliseconds(early_answer_wait)
                                          : std::chrono::milliseconds(daemon.upstream.response_timeout));
    // A client that goes while the origin thinks ends the wait (client_departure.hpp). Only
    // once its whole body was read: bytes still coming from it are no departure.
    // Nor with bytes of the client's next request already read in (c.buffer): a client that
    // pipelined and then half-closed is still waiting for both answers (review, 2026-12-06).
    std::optional<client_departure_watch> departure;
    if (!send_failure && ex.request_body_read && c.buffer.size() == 0) departure.emplace(c.stream.socket(), *up);
    const auto sent_at_last = std::chrono::steady_clock::now();
    for (;;) {
      auto hr = co_await read_response_head(*up, head, daemon.limits);
      if (departure && departure->client_left() && hr.result != head_parse::complete) {
        ex.add_note("the client closed its connection " +
                    std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                       std::chrono::steady_clock::now() - sent_at_last)
                                       .count()) +
                    " s after its request went to the site, before the answer came; the site's connection was closed");
        co_return forward_outcome::close;
      }
      // A malformed answer is that, whether or not the body was all sent. (Until 2026-12-05 one
      // that came mid-upload was said to be a failed send: hostile-input audit, F2.)
      if (hr.result == head_parse::error || hr.result == head_parse::too_large) {
        const refusal kind = hr.result == head_parse::error ? refusal::upstream_malformed : refusal::upstream_head_too_large;
        co_await refuse_unanswered(w, c, ex, *up, kind, hr.error, client_version);
        co_return forward_outcome::close;
      }
      if (send_failure && hr.result != head_parse::complete) {
        // No answer came before the origin stopped reading: the request could not be sent.
        if (interim == 0 && leave_to_client(*up, hr.ec)) co_return forward_outcome::close;
        co_await refuse_unanswered(w, c, ex, *up, refusal::upstream_send_failed, *send_failure, client_version);
        co_return forward_outcome::close;
      }
      if (hr.result == head_parse::need_more) {
        const auto rec = hr.ec;
        if (up->reused && retryable && attempt == 0 && interim == 0 && up->buffer.size() == 0 &&
            (closed_by_peer(rec) || rec == net::error::connection_reset)) {
          retry = true;
          break;
        }
        if (interim == 0 && leave_to_client(*up, rec)) co_return forward_outcome::close;
        const auto kind = rec == beast::error::timeout ? refusal::upstream_no_answer : refusal::upstream_closed;
        const std::string problem = rec.message();
        co_await refuse_unanswered(w, c, ex, *up, kind, problem, client_version);
        co_return forward_outcome::close;
      }
      if (head.status >= 200 || head.status == 101) break;
      const bool pass_on = client_version >= 11 && !(head.status == 100 && sent_continue);
      const bool stepped = co_await step_over_interim(w, c, ex, *up, head, interim, pass_on, client_version,
                                                      daemon.upstream.idle_timeout);
      if (!stepped) co_return forward_outcome::close;
      // An interim response says the origin is at work (102 Processing on a long request):
      // the wait for the final answer starts again, at most max_interim_responses times.
      if (!send_failure) up->stream.expires_after(std::chrono::milliseconds(daemon.upstream.response_timeout));
    }
    if (retry) continue;
    break;
  }
  w.state().metrics.upstream_seconds.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - upstream_started).count());

  // A response whose framing can be read two ways (Transfer-Encoding with Content-Length,
  // differing Content-Lengths, a coding other than chunked, Connection naming a framing field,
  // Transfer-Encoding on HTTP/1.0) is not passed on: 502.
  framing_check fc(message_kind::response);
  for (const auto& f : head.fields) fc.add(f.name, f.value);
  if (auto problem = fc.finish(head.version)) {
    co_await refuse(w, c, ex, refusal::upstream_malformed, *problem, client_version);
    co_return forward_outcome::close;
  }
  ex.status = static_cast<int>(head.status);
  // A site that asked for a client certificate and answered anyway (often its own error page:
  // "No required SSL certificate was sent"): the technician sees why in the log.
  if (up->tls && ex.note.empty() && certs::asked_for_client_certificate(up->tls->native_handle())) {
    ex.note = "the site asked for a client certificate, which only the device can present (inspection.never)";
  }
  const bool origin_keep_alive =
      head.version >= 11 ? !connection_has(head, "close") : connection_has(head, "keep-alive");

  if (head.status == 101) {
    if (!websocket || head.version < 11) {
      // Switching protocols that nobody asked for (or in HTTP/1.0, which has no 101: RFC 9110
      // 15.2.2): whatever follows is not HTTP we can frame.
      co_await refuse(w, c, ex, refusal::upstream_malformed,
                      websocket ? "101 Switching Protocols in an HTTP/1.0 answer"
                                : "101 Switching Protocols without an upgrade request",
                      client_version);
      co_return forward_outcome::close;
    }
    if (!upgrades_to_websocket(head)) {
      // A switch to anything but what was asked (h2c, say): never relayed unread.
      co_await refuse(w, c, ex, refusal::upstream_malformed,
                      "101 Switching Protocols to a protocol other than the WebSocket asked for", client_version);
      co_return forward_outcome::close;
    }
    client_head_options o;
    o.upgrade = true;
    o.via = via_value;
    const std::string text = write_client_response_head(head, o);
    up->buffer.consume(head.size);
    c.stream.expires_after(daemon.upstream.idle_timeout);
    auto [wec, wn] = co_await net::async_write(c.io, net::buffer(text), nothrow);
    ex.bytes_out += wn;
    if (wec) co_return forward_outcome::close;
    // Named locals, moved in (proxy/README.md, GCC 12 rules 2 and 3).
    std::string ws_path = ex.path;
    if (!ex.query.empty()) ws_path.append("?").append(ex.query);
    relay_check still_allowed = decision_still_holds(w, c, ex, std::move(ws_path));
    auto [in, out] = co_await relay(w, c.io, c.buffer, up->io, up->buffer, daemon.upstream.idle_timeout,
                                    std::move(still_allowed));
    ex.bytes_in += in;
    ex.bytes_out += out;
    ex.note = "websocket" + (ex.note.empty() ? std::string() : "; " + ex.note);
    co_return forward_outcome::close;
  }

  // The body as the origin frames it (RFC 9112 6.3), and as we frame it for the client.
  enum class origin_body { none, length, chunked, until_close };
  origin_body from = origin_body::until_close;
  if (is_head || status_has_no_content(head.status)) {
    from = origin_body::none;
  } else if (fc.chunked()) {
    from = origin_body::chunked;
  } else if (fc.content_length()) {
    from = origin_body::length;
  }
  // After an early answer the rest of the request body is still on its way: the connection
  // cannot carry another request.
  bool keep = client_keep_alive && !w.state().draining && !send_failure && !final_before_body;
  if (final_before_body) ex.note = "answered before the request body was sent (Expect: 100-continue)";
  if (send_failure) {
    ex.note = "answered before the request was sent whole (" +
              (refused_early ? *send_failure : "upstream write failed: " + *send_failure) + ")";
  }
  client_head_options o;
  o.version = client_version >= 11 ? 11 : 10;
  o.via = via_value;
  switch (from) {
    case origin_body::none:
      // HEAD and 304 may say the size of the resource; no other response without content may.
      if ((is_head || head.status == 304) && fc.content_length()) {
        o.framing = client_framing::length_info;
        o.content_length = *fc.content_length();
      }
      break;
    case origin_body::length:
      o.framing = client_framing::length;
      o.content_length = *fc.content_length();
      break;
    case origin_body::chunked:
      if (o.version == 11) {
        o.framing = client_framing::chunked;
      } else {
        o.framing = client_framing::close;  // an HTTP/1.0 client reads until we close
        keep = false;
      }
      break;
    case origin_body::until_close:
      // Ended by our close, as the origin's was by its own (RFC 9112 6.3 rule 8), for every
      // client: over TLS the client then sees our close_notify exactly when the origin sent
      // one (run_http_session), and judges a close without one as it would the origin's
      // (browsers accept it; strict clients do not). Re-chunking would have to decide that
      // for it: a last chunk says "complete", its absence breaks pages that load directly.
      o.framing = client_framing::close;
      keep = false;
      break;
  }
  o.keep_alive = keep;
  // After a final answer to the head alone, the origin cannot know whether a body follows.
  // Nor is a connection that carried a request body reused: an origin that did not read the
  // body as a body (one that ignores Content-Length on a path, "CL.0") takes it for a request
  // of its own and answers it after this answer, where the next request's answer is awaited:
  // a request hidden in the body, never decided, would have its answer read as the next
  // request's. Closed, its answer is never read.
  const bool upstream_reusable = origin_keep_alive && from != origin_body::until_close && !websocket &&
                                 !send_failure && !final_before_body && !refused_early && !has_body;
  std::string client_head = write_client_response_head(head, o);
  up->buffer.consume(head.size);

  // The decision asked again, once a second, while the body streams (a lesson begins, a reload
  // blocks the site, an exception ends), as tunnels and WebSockets are: the worker's sweep asks
  // c.body_check and, when it says no, closes the origin's side, which ends the relay wherever
  // it waits (a read of a stream that sends nothing for minutes, a splice) (outside-in audit of
  // time, 2026-12-07, F1; the review of the session: a check made per read missed a quiet
  // stream, and cost every read). The check is made on the first ask only, so an answer done
  // within the second is never asked and pays nothing.
  struct decided_again_later {
    worker& w;
    const client_connection& c;
    exchange& ex;
    relay_check check;  // made on the first ask
  } later{w, c, ex, {}};
  // One pointer captured: std::function keeps it without allocating.
  const relay_check still_allowed = [l = &later]() -> bool {
    if (!l->check) {
      std::string path = l->ex.path;
      if (!l->ex.query.empty()) path.append("?").append(l->ex.query);
      l->check = decision_still_holds(l->w, l->c, l->ex, std::move(path));
    }
    return l->check();
  };
  struct body_watch {
    client_connection& c;
    body_watch(client_connection& conn, const relay_check* check, duplex_stream* from) : c(conn) {
      c.body_check = check;
      c.body_from = from;
      c.body_cut = false;
    }
    ~body_watch() {
      c.body_check = nullptr;
      c.body_from = nullptr;
    }
  };
  relay_result body;
  {
    const body_watch watched(c, &still_allowed, &up->io);
    if (from == origin_body::none || from == origin_body::length) {
      const std::uint64_t length = from == origin_body::length ? o.content_length : 0;
      body = co_await relay_fixed(w, up->io, up->buffer, c.io, client_head, length, daemon.upstream.idle_timeout);
    } else {
      decoded_relay how;
      how.source = from == origin_body::chunked ? body_source::chunked : body_source::until_close;
      how.encode_chunked = o.framing == client_framing::chunked;
      how.idle = daemon.upstream.idle_timeout;
      body = co_await relay_decoded(up->io, up->buffer, c.io, client_head, how);
    }
  }
  ex.bytes_out += body.written;
  if (c.body_cut) {
    // The note says why (decision_still_holds: "closed while open: ... now blocked"); the log
    // line keeps the decision that opened it. Cut short, as the client must see it.
    c.answer_cut_short = true;
    c.cut_short_unframed = o.framing == client_framing::close;
    co_return forward_outcome::close;
  }
  if (body.framing_error) {
    if (body.written == 0) {
      co_await refuse(w, c, ex, refusal::upstream_malformed, *body.framing_error, client_version);
    } else {
      // Part of the answer is out: closing without the last chunk tells the client it is cut short.
      // The origin's chunks were malformed (chunked_codec's error), as the 502 above counts it.
      w.state().metrics.upstream_failed(metrics::upstream_failure::malformed).Increment();
      ex.note = "upstream response: " + *body.framing_error;
      c.answer_cut_short = true;
      c.cut_short_unframed = o.framing == client_framing::close;
    }
    co_return forward_outcome::close;
  }
  if (!body) {
    // Which side ended it, for the technician: a download the site broke off, or one the pupil
    // cancelled, read alike until 2026-12-05 (outside-in audit of real clients, F3). The
    // site's is counted with the origin failures.
    if (body.read_error) {
      ex.note = "response body: the site cut its answer short: " + body.read_error.message();
      const bool timed_out = body.read_error == beast::error::timeout || body.read_error == net::error::timed_out;
      w.state().metrics.upstream_failed(timed_out ? metrics::upstream_failure::timeout : metrics::upstream_failure::reset)
          .Increment();
      c.answer_cut_short = true;
      c.cut_short_unframed = o.framing == client_framing::close;
    } else if (body.write_error == beast::error::timeout || body.write_error == net::error::timed_out) {
      // Still connected but taking nothing for upstream.idle_timeout (a frozen tab, a device
      // asleep with the connection open): not the same as one that went away (README, "Known
      // gaps", until 2026-12-05).
      ex.note = "response body: the client stopped reading for " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(daemon.upstream.idle_timeout).count()) +
                " s (upstream.idle_timeout): the answer was cut off";
    } else if (w.cut_at_stop()) {
      // hallpass closed it: the drain ended with the answer still going (outside-in audit of
      // operations, 2026-12-07, L2: logged as the client's doing, "Bad file descriptor").
      ex.note = "response body: cut off when hallpass stopped (the drain's end came before the answer's)";
    } else {
      ex.note = "response body: the client closed the connection before the answer ended: " +
                body.write_error.message();
    }
    co_return forward_outcome::close;
  }
  // Reusable only when the response ended exactly where its framing said: a byte already read
  // beyond it (a body after a 204 or a HEAD, say) would become the next user's answer.
  if (upstream_reusable && up->buffer.size() == 0) w.upstream().release(std::move(up), *ex.cfg);
  co_return keep ? forward_outcome::keep_alive : forward_outcome::close;
}

}  // namespace hallpass

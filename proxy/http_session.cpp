#include "proxy/http_session.hpp"

#include <charconv>
#include <iostream>

#include "proxy/access_record.hpp"
#include "proxy/access_request_form.hpp"
#include "proxy/admin_server.hpp"
#include "proxy/block_page.hpp"
#include "proxy/body_relay.hpp"
#include "proxy/exchange.hpp"
#include "proxy/message_head.hpp"
#include "proxy/request_checks.hpp"
#include "proxy/request_target.hpp"
#include "proxy/response_head.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/tunnel.hpp"
#include "proxy/worker.hpp"
#include "rules/explain.hpp"

namespace hallpass {
namespace {

constexpr auto nothrow = net::as_tuple(net::use_awaitable);
constexpr std::string_view via_value = "1.1 hallpass";
constexpr std::size_t client_buffer_kept = 4096;

using request_parser = http::request_parser<http::buffer_body>;

bool iequals(std::string_view a, std::string_view b) { return beast::iequals(a, b); }

// Does a comma-separated header list (Connection, Upgrade) contain `token`?
bool list_has(std::string_view list, std::string_view token) {
  const http::token_list tokens(list);
  for (auto part : tokens) {
    if (iequals(part, token)) return true;
  }
  return false;
}

// Removes the hop-by-hop fields (RFC 9110 7.6.1), including those named by Connection.
// With keep_upgrade the Upgrade/Connection pair of a WebSocket handshake is kept.
template <bool isRequest, class Body>
void strip_hop_by_hop(http::message<isRequest, Body>& m, bool keep_upgrade) {
  std::vector<std::string> named;
  for (auto field : {http::field::connection, http::field::proxy_connection}) {
    auto range = m.base().equal_range(field);
    for (auto it = range.first; it != range.second; ++it) {
      const http::token_list tokens(it->value());
      for (auto token : tokens) named.emplace_back(token);
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

std::string local_time_text(const configuration& cfg, std::chrono::system_clock::time_point t) {
  return rules::iso8601_local(cfg.policy->zone, std::chrono::floor<std::chrono::seconds>(t));
}

// Writes a complete local response. Returns false when the client is gone.
net::awaitable<bool> write_local(client_connection& c, exchange& ex, http::status status, std::string body,
                                 std::string_view content_type, bool keep_alive, unsigned version) {
  http::response<http::string_body> res{status, version};
  res.set(http::field::server, "hallpass");
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-store");
  res.set("X-Content-Type-Options", "nosniff");
  res.body() = std::move(body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  ex.status = static_cast<int>(status);
  c.stream.expires_after(std::chrono::seconds(30));
  auto [ec, n] = co_await http::async_write(c.stream, res, nothrow);
  ex.bytes_out += n;
  co_return !ec;
}

net::awaitable<bool> write_error_page(client_connection& c, exchange& ex, http::status status, std::string_view title,
                                      std::string_view explanation, bool keep_alive = false, unsigned version = 11) {
  const std::string_view school = ex.cfg ? std::string_view(ex.cfg->policy->school_name) : std::string_view();
  co_return co_await write_local(c, ex, status, render_error_page(static_cast<int>(status), title, explanation, school),
                                 "text/html; charset=utf-8", keep_alive, version);
}

net::awaitable<bool> write_block_page(worker& w, client_connection& c, exchange& ex, std::string_view url,
                                      bool keep_alive, unsigned version) {
  const auto& v = *ex.verdict;
  const std::string period = v.period_name();
  const std::string when = local_time_text(*ex.cfg, ex.start);
  block_page_info info;
  info.school_name = ex.cfg->policy->school_name;
  info.url = url;
  info.host = v.host.text.empty() ? std::string_view(ex.host) : std::string_view(v.host.text);
  info.role = v.chosen_role->name;
  info.rule = v.rule_id;
  info.category = v.category_name();
  info.reason = v.reason;
  info.clause = v.clause;
  info.period = period;
  info.time_text = when;
  info.client = c.ip_text;
  // The access request form, except where no exception could ever help.
  std::string form;
  if (v.by != rules::decided_by::locked_category && v.by != rules::decided_by::invalid_host &&
      w.state().admin != nullptr) {
    form = render_request_form(w.state().form_keys, c.ip_text, url, info.role,
                               std::chrono::duration_cast<std::chrono::seconds>(ex.start.time_since_epoch()).count());
    info.request_form_html = form;
  }
  co_return co_await write_local(c, ex, http::status::forbidden, render_block_page(info), "text/html; charset=utf-8",
                                 keep_alive, version);
}

http::status status_for(upstream_error e) {
  switch (e) {
    case upstream_error::refused_destination: return http::status::forbidden;
    case upstream_error::connect_timeout: return http::status::gateway_timeout;
    case upstream_error::dns_timeout: return http::status::gateway_timeout;
    default: return http::status::bad_gateway;
  }
}

enum class forward_outcome { keep_alive, close };

// Interim (1xx) responses an origin may send before its final one; more is refused.
constexpr int max_interim_responses = 16;

bool connection_has(const response_head& h, std::string_view option) {
  for (const auto& f : h.fields) {
    if (iequals(f.name, "connection") && list_has(f.value, option)) return true;
  }
  return false;
}

struct head_read {
  head_parse result = head_parse::need_more;  // need_more here means the read failed: see ec
  error_code ec;
  std::size_t bytes_read = 0;
  std::string error;
};

// Reads from the origin until up.buffer starts with a complete response head (parsed into
// `head`, whose views point into up.buffer until it is consumed), the head proves malformed
// or too large, or a read fails. The caller has set the stream's deadline.
net::awaitable<head_read> read_response_head(upstream_connection& up, response_head& head,
                                             const daemon_config::limit_settings& limits) {
  head_read r;
  for (;;) {
    const std::string_view view(static_cast<const char*>(up.buffer.data().data()), up.buffer.size());
    r.result = parse_response_head(view, limits.header_bytes, limits.header_count, head, r.error);
    if (r.result != head_parse::need_more) co_return r;
    const auto into = up.buffer.prepare(16 * 1024);
    auto [ec, n] = co_await up.stream.async_read_some(into, nothrow);
    up.buffer.commit(n);
    r.bytes_read += n;
    if (ec) {
      r.ec = ec;
      co_return r;
    }
  }
}

// The origin's answer could not be used: counts it, and sends the 502 page when nothing has
// gone to the client yet.
net::awaitable<void> refuse_response(worker& w, client_connection& c, exchange& ex, std::string_view problem,
                                     unsigned client_version) {
  w.state().metrics.upstream_failed(metrics::upstream_failure::reset).Increment();
  ex.action = outcome::error;
  ex.note = "upstream response: " + std::string(problem);
  ex.reason_override = "the site's answer was malformed";
  co_await write_error_page(c, ex, http::status::bad_gateway, "The site's answer was malformed",
                            "The site answered in a way that can be read more than one way, so the web filter "
                            "did not pass it on.",
                            false, client_version);
}

// Forwards an allowed plain-HTTP request and streams the response back. The proxy frames
// both messages itself: the request with the length it read or its own chunks, the response
// with its own version, length or chunks (body_relay.hpp, response_head.hpp). An upstream
// connection goes back to the pool only after a response that ended exactly where its framing
// said, with no byte read beyond it.
net::awaitable<forward_outcome> forward(worker& w, client_connection& c, exchange& ex, request_parser& rp,
                                        const parsed_target& t) {
  auto& req = rp.get();
  const auto& daemon = ex.cfg->daemon;
  const unsigned client_version = req.version();
  const bool client_keep_alive = req.keep_alive();
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
  const bool expect_continue = list_has(req[http::field::expect], "100-continue");

  strip_hop_by_hop(req, websocket);
  req.erase(http::field::expect);
  add_via(req.base());
  req.target(t.path + (t.query.empty() ? "" : "?" + t.query));
  {
    std::string host_value = t.host;
    if (t.port != 80) host_value += ":" + std::to_string(t.port);
    req.set(http::field::host, host_value);
  }
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
  const std::string request_head = serialize_request_head(req.base());

  std::unique_ptr<upstream_connection> up;
  response_head head;
  bool sent_continue = false;
  const auto upstream_started = std::chrono::steady_clock::now();
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto acquired = co_await w.upstream().acquire(ex.host, t.port, *ex.cfg, upstream_use::http, attempt == 0);
    if (!acquired.conn) {
      ex.action = outcome::error;
      ex.note = std::string(acquired.reason) + ": " + acquired.detail;
      ex.reason_override = acquired.reason;
      const auto status = status_for(acquired.error);
      co_await write_error_page(
          c, ex, status, status == http::status::forbidden ? "This destination is not allowed" : "The site could not be reached",
          acquired.reason, false, client_version);
      co_return forward_outcome::close;
    }
    up = std::move(acquired.conn);
    if (expect_continue && !sent_continue) {
      static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      c.stream.expires_after(daemon.upstream.idle_timeout);
      auto [cec, cn] = co_await net::async_write(c.stream, net::buffer(cont), nothrow);
      if (cec) co_return forward_outcome::close;
      ex.bytes_out += cn;
      sent_continue = true;
    }
    relay_result body;
    if (!chunked_body) {
      // The fast path: our own head, then a Content-Length body (if any) as raw bytes.
      body = co_await relay_fixed(w, c.stream, c.buffer, up->stream, request_head, body_length,
                                  daemon.upstream.idle_timeout);
    } else {
      // A chunked body: decoded strictly, each chunk sent on as our own as soon as it arrives.
      decoded_relay how;
      how.source = body_source::chunked;
      how.encode_chunked = true;
      how.limit = daemon.limits.body_bytes;
      how.idle = daemon.upstream.idle_timeout;
      body = co_await relay_decoded(c.stream, c.buffer, up->stream, request_head, how);
    }
    ex.bytes_in += body.moved;
    if (body.over_limit) {
      w.state().metrics.rejected(metrics::rejection::body_too_large).Increment();
      ex.action = outcome::error;
      ex.reason_override = "the request body is larger than the school allows";
      co_await write_error_page(c, ex, http::status::payload_too_large, "The upload is too large",
                                "The request body is larger than the school's limit.", false, client_version);
      co_return forward_outcome::close;
    }
    if (body.framing_error) {
      // The client's chunks are malformed: the client's fault, a 400. The origin's half-sent
      // request dies with its connection.
      w.state().metrics.rejected(metrics::rejection::malformed).Increment();
      ex.action = outcome::error;
      ex.reason_override = "the request body is malformed";
      ex.note = *body.framing_error;
      co_await write_error_page(c, ex, http::status::bad_request, "The request is malformed",
                                "The web filter could not read this request's body.", false, client_version);
      co_return forward_outcome::close;
    }
    if (body.read_error) {
      ex.note = "client body: " + body.read_error.message();
      co_return forward_outcome::close;  // the client went away mid-upload
    }
    if (body.write_error) {
      // A pooled connection the origin closed meanwhile: try once more on a fresh one.
      if (up->reused && retryable && attempt == 0) continue;
      ex.action = outcome::error;
      ex.note = "upstream write failed: " + body.write_error.message();
      ex.reason_override = "the connection to the site failed";
      co_await write_error_page(c, ex, http::status::bad_gateway, "The site could not be reached",
                                "The connection to the site failed while sending the request.", false, client_version);
      co_return forward_outcome::close;
    }
    // The response head. Interim responses (100 Continue, 103 Early Hints) go on to an
    // HTTP/1.1 client (RFC 9110 15.2), except a 100 when the proxy sent its own.
    bool retry = false;
    int interim = 0;
    up->stream.expires_after(daemon.upstream.response_timeout);
    for (;;) {
      auto hr = co_await read_response_head(*up, head, daemon.limits);
      if (hr.result == head_parse::error) {
        co_await refuse_response(w, c, ex, hr.error, client_version);
        co_return forward_outcome::close;
      }
      if (hr.result == head_parse::need_more) {
        const auto rec = hr.ec;
        if (up->reused && retryable && attempt == 0 && interim == 0 && up->buffer.size() == 0 &&
            (rec == net::error::eof || rec == net::error::connection_reset)) {
          retry = true;
          break;
        }
        const bool timeout = rec == beast::error::timeout;
        w.state().metrics.upstream_failed(timeout ? metrics::upstream_failure::timeout : metrics::upstream_failure::reset)
            .Increment();
        ex.action = outcome::error;
        ex.note = "upstream response: " + rec.message();
        ex.reason_override = timeout ? "the site did not answer in time" : "the site closed the connection";
        co_await write_error_page(c, ex, timeout ? http::status::gateway_timeout : http::status::bad_gateway,
                                  timeout ? "The site did not answer in time" : "The site could not be reached",
                                  timeout ? "The site took too long to answer." : "The site closed the connection without answering.",
                                  false, client_version);
        co_return forward_outcome::close;
      }
      if (head.status >= 200 || head.status == 101) break;
      if (++interim > max_interim_responses) {
        co_await refuse_response(w, c, ex, "too many interim responses", client_version);
        co_return forward_outcome::close;
      }
      if (client_version >= 11 && !(head.status == 100 && sent_continue)) {
        client_head_options interim_head;
        interim_head.via = via_value;
        const std::string text = write_client_response_head(head, interim_head);
        c.stream.expires_after(daemon.upstream.idle_timeout);
        auto [iec, in] = co_await net::async_write(c.stream, net::buffer(text), nothrow);
        ex.bytes_out += in;
        if (iec) co_return forward_outcome::close;
      }
      up->buffer.consume(head.size);
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
    co_await refuse_response(w, c, ex, *problem, client_version);
    co_return forward_outcome::close;
  }
  ex.status = static_cast<int>(head.status);
  const bool origin_keep_alive =
      head.version >= 11 ? !connection_has(head, "close") : connection_has(head, "keep-alive");

  if (head.status == 101) {
    if (!websocket) {
      // Switching protocols that nobody asked for: whatever follows is not HTTP we can frame.
      co_await refuse_response(w, c, ex, "101 Switching Protocols without an upgrade request", client_version);
      co_return forward_outcome::close;
    }
    client_head_options o;
    o.upgrade = true;
    o.via = via_value;
    const std::string text = write_client_response_head(head, o);
    up->buffer.consume(head.size);
    c.stream.expires_after(daemon.upstream.idle_timeout);
    auto [wec, wn] = co_await net::async_write(c.stream, net::buffer(text), nothrow);
    ex.bytes_out += wn;
    if (wec) co_return forward_outcome::close;
    auto [in, out] = co_await relay(w, c.stream, c.buffer, up->stream, up->buffer, daemon.upstream.idle_timeout);
    ex.bytes_in += in;
    ex.bytes_out += out;
    ex.note = "websocket";
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
  bool keep = client_keep_alive && !w.state().draining;
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
    case origin_body::until_close:
      if (o.version == 11) {
        o.framing = client_framing::chunked;
      } else {
        o.framing = client_framing::close;  // an HTTP/1.0 client reads until we close
        keep = false;
      }
      break;
  }
  o.keep_alive = keep;
  const bool upstream_reusable = origin_keep_alive && from != origin_body::until_close && !websocket;
  std::string client_head = write_client_response_head(head, o);
  up->buffer.consume(head.size);

  relay_result body;
  if (from == origin_body::none || from == origin_body::length) {
    const std::uint64_t length = from == origin_body::length ? o.content_length : 0;
    body = co_await relay_fixed(w, up->stream, up->buffer, c.stream, client_head, length, daemon.upstream.idle_timeout);
  } else {
    decoded_relay how;
    how.source = from == origin_body::chunked ? body_source::chunked : body_source::until_close;
    how.encode_chunked = o.framing == client_framing::chunked;
    how.idle = daemon.upstream.idle_timeout;
    body = co_await relay_decoded(up->stream, up->buffer, c.stream, std::move(client_head), how);
  }
  ex.bytes_out += body.written;
  if (body.framing_error) {
    if (body.written == 0) {
      co_await refuse_response(w, c, ex, *body.framing_error, client_version);
    } else {
      // Part of the answer is out: closing without the last chunk tells the client it is cut short.
      w.state().metrics.upstream_failed(metrics::upstream_failure::reset).Increment();
      ex.note = "upstream response: " + *body.framing_error;
    }
    co_return forward_outcome::close;
  }
  if (!body) {
    ex.note = "response body: " + (body.read_error ? body.read_error : body.write_error).message();
    co_return forward_outcome::close;
  }
  // Reusable only when the response ended exactly where its framing said: a byte already read
  // beyond it (a body after a 204 or a HEAD, say) would become the next user's answer.
  if (upstream_reusable && up->buffer.size() == 0) w.upstream().release(std::move(up), *ex.cfg);
  co_return keep ? forward_outcome::keep_alive : forward_outcome::close;
}

// A page in answer to the form. An ordinary coroutine function, not a lambda: GCC 12
// corrupts the heap with coroutine lambdas defined inside another coroutine (seen here).
net::awaitable<void> form_page(client_connection& c, exchange& ex, std::string_view school, unsigned version,
                               http::status st, std::string_view title, std::string_view text) {
  std::string body = st == http::status::ok ? render_notice_page(title, text, school)
                                            : render_error_page(static_cast<int>(st), title, text, school);
  co_await write_local(c, ex, st, std::move(body), "text/html; charset=utf-8", false, version);
}

// Files a request on the store thread. A named functor rather than a lambda: GCC 12 miscopies
// non-trivial lambda captures made inside a coroutine (a string ended up bit-copied and freed
// from inside a coroutine frame; found by ASan).
struct file_form_job {
  admin_server* admin;
  std::shared_ptr<const store::request_form> form;
  net::awaitable<store::result> operator()() const { co_return admin->file_form(*form); }
};

// http://hallpass.invalid/request: the block page's access request form.
net::awaitable<void> answer_form(worker& w, client_connection& c, exchange& ex, request_parser& rp) {
  auto& state = w.state();
  const std::string_view school = ex.cfg->policy->school_name;
  ex.action = outcome::allow;
  ex.reason_override = "the block page's access request form";
  const unsigned version = rp.get().version();
  if (rp.get().method() != http::verb::post || ex.path != form_path) {
    co_await form_page(c, ex, school, version, http::status::not_found, "Nothing here",
                  "This address belongs to the school's web filter. Use the form on a block page to ask for access.");
    co_return;
  }
  // The body: a small urlencoded form, read whole (bounded).
  constexpr std::size_t max_form = 16 * 1024;
  if (rp.content_length() && *rp.content_length() > max_form) {
    co_await form_page(c, ex, school, version, http::status::payload_too_large, "The form is too long", "Please shorten your answers and try again.");
    co_return;
  }
  std::string body;
  char buf[4096];
  while (!rp.is_done()) {
    rp.get().body().data = buf;
    rp.get().body().size = sizeof buf;
    c.stream.expires_after(std::chrono::seconds(10));
    auto [ec, n] = co_await http::async_read(c.stream, c.buffer, rp, nothrow);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return;
    body.append(buf, sizeof buf - rp.get().body().size);
    if (body.size() > max_form) {
      co_await form_page(c, ex, school, version, http::status::payload_too_large, "The form is too long", "Please shorten your answers and try again.");
      co_return;
    }
  }
  ex.bytes_in += body.size();
  auto fields = parse_form(body);
  const std::string& url = fields["url"];
  std::int64_t issued = 0;
  try {
    issued = std::stoll(fields["issued"]);
  } catch (const std::exception&) {
  }
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(ex.start.time_since_epoch()).count();
  if (url.empty() || !state.form_keys.verify(c.ip_text, url, issued, fields["nonce"], fields["token"], now)) {
    ex.note = "access request form: bad or old token";
    co_await form_page(c, ex, school, version, http::status::forbidden, "The form has expired",
                  "Please open the blocked page again and fill in the form there.");
    co_return;
  }
  if (fields["requester"].empty() || fields["reasons"].empty()) {
    co_await form_page(c, ex, school, version, http::status::bad_request, "Some answers are missing",
                  "Please give your name and why you need the page.");
    co_return;
  }
  // A token files one request: a replay (or a second click) is told so plainly.
  const std::string token = fields["token"];
  const auto redeemed = state.form_keys.redeem(token, issued, now);
  if (redeemed == form_keys::redeem_result::already_used) {
    ex.note = "access request form: token already used";
    co_await form_page(c, ex, school, version, http::status::conflict, "This form has already been sent",
                  "This form was sent once already, so it was not sent again. To ask again, open the blocked page "
                  "again and fill in the form there.");
    co_return;
  }
  if (redeemed == form_keys::redeem_result::full) {
    ex.note = "access request form: too many forms in the last hour";
    co_await form_page(c, ex, school, version, http::status::service_unavailable, "Requests cannot be sent now",
                  "Too many requests have been sent in the last hour. Please ask your teacher.");
    co_return;
  }
  if (!state.form_limiter.allow(c.ip_text, std::chrono::steady_clock::now())) {
    ex.note = "access request form: rate limited";
    state.form_keys.release(token);  // not used: the same form may be sent later
    // The window in words comes from the limiter itself, so the page cannot disagree with it.
    const std::string wait = "This device has sent " + std::to_string(state.form_limiter.limit()) +
                             " requests in the last " + describe_window(state.form_limiter.window()) +
                             ", the most it may send in that time. Please wait and try again later.";
    co_await form_page(c, ex, school, version, http::status::too_many_requests, "Too many requests", wait);
    co_return;
  }
  if (!state.admin) {
    state.form_keys.release(token);
    co_await form_page(c, ex, school, version, http::status::service_unavailable, "Requests cannot be sent now", "Please ask your teacher.");
    co_return;
  }
  // The requester's role, as the policy sees this device.
  rules::request_facts f;
  f.client = c.ip;
  f.method = "GET";
  f.scheme = "http";
  f.host = form_host;
  f.time = std::chrono::floor<std::chrono::seconds>(ex.start);
  const auto role = rules::decide(*ex.cfg->policy, f).chosen_role->name;
  auto form = std::make_shared<store::request_form>();
  // The query (and fragment) is kept only where the school keeps it in the access log.
  const std::string stored_url = url_for_storage(url, ex.cfg->daemon.access_log.keep_query);
  form->url = stored_url;
  form->requester = fields["requester"];
  form->reasons = fields["reasons"];
  form->site_content = fields["site_content"];
  form->risks = fields["risks"];
  form->control_measures = fields["control_measures"];
  form->roles = {role};
  form->source = "block page";
  form->client_address = c.ip_text;
  // Filed on the store thread (SQLite never runs on an event loop); co_spawn brings the result
  // back to this worker. The job is a named local, moved in: GCC 12 destroys a non-trivial
  // temporary made inside a co_await expression a second time after the resume (ASan caught
  // the shared_ptr freed twice), so no such temporary may appear in one.
  file_form_job job{state.admin, std::move(form)};
  auto filed = co_await net::co_spawn(state.admin->executor(), std::move(job), net::use_awaitable);
  if (!filed.ok) {
    ex.note = "access request form: " + filed.error;
    state.form_keys.release(token);  // nothing was filed: the same form may be sent again
    co_await form_page(c, ex, school, version, http::status::service_unavailable, "The request could not be saved",
                  "Please try again in a minute, or ask your teacher.");
    co_return;
  }
  const auto& answer = filed.data.as_object();
  const auto id = answer.at("id").as_int64();
  const bool merged = answer.contains("merged") && answer.at("merged").as_bool();
  if (merged) {
    // One device asking again for the same page adds no second pending request.
    ex.note = "access request " + std::to_string(id) + " asked again (merged)";
    const std::string again = "You have already asked for this page; your request number " + std::to_string(id) +
                              " for " + stored_url +
                              " is waiting for the headteacher's decision. It was not sent a second time. If it is "
                              "approved, the page opens by itself; you do not need to do anything else.";
    co_await form_page(c, ex, school, version, http::status::ok, "You have already asked for this page", again);
    co_return;
  }
  ex.note = "access request " + std::to_string(id) + " filed";
  const std::string text = "Your request number " + std::to_string(id) + " for " + stored_url +
                           " has been sent. The ICT technician passes it to the headteacher, who decides. If it is "
                           "approved, the page opens by itself for the time the headteacher sets; you do not need to "
                           "do anything else. If it is not, your teacher will tell you why.";
  co_await form_page(c, ex, school, version, http::status::ok, "Your request has been sent", text);
}

// Answers a request addressed to the proxy itself (origin-form).
net::awaitable<void> answer_local(client_connection& c, exchange& ex, unsigned version) {
  ex.reason_override = "a request addressed to the proxy itself";
  co_await write_error_page(
      c, ex, http::status::bad_request, "This is the school's web filter",
      "Your device sent a request to the web filter as if it were a web site. Set it as your browser's proxy "
      "(or use the automatic proxy configuration the school provides) and try again.",
      false, version);
}

// One request on the connection, from its head to the end of its answer. Returns whether
// the connection may carry another. A function of its own, so that its large coroutine frame
// (the parser, the exchange) exists only while a request is in hand, not while the
// connection waits idle for the next one.
net::awaitable<bool> serve_request(worker& w, client_connection& c, std::shared_ptr<const configuration> cfg) {
  const auto& limits = cfg->daemon.limits;
  exchange ex;
  ex.cfg = std::move(cfg);
  request_parser rp;
  rp.header_limit(static_cast<std::uint32_t>(limits.header_bytes));
  if (limits.body_bytes > 0) {
    rp.body_limit(limits.body_bytes);
  } else {
    rp.body_limit(boost::none);
  }
  c.stream.expires_after(limits.head_timeout);
  auto [ec, n] = co_await http::async_read_header(c.stream, c.buffer, rp, nothrow);
  ex.bytes_in += n;
  if (ec) {
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset) co_return false;
    if (ec == beast::error::timeout) {
      w.state().metrics.rejected(metrics::rejection::head_timeout).Increment();
      ex.reason_override = "the request head did not arrive in time";
      ex.status = 408;
      ex.note = "head timeout";
      finish_exchange(w, c, ex);
      co_return false;
    }
    if (ec == http::error::body_limit) {
      // Beast checks a declared Content-Length against the limit while reading the head.
      w.state().metrics.rejected(metrics::rejection::body_too_large).Increment();
      ex.reason_override = "the request body is larger than the school allows";
      co_await write_error_page(c, ex, http::status::payload_too_large, "The upload is too large",
                                "The request body is larger than the school's limit.");
    } else if (ec == http::error::header_limit) {
      w.state().metrics.rejected(metrics::rejection::head_too_large).Increment();
      ex.reason_override = "the request head is too large";
      co_await write_error_page(c, ex, http::status::request_header_fields_too_large, "The request is too large",
                                "The request's headers are larger than the web filter accepts.");
    } else {
      w.state().metrics.rejected(metrics::rejection::malformed).Increment();
      ex.reason_override = "the request is malformed";
      ex.note = ec.message();
      co_await write_error_page(c, ex, http::status::bad_request, "The request is malformed",
                                "The web filter could not read this request.");
    }
    finish_exchange(w, c, ex);
    co_return false;
  }
  // The policy this request is decided by: the one in force now that its head has arrived, not
  // the one in force when a kept-alive connection began to wait (a reload in between must
  // apply). The exception index is pinned with the decision (decide_exchange).
  ex.cfg = w.config();
  auto& req = rp.get();
  ex.method = std::string(req.method_string());
  const unsigned version = req.version();

  // Framing and grammar checks Beast's parser does not make (request smuggling).
  framing_check fc;
  std::size_t fields = 0;
  for (const auto& f : req) {
    fc.add(f.name_string(), f.value());
    ++fields;
  }
  std::optional<std::string> problem = fc.finish(version);
  if (!problem && version >= 11 && !fc.has_host()) problem = "an HTTP/1.1 request without a Host field";
  if (!problem && fields > limits.header_count) problem = "too many header fields";
  if (problem) {
    const bool too_many = fields > limits.header_count;
    w.state().metrics.rejected(too_many ? metrics::rejection::head_too_large : metrics::rejection::smuggling).Increment();
    ex.reason_override = too_many ? "the request has too many header fields" : "the request's framing is ambiguous";
    ex.note = *problem;
    co_await write_error_page(c, ex, too_many ? http::status::request_header_fields_too_large : http::status::bad_request,
                              "The request was refused", "The web filter refused an ambiguous or malformed request.");
    finish_exchange(w, c, ex);
    co_return false;
  }
  if (limits.body_bytes > 0 && rp.content_length() && *rp.content_length() > limits.body_bytes) {
    w.state().metrics.rejected(metrics::rejection::body_too_large).Increment();
    ex.reason_override = "the request body is larger than the school allows";
    co_await write_error_page(c, ex, http::status::payload_too_large, "The upload is too large",
                              "The request body is larger than the school's limit.");
    finish_exchange(w, c, ex);
    co_return false;
  }

  const bool is_connect = req.method() == http::verb::connect;
  std::string target_error;
  auto target = parse_request_target(req.target(), is_connect, target_error);
  if (!target) {
    if (target_error == "origin-form") {
      co_await answer_local(c, ex, version);
    } else {
      w.state().metrics.rejected(metrics::rejection::malformed).Increment();
      ex.reason_override = "the request target is not a URL the proxy can use";
      ex.note = target_error;
      co_await write_error_page(c, ex, http::status::bad_request, "The request was refused", target_error);
    }
    finish_exchange(w, c, ex);
    co_return false;
  }
  ex.scheme = target->scheme;
  ex.host = target->host;
  ex.port = target->port;
  ex.path = target->path;
  ex.query = target->query;

  if (!is_connect && beast::iequals(target->host, form_host)) {
    co_await answer_form(w, c, ex, rp);
    finish_exchange(w, c, ex);
    co_return false;
  }

  std::optional<std::string_view> path_for_rules;
  std::string path_and_query = target->path + (target->query.empty() ? "" : "?" + target->query);
  if (!is_connect) path_for_rules = path_and_query;
  const auto& v = decide_exchange(w, c, ex, path_for_rules);
  if (!v.host.text.empty()) ex.host = v.host.text;

  if (is_connect) {
    if (v.act == rules::action::block) {
      ex.action = outcome::block;
      co_await write_local(c, ex, http::status::forbidden,
                           "Blocked by " + ex.cfg->policy->school_name + "'s web filter: " + std::string(v.reason) + "\n",
                           "text/plain; charset=utf-8", false, version);
      finish_exchange(w, c, ex);
      co_return false;
    }
    const auto& ports = ex.cfg->daemon.connect.ports;
    if (std::find(ports.begin(), ports.end(), ex.port) == ports.end()) {
      w.state().metrics.rejected(metrics::rejection::port_not_allowed).Increment();
      ex.action = outcome::block;
      ex.reason_override = "tunnels to this port are not allowed";
      co_await write_local(c, ex, http::status::forbidden,
                           "Blocked by the web filter: tunnels to port " + std::to_string(ex.port) + " are not allowed.\n",
                           "text/plain; charset=utf-8", false, version);
      finish_exchange(w, c, ex);
      co_return false;
    }
    ex.action = outcome::allow;  // run_tunnel changes it when the ClientHello or the upstream says otherwise
    co_await run_tunnel(w, c, ex);
    finish_exchange(w, c, ex);
    co_return false;
  }

  if (v.act == rules::action::block) {
    ex.action = outcome::block;
    // A request body that was not read would be taken for the next request: close instead.
    const bool unread_body = !rp.is_done();
    const std::string url = "http://" + target->host + (target->port != 80 ? ":" + std::to_string(target->port) : "") +
                            path_and_query;
    const bool ok = co_await write_block_page(w, c, ex, url, req.keep_alive() && !unread_body, version);
    finish_exchange(w, c, ex);
    if (!ok || unread_body || !req.keep_alive()) co_return false;
    co_return true;
  }

  ex.action = outcome::allow;
  const auto outcome = co_await forward(w, c, ex, rp, *target);
  finish_exchange(w, c, ex);
  co_return outcome == forward_outcome::keep_alive;
}

net::awaitable<void> session_loop(worker& w, client_connection& c) {
  bool first = true;
  for (;;) {
    auto cfg = w.config();
    const auto& limits = cfg->daemon.limits;
    // Wait for the next request: keep-alive timeout while idle, then the head deadline.
    c.idle = true;
    if (c.buffer.size() == 0) {
      // A connection keeps a 4 KiB buffer between requests (a request head usually arrives
      // in one read), never more; a new one has none until its first bytes have arrived.
      if (c.buffer.capacity() > client_buffer_kept) c.buffer.shrink_to_fit();
      if (w.state().draining) co_return;
      c.stream.expires_after(first ? limits.head_timeout : limits.keepalive_timeout);
      // A new connection's first bytes go into a few bytes inside the connection, so that one
      // that sends nothing holds no buffer (it costs one more read for its first request).
      // (Chosen before the co_await: GCC 12 evaluated both arms of a conditional written
      // inside the co_await expression, allocating the buffer anyway; massif showed it.)
      net::mutable_buffer into(c.first_bytes.data(), c.first_bytes.size());
      if (!first) into = c.buffer.prepare(client_buffer_kept);
      auto [ec, n] = co_await c.stream.async_read_some(into, nothrow);
      if (ec) {
        if (ec == beast::error::timeout && first) w.state().metrics.rejected(metrics::rejection::head_timeout).Increment();
        co_return;
      }
      if (first) net::buffer_copy(c.buffer.prepare(client_buffer_kept), net::buffer(c.first_bytes.data(), n));
      c.buffer.commit(n);
    }
    c.idle = false;
    first = false;
    if (!co_await serve_request(w, c, std::move(cfg))) co_return;
  }
}

}  // namespace

const rules::verdict& decide_exchange(worker& w, const client_connection& c, exchange& ex,
                                      std::optional<std::string_view> path) {
  rules::request_facts f;
  f.client = c.ip;
  f.method = ex.method;
  f.scheme = ex.scheme;
  f.host = ex.host;
  f.port = ex.port;
  f.path = path;
  f.time = std::chrono::floor<std::chrono::seconds>(ex.start);
  const auto t0 = std::chrono::steady_clock::now();
  ex.verdict.emplace(rules::decide(*ex.cfg->policy, f));
  // Headteacher-approved exceptions and local entries (never over a locked category).
  ex.exceptions = w.state().exceptions.load(std::memory_order_acquire);
  if (ex.exceptions) ex.exceptions->apply(*ex.verdict, f);
  // A blocked VPN, web proxy or DNS-over-HTTPS host is an attempt to get round the filter.
  const auto& v = *ex.verdict;
  if (v.act == rules::action::block && v.matched_category && v.matched_category->circumvention) ex.circumvention = true;
  w.state().metrics.decision_seconds.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return *ex.verdict;
}

void finish_exchange(worker& w, const client_connection& c, exchange& ex) {
  auto& m = w.state().metrics;
  m.bytes_from_clients.Increment(static_cast<double>(ex.bytes_in));
  m.bytes_to_clients.Increment(static_cast<double>(ex.bytes_out));
  if (ex.circumvention) m.circumvention_attempts.Increment();
  const auto ended = ex.answered.value_or(std::chrono::steady_clock::now());
  m.observe_exchange(ex.status, std::chrono::duration<double>(ended - ex.started).count());
  const rules::verdict* v = ex.verdict ? &*ex.verdict : nullptr;
  if (v && v->chosen_role && ex.action != outcome::error) {
    const auto& counters = w.role_counters();
    const auto index = static_cast<std::size_t>(v->chosen_role - ex.cfg->policy->roles.data());
    if (index < counters.size() && ex.cfg->generation == w.config()->generation) {
      (ex.action == outcome::allow ? counters[index].allowed : counters[index].blocked)->Increment();
    }
  }
  if (!w.state().access_log.enabled() || !ex.cfg) return;
  access_record r;
  r.start = ex.start;
  r.client = c.ip_text;
  r.role = v && v->chosen_role ? std::string_view(v->chosen_role->name) : std::string_view();
  r.method = ex.method;
  r.scheme = ex.scheme;
  r.host = ex.host;
  r.port = ex.port;
  r.path = ex.path;
  r.query = ex.query;
  r.status = ex.status;
  r.action = to_string(ex.action);
  r.rule = v ? v->rule_id : std::string_view();
  r.category = v ? v->category_name() : std::string_view();
  r.reason = !ex.reason_override.empty() ? ex.reason_override : v ? v->reason : std::string_view();
  r.bytes_from_client = ex.bytes_in;
  r.bytes_to_client = ex.bytes_out;
  r.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - ex.started).count();
  r.circumvention = ex.circumvention;
  r.note = ex.note;
  w.state().access_log.write(format_access_record(r, ex.cfg->policy->zone, ex.cfg->daemon.access_log.keep_query));
}

net::awaitable<void> run_http_session(worker& w, std::shared_ptr<client_connection> c) {
  w.register_connection(c.get());
  w.state().metrics.active_connections.Increment();
  try {
    co_await session_loop(w, *c);
  } catch (const std::exception& e) {
    std::cerr << "hallpass: session for " << c->ip_text << " ended by an unexpected error: " << e.what() << "\n";
  }
  error_code ignored;
  c->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  c->stream.socket().close(ignored);
  w.state().metrics.active_connections.Decrement();
  w.unregister_connection(c.get());
  w.state().release(c->ip_text);
}

}  // namespace hallpass

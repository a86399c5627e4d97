// Responses the proxy writes itself: a complete local response, the error page, the block
// page, the answer to a request addressed to the proxy, and the refusals. Every refusal (a
// request refused before a decision, a destination refused, an origin that failed) is one row
// of one table (refusal_row): its status, the metric it counts, the reason the access log
// gives, and the page the client gets; refuse() applies a row.
//
// Coroutines run on the session's worker thread; the table is constant and may be read from
// any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/exchange.hpp"
#include "proxy/metrics.hpp"
#include "proxy/net.hpp"
#include "proxy/upstream.hpp"

namespace hallpass {

class worker;
struct client_connection;

// The kinds of refusal, one row each in the table.
enum class refusal : std::uint8_t {
  head_timeout,          // the request head did not arrive in time: 408 recorded, nothing sent
  malformed,             // Beast could not read the request head
  head_too_large,        // the head is over limits.header_bytes
  too_many_fields,       // more fields than limits.header_count
  ambiguous_framing,     // request smuggling shapes (request_checks.hpp)
  body_too_large,        // declared or counted body over limits.body_bytes
  malformed_body,        // the client's chunks are broken
  body_too_slow,         // the client sent its body slower than limits.body_min_rate (408)
  bad_target,            // a request-target the proxy cannot use (the detail is the page text)
  addressed_to_proxy,    // origin-form: a device that does not know it talks to a proxy
  port_not_allowed,      // CONNECT outside connect.ports (a plain-text answer)
  destination_refused,   // upstream: loopback, deny_networks, ... (the detail is the reason)
  upstream_unreachable,  // upstream: DNS, connect or reset failures (the detail is the reason)
  upstream_timeout,      // upstream: connect or DNS deadline passed (the detail is the reason)
  upstream_send_failed,  // the request could not be written to the origin
  upstream_no_answer,    // the origin did not answer within upstream.response_timeout
  upstream_closed,       // the origin closed the connection without answering
  upstream_malformed,    // the origin's answer can be read more than one way
  upstream_head_too_large,  // the origin's answer head is over limits.response_header_bytes or _count
  misdirected,           // inside an inspected tunnel, a request naming another site (421)
  upstream_certificate,  // an https origin failed certificate verification (the detail: OpenSSL's reason)
  upstream_outdated_tls,  // an https origin offers only TLS older than 1.2
  upstream_needs_direct,  // an inspected origin wants what the proxy cannot give (the detail says what)
  http2_only,            // a client that opened with HTTP/2's connection preface (answered in HTTP/2)
  method_too_long,       // a method longer than max_forwarded_method_length (501)
  proxy_overloaded,      // the proxy has no file descriptor left for the origin connection (503)
  upstream_name_unknown,  // upstream: the site's name does not exist (a misspelt address, 502)
};

enum class refusal_page : std::uint8_t {
  html,   // the error page (block_page.hpp's render_error_page)
  plain,  // one line of text/plain (the answer to a CONNECT, the 408)
  http2,  // HTTP/2's own refusal: SETTINGS, then GOAWAY with HTTP_1_1_REQUIRED (no page)
};

// One row. Texts are constants; "{}" in `text` stands for the refusal's detail, and an empty
// `log_reason` or `text` means the detail itself (which must then outlive the exchange when it
// is the log reason: the upstream's reasons are static strings).
struct refusal_row {
  int status;                                            // sent to the client and logged
  outcome action;                                        // the access log's `action`
  std::optional<metrics::rejection> rejected;            // hallpass_rejected_total{reason}
  std::optional<metrics::upstream_failure> upstream;     // hallpass_upstream_failures_total{kind}
  std::string_view log_reason;                           // the access log's `reason`
  bool detail_is_note;                                   // the log's `note`: note_prefix + detail
  std::string_view note_prefix;
  refusal_page page;
  std::string_view title;  // the page's title (html)
  std::string_view text;   // the page's explanation (html) or the whole body (plain)
  bool transient = true;   // the page says to try again in a minute (false: that cannot help)
  // For the technician, in a paragraph of its own after `text` ("{}": the detail, which `text`
  // then leaves out); the page's address goes there too. Empty: none.
  std::string_view technical = {};
};

// The row for a kind. Every kind has one (checked by a unit test).
const refusal_row& refusal_info(refusal r);

// The page text of a row for a detail: "{}" replaced by the detail; the detail when empty.
std::string refusal_text(const refusal_row& row, std::string_view detail);

// The refusal for an upstream connection that could not be made.
refusal refusal_for(upstream_error e);

// Applies a row: counts its metric, sets ex's action, reason, note and status, and writes its
// page (HTTP `version`, then the connection closes). Returns false when nothing was sent or
// the client is gone.
net::awaitable<bool> refuse(worker& w, client_connection& c, exchange& ex, refusal r, std::string_view detail = {},
                            unsigned version = 11);

// Writes a complete local response and sets ex.status and ex.bytes_out. Returns false when
// the client is gone. `body` is taken by rvalue reference (callers move a named local in), so
// that no by-value string is made inside the caller's co_await (proxy/README.md, GCC 12 rule 2).
net::awaitable<bool> write_local(client_connection& c, exchange& ex, http::status status, std::string&& body,
                                 std::string_view content_type, bool keep_alive, unsigned version);

// The head every local response starts with: `status`, Server: hallpass, the content type and
// Cache-Control: no-store. The caller adds what its answer needs, sets the body and sends it
// with send_local.
http::response<http::string_body> local_head(http::status status, unsigned version,
                                             std::string_view content_type);

// Sends a local response the caller built (a named local, alive until the co_await returns):
// sets keep-alive and the length, writes it under a 30 s deadline, and sets ex.status and
// ex.bytes_out. Returns false when the client is gone. write_local and the login gate's
// answers are this.
net::awaitable<bool> send_local(client_connection& c, exchange& ex,
                                http::response<http::string_body>& res, bool keep_alive);

// The school's error page with a title and an explanation.
net::awaitable<bool> write_error_page(client_connection& c, exchange& ex, http::status status, std::string_view title,
                                      std::string_view explanation, bool keep_alive = false, unsigned version = 11,
                                      bool transient = true, std::string_view technical = {});

// The block page for ex's verdict (with the access request form where an exception could help).
// `for_the_person` (block_page_for_the_person): false leaves out who signed in, the device, its
// addresses, the sign-out link and the form, which the blocked site's scripts could read.
// Such a page on the explicit proxy (plain HTTP) links to the person's page at the proxy's own
// address instead (block_details_url), where an exception could help; a device on a
// transparent listener or inside a tunnel cannot reach that address.
std::string block_page_html(worker& w, client_connection& c, exchange& ex, std::string_view url,
                            bool for_the_person);
// block_page_html as a 403.
net::awaitable<bool> write_block_page(worker& w, client_connection& c, exchange& ex, std::string_view url,
                                      bool keep_alive, unsigned version, bool for_the_person = true);

// The answer to a CONNECT the policy blocked: one line naming the reason, then close.
net::awaitable<bool> write_connect_block(client_connection& c, exchange& ex, unsigned version);

// The proxy's own answer to an OPTIONS or TRACE that may go no further (Max-Forwards: 0, RFC
// 9110 7.6.2), and to "OPTIONS *" addressed to the proxy: OPTIONS gets 200 with Allow and no
// body; TRACE gets 200 with the request as received (message/http, RFC 9110 9.3.8), less the
// fields that carry credentials (Cookie, Authorization, Proxy-Authorization). Sets ex.note.
net::awaitable<bool> answer_as_last_hop(client_connection& c, exchange& ex, const http::request_header<>& req,
                                        bool keep_alive, unsigned version);

// Answers a request addressed to the proxy itself (origin-form).
net::awaitable<void> answer_local(worker& w, client_connection& c, exchange& ex, unsigned version);

}  // namespace hallpass

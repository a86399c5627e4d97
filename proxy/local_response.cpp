#include "proxy/local_response.hpp"

#include <array>
#include <cstdio>

#include "proxy/access_request_form.hpp"
#include "proxy/block_page.hpp"
#include "proxy/message_head.hpp"
#include "proxy/login_service.hpp"
#include "proxy/request_target.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/signin_page.hpp"
#include "proxy/worker.hpp"
#include "rules/explain.hpp"

namespace hallpass {
namespace {


using rej = metrics::rejection;
using upf = metrics::upstream_failure;
constexpr std::optional<rej> no_rejection;
constexpr std::optional<upf> no_upstream_failure;

constexpr std::string_view refused_title = "The request was refused";
constexpr std::string_view refused_text = "The school\u2019s internet filter refused an ambiguous or malformed request.";
constexpr std::string_view unreachable_title = "The site could not be reached";

// The table, in the order of enum refusal (checked below). The texts are those the tests
// and the documentation (proxy/README.md) name.
constexpr std::array<refusal_row, 27> rows{{
    // head_timeout
    {408, outcome::error, rej::head_timeout, no_upstream_failure, "the request head did not arrive in time", true, "",
     refusal_page::plain, "", "The request did not arrive in time; the school\u2019s internet filter closed the connection.\n"},
    // malformed
    {400, outcome::error, rej::malformed, no_upstream_failure, "the request is malformed", true, "", refusal_page::html,
     "The request is malformed", "The school\u2019s internet filter could not read this request."},
    // head_too_large
    {431, outcome::error, rej::head_too_large, no_upstream_failure, "the request head is too large", false, "",
     refusal_page::html, "The request is too large", "The request's headers are larger than the school\u2019s internet filter accepts."},
    // too_many_fields
    {431, outcome::error, rej::head_too_large, no_upstream_failure, "the request has too many header fields", true, "",
     refusal_page::html, refused_title, refused_text},
    // ambiguous_framing
    {400, outcome::error, rej::smuggling, no_upstream_failure, "the request's framing is ambiguous", true, "",
     refusal_page::html, refused_title, refused_text},
    // body_too_large
    {413, outcome::error, rej::body_too_large, no_upstream_failure, "the request body is larger than the school allows",
     false, "", refusal_page::html, "The upload is too large", "The request body is larger than the school's limit."},
    // malformed_body
    {400, outcome::error, rej::malformed, no_upstream_failure, "the request body is malformed", true, "",
     refusal_page::html, "The request is malformed", "The school\u2019s internet filter could not read this request's body."},
    // body_too_slow
    {408, outcome::error, rej::body_too_slow, no_upstream_failure, "the request body came too slowly", true, "",
     refusal_page::plain, "", "The upload came too slowly; the school\u2019s internet filter closed the connection.\n"},
    // bad_target
    {400, outcome::error, rej::malformed, no_upstream_failure, "the request target is not a URL the proxy can use", true,
     "", refusal_page::html, refused_title, ""},
    // addressed_to_proxy
    {400, outcome::error, no_rejection, no_upstream_failure, "a request addressed to the proxy itself", false, "",
     refusal_page::html, "This is the school\u2019s internet filter",
     "This address is the school\u2019s internet filter, not a website. If you were trying to open a website, tell "
     "the ICT technician: this device\u2019s proxy settings need checking (the filter should be set as its proxy, "
     "or the school\u2019s automatic proxy configuration used).", false},
    // port_not_allowed
    {403, outcome::block, rej::port_not_allowed, no_upstream_failure, "tunnels to this port are not allowed", false, "",
     refusal_page::plain, "", "Blocked by the school\u2019s internet filter: tunnels to port {} are not allowed.\n"},
    // destination_refused (the upstream counts its own failures and refusals). A block: the
    // school's setting refused it (upstream.ports, a network it does not open), as explain and
    // transparent mode say; it was logged an error (explain audit, 2026-12-07).
    {403, outcome::block, no_rejection, no_upstream_failure, "", false, "", refusal_page::html,
     "This destination is not allowed", ""},
    // upstream_unreachable
    {502, outcome::error, no_rejection, no_upstream_failure, "", false, "", refusal_page::html, unreachable_title, ""},
    // upstream_timeout
    {504, outcome::error, no_rejection, no_upstream_failure, "", false, "", refusal_page::html, unreachable_title, ""},
    // upstream_send_failed
    {502, outcome::error, no_rejection, no_upstream_failure, "the connection to the site failed", true,
     "upstream write failed: ", refusal_page::html, unreachable_title,
     "The connection to the site failed while sending the request."},
    // upstream_no_answer
    {504, outcome::error, no_rejection, upf::timeout, "the site did not answer in time", true, "upstream response: ",
     refusal_page::html, "The site did not answer in time", "The site took too long to answer."},
    // upstream_closed
    {502, outcome::error, no_rejection, upf::reset, "the site closed the connection", true, "upstream response: ",
     refusal_page::html, unreachable_title, "The site closed the connection without answering."},
    // upstream_malformed
    {502, outcome::error, no_rejection, upf::malformed, "the site's answer was malformed", true, "upstream response: ",
     refusal_page::html, "The site's answer was malformed",
     "The site answered in a way that can be read more than one way, so the school\u2019s internet filter did not pass it on."},
    // upstream_head_too_large (counted as malformed: hallpass_upstream_failures_total's kinds stay as they were)
    {502, outcome::error, no_rejection, upf::malformed, "the site's answer head was too large", true,
     "upstream response: ", refusal_page::html, "The site's answer was too large to check",
     "The site sent more header data with its answer than the school\u2019s internet filter accepts, so it did not pass the answer "
     "on. If you need this site, tell the ICT technician (limits.response_header_bytes and "
     "limits.response_header_count in the filter's configuration)."},
    // misdirected
    {421, outcome::error, rej::malformed, no_upstream_failure, "the request names another site than its tunnel",
     true, "", refusal_page::html, refused_title,
     "The school\u2019s internet filter refused a request for another site inside a connection opened for one site ({}).", false},
    // upstream_certificate (counted in hallpass_tls_origin_failures_total by the upstream)
    {502, outcome::error, no_rejection, no_upstream_failure, "the site's certificate could not be trusted", true,
     "upstream certificate: ", refusal_page::html, "This website is not safe to open",
     // A child reads the first sentences; the technician the reason, after them (audit of the
     // pages, 2026-12-06: the reason came first, in 69 words of certificate terms).
     "The school\u2019s internet filter could not check that this is the real website, so it stopped it. If you need "
     "it, tell your teacher or the ICT technician.", false,
     "For the technician: the site\u2019s certificate could not be trusted: {}. Usually the site is set up wrongly; "
     "sometimes someone is pretending to be it. The school\u2019s certificate is never given to a site that fails "
     "this check."},
    // upstream_outdated_tls (counted in hallpass_tls_origin_failures_total by the upstream)
    {502, outcome::error, no_rejection, no_upstream_failure, "the site offers only an outdated secure connection",
     true, "upstream TLS: ", refusal_page::html, "This site's security is out of date",
     "This site only offers an old kind of secure connection (older than TLS 1.2) that is no longer safe, so the web "
     "filter did not open it. Trying again will not help. If you need this site, tell the ICT technician.", false},
    // upstream_needs_direct (upstream.hpp origin_wants: a client certificate, HTTP/2 only)
    {502, outcome::error, no_rejection, no_upstream_failure, "the site cannot be opened with inspection", true,
     "upstream: ", refusal_page::html, "This site cannot be opened through the school\u2019s internet filter\u2019s checks",
     "The school\u2019s internet filter reads this site's pages to check them, and the site needs something it cannot give then: {}. "
     "Trying again will not help. If you need this site, tell the ICT technician.", false},
    // http2_only: logged as 505 (HTTP Version Not Supported); the client is told in HTTP/2
    {505, outcome::error, rej::http2_only, no_upstream_failure,
     "the client speaks only HTTP/2, which the web filter does not carry yet", false, "", refusal_page::http2, "", "",
     false},
    // method_too_long
    {501, outcome::error, rej::malformed, no_upstream_failure, "the request's method is longer than any the web filter knows",
     false, "", refusal_page::html, refused_title, "The school\u2019s internet filter does not know this request's method.", false},
    // proxy_overloaded (counted in hallpass_descriptor_shortages_total by the upstream)
    {503, outcome::error, no_rejection, no_upstream_failure, "", false, "", refusal_page::html,
     "The school\u2019s internet filter is too busy",
     "The school\u2019s internet filter has run out of room for connections just now, so it could not open this site. This is the "
     "filter's problem, not the site's. Try again in a minute; if it keeps happening, tell the ICT technician.",
     false},
    // upstream_name_unknown: trying again will not help; the spelling might (audit of the
    // pages, 2026-12-06: the page said to try again in a minute). The upstream counts it.
    {502, outcome::error, no_rejection, no_upstream_failure, "", false, "", refusal_page::html,
     "This website could not be found",
     "This website\u2019s name could not be found. Check the address for spelling mistakes; if it is right, the "
     "website may have closed. Tell your teacher if you need it.", false},
}};
static_assert(rows.size() == static_cast<std::size_t>(refusal::upstream_name_unknown) + 1,
              "one row per refusal kind, in the enum's order");

// School-local time in words for the block page: "Wednesday 2 December 2026, 12:16 GMT"
// (rules::zone_label: GMT or BST for Europe/London, else "UTC+01:00").
std::string local_time_text(const configuration& cfg, std::chrono::system_clock::time_point t) {
  return rules::time_in_words(cfg.policy->zone, std::chrono::floor<std::chrono::seconds>(t));
}

// Refusals about reaching an origin: their page names the address that was tried.
bool names_address(refusal r) {
  switch (r) {
    case refusal::destination_refused:
    case refusal::upstream_unreachable:
    case refusal::upstream_timeout:
    case refusal::upstream_send_failed:
    case refusal::upstream_no_answer:
    case refusal::upstream_closed:
    case refusal::upstream_certificate:
    case refusal::upstream_outdated_tls:
    case refusal::upstream_needs_direct:
    case refusal::upstream_name_unknown:
      return true;
    default:
      return false;
  }
}

}  // namespace

const refusal_row& refusal_info(refusal r) { return rows[static_cast<std::size_t>(r)]; }

std::string refusal_text(const refusal_row& row, std::string_view detail) {
  if (row.text.empty()) return std::string(detail);
  std::string text(row.text);
  if (const auto at = text.find("{}"); at != std::string::npos) text.replace(at, 2, detail);
  return text;
}

refusal refusal_for(upstream_error e) {
  switch (e) {
    case upstream_error::refused_destination: return refusal::destination_refused;
    case upstream_error::connect_timeout: return refusal::upstream_timeout;
    case upstream_error::dns_timeout: return refusal::upstream_timeout;
    case upstream_error::tls_unverified: return refusal::upstream_certificate;
    case upstream_error::tls_outdated: return refusal::upstream_outdated_tls;
    case upstream_error::tls_needs_direct: return refusal::upstream_needs_direct;
    case upstream_error::no_descriptors: return refusal::proxy_overloaded;
    case upstream_error::dns: return refusal::upstream_name_unknown;
    default: return refusal::upstream_unreachable;
  }
}

namespace {

// A client that opened with HTTP/2's preface reads no HTTP/1.1 answer: it is told in HTTP/2
// (RFC 9113 3.4, 6.8, 7): an empty SETTINGS frame (the server's preface), then GOAWAY naming
// no stream (none was processed) with HTTP_1_1_REQUIRED, the code meant for a server that
// needs HTTP/1.1. curl and Chromium then retry over HTTP/1.1 where they can; a client that
// cannot says the server requires HTTP/1.1, not that the connection broke.
net::awaitable<bool> write_http2_refusal(client_connection& c, exchange& ex) {
  static constexpr unsigned char frames[] = {
      0, 0, 0, 0x4, 0, 0, 0, 0, 0,                  // SETTINGS, length 0, no flags, stream 0
      0, 0, 8, 0x7, 0, 0, 0, 0, 0,                  // GOAWAY, length 8, stream 0
      0, 0, 0, 0,                                   // last stream id: 0
      0, 0, 0, 0xd,                                 // HTTP_1_1_REQUIRED
  };
  ex.status = 505;
  c.stream.expires_after(std::chrono::seconds(30));
  auto [ec, n] = co_await net::async_write(c.io, net::buffer(frames), nothrow);
  ex.bytes_out += n;
  co_return !ec;
}

}  // namespace

net::awaitable<bool> refuse(worker& w, client_connection& c, exchange& ex, refusal r, std::string_view detail,
                            unsigned version) {
  const auto& row = refusal_info(r);
  if (row.rejected) w.state().metrics.rejected(*row.rejected).Increment();
  if (row.upstream) w.state().metrics.upstream_failed(*row.upstream).Increment();
  ex.action = row.action;
  ex.reason_override = row.log_reason.empty() ? detail : row.log_reason;
  // Refused by a daemon setting, not by the policy: the log's rule names the setting, as
  // explain does, not the policy's rule that allowed the request (explain audit, 2026-12-06, L2).
  if (r == refusal::port_not_allowed) ex.rule_override = "connect.ports";
  if (r == refusal::destination_refused) {
    ex.rule_override = detail == "requests to this port are not allowed" ? "upstream.ports" : "destination";
  }
  if (row.detail_is_note) ex.note = std::string(row.note_prefix) + std::string(detail);
  const auto status = static_cast<http::status>(row.status);
  std::string text = refusal_text(row, detail);
  std::string technical;
  if (!row.technical.empty()) {
    technical = row.technical;
    if (const auto at = technical.find("{}"); at != std::string::npos) technical.replace(at, 2, detail);
  }
  // A row without its own text shows the detail, a phrase ("the site's name could not be
  // found"): made a sentence before another follows it. Rows with a text are left as written.
  if (row.text.empty() && !text.empty()) {
    if (text.front() >= 'a' && text.front() <= 'z') text.front() = static_cast<char>(text.front() - 32);
    if (text.back() != '.' && text.back() != '?' && text.back() != '!') text += '.';
  }
  if (names_address(r) && !ex.host.empty()) {
    // The page names the address that could not be reached, for the technician: the page
    // asked for, not only its site (audit of the pages, 2026-12-06); no query.
    std::string& to = technical.empty() ? text : technical;
    to += " The address was " + url_of(ex.scheme, ex.host, ex.port, ex.path.empty() ? std::string_view("/") : ex.path);
    // SafeSearch connects to the provider's locked front end instead: that is what failed.
    if (!ex.connect_host.empty()) to += ", reached through " + ex.connect_host + " (SafeSearch)";
    to += ".";
  }
  switch (row.page) {
    case refusal_page::plain:
      co_return co_await write_local(c, ex, status, std::move(text), "text/plain; charset=utf-8", false, version);
    case refusal_page::http2:
      co_return co_await write_http2_refusal(c, ex);
    case refusal_page::html:
      break;
  }
  co_return co_await write_error_page(c, ex, status, row.title, text, false, version, row.transient, technical);
}

net::awaitable<bool> write_local(client_connection& c, exchange& ex, http::status status, std::string&& body,
                                 std::string_view content_type, bool keep_alive, unsigned version) {
  auto res = local_head(status, version, content_type);
  res.set("X-Content-Type-Options", "nosniff");
  res.body() = std::move(body);
  co_return co_await send_local(c, ex, res, keep_alive);
}

http::response<http::string_body> local_head(http::status status, unsigned version,
                                             std::string_view content_type) {
  http::response<http::string_body> res{status, version};
  res.set(http::field::server, "hallpass");
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-store");
  // A page served as a site (a block page on an inspected origin) opened by the site's script
  // with window.open: the opener cannot reach into it (browsers apply this to HTTPS pages).
  res.set("Cross-Origin-Opener-Policy", "same-origin");
  return res;
}

net::awaitable<bool> send_local(client_connection& c, exchange& ex,
                                http::response<http::string_body>& res, bool keep_alive) {
  res.keep_alive(keep_alive);
  res.prepare_payload();
  ex.status = static_cast<int>(res.result_int());
  // The head and the body as two plain buffers in one write (the body is not copied). Beast's
  // http::async_write over the duplex stream instantiated its serializer's buffer types for the
  // TLS and the TCP stream alike, which made this file the slowest of the build (48 s of
  // 1,045 CPU-s in CI). For HEAD, the head alone with the page's Content-Length (RFC 9110
  // 9.3.2): a body after it would be read as the answer to the client's next request.
  const std::string head = serialize_response_head(res.base());
  const std::array<net::const_buffer, 2> wire{
      net::buffer(head), ex.method == "HEAD" ? net::const_buffer() : net::buffer(res.body())};
  c.stream.expires_after(std::chrono::seconds(30));
  auto [ec, n] = co_await net::async_write(c.io, wire, nothrow);
  ex.bytes_out += n;
  co_return !ec;
}

net::awaitable<bool> write_error_page(client_connection& c, exchange& ex, http::status status, std::string_view title,
                                      std::string_view explanation, bool keep_alive, unsigned version,
                                      bool transient, std::string_view technical) {
  const std::string_view school = ex.cfg ? std::string_view(ex.cfg->policy->school_name) : std::string_view();
  std::string page =
      render_error_page(static_cast<int>(status), title, explanation, school, transient, technical, read_by_adult(ex));
  co_return co_await write_local(c, ex, status, std::move(page), "text/html; charset=utf-8", keep_alive, version);
}

std::string block_page_html(worker& w, client_connection& c, exchange& ex, std::string_view url,
                            bool for_the_person) {
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
  info.adults = v.chosen_role != nullptr && v.chosen_role->adults;
  if (v.matched_category) info.support = v.matched_category->support;
  // A circumvention category's block warns of the automatic ban, when the policy has one.
  std::string warning;
  if (v.matched_category && v.matched_category->circumvention && ex.cfg->policy->bans.attempts > 0) {
    warning = describe_window(std::chrono::duration_cast<std::chrono::seconds>(ex.cfg->policy->bans.duration));
    info.circumvention_warning = warning;
  }
  // A ban's page says until when (rules/ban.hpp); no exception opens a page during a ban.
  std::string ban_until, ban_until_spoken;
  if (v.ban) {
    ban_until = local_time_text(*ex.cfg, std::chrono::system_clock::time_point(v.ban->until));
    info.ban_until = ban_until;
    ban_until_spoken = rules::spoken_time(ex.cfg->policy->zone, v.ban->until, std::chrono::floor<std::chrono::seconds>(ex.start));
    info.ban_until_spoken = ban_until_spoken;
  }
  // What names the person (who signed in, the device, its addresses) and the form stay off a
  // page the site's own scripts may read (block_page_for_the_person).
  std::string signout, form, ask_url;
  const bool could_ask = v.by != rules::decided_by::locked_category && v.by != rules::decided_by::unchecked &&
                         !v.ban && w.state().admin != nullptr;
  if (for_the_person) {
    info.client = c.ip_text;
    if (const device_identity* d = device_of(w, c, ex)) {  // ex pins it for the page's lifetime
      info.device_name = d->name;
      info.hardware_address = d->hardware_address;
    }
    if (ex.login) info.user = ex.login->user;
    if (ex.login && ex.cfg->daemon.logins.mode_for(c.ip) == login_mode::page) {
      signout = signout_link(c.transparent.has_value(), info.host);  // signin_page.hpp
      info.signout_url = signout;
    }
    // The access request form, except where no exception could ever help.
    if (could_ask) {
      form = render_request_form(w.state().form_keys, c.ip_text, url,
                                 std::chrono::duration_cast<std::chrono::seconds>(ex.start.time_since_epoch()).count(),
                                 c.inside || c.transparent, info.user, info.adults);
      info.request_form_html = form;
    }
  } else if (!c.inside && !c.transparent) {
    // The explicit proxy's plain HTTP: the person's page is on the proxy's own address, with
    // the form where an exception could help, and in any case who is signed in and the
    // sign-out link (a locked category's or a ban's page showed neither: review, 2026-12-05, L2).
    ask_url = block_details_url(ex.method, ex.method_overrides, url);
    (could_ask ? info.ask_url : info.details_url) = ask_url;
  }
  return render_block_page(info);
}

net::awaitable<bool> write_block_page(worker& w, client_connection& c, exchange& ex, std::string_view url,
                                      bool keep_alive, unsigned version, bool for_the_person) {
  std::string page = block_page_html(w, c, ex, url, for_the_person);
  co_return co_await write_local(c, ex, http::status::forbidden, std::move(page), "text/html; charset=utf-8",
                                 keep_alive, version);
}

net::awaitable<bool> write_connect_block(client_connection& c, exchange& ex, unsigned version) {
  ex.action = outcome::block;
  std::string text =
      "Blocked by " + ex.cfg->policy->school_name + "'s web filter: " + std::string(ex.verdict->reason) + "\n";
  co_return co_await write_local(c, ex, http::status::forbidden, std::move(text), "text/plain; charset=utf-8", false,
                                 version);
}

net::awaitable<bool> answer_as_last_hop(client_connection& c, exchange& ex, const http::request_header<>& req,
                                        bool keep_alive, unsigned version) {
  const bool trace = req.method() == http::verb::trace;
  auto res = local_head(http::status::ok, version, trace ? "message/http" : "text/plain; charset=utf-8");
  if (trace) {
    std::string echo;
    echo.append(req.method_string()).append(" ").append(req.target()).append(req.version() == 10 ? " HTTP/1.0" : " HTTP/1.1");
    echo.append("\r\n");
    for (const auto& f : req) {
      const auto name = f.name();
      if (name == http::field::cookie || name == http::field::authorization ||
          name == http::field::proxy_authorization) {
        continue;
      }
      echo.append(f.name_string()).append(": ").append(f.value()).append("\r\n");
    }
    echo.append("\r\n");
    res.body() = std::move(echo);
  } else {
    res.erase(http::field::content_type);  // no body
    res.set(http::field::allow, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT");
  }
  ex.note = ex.host.empty() ? "OPTIONS * answered by the proxy"
                                          : "answered by the proxy: Max-Forwards was 0";
  co_return co_await send_local(c, ex, res, keep_alive);
}

net::awaitable<void> answer_local(worker& w, client_connection& c, exchange& ex, unsigned version) {
  co_await refuse(w, c, ex, refusal::addressed_to_proxy, {}, version);
}

}  // namespace hallpass

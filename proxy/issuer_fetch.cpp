#include "proxy/issuer_fetch.hpp"

#include <algorithm>
#include <cstdio>

#include "certs/fetched_issuers.hpp"
#include "proxy/request_target.hpp"
#include "proxy/upstream.hpp"
#include "rules/host.hpp"

namespace hallpass {
namespace {


}  // namespace

net::awaitable<issuer_fetch_result> fetch_issuer(upstream& up, const std::string& url, const configuration& cfg) {
  issuer_fetch_result out;
  std::string why;
  const auto target = parse_request_target(url, false, why);
  if (!target) {
    out.error = "its address is not an http:// URL (" + why + ")";
    co_return out;
  }
  const auto host = rules::normalize_host(target->host, &why);
  if (!host) {
    out.error = "its address names no valid host (" + why + ")";
    co_return out;
  }
  origin_address to;
  to.host = host->text;
  to.port = target->port;
  auto got = co_await up.acquire(to, cfg, upstream_use::http, /*allow_pooled=*/false);
  if (!got.conn) {
    out.error = std::string(got.reason) + (got.detail.empty() ? "" : " (" + got.detail + ")");
    co_return out;
  }
  upstream_connection& c = *got.conn;
  // Our own head, one way only: the target and host passed parse_request_target's visible-ASCII
  // check, and the connection closes after the answer.
  std::string head = "GET " + target->path + (target->query.empty() ? "" : "?" + target->query) +
                     " HTTP/1.1\r\nHost: " + target->host +
                     (target->port == 80 ? "" : ":" + std::to_string(target->port)) +
                     "\r\nAccept: application/pkix-cert, application/pkcs7-mime, */*\r\n"
                     "User-Agent: hallpass (intermediate certificate)\r\nConnection: close\r\n\r\n";
  const auto timeout = std::min<std::chrono::milliseconds>(issuer_fetch_timeout, cfg.daemon.upstream.response_timeout);
  c.stream.expires_after(timeout);
  auto [write_ec, written] = co_await net::async_write(c.stream, net::buffer(head), nothrow);
  (void)written;
  if (write_ec) {
    out.error = "sending the request failed (" + write_ec.message() + ")";
    co_return out;
  }
  http::response_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(max_issuer_bytes);
  auto [read_ec, read] = co_await http::async_read(c.stream, c.buffer, parser, nothrow);
  (void)read;
  c.stream.expires_never();
  if (read_ec == beast::error::timeout) {
    // The wait as configured: 10 s, or upstream.response_timeout when that is shorter ("1.5 s").
    char within[32];
    std::snprintf(within, sizeof within, "%g s", static_cast<double>(timeout.count()) / 1000.0);
    out.error = std::string("no answer within ") + within;
    co_return out;
  }
  if (read_ec == http::error::body_limit) {
    out.error = "the answer is larger than " + std::to_string(max_issuer_bytes / 1024) + " KiB";
    co_return out;
  }
  if (read_ec) {
    out.error = "reading the answer failed (" + read_ec.message() + ")";
    co_return out;
  }
  const auto& response = parser.get();
  if (response.result_int() != 200) {
    out.error = "it answered " + std::to_string(response.result_int());
    co_return out;
  }
  auto parsed = certs::fetched_issuers::parse(response.body());
  if (!parsed) {
    out.error = parsed.error();
    co_return out;
  }
  out.certs = std::move(*parsed);
  co_return out;
}

}  // namespace hallpass

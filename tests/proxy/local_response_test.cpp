// The table of refusals (local_response.hpp): one row per kind, with the statuses, metric
// labels, log reasons and page texts the integration tests and the README name.
#include <doctest/doctest.h>

#include <sstream>
#include <string>

#include "proxy/local_response.hpp"
#include "proxy/message_head.hpp"

using namespace hallpass;

TEST_CASE("every refusal kind has a complete row") {
  for (int i = 0; i <= static_cast<int>(refusal::upstream_name_unknown); ++i) {
    const auto& row = refusal_info(static_cast<refusal>(i));
    CAPTURE(i);
    CHECK(row.status >= 400);
    CHECK(row.status <= 599);
    CHECK(row.action != outcome::allow);
    CHECK_FALSE((row.rejected && row.upstream));  // counted once, in one family
    if (row.page == refusal_page::html) CHECK_FALSE(row.title.empty());
    if (row.page == refusal_page::plain) CHECK_FALSE(row.text.empty());
  }
}

TEST_CASE("refusals keep the statuses, metrics and log reasons of before the split") {
  const auto& framing = refusal_info(refusal::ambiguous_framing);
  CHECK(framing.status == 400);
  CHECK(framing.rejected == metrics::rejection::smuggling);
  CHECK(framing.log_reason == "the request's framing is ambiguous");
  const auto& fields = refusal_info(refusal::too_many_fields);
  CHECK(fields.status == 431);
  CHECK(fields.rejected == metrics::rejection::head_too_large);
  const auto& timeout = refusal_info(refusal::head_timeout);
  CHECK(timeout.status == 408);
  CHECK(timeout.page == refusal_page::plain);  // sent: the read deadline leaves the socket open
  CHECK(timeout.rejected == metrics::rejection::head_timeout);
  const auto& port = refusal_info(refusal::port_not_allowed);
  CHECK(port.status == 403);
  CHECK(port.action == outcome::block);
  CHECK(port.page == refusal_page::plain);
  const auto& answer = refusal_info(refusal::upstream_malformed);
  CHECK(answer.status == 502);
  CHECK(answer.upstream == metrics::upstream_failure::malformed);  // its own kind since 2026-12-05 (was reset)
  CHECK(answer.note_prefix == "upstream response: ");
  CHECK(refusal_info(refusal::upstream_no_answer).status == 504);
  CHECK(refusal_info(refusal::upstream_no_answer).upstream == metrics::upstream_failure::timeout);
  CHECK(refusal_info(refusal::body_too_large).status == 413);
}

TEST_CASE("a refusal's page text takes its detail where the row says") {
  CHECK(refusal_text(refusal_info(refusal::port_not_allowed), "25") ==
        "Blocked by the school\u2019s internet filter: tunnels to port 25 are not allowed.\n");
  // An empty text is the detail itself (the target parser's explanation).
  CHECK(refusal_text(refusal_info(refusal::bad_target), "a target with a fragment") == "a target with a fragment");
  CHECK(refusal_text(refusal_info(refusal::head_too_large), "ignored") ==
        "The request's headers are larger than the school\u2019s internet filter accepts.");
}

TEST_CASE("upstream errors map to the refusal with the status they had") {
  CHECK(refusal_for(upstream_error::refused_destination) == refusal::destination_refused);
  CHECK(refusal_info(refusal_for(upstream_error::refused_destination)).status == 403);
  CHECK(refusal_info(refusal_for(upstream_error::connect_timeout)).status == 504);
  CHECK(refusal_info(refusal_for(upstream_error::dns_timeout)).status == 504);
  CHECK(refusal_info(refusal_for(upstream_error::dns)).status == 502);
  CHECK(refusal_info(refusal_for(upstream_error::connect_refused)).status == 502);
}

TEST_CASE("a local answer goes on the wire as Beast would write it (message_head.hpp's serialize_response_head)") {
  auto res = local_head(http::status::forbidden, 11, "text/html; charset=utf-8");
  res.set("X-Content-Type-Options", "nosniff");
  res.body() = "<p>blocked</p>";
  res.keep_alive(false);
  res.prepare_payload();
  CHECK(serialize_response_head(res.base()) ==
        "HTTP/1.1 403 Forbidden\r\nServer: hallpass\r\nContent-Type: text/html; charset=utf-8\r\n"
        "Cache-Control: no-store\r\nCross-Origin-Opener-Policy: same-origin\r\nX-Content-Type-Options: nosniff\r\n"
        "Connection: close\r\n"
        "Content-Length: 14\r\n\r\n");
  std::ostringstream beast_wrote;  // Beast's own serializer, which sent local answers before
  beast_wrote << res;
  CHECK(beast_wrote.str() == serialize_response_head(res.base()) + res.body());
  auto old = local_head(http::status::proxy_authentication_required, 10, "text/plain; charset=utf-8");
  old.keep_alive(true);
  old.prepare_payload();
  CHECK(serialize_response_head(old.base()).starts_with("HTTP/1.0 407 Proxy Authentication Required\r\n"));
  CHECK(serialize_response_head(old.base()).find("Connection: keep-alive\r\n") != std::string::npos);
  http::response<http::string_body> odd{static_cast<http::status>(299), 11};
  odd.reason("Custom");
  CHECK(serialize_response_head(odd.base()) == "HTTP/1.1 299 Custom\r\n\r\n");
}

// The block page's request form: tokens verify once per page and are single-use (bounded
// memory), the stored URL drops the query unless the school keeps queries, and the rate
// limit's window is put into words from the limiter itself.
#include <doctest/doctest.h>

#include <chrono>

#include "proxy/access_request_form.hpp"

using namespace hallpass;

TEST_CASE("a form token verifies for its device, URL, time and nonce only") {
  form_keys keys;
  const auto nonce = form_keys::random_nonce();
  CHECK(nonce.size() == 32);
  CHECK(nonce != form_keys::random_nonce());
  const auto t = keys.token(token_purpose::request, "10.0.0.1", "http://x.test/", 1000, nonce);
  CHECK(keys.verify(token_purpose::request, "10.0.0.1", "http://x.test/", 1000, nonce, t, 1010));
  CHECK_FALSE(keys.verify(token_purpose::request, "10.0.0.2", "http://x.test/", 1000, nonce, t, 1010));
  CHECK_FALSE(keys.verify(token_purpose::request, "10.0.0.1", "http://x.test/a", 1000, nonce, t, 1010));
  CHECK_FALSE(keys.verify(token_purpose::request, "10.0.0.1", "http://x.test/", 1000, form_keys::random_nonce(), t, 1010));
  CHECK_FALSE(keys.verify(token_purpose::request, "10.0.0.1", "http://x.test/", 1000, nonce, t, 1000 + form_token_lifetime + 1));
  // Two pages in the same second carry different tokens.
  CHECK(t != keys.token(token_purpose::request, "10.0.0.1", "http://x.test/", 1000, form_keys::random_nonce()));
}

TEST_CASE("a form token is redeemed once, and a release lets it be sent again") {
  form_keys keys;
  CHECK(keys.redeem("aa", 1000, 1010) == form_keys::redeem_result::fresh);
  CHECK(keys.redeem("aa", 1000, 1020) == form_keys::redeem_result::already_used);
  CHECK(keys.redeem("bb", 1000, 1020) == form_keys::redeem_result::fresh);
  keys.release("bb");
  CHECK(keys.redeem("bb", 1000, 1030) == form_keys::redeem_result::fresh);
  // Remembered past the token's own lifetime, so it cannot be replayed while it verifies.
  CHECK(keys.redeem("aa", 1000, 1000 + form_token_lifetime) == form_keys::redeem_result::already_used);
}

TEST_CASE("used tokens take bounded memory: expired ones are forgotten, and a full table refuses") {
  form_keys keys;
  for (std::size_t i = 0; i < form_keys::max_used; ++i) {
    REQUIRE(keys.redeem("t" + std::to_string(i), 1000, 1000) == form_keys::redeem_result::fresh);
  }
  // Full, none expired: refuse rather than forget one (which could then be replayed).
  CHECK(keys.redeem("one more", 1000, 1000) == form_keys::redeem_result::full);
  CHECK(keys.redeem("t0", 1000, 1000) == form_keys::redeem_result::already_used);
  // Once they have expired, they are swept and new tokens are accepted.
  CHECK(keys.redeem("one more", 9000, 9000) == form_keys::redeem_result::fresh);
}

TEST_CASE("the block page's details link carries the URL, a method other than GET and overrides") {
  CHECK(block_details_url("GET", {}, "http://x.test:8080/a b?q=1&r=%41#f") ==
        "http://hallpass.invalid/blocked?url=http://x.test:8080/a%20b?q=1%26r=%2541%23f");
  CHECK(block_details_url("POST", {}, "http://x.test/") == "http://hallpass.invalid/blocked?method=POST&url=http://x.test/");
  CHECK(block_details_url("GET", {"PUT", "DELETE"}, "http://x.test/") ==
        "http://hallpass.invalid/blocked?override=PUT,DELETE&url=http://x.test/");
  // What parse_form reads back is what went in.
  const std::string url = "http://[::1]:81/p;x=1?a=\xc3\xa9&b=+~\"<>";
  const std::string link = block_details_url("PROPFIND", {"PATCH"}, url);
  for (const char c : link) CHECK((c > 0x20 && c < 0x7f));  // a request target as it stands
  const auto fields = parse_form(link.substr(link.find('?') + 1));
  CHECK(fields.at("url") == url);
  CHECK(fields.at("method") == "PROPFIND");
  CHECK(fields.at("override") == "PATCH");
}

TEST_CASE("the stored URL keeps its query only when the school keeps queries") {
  CHECK(url_for_storage("http://x.test/feed?child=Ava&q=1", false) == "http://x.test/feed");
  CHECK(url_for_storage("http://x.test/feed#top", false) == "http://x.test/feed");
  CHECK(url_for_storage("http://x.test/feed", false) == "http://x.test/feed");
  CHECK(url_for_storage("http://x.test/feed?child=Ava", true) == "http://x.test/feed?child=Ava");
  CHECK(url_for_storage("http://x.test/x;jsessionid=TOKEN/y?q=1", false) == "http://x.test/x/y");
}

TEST_CASE("a URL an adult typed loses its user information and fragment, keeps its query") {
  CHECK(url_without_credentials("https://user:PASS@secret.test/p;a=1?tok=Q#frag") == "https://secret.test/p;a=1?tok=Q");
  CHECK(url_without_credentials("http://a@b@x.test/") == "http://x.test/");
  CHECK(url_without_credentials("x.test/path@home?mail=a@b.test") == "x.test/path@home?mail=a@b.test");
  CHECK(url_without_credentials("http://x.test?mail=a@b.test") == "http://x.test?mail=a@b.test");
  CHECK(url_without_credentials("me@x.test/p") == "x.test/p");
  CHECK(url_without_credentials("https://x.test/") == "https://x.test/");
  // A "://" in the query is no scheme.
  CHECK(url_without_credentials("user:PASS@x.test/?next=https://y") == "x.test/?next=https://y");
  CHECK(url_without_credentials("x.test/?u=http://a:b@c") == "x.test/?u=http://a:b@c");
}

TEST_CASE("a limiter's window in words") {
  using std::chrono::seconds;
  CHECK(describe_window(seconds(600)) == "10 minutes");
  CHECK(describe_window(seconds(60)) == "a minute");
  CHECK(describe_window(seconds(3600)) == "an hour");
  CHECK(describe_window(seconds(86400)) == "a day");
  CHECK(describe_window(seconds(3 * 86400)) == "3 days");
  CHECK(describe_window(seconds(7200)) == "2 hours");
  CHECK(describe_window(seconds(90)) == "90 seconds");
  CHECK(describe_window(seconds(1)) == "1 second");
  submission_limiter limiter(5, seconds(600));
  CHECK(describe_window(limiter.window()) == "10 minutes");
  CHECK(limiter.limit() == 5);
}

TEST_CASE("form answers are stored without control characters (audit15 D4)") {
  using namespace std::literals;
  CHECK(form_text("r\x00" "eason\r\nLine2\x1b[2J"sv, true) == "reason\nLine2[2J");
  CHECK(form_text("r\x00" "eason\r\nLine2\x1b[2J"sv, false) == "reason Line2[2J");
  CHECK(form_text("a\rb\nc\td\x07", true) == "a\nb\nc d");
  CHECK(form_text("Mrs \xe2\x80\xae" "evil", false) == "Mrs evil");  // a bidi override
  CHECK(form_text("J\xc3\xa9r\xc3\xb4me, Year 6 \xf0\x9f\x99\x82", false) == "J\xc3\xa9r\xc3\xb4me, Year 6 \xf0\x9f\x99\x82");
}

TEST_CASE("the limiter never forgets a device at its limit to make room for others") {
  using std::chrono::seconds;
  submission_limiter limiter(2, seconds(600));
  const auto t0 = std::chrono::steady_clock::time_point{} + seconds(1000);
  CHECK(limiter.allow("10.0.0.1", t0));
  CHECK(limiter.allow("10.0.0.1", t0));
  CHECK_FALSE(limiter.allow("10.0.0.1", t0));
  for (std::size_t i = 1; i < submission_limiter::max_windows; ++i) {
    CHECK(limiter.allow("fd00::" + std::to_string(i), t0 + seconds(1)));
  }
  // The table is full of live windows: a new address is refused, the one at its limit stays so.
  CHECK_FALSE(limiter.allow("10.0.0.2", t0 + seconds(2)));
  CHECK_FALSE(limiter.allow("10.0.0.1", t0 + seconds(2)));
  // Once the windows have ended, they make room.
  CHECK(limiter.allow("10.0.0.2", t0 + seconds(700)));
  CHECK(limiter.allow("10.0.0.1", t0 + seconds(700)));
}

TEST_CASE("the request form asks a child for a class and an adult for a role") {
  form_keys keys;
  const auto child = render_request_form(keys, "10.10.4.20", "http://x.test/", 1'700'000'000, false);
  CHECK(child.find("(and your class)") != std::string::npos);
  CHECK(child.find("A teacher will look at it.") != std::string::npos);
  const auto adult = render_request_form(keys, "10.20.4.20", "http://x.test/", 1'700'000'000, false, "mrs.head", true);
  CHECK(adult.find("(and your role)") != std::string::npos);
  CHECK(adult.find("Tell the headteacher why you need this page (000 7.5).") != std::string::npos);
  CHECK(adult.find("teacher will look") == std::string::npos);
  CHECK(adult.find("value=\"mrs.head\"") != std::string::npos);
}

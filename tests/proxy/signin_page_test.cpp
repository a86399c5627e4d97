// The sign-in page: its addresses, its escaped, self-contained HTML, its token (bound to the
// device, the URL and the page; not the request form's), and the `logins.page` settings.
#include "proxy/signin_page.hpp"

#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <regex>

#include "proxy/block_page.hpp"
#include "proxy/daemon_config.hpp"
#include "tests/proxy/test_support.hpp"

using namespace hallpass;

namespace {

std::string field(const std::string& page, const std::string& name) {
  const std::regex re("<input type=\"hidden\" name=\"" + name + "\" value=\"([^\"]*)\">");
  std::smatch m;
  return std::regex_search(page, m, re) ? m[1].str() : std::string("<none>");
}

const char* ldap = "  ldap: {url: \"ldaps://dc1.school.test\", base_dn: \"dc=school,dc=test\"}\n";

}  // namespace

TEST_CASE("signin page: its addresses through the proxy and on the site") {
  CHECK(signout_link(false, "example.com") == "http://hallpass.invalid/signout");
  CHECK(signout_link(true, "example.com") == "http://example.com/.well-known/hallpass/signout");
  CHECK(signin_address_of(false, "hallpass.invalid", "/signin") == signin_address::signin);
  CHECK(signin_address_of(false, "HALLPASS.invalid", "/signout") == signin_address::signout);
  CHECK(signin_address_of(false, "hallpass.invalid", "/request") == signin_address::none);
  CHECK(signin_address_of(false, "example.com", "/.well-known/hallpass/signin") == signin_address::none);
  CHECK(signin_address_of(true, "example.com", "/.well-known/hallpass/signin") == signin_address::signin);
  CHECK(signin_address_of(true, "example.com", "/.well-known/hallpass/signout") == signin_address::signout);
  CHECK(signin_address_of(true, "hallpass.invalid", "/signin") == signin_address::none);
}

TEST_CASE("signin page: the way back is on the site only when the URL's host is that site") {
  CHECK(url_on_host("https://example.com/a", "example.com"));
  CHECK(url_on_host("https://Example.COM:8443/a?b", "example.com"));
  CHECK(url_on_host("http://example.com", "example.com"));
  CHECK(url_on_host("http://example.com?q", "example.com"));
  CHECK_FALSE(url_on_host("https://example.com.evil.test/", "example.com"));
  CHECK_FALSE(url_on_host("https://evil.test/?next=https://example.com/", "example.com"));
  CHECK_FALSE(url_on_host("https://myexample.com/", "example.com"));
  CHECK_FALSE(url_on_host("https://example.co/", "example.com"));
  CHECK_FALSE(url_on_host("example.com/", "example.com"));
  CHECK_FALSE(url_on_host("https://example.com/", ""));
}

TEST_CASE("signin page: escaped, self-contained, with a token bound to device and URL") {
  form_keys keys;
  signin_page_info info;
  info.school_name = "St <Mary>'s";
  info.url = "http://example.test/a?b=\"<script>\"";
  info.client = "10.40.0.2";
  info.user = "dave\"><b>";
  info.problem = "The user name or password was not right.";
  info.now = 1'800'000'000;
  const std::string page = render_signin_page(keys, info);
  CHECK(page.find("Sign in to the school internet") != std::string::npos);
  CHECK(page.find("St &lt;Mary&gt;&#39;s") != std::string::npos);
  CHECK(page.find("<script") == std::string::npos);
  CHECK(page.find("<b>") == std::string::npos);
  CHECK(page.find("src=") == std::string::npos);
  CHECK(page.find("action=\"http://hallpass.invalid/signin\"") != std::string::npos);
  CHECK(page.find("role=\"alert\"") != std::string::npos);
  const std::string url = field(page, "url");
  CHECK(url == "http://example.test/a?b=&quot;&lt;script&gt;&quot;");
  const std::string nonce = field(page, "nonce"), token = field(page, "token");
  constexpr auto signin = token_purpose::signin;
  CHECK(keys.verify(signin, "10.40.0.2", info.url, info.now, nonce, token, info.now + 10));
  CHECK_FALSE(keys.verify(signin, "10.40.0.3", info.url, info.now, nonce, token, info.now + 10));  // another device
  CHECK_FALSE(keys.verify(signin, "10.40.0.2", "http://evil.test/", info.now, nonce, token,
                          info.now + 10));  // another way back
  // Never a request form's token, whatever URL is posted with it (audit15 D5: "signin " + URL
  // once passed the request form's check).
  CHECK_FALSE(keys.verify(token_purpose::request, "10.40.0.2", info.url, info.now, nonce, token, info.now + 10));
  CHECK_FALSE(keys.verify(token_purpose::request, "10.40.0.2", "signin " + std::string(info.url), info.now, nonce,
                          token, info.now + 10));
  CHECK_FALSE(keys.verify(signin, "10.40.0.2", info.url, info.now, nonce, token, info.now + 2 * form_token_lifetime));

  info.same_site = true;
  const std::string on_site = render_signin_page(keys, info);
  CHECK(on_site.find("action=\"/.well-known/hallpass/signin\"") != std::string::npos);
  CHECK(field(on_site, "nonce") != nonce);  // a fresh nonce per page
}

TEST_CASE("logins: login page and logins.page with defaults and bounds") {
  auto r = hallpass_test::load_config(std::string("logins:\n  networks:\n    - {networks: [10.40.0.0/16], login: page}\n") + ldap);
  CHECK(r.errors.empty());
  CHECK(r.config.logins.mode_for(*rules::ip_address::parse("10.40.1.2")) == login_mode::page);
  CHECK(r.config.logins.page.idle == std::chrono::minutes(30));
  CHECK(r.config.logins.page.lifetime == std::chrono::hours(8));
  CHECK(signin_check_summary(r.config).find("Sign-in page (login: page): 10.40.0.0/16") != std::string::npos);
  CHECK(signin_check_summary(r.config).find("HTTPS connections are refused") != std::string::npos);

  r = hallpass_test::load_config(std::string("logins:\n  login: page\n  page: {idle: 10m, lifetime: 2h}\n") + ldap);
  CHECK(r.errors.empty());
  CHECK(r.config.logins.page.idle == std::chrono::minutes(10));
  CHECK(r.config.logins.page.lifetime == std::chrono::hours(2));

  r = hallpass_test::load_config(std::string("logins:\n  login: page\n  page: {idle: 0s, lifetime: 30d, idel: 3m}\n") + ldap);
  CHECK(r.errors.find("idel") != std::string::npos);

  r = hallpass_test::load_config(std::string("logins:\n  login: page\n  page: {idle: 0s, lifetime: 30d}\n") + ldap);
  CHECK(r.errors.find("logins.page.idle must be from 1s to 1d") != std::string::npos);
  CHECK(r.errors.find("logins.page.lifetime must be from 1s to 7d") != std::string::npos);

  r = hallpass_test::load_config("logins:\n  login: pages\n");
  CHECK(r.errors.find("must be required, optional, page or none") != std::string::npos);

  r = hallpass_test::load_config("logins:\n  networks:\n    - {networks: [10.40.0.0/16], login: page}\n");
  CHECK(r.errors.find("no logins.ldap directory") != std::string::npos);

  const auto none = hallpass_test::load_config("listen: [\"127.0.0.1:3128\"]\n");
  CHECK(signin_check_summary(none.config).empty());
}

TEST_CASE("signin page: the block page of a device signed in through it offers sign-out") {
  block_page_info info;
  info.school_name = "School";
  info.url = "http://facebook.test/";
  info.host = "facebook.test";
  info.user = "dave<";
  const std::string link = signout_link(false, "facebook.test");
  info.signout_url = link;
  const std::string page = render_block_page(info);
  CHECK(page.find("signed in as dave&lt;. <a href=\"http://hallpass.invalid/signout\">Sign out</a>") !=
        std::string::npos);
  info.signout_url = {};
  CHECK(render_block_page(info).find("Sign out") == std::string::npos);  // Basic sign-ins: no link
}

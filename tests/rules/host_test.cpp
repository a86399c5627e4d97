#include <doctest/doctest.h>

#include "rules/host.hpp"

using namespace hallpass::rules;

namespace {
std::string norm(std::string_view s) {
  auto h = normalize_host(s);
  return h ? h->text : "<invalid>";
}
host_kind kind(std::string_view s) { return normalize_host(s).value().kind; }
}  // namespace

TEST_CASE("host names compare case-insensitively and without a trailing dot") {
  CHECK(norm("WWW.FaceBook.COM") == "www.facebook.com");
  CHECK(norm("www.facebook.com.") == "www.facebook.com");
  CHECK(norm("%77ww.facebook.com") == "www.facebook.com");
  CHECK(kind("example.org") == host_kind::name);
}

TEST_CASE("internationalised names become punycode") {
  CHECK(norm("bücher.example") == "xn--bcher-kva.example");
  CHECK(norm("BÜCHER.example") == "xn--bcher-kva.example");
  CHECK(norm("xn--bcher-kva.example") == "xn--bcher-kva.example");
  CHECK(norm("münchen.de.") == "xn--mnchen-3ya.de");
}

TEST_CASE("IP literals are recognised, including the forms browsers accept") {
  CHECK(norm("127.0.0.1") == "127.0.0.1");
  CHECK(kind("127.0.0.1") == host_kind::ipv4);
  CHECK(norm("2130706433") == "127.0.0.1");
  CHECK(norm("0x7f.1") == "127.0.0.1");
  CHECK(norm("0177.0.0.01") == "127.0.0.1");
  CHECK(norm("1.1.1.1.") == "1.1.1.1");
  CHECK(norm("[::1]") == "::1");
  CHECK(kind("[::1]") == host_kind::ipv6);
  CHECK(norm("[2001:DB8:0:0::1]") == "2001:db8::1");
  CHECK(norm("::ffff:1.2.3.4") == "::ffff:1.2.3.4");
}

TEST_CASE("invalid hosts are rejected with a reason") {
  std::string err;
  CHECK_FALSE(normalize_host("", &err));
  CHECK_FALSE(normalize_host("a..b", &err));
  CHECK(err.find("empty label") != std::string::npos);
  CHECK_FALSE(normalize_host("bad host.com", &err));
  CHECK_FALSE(normalize_host("1.2.3.256", &err));
  CHECK_FALSE(normalize_host("1.2.3.4.5", &err));
  CHECK_FALSE(normalize_host("[::1", &err));
  CHECK_FALSE(normalize_host("%zz.com", &err));
  CHECK_FALSE(normalize_host(std::string(300, 'a'), &err));
  CHECK_FALSE(normalize_host(std::string(64, 'a') + ".com", &err));
}

TEST_CASE("label-boundary subdomain test") {
  CHECK(is_same_or_subdomain("facebook.com", "facebook.com"));
  CHECK(is_same_or_subdomain("m.facebook.com", "facebook.com"));
  CHECK_FALSE(is_same_or_subdomain("notfacebook.com", "facebook.com"));
  CHECK_FALSE(is_same_or_subdomain("facebook.com.example.org", "facebook.com"));
}

TEST_CASE("ip_address parses both families") {
  auto a = ip_address::parse("10.1.2.3");
  REQUIRE(a);
  CHECK_FALSE(a->v6);
  CHECK(a->to_string() == "10.1.2.3");
  auto b = ip_address::parse("fd00:10::5");
  REQUIRE(b);
  CHECK(b->v6);
  CHECK_FALSE(ip_address::parse("10.1.2"));
  CHECK_FALSE(ip_address::parse("example.com"));
}

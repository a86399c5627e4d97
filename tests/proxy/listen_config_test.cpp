// `listen:` entries: strings are explicit-proxy listeners; maps {address, mode, protocol} may
// name transparent listeners (proxy/transparent.hpp), with errors at the entry's line.
#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <string>

#include "proxy/daemon_config.hpp"
#include "tests/proxy/test_support.hpp"

using namespace hallpass;

TEST_CASE("listen: strings and maps side by side") {
  const auto r = hallpass_test::load_config(
      "listen:\n"
      "  - \"10.0.0.1:3128\"\n"
      "  - {address: \"0.0.0.0:3129\", mode: transparent, protocol: http}\n"
      "  - {address: \"[::]:3130\", mode: transparent, protocol: tls}\n"
      "  - {address: \"127.0.0.1:3131\"}\n");
  CHECK(r.errors.empty());
  REQUIRE(r.config.listen.size() == 4);
  CHECK_FALSE(r.config.listen[0].transparent);
  CHECK(r.config.listen[1].transparent);
  CHECK_FALSE(r.config.listen[1].tls);
  CHECK(r.config.listen[1].host == "0.0.0.0");
  CHECK(r.config.listen[1].port == 3129);
  CHECK(r.config.listen[1].text == "0.0.0.0:3129 (transparent, http)");
  CHECK(r.config.listen[2].transparent);
  CHECK(r.config.listen[2].tls);
  CHECK(r.config.listen[2].host == "::");
  CHECK_FALSE(r.config.listen[3].transparent);  // mode defaults to explicit
}

TEST_CASE("listen: a transparent listener without a protocol, and other mistakes, are errors with lines") {
  const auto r = hallpass_test::load_config(
      "listen:\n"
      "  - {address: \"0.0.0.0:3129\", mode: transparent}\n"
      "  - {address: \"0.0.0.0:3130\", mode: transparent, protocol: quic}\n"
      "  - {address: \"0.0.0.0:3131\", mode: sideways}\n"
      "  - {address: \"0.0.0.0:3132\", protocol: tls}\n"
      "  - {address: \"nowhere\", mode: transparent, protocol: http}\n"
      "  - {mode: transparent, protocol: http}\n"
      "  - {address: \"0.0.0.0:3133\", mode: transparent, protocol: http, port: 80}\n");
  CHECK(r.errors.find("policy.yaml:2:5: a transparent listener needs protocol: http") != std::string::npos);
  CHECK(r.errors.find("policy.yaml:3:") != std::string::npos);
  CHECK(r.errors.find("listen.mode 'sideways' must be explicit or transparent") != std::string::npos);
  CHECK(r.errors.find("listen.protocol is only for mode: transparent") != std::string::npos);
  CHECK(r.errors.find("listen address 'nowhere' must be ADDRESS:PORT") != std::string::npos);
  CHECK(r.errors.find("a listen entry needs address: ADDRESS:PORT") != std::string::npos);
  CHECK(r.errors.find("port") != std::string::npos);  // the unknown key
  // Only the last entry (unknown key reported, the rest read) and the explicit one with a
  // stray protocol are kept.
  CHECK(r.config.listen.size() == 2);
}

TEST_CASE("listen: an IPv4-mapped IPv6 address is the IPv4 address it spells") {
  // outside-in audit of IPv6, 2026-12-07, F7: check said OK, run could not bind it.
  const auto a = parse_listen_address("[::ffff:127.0.0.1]:3160");
  REQUIRE(a);
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 3160);
  CHECK(parse_listen_address("[::]:3160")->host == "::");
}

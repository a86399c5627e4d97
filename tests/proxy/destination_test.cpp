// The destination check as a pure function: the default deny list and the embedded-IPv4
// forms are tested here, with no packet sent (integration tests may only use 127.0.0.0/8).
#include <doctest/doctest.h>

#include <string>
#include <yaml-cpp/yaml.h>

#include "proxy/daemon_config.hpp"
#include "proxy/destination.hpp"

using namespace hallpass;

namespace {

rules::ip_address ip(const char* text) {
  auto a = rules::ip_address::parse(text);
  REQUIRE(a.has_value());
  return *a;
}

destination_rules defaults() {
  destination_rules r;
  r.deny = default_deny_networks();
  r.own_listeners.emplace_back(ip("127.0.0.1"), 3128);
  r.own_listeners.emplace_back(ip("127.0.0.1"), 9131);
  return r;
}

destination_verdict verdict(const char* address, const destination_rules& r, std::uint16_t port = 80) {
  return check_destination(ip(address), port, r);
}

}  // namespace

TEST_CASE("the default deny list refuses private, CGNAT, link-local and ULA addresses") {
  const auto r = defaults();
  for (const char* a : {"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.1.1", "100.64.0.1",
                        "100.127.255.255", "fc00::1", "fd12:3456::1", "fec0::1", "feff::1"}) {
    INFO(a);
    CHECK(verdict(a, r) == destination_verdict::denied_network);
  }
  for (const char* a : {"169.254.169.254", "fe80::1"}) {
    INFO(a);
    CHECK(verdict(a, r) == destination_verdict::link_local);
  }
  for (const char* a : {"8.8.8.8", "172.15.255.255", "172.32.0.1", "192.169.0.1", "100.63.255.255", "100.128.0.1",
                        "11.0.0.1", "2001:db8::1", "fb00::1", "ff00::1"}) {
    INFO(a);
    CHECK(verdict(a, r) == destination_verdict::allowed);
  }
}

TEST_CASE("loopback follows allow_loopback, and the proxy's own ports never") {
  auto r = defaults();
  CHECK(verdict("127.0.0.1", r) == destination_verdict::loopback);
  CHECK(verdict("127.0.0.5", r) == destination_verdict::loopback);
  CHECK(verdict("::1", r) == destination_verdict::loopback);
  CHECK(verdict("0.0.0.0", r) == destination_verdict::loopback);
  CHECK(verdict("::", r) == destination_verdict::loopback);
  r.allow_loopback = true;
  CHECK(verdict("127.0.0.1", r) == destination_verdict::allowed);
  CHECK(verdict("::1", r) == destination_verdict::allowed);
  CHECK(verdict("127.0.0.1", r, 3128) == destination_verdict::own_listener);
  CHECK(verdict("127.0.0.9", r, 9131) == destination_verdict::own_listener);
  CHECK(verdict("::1", r, 3128) == destination_verdict::own_listener);
  // A listener on loopback is not reached through another machine's address on that port.
  CHECK(verdict("8.8.8.8", r, 3128) == destination_verdict::allowed);
  r.own_listeners.emplace_back(ip("::"), 8443);
  CHECK(verdict("8.8.8.8", r, 8443) == destination_verdict::own_listener);
}

TEST_CASE("an allow entry wins over deny, not over link-local or the proxy itself") {
  auto r = defaults();
  r.allow.push_back(*rules::ip_network::parse("10.1.2.0/24"));
  r.allow.push_back(*rules::ip_network::parse("169.254.0.0/16"));
  CHECK(verdict("10.1.2.3", r) == destination_verdict::allowed);
  CHECK(verdict("10.1.3.3", r) == destination_verdict::denied_network);
  CHECK(verdict("169.254.169.254", r) == destination_verdict::link_local);
}

TEST_CASE("the gateway's own addresses are denied unless allowed, and are the proxy on its ports") {
  auto r = defaults();
  r.gateway.push_back(ip("203.0.113.7"));
  CHECK(verdict("203.0.113.7", r) == destination_verdict::denied_network);
  CHECK(verdict("203.0.113.8", r) == destination_verdict::allowed);
  r.allow.push_back(*rules::ip_network::parse("203.0.113.7"));
  CHECK(verdict("203.0.113.7", r) == destination_verdict::allowed);
  r.own_listeners.emplace_back(ip("0.0.0.0"), 8080);
  CHECK(verdict("203.0.113.7", r, 8080) == destination_verdict::own_listener);
}

TEST_CASE("embedded IPv4 addresses are found in every IPv6 form that carries one") {
  auto v4 = [](const char* text) {
    auto e = embedded_ipv4(ip(text));
    return e ? e->to_string() : std::string("none");
  };
  CHECK(v4("::ffff:10.1.2.3") == "10.1.2.3");
  CHECK(v4("::127.0.0.1") == "127.0.0.1");
  CHECK(v4("::7f00:1") == "127.0.0.1");
  CHECK(v4("64:ff9b::a9fe:a9fe") == "169.254.169.254");
  CHECK(v4("64:ff9b:1::c0a8:101") == "192.168.1.1");
  CHECK(v4("2002:a9fe:a9fe::1") == "169.254.169.254");
  CHECK(v4("2002:7f00:1::") == "127.0.0.1");
  CHECK(v4("2001:0:4136:e378:8000:63bf:f5ff:fffe") == "10.0.0.1");  // Teredo: the client, inverted
  CHECK(v4("::1") == "none");
  CHECK(v4("::") == "none");
  CHECK(v4("2001:db8::1") == "none");
  CHECK(v4("10.0.0.1") == "none");
}

TEST_CASE("an IPv6 address is judged by the IPv4 address it embeds") {
  auto r = defaults();
  CHECK(verdict("::127.0.0.1", r) == destination_verdict::loopback);
  CHECK(verdict("::7f00:1", r) == destination_verdict::loopback);
  CHECK(verdict("::ffff:127.0.0.1", r) == destination_verdict::loopback);
  CHECK(verdict("64:ff9b::a9fe:a9fe", r) == destination_verdict::link_local);
  CHECK(verdict("2002:a9fe:a9fe::1", r) == destination_verdict::link_local);
  CHECK(verdict("64:ff9b::a00:1", r) == destination_verdict::denied_network);
  CHECK(verdict("2002:c0a8:101::1", r) == destination_verdict::denied_network);
  CHECK(verdict("2001:0:4136:e378:8000:63bf:f5ff:fffe", r) == destination_verdict::denied_network);
  CHECK(verdict("64:ff9b::808:808", r) == destination_verdict::allowed);
  r.allow_loopback = true;
  CHECK(verdict("::127.0.0.1", r) == destination_verdict::allowed);
  CHECK(verdict("::127.0.0.1", r, 3128) == destination_verdict::own_listener);
  CHECK(verdict("::7f00:1", r, 9131) == destination_verdict::own_listener);
  CHECK(verdict("64:ff9b::7f00:1", r, 3128) == destination_verdict::own_listener);
  r.allow.push_back(*rules::ip_network::parse("10.0.0.0/24"));
  CHECK(verdict("64:ff9b::a00:1", r) == destination_verdict::allowed);
}

TEST_CASE("upstream settings: networks, ports and name servers are read, errors say where") {
  rules::diagnostics errors;
  auto good = YAML::Load(
      "upstream:\n"
      "  dns_timeout: 2s\n"
      "  dns_servers: [\"127.0.0.1:5353\", 10.0.0.53, \"[fd00::53]:53\"]\n"
      "  deny_networks: [127.0.0.5/32]\n"
      "  allow_networks: [10.1.0.0/16]\n"
      "  ports: [80, 8081]\n");
  auto c = load_daemon_config(good, "p.yaml", errors);
  CHECK(errors.empty());
  CHECK(c.upstream.dns_timeout == std::chrono::seconds(2));
  REQUIRE(c.upstream.dns_servers.size() == 3);
  CHECK(c.upstream.dns_servers[0] == "127.0.0.1:5353");
  CHECK(c.upstream.dns_servers[1] == "10.0.0.53");
  CHECK(c.upstream.deny_networks_set);
  REQUIRE(c.upstream.deny_networks.size() == 1);
  CHECK(c.upstream.deny_networks[0].text == "127.0.0.5/32");
  REQUIRE(c.upstream.allow_networks.size() == 1);
  CHECK(c.upstream.ports == std::vector<std::uint16_t>{80, 8081});

  auto defaults_doc = YAML::Load("upstream: {allow_loopback: true}\n");
  auto d = load_daemon_config(defaults_doc, "p.yaml", errors);
  CHECK(errors.empty());
  CHECK(d.upstream.dns_timeout == std::chrono::seconds(5));
  CHECK_FALSE(d.upstream.deny_networks_set);
  CHECK_FALSE(d.upstream.ports_set);
  CHECK_FALSE(d.upstream.any_port);

  auto any = YAML::Load("upstream: {ports: any}\n");
  CHECK(load_daemon_config(any, "p.yaml", errors).upstream.any_port);
  CHECK(errors.empty());

  auto bad = YAML::Load(
      "upstream:\n"
      "  deny_networks: [10.0.0.1/8]\n"
      "  allow_networks: [nonsense]\n"
      "  dns_servers: [\"dns.example:53\"]\n"
      "  ports: [0]\n");
  errors.clear();
  load_daemon_config(bad, "p.yaml", errors);
  REQUIRE(errors.size() == 4);
  std::string all;
  for (const auto& e : errors) all += e.to_string() + "\n";
  CHECK(all.find("p.yaml:2:") != std::string::npos);
  CHECK(all.find("upstream.deny_networks") != std::string::npos);
  CHECK(all.find("p.yaml:3:") != std::string::npos);
  CHECK(all.find("p.yaml:4:") != std::string::npos);
  CHECK(all.find("upstream.dns_servers") != std::string::npos);
  CHECK(all.find("p.yaml:5:") != std::string::npos);
}

TEST_CASE("hosts: one name given twice, however spelled, is an error, not pooled addresses") {
  rules::diagnostics errors;
  auto doc = YAML::Load("hosts:\n  origin.test: 127.0.0.1\n  Origin.TEST.: 127.0.0.2\n  other.test: [127.0.0.3]\n");
  auto c = load_daemon_config(doc, "p.yaml", errors);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].to_string().find("p.yaml:3:") != std::string::npos);
  CHECK(errors[0].to_string().find("given twice") != std::string::npos);
  REQUIRE(c.hosts.contains("origin.test"));
  CHECK(c.hosts.at("origin.test").size() == 1);
}

TEST_CASE("the roles' networks are no destination unless allowed, loopback ones aside") {
  // A school numbering its LANs from a global IPv6 prefix (or a public IPv4 range): the private
  // ranges do not cover them (outside-in audit of IPv6, 2026-12-07, F3).
  auto r = defaults();
  r.school.push_back(*rules::ip_network::parse("2001:db8:20::/64"));
  r.school.push_back(*rules::ip_network::parse("203.0.113.0/24"));
  r.school.push_back(*rules::ip_network::parse("127.0.0.0/8"));
  CHECK(verdict("2001:db8:20::50", r) == destination_verdict::denied_network);
  CHECK(verdict("203.0.113.9", r) == destination_verdict::denied_network);
  CHECK(verdict("::ffff:203.0.113.9", r) == destination_verdict::denied_network);  // as the address it carries
  CHECK(verdict("2001:db8:21::50", r) == destination_verdict::allowed);
  r.allow_loopback = true;  // the tests' origins: a role network on loopback does not close them
  CHECK(verdict("127.0.0.9", r) == destination_verdict::allowed);
  r.allow.push_back(*rules::ip_network::parse("2001:db8:20::80/128"));  // the school's intranet server
  CHECK(verdict("2001:db8:20::80", r) == destination_verdict::allowed);
}

TEST_CASE("the gateway's addresses are read without the loopback addresses") {
  const auto addresses = gateway_addresses();
  REQUIRE(addresses.has_value());
  for (const auto& a : *addresses) {
    INFO(a.to_string());
    CHECK_FALSE((!a.v6 && a.bytes[0] == 127));
    CHECK_FALSE(a == ip("::1"));
  }
}

TEST_CASE("a role network wider than any private range is no refused destination") {
  // The review of the session, 2026-12-07: a role of 0.0.0.0/0 refused the whole internet.
  rules::policy p;
  for (const char* n : {"0.0.0.0/0", "::/0", "203.0.113.0/24", "2001:db8:20::/64"}) p.networks.push_back(*rules::ip_network::parse(n));
  daemon_config d;
  const auto r = destination_rules_of(d, p, {}, {});
  REQUIRE(r.school.size() == 2);
  CHECK(verdict("8.8.8.8", r) == destination_verdict::allowed);
  CHECK(verdict("2001:4860::8888", r) == destination_verdict::allowed);
  CHECK(verdict("203.0.113.9", r) == destination_verdict::denied_network);
}

// The PAC file's inputs and text. What the generated JavaScript answers is tested by running it
// in node (tests/integration/pac_served_test.py); here: what goes into it, and the HTTP answer.
#include "proxy/pac_script.hpp"

#include <doctest/doctest.h>

#include "proxy/daemon_config.hpp"
#include "proxy/pac_server.hpp"
#include "tests/proxy/test_support.hpp"

using namespace hallpass;

namespace {

rules::ip_network network(std::string_view s) {
  return *rules::ip_network::parse(s);
}
using hallpass_test::contains;
using hallpass_test::ip;

daemon_config listening_on(std::initializer_list<std::string_view> addresses) {
  daemon_config d;
  d.listen.clear();
  for (const auto a : addresses) d.listen.push_back(*parse_listen_address(a));
  return d;
}

rules::policy school_networks() {
  rules::policy p;
  p.networks = {network("10.10.0.0/16"), network("fd00:10::/64"), network("10.20.0.0/16")};
  return p;
}

}  // namespace

TEST_CASE("pac.proxy entries: IPv4, bracketed IPv6 and names, in canonical form") {
  CHECK(parse_pac_proxy("10.0.0.1:3128") == "10.0.0.1:3128");
  CHECK(parse_pac_proxy("[FD00:0::1]:3128") == "[fd00::1]:3128");
  CHECK(parse_pac_proxy("Proxy.School.Internal:8080") == "proxy.school.internal:8080");
  std::string why;
  CHECK_FALSE(parse_pac_proxy("fd00::1:3128", &why));
  CHECK(contains(why, "brackets"));
  CHECK_FALSE(parse_pac_proxy("10.0.0.1", &why));
  CHECK(contains(why, "HOST:PORT"));
  CHECK_FALSE(parse_pac_proxy("10.0.0.1:0", &why));
  CHECK_FALSE(parse_pac_proxy("10.0.0.1:65536", &why));
  CHECK_FALSE(parse_pac_proxy("[10.0.0.1]:3128", &why));
  CHECK_FALSE(
      parse_pac_proxy("proxy\";alert(1);\":3128", &why));  // nothing that could escape the script
  CHECK_FALSE(parse_pac_proxy("proxy school:3128", &why));
  CHECK_FALSE(parse_pac_proxy(":3128", &why));
}

TEST_CASE(
    "the proxy the PAC names comes from listen, wildcards from the address the PAC was fetched "
    "on") {
  const auto p = school_networks();
  auto d = listening_on({"10.0.0.1:3128", "[fd00::1]:3128"});
  CHECK(pac_inputs_for(d, p, ip("10.0.0.1")).proxies ==
        std::vector<std::string>{"10.0.0.1:3128", "[fd00::1]:3128"});

  d = listening_on({"0.0.0.0:3128", "[::]:3129"});
  CHECK(pac_inputs_for(d, p, ip("10.0.0.1")).proxies == std::vector<std::string>{"10.0.0.1:3128"});
  CHECK(pac_inputs_for(d, p, ip("fd00::1")).proxies == std::vector<std::string>{"[fd00::1]:3129"});
  CHECK(pac_inputs_for(d, p, std::nullopt)
            .proxies.empty());  // nothing to name: the server answers 503

  d = listening_on({"10.0.0.1:3128", "10.0.0.1:3129"});
  d.listen[1].transparent = true;  // takes only redirected traffic: never named in the PAC
  CHECK(pac_inputs_for(d, p, ip("10.0.0.1")).proxies == std::vector<std::string>{"10.0.0.1:3128"});

  d.pac.proxy = {"proxy.school.internal:3128"};  // pac.proxy wins
  CHECK(pac_inputs_for(d, p, ip("10.0.0.1")).proxies ==
        std::vector<std::string>{"proxy.school.internal:3128"});
}

TEST_CASE(
    "direct networks: the roles' networks unless pac.direct_networks is set, always loopback") {
  const auto p = school_networks();
  auto d = listening_on({"10.0.0.1:3128"});
  auto texts = [](const pac_script_inputs& in) {
    std::vector<std::string> out;
    for (const auto& n : in.direct_networks)
      out.push_back(n.base.to_string() + "/" + std::to_string(n.prefix));
    return out;
  };
  CHECK(texts(pac_inputs_for(d, p, std::nullopt)) ==
        std::vector<std::string>{"10.10.0.0/16", "fd00:10::/64", "10.20.0.0/16", "127.0.0.0/8",
                                 "::1/128"});
  d.pac.direct_networks_set = true;
  d.pac.direct_networks = {network("10.0.0.0/8"), network("127.0.0.0/8")};
  CHECK(texts(pac_inputs_for(d, p, std::nullopt)) ==
        std::vector<std::string>{"10.0.0.0/8", "127.0.0.0/8", "::1/128"});
}

TEST_CASE("the script: proxies, no DIRECT fallback, networks as the PAC functions want them") {
  pac_script_inputs in;
  in.proxies = {"10.0.0.1:3128", "[fd00::1]:3128"};
  in.direct_networks = {network("10.10.0.0/16"), network("10.30.0.0/24"), network("fd00:10::/64"),
                        network("0.0.0.0/0")};
  in.direct_domains = {"school.internal"};
  const std::string js = make_pac_script(in);
  CHECK(contains(js, "var PROXY = \"PROXY 10.0.0.1:3128; PROXY [fd00::1]:3128\";"));
  CHECK_FALSE(contains(js, "; DIRECT\""));
  CHECK(contains(js, "var DIRECT_DOMAINS = [\"school.internal\"];"));
  CHECK(contains(
      js,
      "var DIRECT_IPV4 = [[\"10.10.0.0\", \"255.255.0.0\"], [\"10.30.0.0\", \"255.255.255.0\"], "
      "[\"0.0.0.0\", \"0.0.0.0\"]];"));
  CHECK(contains(js, "var DIRECT_IPV6 = [\"fd00:10::/64\"];"));
  CHECK(contains(js, "function FindProxyForURL(url, host)"));
  CHECK(contains(js, "typeof isInNetEx === \"function\""));
  // ES5 only: old PAC engines know no let, const or arrow functions.
  CHECK_FALSE(contains(js, "let "));
  CHECK_FALSE(contains(js, "const "));
  CHECK_FALSE(contains(js, "=>"));
  // Never a DNS lookup.
  CHECK_FALSE(contains(js, "dnsResolve("));
  CHECK_FALSE(contains(js, "isResolvable("));
}

TEST_CASE("the PAC endpoint's answers") {
  const std::string script =
      "function FindProxyForURL(url, host) { return \"PROXY 10.0.0.1:3128\"; }\n";
  const auto ok = pac_http_response("GET", "/proxy.pac", &script);
  CHECK(ok.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(contains(ok, "\r\nContent-Type: application/x-ns-proxy-autoconfig\r\n"));
  CHECK(contains(ok, "\r\nContent-Length: " + std::to_string(script.size()) + "\r\n"));
  CHECK(contains(ok, "\r\nConnection: close\r\n"));
  CHECK(ok.ends_with("\r\n\r\n" + script));
  CHECK(pac_http_response("GET", "/wpad.dat", &script) == ok);
  CHECK(pac_http_response("GET", "/wpad.dat?refresh=1", &script) == ok);

  const auto head = pac_http_response("HEAD", "/wpad.dat", &script);
  CHECK(head.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(contains(head, "\r\nContent-Length: " + std::to_string(script.size()) + "\r\n"));
  CHECK(head.ends_with("\r\n\r\n"));

  CHECK(pac_http_response("GET", "/", &script).starts_with("HTTP/1.1 404 "));
  CHECK(pac_http_response("GET", "/proxy.pac/", &script).starts_with("HTTP/1.1 404 "));
  CHECK(pac_http_response("GET", "http://wpad/wpad.dat", &script).starts_with("HTTP/1.1 404 "));
  CHECK(pac_http_response("GET", "/PROXY.PAC", &script).starts_with("HTTP/1.1 404 "));
  const auto post = pac_http_response("POST", "/proxy.pac", &script);
  CHECK(post.starts_with("HTTP/1.1 405 "));
  CHECK(contains(post, "\r\nAllow: GET, HEAD\r\n"));
  CHECK(pac_http_response("GET", "/proxy.pac", nullptr).starts_with("HTTP/1.1 503 "));
}

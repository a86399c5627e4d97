// The LDAP escaping that keeps a user name from adding filter or DN syntax (RFC 4515, RFC 4514),
// and the login settings' typos and defaults.
#include <doctest/doctest.h>

#include <yaml-cpp/yaml.h>

#include "proxy/daemon_config.hpp"
#include "proxy/ldap_directory.hpp"

using namespace hallpass;

TEST_CASE("a user name cannot add LDAP filter syntax") {
  CHECK(ldap_filter_value("alice") == "alice");
  CHECK(ldap_filter_value("*") == "\\2a");
  CHECK(ldap_filter_value("a*)(uid=*))(|(uid=*") == "a\\2a\\29\\28uid=\\2a\\29\\29\\28|\\28uid=\\2a");
  CHECK(ldap_filter_value(std::string_view("x\0y", 3)) == "x\\00y");
  CHECK(ldap_filter_value("back\\slash") == "back\\5cslash");
  CHECK(ldap_filter_value("\xc3\xa9") == "\\c3\\a9");
}

TEST_CASE("a user name cannot add DN syntax") {
  CHECK(ldap_dn_value("alice") == "alice");
  CHECK(ldap_dn_value("a,ou=admins") == "a\\,ou\\=admins");
  CHECK(ldap_dn_value(" lead") == "\\ lead");
  CHECK(ldap_dn_value("#x") == "\\#x");
  CHECK(ldap_dn_value("trail ") == "trail\\ ");
  CHECK(ldap_dn_value("a+b\"c<d>e;f\\g") == "a\\+b\\\"c\\<d\\>e\\;f\\\\g");
}

TEST_CASE("group names from DNs") {
  CHECK(first_rdn_value("cn=Year 6,ou=groups,dc=school,dc=test") == "Year 6");
  CHECK(first_rdn_value("CN=Staff\\, teaching,OU=x") == "Staff, teaching");
  CHECK(first_rdn_value("cn=A\\2cB,dc=x") == "A,B");
  CHECK(first_rdn_value("Office") == "Office");
}

namespace {
rules::diagnostics load(const std::string& yaml, daemon_config* out = nullptr) {
  rules::diagnostics errors;
  auto c = load_daemon_config(YAML::Load(yaml), "p.yaml", errors);
  if (out) *out = c;
  return errors;
}
std::string all(const rules::diagnostics& d) {
  std::string s;
  for (const auto& e : d) s += e.to_string() + "\n";
  return s;
}
}  // namespace

TEST_CASE("logins: defaults and per-network modes") {
  daemon_config c;
  const auto errors = load(R"(logins:
  networks:
    - {networks: [10.10.0.0/16], login: required}
    - {networks: [10.10.9.0/24], login: none}
    - {networks: ["fd00::/64"], login: optional}
  ldap: {url: "ldap://dc.test", base_dn: "dc=test"}
)",
                           &c);
  REQUIRE_MESSAGE(errors.empty(), all(errors));
  const auto& l = c.logins;
  CHECK(l.ldap.starttls);  // ldap:// without insecure: StartTLS
  CHECK(l.ldap.cache_ttl == std::chrono::minutes(5));
  CHECK(l.mode_for(*rules::ip_address::parse("10.10.1.1")) == login_mode::required);
  CHECK(l.mode_for(*rules::ip_address::parse("10.10.9.1")) == login_mode::none);  // longest prefix
  CHECK(l.mode_for(*rules::ip_address::parse("fd00::5")) == login_mode::optional);
  CHECK(l.mode_for(*rules::ip_address::parse("192.0.2.1")) == login_mode::none);  // logins.login default
  daemon_config d;
  REQUIRE(load("logins: {ldap: {url: \"ldaps://dc.test\", base_dn: \"dc=test\"}}", &d).empty());
  CHECK_FALSE(d.logins.ldap.starttls);  // already TLS
}

TEST_CASE("logins: typos and unsafe settings are refused with file:line:col") {
  const auto e = all(load(R"(logins:
  networks:
    - {networks: [10.10.0.0/16], login: requried}
  ldap:
    url: "http://dc.test"
    base_dn: "dc=test"
    starttls: false
    user_attribute: "uid)(x"
    bind_dn: "cn=svc,dc=test"
    cahce_ttl: 5m
)"));
  CHECK(e.find("p.yaml:3:41: logins.networks entry login must be required, optional, page or none, not 'requried'") !=
        std::string::npos);
  CHECK(e.find("p.yaml:5:10: logins.ldap.url 'http://dc.test' must begin with ldaps://") != std::string::npos);
  CHECK(e.find("p.yaml:7:15: logins.ldap.starttls: false would send passwords in the clear") != std::string::npos);
  CHECK(e.find("p.yaml:8:21: logins.ldap.user_attribute") != std::string::npos);
  CHECK(e.find("needs bind_password_file") != std::string::npos);
  CHECK(e.find("p.yaml:10:5:") != std::string::npos);  // cahce_ttl: unknown key
  CHECK(e.find("cache_ttl") != std::string::npos);     // with a hint
  // One kind of URL: StartTLS applies to the whole list (outside-in audit of logins, 2026-12-05, L2).
  const auto mixed = all(load("logins: {login: required, ldap: {url: \"ldaps://dc1.test ldap://dc2.test\", "
                              "base_dn: \"dc=test\"}}\n"));
  CHECK(mixed.find("logins.ldap.url mixes ldap:// with ldaps:// or ldapi://") != std::string::npos);
  CHECK(all(load("logins: {login: required, ldap: {url: \"ldaps://dc1.test ldaps://dc2.test\", "
                 "base_dn: \"dc=test\"}}\n")).find("mixes") == std::string::npos);
  const auto none = all(load("logins: {login: required}\n"));
  CHECK(none.find("no logins.ldap directory") != std::string::npos);
}

TEST_CASE("a user name's key folds what the directory's caseIgnoreMatch folds in ASCII") {
  CHECK(directory_name_key("  Sam ") == "sam");
  CHECK(directory_name_key("DAVE") == "dave");
  CHECK(directory_name_key("a.b-C_d") == "a.b-c_d");
  CHECK(directory_name_key("Ｓam") == "Ｓam");  // outside ASCII: left as it is (the directory's spelling is asked for)
  CHECK(directory_name_key("") == "");
}

// Negotiate's pure parts: the user name from a client principal, the scheme test, and the
// logins.negotiate settings' checks (the acceptance itself runs against a real KDC in
// tests/integration/negotiate_test.py).
#include <doctest/doctest.h>

#include <yaml-cpp/yaml.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "proxy/daemon_config.hpp"
#include "proxy/negotiate_acceptor.hpp"
#include "keytab_bytes.hpp"

using namespace hallpass;

TEST_CASE("the realm of the proxy's key is taken off a user name, another realm is kept") {
  CHECK(negotiate_user_name("dave@SCHOOL.INTERNAL", "SCHOOL.INTERNAL") == "dave");
  CHECK(negotiate_user_name("dave@OTHER.REALM", "SCHOOL.INTERNAL") == "dave@OTHER.REALM");
  CHECK(negotiate_user_name("dave@school.internal", "SCHOOL.INTERNAL") == "dave@school.internal");  // realms are case-sensitive
  CHECK(negotiate_user_name("host/pc1@SCHOOL.INTERNAL", "SCHOOL.INTERNAL") == "host/pc1");
  CHECK(negotiate_user_name("dave", "SCHOOL.INTERNAL") == "dave");
  CHECK(negotiate_user_name("dave@SCHOOL.INTERNAL", "") == "dave@SCHOOL.INTERNAL");
}

TEST_CASE("the Negotiate scheme is recognised in any case, Basic is not") {
  CHECK(is_negotiate("Negotiate YIIB"));
  CHECK(is_negotiate("  negotiate YIIB"));
  CHECK(is_negotiate("NEGOTIATE x"));
  CHECK_FALSE(is_negotiate("Negotiate"));
  CHECK_FALSE(is_negotiate("Basic ZGF2ZTpwdw=="));
  CHECK_FALSE(is_negotiate("NegotiateX YIIB"));
}

namespace {

std::string errors_of(const std::string& yaml) {
  rules::diagnostics errors;
  load_daemon_config(YAML::Load(yaml), "p.yaml", errors);
  std::string all;
  for (const auto& e : errors) all += e.to_string() + "\n";
  return all;
}

}  // namespace

TEST_CASE("logins.negotiate: the keytab must be readable and a keytab, the principal have a realm") {
  const std::string dir = HALLPASS_SOURCE_DIR "/tests/proxy";
  const std::string keytab = "/tmp/hallpass-negotiate-unit-" + std::to_string(::getpid()) + ".keytab";
  const auto write_keytab = [&](const std::string& entries) {
    std::ofstream out(keytab, std::ios::binary | std::ios::trunc);
    const std::string bytes = test::keytab_file_bytes(entries);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  };
  const std::string ldap = "ldap: {url: \"ldaps://dc.test\", base_dn: \"dc=test\"}";
  write_keytab(test::keytab_entry_bytes("TEST", {"HTTP", "p.test"}, 2) + test::keytab_entry_bytes("OTHER", {"HTTP", "p.test"}, 1));
  // Two realms: which one's users sign in must be said (outside-in audit of logins, 2026-12-05, M3).
  auto e = errors_of("logins: {" + ldap + ", negotiate: {keytab: \"" + keytab + "\"}}");
  CHECK(e.find("holds keys of several realms (TEST, OTHER): set logins.negotiate.principal") != std::string::npos);
  CHECK(errors_of("logins: {" + ldap + ", negotiate: {keytab: \"" + keytab + "\", principal: \"HTTP/p.test@TEST\"}}")
            .empty());
  e = errors_of("logins: {" + ldap + ", negotiate: {keytab: \"" + keytab + "\", principal: \"HTTP/q.test@TEST\"}}");
  CHECK(e.find("logins.negotiate.principal 'HTTP/q.test@TEST' has no key in") != std::string::npos);
  write_keytab(test::keytab_entry_bytes("TEST", {"HTTP", "p.test"}, 2));
  CHECK(errors_of("logins: {" + ldap + ", negotiate: {keytab: \"" + keytab + "\"}}").empty());
  CHECK(errors_of("logins: {" + ldap + ", negotiate: {keytab: \"" + keytab + "\", principal: \"HTTP/p.test@TEST\"}}")
            .empty());
  e = errors_of("logins: {" + ldap + ", negotiate: {keytab: /nonexistent/proxy.keytab}}");
  CHECK(e.find("logins.negotiate.keytab") != std::string::npos);
  CHECK(e.find("/nonexistent/proxy.keytab") != std::string::npos);
  CHECK(e.find("cannot be read: No such file or directory") != std::string::npos);
  e = errors_of("logins: {" + ldap + ", negotiate: {keytab: \"" + dir + "/negotiate_acceptor_test.cpp\"}}");
  CHECK(e.find("is not a Kerberos keytab") != std::string::npos);
  e = errors_of("logins: {" + ldap + ", negotiate: {keytab: \"" + keytab + "\", principal: \"HTTP/p.test\"}}");
  CHECK(e.find("must be a Kerberos principal with its realm") != std::string::npos);
  e = errors_of("logins: {" + ldap + ", negotiate: {keytab: \"" + keytab + "\", princpal: x}}");
  CHECK(e.find("princpal") != std::string::npos);
  e = errors_of("logins: {" + ldap + ", negotiate: {principal: \"HTTP/p.test@TEST\"}}");
  CHECK(e.find("logins.negotiate has no keytab") != std::string::npos);
  std::remove(keytab.c_str());
}

// The `logins:` section of the policy file: who must sign in to the explicit proxy (per
// network: required, optional or none), and the directory that checks the passwords (LDAP,
// a simple bind as the user). A plain value, part of daemon_config: immutable once loaded,
// shared by every request that pinned its configuration; any thread may read it.
//
//   logins:
//     realm: "Example School internet"    # shown by the browser's sign-in prompt
//     login: none                         # addresses in no listed network
//     networks:
//       - {networks: [10.10.0.0/16, 10.20.0.0/16], login: required}
//       - {networks: [10.99.0.0/16], login: none}          # guests keep address roles
//     ldap: {url: "ldaps://dc1.school.internal", base_dn: "dc=school,dc=internal", ...}
//     negotiate: {keytab: /etc/hallpass/proxy.keytab, principal: "HTTP/proxy.school.internal@SCHOOL.INTERNAL"}
//     failures: {per_client: 10, per_user: 5, within: 5m}
//     page: {idle: 30m, lifetime: 8h}     # networks with login: page (the sign-in page)
//
// Every key and its default: README.md, "Logins".
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rules/host.hpp"
#include "rules/policy.hpp"

namespace YAML {
class Node;
}

namespace hallpass {

namespace rules {
class yaml_reader;
}

enum class login_mode : std::uint8_t {
  none,      // never asked; the address's role (the guest network)
  optional,  // credentials used when sent (and checked: wrong ones are refused); none: the address's role
  required,  // 407 until the client signs in
  page,      // the sign-in page (signin_page.hpp): the device's address is bound to the user
};
std::string_view to_string(login_mode m);

// The URLs of logins.ldap.url, in order: space-separated, empty items skipped. Views into
// `list`. The load's checks and ldap_directory's turn-by-turn connection read them so.
std::vector<std::string_view> ldap_urls(std::string_view list);

struct ldap_settings {
  std::string url;                  // ldap://HOST[:PORT] or ldaps://HOST[:PORT] (one or more, space-separated)
  bool starttls = true;             // default: true for ldap:// (false for ldaps://, already TLS)
  bool insecure = false;            // the school allows plain ldap:// without StartTLS
  std::string ca_file;              // CA certificates for the directory's TLS; "": the system's
  std::string base_dn;              // where users are searched
  std::string user_attribute = "uid";  // uid (OpenLDAP) or sAMAccountName (Active Directory)
  std::string user_filter = "(objectClass=*)";  // ANDed with (user_attribute=NAME)
  // "uid={user},ou=people,dc=school,dc=internal": the user's DN made directly ({user} escaped
  // per RFC 4514), no search. "": search for the user (as bind_dn, or anonymously) then bind.
  std::string bind_dn_template;
  std::string bind_dn;              // service account for the search; "": anonymous search
  std::string bind_password_file;   // its password, first line; read at each bind, never logged
  // Groups: `memberOf` (the user entry's attribute; names are the first RDN's value), or a
  // search under group_base_dn for entries whose group_member_attribute holds the user's DN
  // (member, uniqueMember) or name (memberUid); names from group_name_attribute.
  std::string group_attribute = "memberOf";  // "" when group_base_dn is used
  std::string group_base_dn;
  std::string group_filter = "(objectClass=*)";
  std::string group_member_attribute = "member";
  std::string group_name_attribute = "cn";
  std::chrono::milliseconds timeout = std::chrono::seconds(5);    // per directory call (connect, bind, search)
  unsigned max_in_flight = 4;       // directory threads: logins checked at once (restart to change)
  std::size_t max_queued = 256;     // logins waiting for a thread; beyond: refused at once (503)
  std::chrono::milliseconds cache_ttl = std::chrono::minutes(5);  // a successful login is reused this long
  bool configured() const { return !url.empty(); }
  bool operator==(const ldap_settings&) const = default;
};

// Negotiate (Kerberos through SPNEGO, GSS-API): single sign-on for domain-joined devices.
// The proxy's service key comes from `keytab`; `principal` ("HTTP/proxy.school.example@REALM")
// limits the keys used to that one, "" accepts a ticket for any principal in the keytab.
struct negotiate_settings {
  std::string keytab;     // "": Negotiate is not offered
  std::string principal;  // "": any principal in the keytab
  // The keytab's principals with their key versions as read at load ("HTTP/proxy@SCHOOL kvno
  // 3"), for `check`: no keys.
  std::vector<std::string> keytab_keys;
  bool configured() const { return !keytab.empty(); }
  bool operator==(const negotiate_settings&) const = default;
};

struct login_network {
  std::vector<rules::ip_network> networks;
  login_mode mode = login_mode::none;
};

// logins.page: how long a device stays signed in through the sign-in page (signin_table.hpp).
struct page_settings {
  std::chrono::milliseconds idle = std::chrono::minutes(30);     // no request for this long: signed out
  std::chrono::milliseconds lifetime = std::chrono::hours(8);    // signed out this long after signing in
  bool operator==(const page_settings&) const = default;
};

struct login_settings {
  std::string realm = "School internet";
  login_mode default_mode = login_mode::none;  // addresses in no listed network
  std::vector<login_network> networks;
  ldap_settings ldap;
  negotiate_settings negotiate;  // offered first in a 407 when configured; groups still come from ldap
  // Failed logins: a client address with per_client failures, or a user name with per_user
  // failures, within `within` is refused (429) until the oldest failure is older than `within`.
  // A user name's lock applies to every address, but only to that name: no one else is locked out.
  std::size_t failures_per_client = 10;
  std::size_t failures_per_user = 5;
  std::chrono::milliseconds failures_within = std::chrono::minutes(5);
  page_settings page;

  // The mode for a client address: the listed network with the longest prefix, else default_mode.
  login_mode mode_for(const rules::ip_address& client) const;
  bool any() const;  // some address may be asked to sign in
};

// Reads the `logins:` section into `out`; errors go to the reader (FILE:LINE:COL).
void read_login_settings(rules::yaml_reader& r, const YAML::Node& n, login_settings& out);

}  // namespace hallpass

// The school directory over LDAP (OpenLDAP's libldap; the only file that uses it): checks a
// user name and password with a simple bind AS THE USER, and reads the user's groups; or reads
// the groups of a user who signed in another way (Negotiate) without their password.
//
// check_login() and groups_of() BLOCK (connect, TLS, bind, searches; each bounded by ldap_settings::timeout)
// and must never run on an event loop: login_service calls it on its own directory threads.
// Each call opens its own connection; any thread may call it. The escaping functions are pure.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/login_config.hpp"

namespace hallpass {

struct directory_answer {
  enum class status : std::uint8_t {
    ok,               // the bind as the user succeeded; groups read
    bad_credentials,  // no such user, or the directory refused the password
    unavailable,      // the directory could not be reached, failed, or did not answer in time
    held,             // check_login's may_bind said no: the password was never tried
  };
  status result = status::unavailable;
  // The user's name as the directory spells it: the user_attribute value of the entry found
  // ("sam" for a typed "SAM", " sam" or fullwidth "ｓａｍ", which LDAP's caseIgnoreMatch finds
  // too). Bans, exceptions, limits and the logs key on this, never on what was typed. Empty
  // when it could not be read (then the typed name stands).
  std::string user;
  std::vector<std::string> groups;
  std::string detail;  // for the log: never the password
  // unavailable because the directory could not be reached, before the user's password was
  // sent: the next directory of logins.ldap.url is tried (ldap_directory.cpp, each_directory).
  bool unreachable = false;
};

// Checks `user` / `password` against the directory. An empty user name or password is
// bad_credentials without a call (an empty password would be an "unauthenticated bind",
// which LDAP servers accept: RFC 4513 5.1.2).
// `may_bind`, when given, is asked with the directory's name for the user (or, with
// bind_dn_template, the typed name) once the entry is found and before the password is tried:
// false gives `held` (the failure limits, login_service.hpp, judged on the directory's name).
directory_answer check_login(const ldap_settings& s, std::string_view user, std::string_view password,
                             const std::function<bool(std::string_view user)>& may_bind = {});

// The groups of `user` without their password: bound as the service account
// (logins.ldap.bind_dn + bind_password_file) or anonymously, the user found as check_login
// finds them (bind_dn_template, or the search), then the same group lookup. ok with the
// groups; bad_credentials when there is no such user (or more than one); unavailable when the
// directory cannot answer. For Negotiate sign-ins (login_service::identity_of) and
// `hallpass explain --user` without --groups: one lookup for both.
directory_answer groups_of(const ldap_settings& s, std::string_view user);

// A user name as the directory's caseIgnoreMatch compares it, in ASCII: outer blanks dropped,
// letters in lower case ("  Sam " -> "sam"). The key of the failure limits (login_service.hpp)
// and how the directory's own spelling is told among an attribute's values. Pure.
std::string directory_name_key(std::string_view user);

// A value for an LDAP filter (RFC 4515 3): * ( ) \ NUL and non-ASCII bytes as \XX, so a user
// name cannot add filter syntax.
std::string ldap_filter_value(std::string_view value);
// A value for a DN attribute (RFC 4514 2.4): , + " \ < > ; = escaped with '\', a leading space
// or '#' and a trailing space escaped, NUL as \00.
std::string ldap_dn_value(std::string_view value);
// The value of a DN's first RDN, unescaped: "cn=Year 6,ou=groups,dc=x" -> "Year 6".
std::string first_rdn_value(std::string_view dn);

}  // namespace hallpass

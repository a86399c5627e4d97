#include "proxy/ldap_directory.hpp"

#include <algorithm>
#include <fstream>
#include <memory>

#define LDAP_DEPRECATED 0
#include <ldap.h>

namespace hallpass {

std::string directory_name_key(std::string_view user) {
  while (!user.empty() && user.front() == ' ') user.remove_prefix(1);
  while (!user.empty() && user.back() == ' ') user.remove_suffix(1);
  std::string key(user);
  for (auto& ch : key) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  return key;
}

std::string ldap_filter_value(std::string_view value) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(value.size());
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '*' || c == '(' || c == ')' || c == '\\' || c == 0 || c >= 0x80) {
      out.push_back('\\');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

std::string ldap_dn_value(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 4);
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == 0) {
      out += "\\00";
      continue;
    }
    const bool special = c == ',' || c == '+' || c == '"' || c == '\\' || c == '<' || c == '>' || c == ';' || c == '=';
    const bool edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == value.size() && c == ' ');
    if (special || edge) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string first_rdn_value(std::string_view dn) {
  const auto eq = dn.find('=');
  if (eq == std::string_view::npos) return std::string(dn);
  std::string out;
  for (std::size_t i = eq + 1; i < dn.size(); ++i) {
    const char c = dn[i];
    if (c == '\\' && i + 1 < dn.size()) {
      const auto is_hex = [](char h) {
        return (h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F');
      };
      if (i + 2 < dn.size() && is_hex(dn[i + 1]) && is_hex(dn[i + 2])) {
        out.push_back(static_cast<char>(std::stoi(std::string(dn.substr(i + 1, 2)), nullptr, 16)));
        i += 2;
      } else {
        out.push_back(dn[++i]);
      }
      continue;
    }
    if (c == ',' || c == '+') break;
    out.push_back(c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

namespace {

struct ldap_closer {
  void operator()(LDAP* ld) const { ldap_unbind_ext_s(ld, nullptr, nullptr); }
};
struct message_freer {
  void operator()(LDAPMessage* m) const { ldap_msgfree(m); }
};
using ldap_handle = std::unique_ptr<LDAP, ldap_closer>;
using ldap_message = std::unique_ptr<LDAPMessage, message_freer>;

directory_answer fail(directory_answer::status st, std::string detail) {
  directory_answer a;
  a.result = st;
  a.detail = std::move(detail);
  return a;
}

directory_answer ldap_failure(const char* step, int rc) {
  const auto st = rc == LDAP_INVALID_CREDENTIALS ? directory_answer::status::bad_credentials
                                                  : directory_answer::status::unavailable;
  return fail(st, std::string(step) + ": " + ldap_err2string(rc));
}

// ldap_failure with libldap's diagnostic message of `ld`, when it has one: a certificate the
// directory's CA file does not vouch for is "Can't contact LDAP server" alone, as a directory
// that is down is; the diagnostic names the TLS problem (outside-in audit of logins,
// 2026-12-05, L3). Never a password: the message is the library's or the server's.
directory_answer ldap_failure(LDAP* ld, const char* step, int rc) {
  directory_answer a = ldap_failure(step, rc);
  // No connection (refused, down, the TLS handshake failed or timed out): nothing reached the
  // directory, so another may be asked.
  a.unreachable = rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR;
  char* diagnostic = nullptr;
  if (ld != nullptr && ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diagnostic) == LDAP_OPT_SUCCESS &&
      diagnostic != nullptr) {
    // GnuTLS's libldap leaves "(unknown error code)" after a failed handshake: no help.
    if (*diagnostic != '\0' && std::string_view(diagnostic) != "(unknown error code)") {
      a.detail += std::string(" (") + diagnostic + ")";
    }
    ldap_memfree(diagnostic);
  }
  return a;
}

// The first line of the service account's password file (read at each bind: a changed password
// needs no reload). Never logged.
bool read_password(const std::string& path, std::string& out) {
  std::ifstream in(path);
  if (!in || !std::getline(in, out)) return false;
  while (!out.empty() && (out.back() == '\r' || out.back() == ' ')) out.pop_back();
  return true;
}

int simple_bind(LDAP* ld, const std::string& dn, std::string_view password) {
  berval cred;
  cred.bv_val = const_cast<char*>(password.data());
  cred.bv_len = password.size();
  return ldap_sasl_bind_s(ld, dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, nullptr);
}

// Searches and collects one attribute's values of every entry (and the entries' DNs).
int search(LDAP* ld, const ldap_settings& s, const std::string& base, int scope, const std::string& filter,
           const std::string& attribute, int size_limit, std::vector<std::string>& dns,
           std::vector<std::string>& values) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(s.timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((s.timeout.count() % 1000) * 1000);
  std::string attr = attribute.empty() ? std::string("1.1") : attribute;  // 1.1: no attributes
  char* attrs[] = {attr.data(), nullptr};
  LDAPMessage* raw = nullptr;
  const int rc = ldap_search_ext_s(ld, base.c_str(), scope, filter.c_str(), attrs, 0, nullptr, nullptr, &tv,
                                   size_limit, &raw);
  ldap_message res(raw);
  if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) return rc;
  for (LDAPMessage* e = ldap_first_entry(ld, res.get()); e != nullptr; e = ldap_next_entry(ld, e)) {
    if (char* dn = ldap_get_dn(ld, e)) {
      dns.emplace_back(dn);
      ldap_memfree(dn);
    }
    if (attribute.empty()) continue;
    berval** vals = ldap_get_values_len(ld, e, attribute.c_str());
    for (int i = 0; vals && vals[i]; ++i) values.emplace_back(vals[i]->bv_val, vals[i]->bv_len);
    ldap_value_free_len(vals);
  }
  return rc;
}

// What a failed TLS handshake with the directory usually means, for the technician.
std::string tls_hint(const ldap_settings& s) {
  return ": the TLS handshake with the directory failed; check that logins.ldap.ca_file (" +
         (s.ca_file.empty() ? std::string("the system's CAs") : s.ca_file) +
         ") holds the CA that signed the directory's certificate, and that the certificate names the host in "
         "logins.ldap.url";
}

// Opens a connection with the deadlines, TLS settings and StartTLS of `s`. On failure, *failed is set.
ldap_handle open_directory(const ldap_settings& s, directory_answer* failed) {
  using st = directory_answer::status;
  LDAP* raw = nullptr;
  int rc = ldap_initialize(&raw, s.url.c_str());
  ldap_handle ld(raw);
  if (rc != LDAP_SUCCESS) {
    *failed = ldap_failure("ldap_initialize", rc);
    return nullptr;
  }
  const int version = LDAP_VERSION3;
  ldap_set_option(ld.get(), LDAP_OPT_PROTOCOL_VERSION, &version);
  ldap_set_option(ld.get(), LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
  // The deadline of each step: connecting (LDAP_OPT_NETWORK_TIMEOUT) and every synchronous
  // call's wait for its answer (LDAP_OPT_TIMEOUT), so a directory that accepts and then says
  // nothing costs at most a few timeouts, never a thread for ever.
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(s.timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((s.timeout.count() % 1000) * 1000);
  ldap_set_option(ld.get(), LDAP_OPT_NETWORK_TIMEOUT, &tv);
  ldap_set_option(ld.get(), LDAP_OPT_TIMEOUT, &tv);
  // And the TLS handshake (ldaps://, and after StartTLS): with a network timeout libldap 2.5
  // makes the socket non-blocking for the handshake, but bounds it (polling with the timeout)
  // only when connecting asynchronously. Otherwise it retries at once for as long as the peer
  // says nothing: a directory that stalled in the handshake kept every directory thread
  // spinning for good, and no sign-in was checked until it closed the connection (outside-in
  // audit of logins, 2026-12-05, H1). The synchronous calls below wait for the connection.
  ldap_set_option(ld.get(), LDAP_OPT_CONNECT_ASYNC, LDAP_OPT_ON);
  const int demand = LDAP_OPT_X_TLS_DEMAND;
  ldap_set_option(ld.get(), LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
  if (!s.ca_file.empty()) ldap_set_option(ld.get(), LDAP_OPT_X_TLS_CACERTFILE, s.ca_file.c_str());
  const int new_ctx = 0;
  ldap_set_option(ld.get(), LDAP_OPT_X_TLS_NEWCTX, &new_ctx);
  if (s.starttls) {
    rc = ldap_start_tls_s(ld.get(), nullptr, nullptr);
    if (rc != LDAP_SUCCESS) {
      *failed = ldap_failure(ld.get(), "StartTLS", rc);
      failed->result = st::unavailable;
      failed->unreachable = failed->unreachable || rc == LDAP_TIMEOUT;
      // After StartTLS was agreed, a connect error is the TLS handshake: nearly always a
      // certificate the CA file does not vouch for, or a name it does not carry.
      if (rc == LDAP_CONNECT_ERROR) failed->detail += tls_hint(s);
      return nullptr;
    }
  }
  return ld;
}

// Binds as the service account (logins.ldap.bind_dn), or stays anonymous when there is none.
bool bind_service_account(LDAP* ld, const ldap_settings& s, directory_answer* failed) {
  using st = directory_answer::status;
  if (s.bind_dn.empty()) return true;
  std::string service_password;
  if (!read_password(s.bind_password_file, service_password)) {
    *failed = fail(st::unavailable, "logins.ldap.bind_password_file " + s.bind_password_file + " cannot be read");
    return false;
  }
  if (service_password.empty()) {
    // A DN with an empty password is an unauthenticated bind (RFC 4513 5.1.2): refused by
    // most directories with words that do not say why, and by others taken as anonymous.
    *failed = fail(st::unavailable, "logins.ldap.bind_password_file " + s.bind_password_file +
                                        " has an empty first line: the service account needs its password there");
    return false;
  }
  const int rc = simple_bind(ld, s.bind_dn, service_password);
  std::fill(service_password.begin(), service_password.end(), '\0');
  if (rc != LDAP_SUCCESS) {
    *failed = ldap_failure(ld, "service account bind", rc);
    failed->result = st::unavailable;  // the school's service password, not the user's
    failed->unreachable = failed->unreachable || rc == LDAP_TIMEOUT;
    return false;
  }
  return true;
}

// The directory's spelling of the user's name among an entry's user_attribute values: the one
// that is the typed name but for ASCII case and outer blanks, else the first (an attribute with
// several values; LDAP matched the typed name against one of them by its own rules).
std::string directory_name(const std::vector<std::string>& values, std::string_view typed) {
  if (values.empty()) return {};
  const std::string key = directory_name_key(typed);
  for (const auto& v : values) {
    if (directory_name_key(v) == key) return v;
  }
  return values.front();
}

// The user's DN: logins.ldap.bind_dn_template with the name in it, or else by searching
// base_dn for (user_attribute=NAME) (as the connection is bound now). bad_credentials when
// the search finds no such user or more than one. The search also reads the entry's own
// spelling of the name into *name (with a template it is read after the bind: read_name).
bool find_user_dn(LDAP* ld, const ldap_settings& s, std::string_view user, std::string& user_dn, std::string* name,
                  directory_answer* failed) {
  using st = directory_answer::status;
  if (!s.bind_dn_template.empty()) {
    user_dn = s.bind_dn_template;
    user_dn.replace(user_dn.find("{user}"), 6, ldap_dn_value(user));
    return true;
  }
  std::vector<std::string> dns, values;
  const std::string filter = "(&" + s.user_filter + "(" + s.user_attribute + "=" + ldap_filter_value(user) + "))";
  const int rc = search(ld, s, s.base_dn, LDAP_SCOPE_SUBTREE, filter, s.user_attribute, 2, dns, values);
  if (rc == LDAP_SIZELIMIT_EXCEEDED || dns.size() > 1) {
    *failed = fail(st::bad_credentials, "the user name matches more than one directory entry");
    return false;
  }
  if (rc != LDAP_SUCCESS) {
    *failed = ldap_failure(ld, "user search", rc);
    failed->unreachable = failed->unreachable || rc == LDAP_TIMEOUT;  // before any password was sent
    return false;
  }
  if (dns.empty()) {
    *failed = fail(st::bad_credentials, "no such user");
    return false;
  }
  user_dn = dns.front();
  *name = directory_name(values, user);
  return true;
}

// The user_attribute of the entry at user_dn (with a bind_dn_template, once bound as the
// user: an entry may read itself under OpenLDAP's and Active Directory's defaults). Empty when
// it cannot be read.
std::string read_name(LDAP* ld, const ldap_settings& s, const std::string& user_dn, std::string_view typed) {
  std::vector<std::string> dns, values;
  const int rc = search(ld, s, user_dn, LDAP_SCOPE_BASE, "(objectClass=*)", s.user_attribute, 1, dns, values);
  return rc == LDAP_SUCCESS ? directory_name(values, typed) : std::string();
}

// Reads the groups of the user with this DN into a.groups (memberOf, or the group search).
void read_groups(LDAP* ld, const ldap_settings& s, std::string_view user, const std::string& user_dn,
                 directory_answer& a) {
  std::vector<std::string> dns, values;
  const std::string& group_attr = s.group_base_dn.empty() ? s.group_attribute : std::string();
  if (!group_attr.empty()) {
    // memberOf on the user's own entry (Active Directory; OpenLDAP's memberof overlay).
    const int rc = search(ld, s, user_dn, LDAP_SCOPE_BASE, "(objectClass=*)", group_attr, 1, dns, values);
    if (rc == LDAP_NO_SUCH_OBJECT) {
      a = fail(directory_answer::status::bad_credentials, "no such user");
      return;
    }
    if (rc != LDAP_SUCCESS) {
      a = ldap_failure(ld, "reading the user's groups", rc);
      return;
    }
    for (const auto& dn : values) a.groups.push_back(first_rdn_value(dn));
  } else if (!s.group_base_dn.empty()) {
    const bool by_name = s.group_member_attribute == "memberUid";
    const std::string member = ldap_filter_value(by_name ? std::string(user) : user_dn);
    const std::string filter = "(&" + s.group_filter + "(" + s.group_member_attribute + "=" + member + "))";
    const int rc = search(ld, s, s.group_base_dn, LDAP_SCOPE_SUBTREE, filter, s.group_name_attribute, 1000, dns, values);
    if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
      a = ldap_failure(ld, "group search", rc);
      return;
    }
    a.groups = std::move(values);
  }
}

// Asks the directories of logins.ldap.url ("ldaps://dc1 ldaps://dc2") in turn, each with its
// own connection and deadlines, until one can be reached: `ask` on settings naming one URL.
// libldap tries a list itself only when connecting synchronously, which left a handshake
// without a deadline (LDAP_OPT_CONNECT_ASYNC, open_directory); asynchronously it stops at the
// first URL whose connect is under way (review, 2026-12-05). A failure names its URL when
// there are several.
template <class Ask>
directory_answer each_directory(const ldap_settings& s, Ask ask) {
  const auto urls = ldap_urls(s.url);
  if (urls.size() <= 1) return ask(s);
  directory_answer a;
  for (const std::string_view url : urls) {
    ldap_settings one = s;
    one.url = std::string(url);
    a = ask(one);
    if (!a.unreachable) return a;
    a.detail = one.url + ": " + a.detail;
  }
  return a;
}

directory_answer check_login_at(const ldap_settings& s, std::string_view user, std::string_view password,
                                const std::function<bool(std::string_view user)>& may_bind) {
  using st = directory_answer::status;
  if (user.size() > 256 || password.size() > 1024) return fail(st::bad_credentials, "user name or password too long");
  // Never sent: a bind with a DN and no password is an "unauthenticated bind" (RFC 4513 5.1.2),
  // which a server allowing it (Active Directory often does) answers with success, and one
  // refusing it answers "unwilling to perform" only for names that exist (outside-in audit of
  // logins, 2026-12-06, H1: `sam:` signed in as sam, or told which names exist, unlimited).
  if (user.empty() || password.empty()) return fail(st::bad_credentials, "an empty user name or password");

  // With a DN template the directory's spelling of the name is known only after the bind, so
  // the failure limits see the typed name: one outside printable ASCII (fullwidth letters, a
  // zero-width space) that the directory would still match is refused, or each such spelling
  // would get a failure count of its own (login_service.hpp).
  if (!s.bind_dn_template.empty() &&
      std::any_of(user.begin(), user.end(), [](char ch) { return ch < 0x20 || static_cast<unsigned char>(ch) >= 0x7F; })) {
    return fail(st::bad_credentials, "a user name outside printable ASCII, which bind_dn_template cannot check");
  }
  directory_answer a;
  ldap_handle ld = open_directory(s, &a);
  if (!ld) return a;
  // With a DN template the bind as the user is the only one; else the service account searches first.
  std::string user_dn, name;
  if (s.bind_dn_template.empty() && !bind_service_account(ld.get(), s, &a)) return a;
  // A failure still says whose name it was (the limits count it under that name).
  const auto failed = [&name](directory_answer f) {
    f.user = std::move(name);
    return f;
  };
  if (!find_user_dn(ld.get(), s, user, user_dn, &name, &a)) return failed(std::move(a));
  if (may_bind && !may_bind(name.empty() ? user : std::string_view(name))) {
    return failed(fail(st::held, "too many failed sign-ins for this user"));
  }
  const int rc = simple_bind(ld.get(), user_dn, password);
  // With a DN template this is the first operation: a connection that failed sent nothing
  // (unreachable); a timeout may have delivered the password, so no other directory is asked.
  if (rc != LDAP_SUCCESS) return failed(ldap_failure(ld.get(), "bind as the user", rc));
  if (name.empty()) name = read_name(ld.get(), s, user_dn, user);
  a.result = st::ok;
  a.user = std::move(name);
  read_groups(ld.get(), s, a.user.empty() ? user : std::string_view(a.user), user_dn, a);
  return a;
}

directory_answer groups_of_at(const ldap_settings& s, std::string_view user) {
  using st = directory_answer::status;
  if (user.empty() || user.size() > 256) return fail(st::bad_credentials, "empty or too long user name");
  directory_answer a;
  ldap_handle ld = open_directory(s, &a);
  if (!ld) return a;
  // As the service account (or anonymously), never as the user: there is no password here.
  if (!bind_service_account(ld.get(), s, &a)) return a;
  std::string user_dn, name;
  if (!find_user_dn(ld.get(), s, user, user_dn, &name, &a)) return a;
  if (name.empty() && !s.bind_dn_template.empty()) name = read_name(ld.get(), s, user_dn, user);
  a.result = st::ok;
  a.user = std::move(name);
  read_groups(ld.get(), s, a.user.empty() ? user : std::string_view(a.user), user_dn, a);
  return a;
}

}  // namespace

directory_answer check_login(const ldap_settings& s, std::string_view user, std::string_view password,
                             const std::function<bool(std::string_view user)>& may_bind) {
  return each_directory(s, [&](const ldap_settings& one) { return check_login_at(one, user, password, may_bind); });
}

directory_answer groups_of(const ldap_settings& s, std::string_view user) {
  return each_directory(s, [&](const ldap_settings& one) { return groups_of_at(one, user); });
}

}  // namespace hallpass

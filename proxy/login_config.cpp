#include "proxy/login_config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>

#include "proxy/keytab_file.hpp"
#include "rules/yaml_reader.hpp"

namespace hallpass {

std::string_view to_string(login_mode m) {
  switch (m) {
    case login_mode::none: return "none";
    case login_mode::optional: return "optional";
    case login_mode::required: return "required";
    case login_mode::page: return "page";
  }
  return "none";
}

login_mode login_settings::mode_for(const rules::ip_address& client) const {
  int best = -1;
  login_mode mode = default_mode;
  for (const auto& entry : networks) {
    for (const auto& net : entry.networks) {
      if (net.prefix > best && net.contains(client)) {
        best = net.prefix;
        mode = entry.mode;
      }
    }
  }
  return mode;
}

bool login_settings::any() const {
  if (default_mode != login_mode::none) return true;
  for (const auto& e : networks) {
    if (e.mode != login_mode::none) return true;
  }
  return false;
}

namespace {

std::optional<login_mode> read_mode(rules::yaml_reader& r, const YAML::Node& n, const std::string& what) {
  auto s = r.scalar(n, what);
  if (!s) return std::nullopt;
  if (*s == "none") return login_mode::none;
  if (*s == "optional") return login_mode::optional;
  if (*s == "required") return login_mode::required;
  if (*s == "page") return login_mode::page;
  r.error(n, what + " must be required, optional, page or none, not " + rules::quote(*s) +
                 r.did_you_mean(*s, {"required", "optional", "page", "none"}));
  return std::nullopt;
}

void read_string(rules::yaml_reader& r, const YAML::Node& n, const char* key, const std::string& what,
                 std::string& out) {
  if (!n[key]) return;
  if (auto s = r.scalar(n[key], what)) out = *s;
}

// A file's path: relative to the policy file (yaml_reader::resolve_path).
void read_path(rules::yaml_reader& r, const YAML::Node& n, const char* key, const std::string& what,
               std::string& out) {
  if (!n[key]) return;
  if (auto s = r.path(n[key], what)) out = *s;
}

// An attribute name per RFC 4512 (descr: a letter, then letters, digits and '-'), or an OID:
// put into filters as is, so nothing else may pass.
bool is_attribute_name(std::string_view s) {
  if (s.empty()) return false;
  const bool oid = s.front() >= '0' && s.front() <= '9';
  for (char c : s) {
    const bool ok = oid ? ((c >= '0' && c <= '9') || c == '.')
                        : ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-');
    if (!ok) return false;
  }
  return true;
}

void read_attribute(rules::yaml_reader& r, const YAML::Node& n, const char* key, const std::string& what,
                    std::string& out) {
  if (!n[key]) return;
  auto s = r.scalar(n[key], what);
  if (!s) return;
  if (!is_attribute_name(*s)) {
    r.error(n[key], what + " " + rules::quote(*s) + " is not an LDAP attribute name (like uid or sAMAccountName)");
    return;
  }
  out = *s;
}

void read_filter(rules::yaml_reader& r, const YAML::Node& n, const char* key, const std::string& what,
                 std::string& out) {
  if (!n[key]) return;
  auto s = r.scalar(n[key], what);
  if (!s) return;
  int depth = 0;
  bool balanced = s->size() >= 2 && s->front() == '(' && s->back() == ')';
  for (char c : *s) {
    depth += c == '(' ? 1 : c == ')' ? -1 : 0;
    if (depth < 0) balanced = false;
  }
  if (!balanced || depth != 0) {
    r.error(n[key], what + " " + rules::quote(*s) + " must be one LDAP filter in parentheses, like (objectClass=person)");
    return;
  }
  out = *s;
}

void read_ldap(rules::yaml_reader& r, const YAML::Node& n, ldap_settings& l) {
  if (!r.check_map(n, "logins.ldap",
                   {"url", "starttls", "insecure", "ca_file", "base_dn", "user_attribute", "user_filter",
                    "bind_dn_template", "bind_dn", "bind_password_file", "group_attribute", "group_base_dn",
                    "group_filter", "group_member_attribute", "group_name_attribute", "timeout", "max_in_flight",
                    "max_queued", "cache_ttl"})) {
    return;
  }
  read_string(r, n, "url", "logins.ldap.url", l.url);
  bool all_ldaps = !l.url.empty();
  bool any_tls_url = false, any_plain_url = false;
  for (const std::string_view one : ldap_urls(l.url)) {
    if (!one.starts_with("ldap://") && !one.starts_with("ldaps://") && !one.starts_with("ldapi://")) {
      r.error(n["url"], "logins.ldap.url " + rules::quote(one) + " must begin with ldaps://, ldap:// or ldapi://");
    }
    all_ldaps = all_ldaps && (one.starts_with("ldaps://") || one.starts_with("ldapi://"));
    (one.starts_with("ldap://") ? any_plain_url : any_tls_url) = true;
  }
  if (any_plain_url && any_tls_url) {
    // libldap applies StartTLS (or not) to the whole list: over ldaps:// it fails ("Operations
    // error"), so such a list never worked (outside-in audit of logins, 2026-12-05, L2).
    r.error(n["url"], "logins.ldap.url mixes ldap:// with ldaps:// or ldapi://: list directories of one kind "
                      "(ldaps:// for all, or ldap:// for all, which then use StartTLS)");
  }
  if (n["url"] && l.url.empty()) r.error(n["url"], "logins.ldap.url is empty");
  if (!n["url"]) r.error(n, "logins.ldap has no url (ldaps://HOST or ldap://HOST)");
  if (n["insecure"]) l.insecure = r.boolean(n["insecure"], "logins.ldap.insecure").value_or(false);
  // StartTLS unless the connection is TLS already (ldaps://, or a local ldapi:// socket), or the
  // school has said in writing that the directory is reached in the clear.
  l.starttls = !all_ldaps && !l.insecure;
  if (n["starttls"]) {
    l.starttls = r.boolean(n["starttls"], "logins.ldap.starttls").value_or(l.starttls);
    if (!l.starttls && !all_ldaps && !l.insecure) {
      r.error(n["starttls"], "logins.ldap.starttls: false would send passwords in the clear over ldap://; "
                             "use ldaps://, or say insecure: true if the school accepts that");
    }
  }
  read_path(r, n, "ca_file", "logins.ldap.ca_file", l.ca_file);
  read_string(r, n, "base_dn", "logins.ldap.base_dn", l.base_dn);
  read_attribute(r, n, "user_attribute", "logins.ldap.user_attribute", l.user_attribute);
  read_filter(r, n, "user_filter", "logins.ldap.user_filter", l.user_filter);
  read_string(r, n, "bind_dn_template", "logins.ldap.bind_dn_template", l.bind_dn_template);
  if (!l.bind_dn_template.empty() && l.bind_dn_template.find("{user}") == std::string::npos) {
    r.error(n["bind_dn_template"], "logins.ldap.bind_dn_template must contain {user}, like uid={user},ou=people,dc=school,dc=internal");
  }
  read_string(r, n, "bind_dn", "logins.ldap.bind_dn", l.bind_dn);
  read_path(r, n, "bind_password_file", "logins.ldap.bind_password_file", l.bind_password_file);
  struct stat password_stat {};
  if (!l.bind_password_file.empty() && ::stat(l.bind_password_file.c_str(), &password_stat) != 0) {
    // Read at each bind (a changed password needs no reload), but it must be there now: a
    // missing file passed `check` and a reload, and every sign-in then got 503 (outside-in
    // audit of logins, 2026-12-05, L4).
    r.error(n["bind_password_file"], "logins.ldap.bind_password_file " + l.bind_password_file + " cannot be found: " +
                                         std::strerror(errno));
  } else if (struct stat& st = password_stat; !l.bind_password_file.empty() && (st.st_mode & S_IRWXO) != 0) {
    // The directory's service password, like the CA key (certs/authority.cpp), is for the
    // daemon's user and group only (audit19 D7).
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    r.error(n["bind_password_file"], "logins.ldap.bind_password_file " + l.bind_password_file +
                                         " is open to every user (mode " + mode +
                                         "): it holds the directory's service password; chmod o-rwx it");
  }
  if (!l.bind_dn.empty() && l.bind_password_file.empty()) {
    r.error(n["bind_dn"], "logins.ldap.bind_dn needs bind_password_file (the password is never written in the policy)");
  }
  if (l.bind_dn_template.empty() && l.base_dn.empty() && n["url"]) {
    r.error(n, "logins.ldap needs base_dn (to search for users) or bind_dn_template");
  }
  if (n["group_base_dn"]) l.group_attribute.clear();
  read_attribute(r, n, "group_attribute", "logins.ldap.group_attribute", l.group_attribute);
  read_string(r, n, "group_base_dn", "logins.ldap.group_base_dn", l.group_base_dn);
  if (n["group_attribute"] && n["group_base_dn"]) {
    r.error(n["group_attribute"], "logins.ldap: give group_attribute (memberOf) or group_base_dn (a group search), not both");
  }
  read_filter(r, n, "group_filter", "logins.ldap.group_filter", l.group_filter);
  read_attribute(r, n, "group_member_attribute", "logins.ldap.group_member_attribute", l.group_member_attribute);
  read_attribute(r, n, "group_name_attribute", "logins.ldap.group_name_attribute", l.group_name_attribute);
  if (n["timeout"]) {
    if (auto d = r.duration(n["timeout"], "logins.ldap.timeout")) {
      if (*d < std::chrono::milliseconds(100) || *d > std::chrono::minutes(1)) {
        r.error(n["timeout"], "logins.ldap.timeout must be from 100ms to 1m");
      } else {
        l.timeout = *d;
      }
    }
  }
  if (n["cache_ttl"]) {
    if (auto d = r.duration(n["cache_ttl"], "logins.ldap.cache_ttl")) {
      if (*d > std::chrono::hours(24)) {
        r.error(n["cache_ttl"], "logins.ldap.cache_ttl must be at most 1d (a removed account must stop working)");
      } else {
        l.cache_ttl = *d;
      }
    }
  }
  if (n["max_in_flight"]) {
    if (auto v = r.integer(n["max_in_flight"], "logins.ldap.max_in_flight", 1, 64)) l.max_in_flight = static_cast<unsigned>(*v);
  }
  if (n["max_queued"]) {
    if (auto v = r.integer(n["max_queued"], "logins.ldap.max_queued", 1, 100000)) l.max_queued = static_cast<std::size_t>(*v);
  }
}

// A keytab must be readable now (by the user `check` or `run` runs as) and be one
// (keytab_file.hpp); one with keys of several realms needs logins.negotiate.principal, and a
// principal must be in it.
void read_negotiate(rules::yaml_reader& r, const YAML::Node& n, negotiate_settings& g) {
  if (!r.check_map(n, "logins.negotiate", {"keytab", "principal"})) return;
  if (!n["keytab"]) {
    r.error(n, "logins.negotiate has no keytab (the proxy's service key, like /etc/hallpass/proxy.keytab)");
    return;
  }
  read_path(r, n, "keytab", "logins.negotiate.keytab", g.keytab);
  read_string(r, n, "principal", "logins.negotiate.principal", g.principal);
  std::optional<std::vector<keytab_entry>> entries;
  if (g.keytab.empty()) {
    r.error(n["keytab"], "logins.negotiate.keytab is empty");
  } else {
    std::ifstream in(g.keytab, std::ios::binary);
    if (!in) {
      r.error(n["keytab"], "logins.negotiate.keytab " + rules::quote(g.keytab) + " cannot be read: " +
                               std::strerror(errno));
    } else {
      constexpr std::size_t max_keytab_bytes = 1 << 20;  // a keytab holds a few keys: ~100 bytes each
      std::string bytes(max_keytab_bytes + 1, '\0');
      in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      bytes.resize(static_cast<std::size_t>(in.gcount()));
      std::string why;
      if (bytes.size() > max_keytab_bytes) {
        why = "it is larger than 1 MiB";
      } else {
        entries = read_keytab(bytes, &why);
      }
      if (!entries) {
        r.error(n["keytab"], "logins.negotiate.keytab " + rules::quote(g.keytab) + " is not a Kerberos keytab (" + why +
                                 "; make one with kadmin's ktadd, or ktpass on Active Directory)");
      }
    }
  }
  if (entries) {
    for (const auto& e : *entries) {
      std::string key = e.principal + " kvno " + std::to_string(e.kvno);
      if (std::find(g.keytab_keys.begin(), g.keytab_keys.end(), key) == g.keytab_keys.end()) g.keytab_keys.push_back(key);
    }
    const auto realms = keytab_realms(*entries);
    if (g.principal.empty() && realms.size() > 1) {
      std::string names;
      for (const auto& realm : realms) names += (names.empty() ? "" : ", ") + realm;
      r.error(n["keytab"], "logins.negotiate.keytab " + rules::quote(g.keytab) + " holds keys of several realms (" +
                               names + "): set logins.negotiate.principal to the one tickets must be for, or users "
                               "of two realms would share names");
    }
    if (!g.principal.empty() && std::none_of(entries->begin(), entries->end(),
                                             [&](const keytab_entry& e) { return e.principal == g.principal; })) {
      r.error(n["principal"], "logins.negotiate.principal " + rules::quote(g.principal) + " has no key in " +
                                  rules::quote(g.keytab) + " (it holds " + entries->front().principal +
                                  (entries->size() > 1 ? ", ..." : "") + ")");
    }
  }
  if (!g.principal.empty()) {
    const auto at = g.principal.rfind('@');
    if (at == std::string::npos || at == 0 || at + 1 == g.principal.size() ||
        g.principal.find_first_of(" \t\r\n") != std::string::npos) {
      r.error(n["principal"], "logins.negotiate.principal " + rules::quote(g.principal) +
                                  " must be a Kerberos principal with its realm, like HTTP/proxy.school.internal@SCHOOL.INTERNAL");
    }
  }
}

}  // namespace

std::vector<std::string_view> ldap_urls(std::string_view list) {
  std::vector<std::string_view> urls;
  for (std::size_t from = 0; from < list.size();) {
    const auto space = std::min(list.find(' ', from), list.size());
    if (space > from) urls.push_back(list.substr(from, space - from));
    from = space + 1;
  }
  return urls;
}

void read_login_settings(rules::yaml_reader& r, const YAML::Node& n, login_settings& out) {
  if (!r.check_map(n, "logins", {"realm", "login", "networks", "ldap", "negotiate", "failures", "page"})) return;
  read_string(r, n, "realm", "logins.realm", out.realm);
  if (out.realm.find('"') != std::string::npos || out.realm.find('\\') != std::string::npos) {
    r.error(n["realm"], "logins.realm cannot contain \" or \\ (it is sent in a quoted header)");
    out.realm = "School internet";
  }
  if (n["login"]) {
    if (auto m = read_mode(r, n["login"], "logins.login")) out.default_mode = *m;
  }
  if (n["networks"]) {
    for (const auto& entry : r.items(n["networks"], "logins.networks")) {
      const std::string what = "logins.networks entry";
      if (!r.check_map(entry, what, {"networks", "login"})) continue;
      login_network ln;
      if (!entry["login"]) r.error(entry, what + " has no login (required, optional, page or none)");
      if (entry["login"]) {
        if (auto m = read_mode(r, entry["login"], what + " login")) ln.mode = *m;
      }
      if (!entry["networks"]) r.error(entry, what + " has no networks (like [10.10.0.0/16])");
      if (entry["networks"]) {
        for (const auto& item : r.items(entry["networks"], what + " networks")) {
          auto s = r.scalar(item, what + " network");
          if (!s) continue;
          std::string why;
          auto net = rules::ip_network::parse(*s, &why);
          if (net) why = net->why_no_client();
          if (!net || !why.empty()) {
            r.error(item, what + " network: " + why);
            continue;
          }
          for (const auto& other : out.networks) {
            for (const auto& o : other.networks) {
              if (o.prefix == net->prefix && o.base == net->base) {
                r.error(item, what + " network " + rules::quote(*s) + " is listed twice in logins.networks");
              }
            }
          }
          ln.networks.push_back(std::move(*net));
        }
      }
      out.networks.push_back(std::move(ln));
    }
  }
  if (n["ldap"]) read_ldap(r, n["ldap"], out.ldap);
  if (n["negotiate"]) read_negotiate(r, n["negotiate"], out.negotiate);
  if (const auto f = n["failures"]; f && r.check_map(f, "logins.failures", {"per_client", "per_user", "within"})) {
    if (f["per_client"]) {
      if (auto v = r.integer(f["per_client"], "logins.failures.per_client", 1, 100000)) out.failures_per_client = static_cast<std::size_t>(*v);
    }
    if (f["per_user"]) {
      if (auto v = r.integer(f["per_user"], "logins.failures.per_user", 1, 100000)) out.failures_per_user = static_cast<std::size_t>(*v);
    }
    if (f["within"]) {
      if (auto d = r.duration(f["within"], "logins.failures.within")) {
        if (d->count() <= 0 || *d > std::chrono::hours(24)) {
          r.error(f["within"], "logins.failures.within must be from 1s to 1d");
        } else {
          out.failures_within = *d;
        }
      }
    }
  }
  if (const auto p = n["page"]; p && r.check_map(p, "logins.page", {"idle", "lifetime"})) {
    // A device left signed in is someone else's risk (a shared tablet): the bounds keep a
    // binding from outliving a school day by accident.
    if (p["idle"]) {
      if (auto d = r.duration(p["idle"], "logins.page.idle")) {
        if (*d < std::chrono::seconds(1) || *d > std::chrono::hours(24)) {
          r.error(p["idle"], "logins.page.idle must be from 1s to 1d");
        } else {
          out.page.idle = *d;
        }
      }
    }
    if (p["lifetime"]) {
      if (auto d = r.duration(p["lifetime"], "logins.page.lifetime")) {
        if (*d < std::chrono::seconds(1) || *d > std::chrono::hours(24 * 7)) {
          r.error(p["lifetime"], "logins.page.lifetime must be from 1s to 7d");
        } else {
          out.page.lifetime = *d;
        }
      }
    }
  }
  if (out.any() && !out.ldap.configured() && !n["ldap"]) {
    r.error(n, "logins: some networks need a login, but there is no logins.ldap directory to check passwords against");
  }
}

}  // namespace hallpass

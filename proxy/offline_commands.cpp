#include "proxy/offline_commands.hpp"

#include <grp.h>
#include <sys/stat.h>
#include <pwd.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "certs/authority.hpp"
#include "certs/origin_context.hpp"
#include "certs/x509_fields.hpp"
#include "feeds/feed_history.hpp"
#include "feeds/feed_update.hpp"
#include "proxy/access_request_form.hpp"
#include "proxy/public_suffix.hpp"
#include "proxy/signin_page.hpp"
#include "rules/device_ref.hpp"
#include "rules/exception_index.hpp"
#include "rules/explain.hpp"
#include "rules/policy_loader.hpp"
#include "rules/utf8.hpp"
#include "rules/yaml_reader.hpp"
#include "proxy/alerts.hpp"
#include "proxy/configuration.hpp"
#include "proxy/ldap_directory.hpp"
#include "proxy/destination.hpp"
#include "proxy/request_checks.hpp"
#include "proxy/request_target.hpp"
#include "store/exception_store.hpp"

namespace hallpass {
namespace {

// DIR as the policy file should name it: absolute, so that the line printed for pasting means
// the same wherever the policy file is (its relative paths are relative to itself).
std::string absolute_path(const std::string& dir) {
  std::error_code ec;
  const auto p = std::filesystem::absolute(dir, ec);
  return ec ? dir : p.lexically_normal().string();
}

// Valid UTF-8 without control characters (C0, DEL, C1) or line and paragraph separators.
bool one_line_of_text(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    std::uint32_t cp = 0;
    const std::size_t n = rules::utf8_sequence(s, i, cp);
    if (n == 0 || cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029) return false;
    i += n;
  }
  return true;
}

struct arg_reader {
  const std::vector<std::string>& args;
  std::size_t i = 0;
  std::set<std::string, std::less<>> seen;
  bool done() const { return i >= args.size(); }
  const std::string& peek() const { return args[i]; }
  // For "--flag VALUE" and "--flag=VALUE". Every flag takes one value, once: an empty value
  // ("--at ''" was silently "now") or a second one (the last used to win) is an error.
  bool take(std::string_view flag, std::string& value, std::string& error) {
    const std::string& a = args[i];
    if (a == flag) {
      if (i + 1 >= args.size()) {
        error = std::string(flag) + " needs a value";
        return true;
      }
      value = args[i + 1];
      i += 2;
    } else if (a.size() > flag.size() && a.starts_with(flag) && a[flag.size()] == '=') {
      value = a.substr(flag.size() + 1);
      ++i;
    } else {
      return false;
    }
    if (value.empty()) error = std::string(flag) + " needs a value";
    if (!seen.emplace(flag).second) error = std::string(flag) + " is given twice";
    return true;
  }
};

// The same loading `hallpass run` does: the policy and the daemon's sections of the file.
// `state_dir` (--state-dir, may be empty) overrides the file's, as `run --state-dir` does: the
// feeds are read from STATE_DIR/feeds.
config_load_result load(const std::string& path, const std::string& state_dir = "") {
  overrides o;
  if (!state_dir.empty()) o.state_dir = state_dir;
  return load_configuration(path, o, 1);
}

void print_diagnostics(const rules::diagnostics& d, std::ostream& out, std::string_view prefix = "") {
  for (const auto& x : d) out << prefix << x.to_string() << "\n";
}

// The school CA named by tls.ca_dir, as `run` will load it: errors and warnings on standard
// error; what cannot be used when inspection could not start ("" when it could): the CA, or
// upstream.ca_file (a technician told that a good CA "cannot be used" may make a new one and
// reinstall it on every device; outside-in audit, 2026-12-05).
std::string check_school_ca(const daemon_config& daemon, std::string& summary, std::string_view ca_named_by) {
  const auto& tls = daemon.tls;
  if (tls.ca_dir.empty()) {
    summary = "HTTPS inspection: off (no tls.ca_dir). HTTPS blocks show no page: the browser shows its own\n"
              "  connection error instead of the block page and its request form. See certs/README.md.\n";
    // Used only with inspection, but named: `run --ca-dir` would refuse to start on it.
    if (!daemon.upstream.ca_file.empty()) {
      if (const auto origin = certs::make_origin_context(daemon.upstream.ca_file); !origin) {
        std::cerr << "warning: " << origin.error()
                  << " (used only with HTTPS inspection, which would then refuse to start)\n";
      }
    }
    return "";
  }
  const auto l = certs::load_ca(tls.ca_dir);
  for (const auto& w : l.warnings) std::cerr << "warning: tls.ca_dir: " << w << "\n";
  for (const auto& e : l.errors) std::cerr << "tls.ca_dir: " << e << "\n";
  if (!l.usable()) return "the school CA in " + std::string(ca_named_by) + " cannot be used";
  // The trust for origins of inspected requests: the system store plus upstream.ca_file.
  const auto origin = certs::make_origin_context(daemon.upstream.ca_file);
  if (!origin) {
    std::cerr << origin.error() << "\n";
    return "upstream.ca_file cannot be used, so HTTPS inspection cannot verify origins (the school CA is fine)";
  }
  summary = "HTTPS inspection: on. CA " + tls.ca_dir + ": OK, " + l.ca->subject + ", " + l.ca->key_type +
            ", valid until " + certs::utc_text(l.ca->not_after) + "\n  SHA-256 " + l.ca->fingerprint_sha256 +
            "; leaf cache " + std::to_string(tls.leaf_cache) +
            " hosts (about 3.2 KB each)\n  The policy's inspection section says which HTTPS sites are decrypted; a "
            "blocked site shows the HTTPS block page to browsers.\n  Origins are verified against the system's "
            "trusted certificates" +
            (daemon.upstream.ca_file.empty() ? std::string() : " and " + daemon.upstream.ca_file) + ".\n";
  return "";
}

std::string duration_words(std::chrono::milliseconds d) {
  if (d.count() % 1000 != 0) return std::to_string(d.count()) + "ms";
  return rules::duration_text(std::chrono::duration_cast<std::chrono::seconds>(d));
}

// The daemon sections that name the school's network, as `check` prints them: the PAC file,
// the DHCP leases (device names) and logins. Nothing secret: the LDAP service account's
// password stays in its file, which is named, never read here.
std::string daemon_sections_summary(const daemon_config& d) {
  std::string out = "PAC file: ";
  if (d.pac.listen.empty() || d.pac.listen == "off") {
    out += "not served (pac.listen)\n";
  } else {
    out += "http://" + d.pac.listen + "/proxy.pac and /wpad.dat; proxy";
    if (d.pac.proxy.empty()) {
      out += " every listen address";
    } else {
      for (const auto& x : d.pac.proxy) out += " " + x;
    }
    out += "; direct networks";
    if (!d.pac.direct_networks_set) {
      out += " every role's networks";
    } else if (d.pac.direct_networks.empty()) {
      out += " none";
    } else {
      for (const auto& n : d.pac.direct_networks) out += " " + n.text;
    }
    out += " (and loopback); direct domains";
    if (d.pac.direct_domains.empty()) out += " none";
    for (const auto& x : d.pac.direct_domains) out += " " + x;
    out += "\n";
  }
  out += "Device names: ";
  if (d.dhcp_leases.path.empty()) {
    out += "none (dhcp_leases.path): the log and the block page name no device, and bans and exceptions by "
           "device name or hardware address match nothing\n";
  } else {
    out += std::string(to_string(d.dhcp_leases.format)) + " leases from " + d.dhcp_leases.path + "\n";
  }
  // Records are deleted for good past this (store/retention.cpp): check says what it read.
  out += "Records kept: " +
         (d.retention.records ? rules::duration_text(*d.retention.records) + " after they close (retention.records)"
                              : std::string("forever (retention.records)")) +
         "\n";
  out += "Incident records kept: " +
         (d.retention.incidents ? rules::duration_text(*d.retention.incidents) + " after they close (retention.incidents)"
                                : std::string("forever (retention.incidents)")) +
         "\n";
  // What reaches the DSL at once (proxy/alerts.hpp): check says what it will alert on, and how.
  const auto& a = d.alerts;
  out += "Alerts for the DSL: ";
  if (!a.enabled()) {
    out += "none (alerts): blocks in high-risk categories and attempts to get round the filter are only in the "
           "access log\n";
  } else {
    std::string on;
    if (!a.categories.empty()) {
      on = "blocks in";
      for (const auto& c : a.categories) on += " " + c;
    }
    if (a.circumvention) on += std::string(on.empty() ? "" : "; ") + "attempts to get round the filter";
    if (a.bans) on += std::string(on.empty() ? "" : "; ") + "automatic bans";
    if (a.unblocked_reports) on += std::string(on.empty() ? "" : "; ") + "a reported page's block removed";
    out += on + "; at most one per person or device and kind every " + rules::duration_text(a.every) + "; " +
           (a.command.empty() ? std::string("to the access log only (no alerts.command)")
                              : "to the access log and " + a.command.front() +
                                    (a.to.empty() ? std::string() : " (to " + mail_address_list(a.to) + ")")) +
           "\n";
  }
  const auto& l = d.logins;
  out += "Logins: ";
  if (!l.any()) {
    out += "none (no network asks to sign in; roles by address)\n";
    return out;
  }
  out += "realm \"" + l.realm + "\"; elsewhere " + std::string(to_string(l.default_mode)) + "\n";
  for (const auto& n : l.networks) {
    out += "  " + std::string(to_string(n.mode)) + ":";
    for (const auto& x : n.networks) out += " " + x.text;
    out += "\n";
  }
  const auto& x = l.ldap;
  if (x.configured()) {
    out += "  LDAP " + x.url + (x.starttls ? " with StartTLS" : "") + (x.insecure ? " (insecure: passwords in the clear)" : "") +
           "; CA " + (x.ca_file.empty() ? std::string("the system's") : x.ca_file) + "\n";
    out += "  users: " + (x.bind_dn_template.empty()
                              ? x.user_attribute + " under " + x.base_dn + ", searched " +
                                    (x.bind_dn.empty() ? std::string("anonymously")
                                                       : "as " + x.bind_dn + " (password in " + x.bind_password_file + ")")
                              : "bound as " + x.bind_dn_template) +
           "; groups: " +
           (x.group_base_dn.empty() ? x.group_attribute
                                    : x.group_name_attribute + " under " + x.group_base_dn + " by " + x.group_member_attribute) +
           "\n";
    out += "  timeout " + duration_words(x.timeout) + ", " + std::to_string(x.max_in_flight) + " at once, " +
           std::to_string(x.max_queued) + " queued, sign-ins cached " + duration_words(x.cache_ttl) + "\n";
  }
  if (l.negotiate.configured()) {
    out += "  Negotiate (Kerberos single sign-on): keytab " + l.negotiate.keytab + ", tickets for " +
           (l.negotiate.principal.empty() ? std::string("any of its principals") : l.negotiate.principal) + "\n";
    for (const auto& key : l.negotiate.keytab_keys) out += "    key: " + key + "\n";
  }
  out += "  failed sign-ins limited to " + std::to_string(l.failures_per_client) + " per address and " +
         std::to_string(l.failures_per_user) + " per user within " + duration_words(l.failures_within) + "\n";
  // A redirected TLS connection carries no Proxy-Authorization (transparent.cpp closes it).
  const bool transparent_tls = std::any_of(d.listen.begin(), d.listen.end(), [](const listen_address& a) { return a.transparent && a.tls; });
  const bool some_required = l.default_mode == login_mode::required ||
                             std::any_of(l.networks.begin(), l.networks.end(), [](const auto& n) { return n.mode == login_mode::required; });
  if (transparent_tls && some_required) {
    out += "  HTTPS redirected to the transparent listener from a `required` network is closed (it cannot carry a\n"
           "  proxy sign-in): give those devices the proxy setting or the PAC file, or their network login: page\n";
  }
  return out;
}

// The admin section as `check` reads it: who has which role, and a warning on standard error
// for each user or group this machine does not know (a misspelt name gives nobody the role, and
// nothing else would say so: audit, 2026-12-05). Looked up through NSS, as the daemon does.
std::string admin_summary(const daemon_config& d) {
  const auto& a = d.admin;
  if (a.socket.empty()) return "Admin socket: none (admin.socket; hallpassctl cannot reach the daemon)\n";
  const auto user_known = [](const std::string& name) {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    return getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found;
  };
  const auto group_known = [](const std::string& name) {
    std::vector<char> buf(65536);
    group gr{};
    group* found = nullptr;
    return getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) == 0 && found;
  };
  std::string out = "Admin socket: " + a.socket + (a.socket_group.empty() ? " (mode 0600)" : " (group " + a.socket_group + ")");
  // A path naming another file (the store, the policy) is refused by `run` and left as it is:
  // said here first. (A socket there is the running daemon's own, or a stale one `run` replaces.)
  if (struct stat st {}; ::lstat(a.socket.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
    std::cerr << "warning: admin.socket " << a.socket << " exists and is not a socket: hallpass run will refuse "
              << "it (and leave the file as it is); name a path of its own, such as /run/hallpass/admin.sock\n";
  }
  if (!a.socket_group.empty() && !group_known(a.socket_group)) {
    std::cerr << "warning: admin.socket_group: no group " << rules::quote(a.socket_group) << " on this machine\n";
  }
  for (const auto& [role, entries] : a.roles) {
    out += "; " + role + ":";
    for (const auto& e : entries) {
      out += " " + e;
      const bool is_group = e.starts_with('@');
      const std::string name = is_group ? e.substr(1) : e;
      if (is_group ? !group_known(name) : !user_known(name)) {
        std::cerr << "warning: admin.roles." << role << ": no " << (is_group ? "group " : "OS user ") << rules::quote(name)
                  << " on this machine (a typing mistake? this entry gives nobody the role)\n";
      }
    }
  }
  return out + "\n";
}

}  // namespace

int run_check(const std::vector<std::string>& args) {
  std::string config, state_dir, ca_dir, error;
  bool quiet = false;
  arg_reader r{args};
  while (!r.done()) {
    if (r.take("--config", config, error) || r.take("--state-dir", state_dir, error) ||
        r.take("--ca-dir", ca_dir, error)) {
      if (!error.empty()) break;
    } else if (r.peek() == "--quiet" || r.peek() == "-q") {
      quiet = true;
      ++r.i;
    } else {
      error = "unknown argument '" + r.peek() + "'";
      break;
    }
  }
  if (error.empty() && config.empty()) error = "--config FILE is required";
  if (!error.empty()) {
    std::cerr << "hallpass check: " << error
              << "\nusage: hallpass check --config FILE [--state-dir DIR] [--ca-dir DIR] [--quiet]\n";
    return 2;
  }
  const auto result = load(config, state_dir);
  print_diagnostics(result.warnings, std::cerr, "warning: ");
  if (!result.config) {
    print_diagnostics(result.errors, std::cerr);
    std::cerr << config << ": " << result.errors.size() << (result.errors.size() == 1 ? " error" : " errors")
              << "; the policy was not loaded\n";
    return 1;
  }
  // --ca-dir as `run` takes it: the CA that would be used instead of tls.ca_dir.
  daemon_config d = result.config->daemon;
  if (!ca_dir.empty()) d.tls.ca_dir = ca_dir;
  std::string ca_summary;
  if (const auto problem = check_school_ca(d, ca_summary, ca_dir.empty() ? "tls.ca_dir" : "--ca-dir"); !problem.empty()) {
    std::cerr << config << ": " << problem << "\n";
    return 1;
  }
  const std::string admin = admin_summary(d);  // its warnings go to stderr, --quiet or not
  // The access log's folder: `run` opens the file in it (creating the file, not the folder) and,
  // while it cannot, logs nothing (it tries again each second).
  if (d.access_log.path != "-" && d.access_log.path != "off" && !d.access_log.path.empty()) {
    const auto folder = std::filesystem::path(d.access_log.path).parent_path();
    std::error_code ec;
    if (!folder.empty() && !std::filesystem::is_directory(folder, ec)) {
      std::cerr << "warning: " << config << ": access_log.path: " << folder.string()
                << " is not a folder that exists: hallpass would write no access log until it does\n";
    }
  }
  // One role's networks under different logins: a role written dual-stack ([10.10.0.0/16,
  // "fd00:10::/64"]) whose IPv4 network alone is listed under logins.networks with `login:
  // required` lets its IPv6 devices browse without signing in (outside-in audit of IPv6,
  // 2026-12-07, F5: the README's own example did so, and check said nothing).
  if (d.logins.any()) {
    const auto& p = *result.config->policy;
    for (std::size_t role = 0; role < p.roles.size(); ++role) {
      std::vector<const rules::ip_network*> asked, never;
      for (const auto& n : p.networks) {
        if (n.role != role) continue;
        (d.logins.mode_for(n.base) == login_mode::none ? never : asked).push_back(&n);
      }
      if (asked.empty() || never.empty()) continue;
      std::cerr << "warning: " << config << ": role " << p.roles[role].name << ": its network" << (never.size() > 1 ? "s" : "");
      for (const auto* n : never) std::cerr << " " << n->text;
      std::cerr << (never.size() > 1 ? " are" : " is") << " under `login: none` while " << asked.front()->text
                << " is under `login: " << to_string(d.logins.mode_for(asked.front()->base))
                << "`: its devices there browse without signing in; list " << (never.size() > 1 ? "them" : "it")
                << " in logins.networks too\n";
    }
  }
  // The shipped unit stops hallpass for good (SIGKILL) 30 s after asking it to stop: a drain
  // longer than that is cut there, and the access log's last lines with it (outside-in audit of
  // operations, 2026-12-07, M3).
  if (d.drain > std::chrono::seconds(25)) {
    std::cerr << "warning: " << config << ": drain is "
              << rules::duration_text(std::chrono::duration_cast<std::chrono::seconds>(d.drain))
              << ": deploy/hallpass.service kills hallpass 30 s after asking it to stop (TimeoutStopSec=30), "
                 "before such a drain ends; raise TimeoutStopSec with it, or keep drain at 25s or less\n";
  }
  // A role no device can get, and a role's network inside another role's (the longer prefix
  // wins, silently moving those devices: a typo, most likely). Both passed `check` as "OK"
  // (people-side audit, 2026-12-07, L2).
  {
    const auto& p = *result.config->policy;
    for (std::size_t role = 0; role < p.roles.size(); ++role) {
      const auto& r = p.roles[role];
      if (r.builtin || role == p.fallback_role || !r.groups.empty()) continue;
      if (std::none_of(p.networks.begin(), p.networks.end(), [&](const auto& n) { return n.role == role; })) {
        std::cerr << "warning: " << config << ": role " << r.name
                  << " has no networks and no directory groups: no device or user ever gets it\n";
      }
    }
    for (const auto& inner : p.networks) {
      for (const auto& outer : p.networks) {
        if (&inner == &outer || inner.role == outer.role || inner.prefix <= outer.prefix ||
            inner.base.v6 != outer.base.v6 || !outer.contains(inner.base)) {
          continue;
        }
        std::cerr << "warning: " << config << ": role " << p.roles[inner.role].name << "'s network " << inner.text
                  << " is inside role " << p.roles[outer.role].name << "'s " << outer.text << ": its devices get "
                  << p.roles[inner.role].name << ", not " << p.roles[outer.role].name << " (the longer prefix wins)\n";
      }
    }
  }
  // A watched category with nothing in it never blocks, so its alert never fires: the shipped
  // policy watches self_harm and illegal_content, which have no UT1 list (people-side audit,
  // 2026-12-07, M8: the summary said it alerted on them, and nothing warned).
  for (const auto& name : d.alerts.categories) {
    for (const auto& c : result.config->policy->categories) {
      if (c.name != name || c.domain_count + c.url_count + c.pattern_count != 0) continue;
      std::cerr << "warning: " << config << ": alerts.categories: " << name
                << " has no entries now (no domains, URL prefixes or patterns, and no feed has filled it): nothing "
                   "is blocked as " << name << ", so the DSL is never alerted of it; add the provider's list "
                   "(domain_files, or a feed)\n";
    }
  }
  std::cout << config << ": OK\n";
  if (!quiet) {
    std::cout << rules::policy_summary(*result.config->policy);
    std::cout << rules::feeds_summary(*result.config->policy,
                                      std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
    std::cout << "Proxy: listen";
    for (const auto& l : d.listen) std::cout << " " << l.text;
    std::cout << "; metrics " << (d.metrics.listen.empty() ? "off" : d.metrics.listen) << "; access log "
              << (d.access_log.path.empty() || d.access_log.path == "off" ? "off" : d.access_log.path)
              << (d.access_log.keep_query ? " (with query strings)" : "") << "; CONNECT ports";
    for (auto p : d.connect.ports) std::cout << " " << p;
    if (!d.connect.http_ports.empty()) {
      std::cout << " (plain HTTP only:";
      for (auto p : d.connect.http_ports) std::cout << " " << p;
      std::cout << ")";
    }
    std::cout << "\n" << daemon_sections_summary(d) << ca_summary;
    std::cout << signin_check_summary(d);
    std::cout << admin;
  }
  return 0;
}

namespace {

// What the proxy answers itself at the explained URL, in words; nullopt for a URL the policy
// decides (http_session.cpp: the form host's addresses; on a site whose requests are seen, the
// /.well-known/ paths of the form and the sign-in pages).
std::optional<std::string_view> own_page_of(const rules::request_facts& f, const rules::explanation& e) {
  const std::string_view path = f.path ? f.path->substr(0, f.path->find('?')) : std::string_view();
  if (f.scheme == "http" && rules::ascii_iequals(e.v.host.text, form_host)) {
    if (path == details_path) return "a block page's details";
    if (path == signin_path || path == signout_path) return "the sign-in and sign-out pages";
    return "the block page's access request form";
  }
  const bool seen = (f.scheme == "https" || f.scheme == "wss") && (e.block_page || e.path_seen);
  if (!seen) return std::nullopt;
  if (path == tunnel_form_path) return "the block page's access request form";
  if (path == site_signin_path || path == site_signout_path) return "the sign-in and sign-out pages";
  return std::nullopt;
}

void print_explanation(const rules::policy& p, const rules::request_facts& f, const rules::explanation& e,
                       std::string_view url, bool json) {
  if (json) {
    std::cout << rules::explanation_json(p, f, e) << "\n";
  } else {
    std::cout << "URL:      " << url << "\n";
    std::cout << rules::explanation_text(p, f, e);
  }
}

}  // namespace

int run_explain(const std::vector<std::string>& args) {
  std::string config, role, client, user, groups, device, mac, at, method = "GET", url, state_dir, ca_dir, error;
  std::vector<std::string> method_overrides;  // --method-override, as X-HTTP-Method-Override names them
  bool json = false, policy_only = false;
  arg_reader r{args};
  while (!r.done() && error.empty()) {
    if (r.peek() == "--policy-only") {
      policy_only = true;
      ++r.i;
      continue;
    }
    if (r.take("--config", config, error) || r.take("--role", role, error) || r.take("--client", client, error) ||
        r.take("--user", user, error) || r.take("--groups", groups, error) || r.take("--at", at, error) ||
        r.take("--method", method, error) || r.take("--state-dir", state_dir, error) ||
        r.take("--ca-dir", ca_dir, error) || r.take("--device", device, error) || r.take("--mac", mac, error)) {
      continue;
    }
    if (std::string m; r.take("--method-override", m, error)) {
      if (error.empty()) add_method_override(method_overrides, method, m);
      continue;
    }
    if (r.peek() == "--json") {
      json = true;
      ++r.i;
    } else if (r.peek().starts_with("--")) {
      error = "unknown option '" + r.peek() + "'";
    } else if (url.empty()) {
      url = r.peek();
      ++r.i;
    } else {
      error = "only one URL may be explained at a time ('" + r.peek() + "' is extra)";
    }
  }
  if (error.empty()) {
    if (config.empty()) error = "--config FILE is required";
    else if (!role.empty() && !client.empty()) error = "give exactly one of --role NAME or --client ADDRESS";
    else if (role.empty() && client.empty() && groups.empty() && user.empty())
      error = "give one of --role NAME, --client ADDRESS, --user NAME or --groups \"A,B\"";
    else if (url.empty()) error = "give the URL to explain";
    else if (policy_only && !state_dir.empty()) error = "give --state-dir or --policy-only, not both";
  }
  if (!error.empty()) {
    std::cerr << "hallpass explain: " << error
              << "\nusage: hallpass explain --config FILE (--role NAME | --client ADDRESS) [--user NAME] [--groups \"A,B\"]\n"
                 "                        [--device NAME] [--mac HARDWARE-ADDRESS]\n"
                 "                        [--at \"YYYY-MM-DD HH:MM\"] [--method M] [--method-override M]\n"
                 "                        [--state-dir DIR | --policy-only] [--ca-dir DIR]\n"
                 "                        [--json] URL\n";
    return 2;
  }
  const auto result = load(config, state_dir);
  print_diagnostics(result.warnings, std::cerr, "warning: ");
  if (!result.config) {
    print_diagnostics(result.errors, std::cerr);
    std::cerr << "hallpass explain: " << config << " is not a valid policy\n";
    return 1;
  }
  const rules::policy& p = *result.config->policy;

  rules::request_facts f;
  if (!role.empty() && !p.find_role(role)) {
    std::string names;
    for (const auto& x : p.roles) names += (names.empty() ? "" : ", ") + x.name;
    std::vector<std::string> candidates;
    for (const auto& x : p.roles) candidates.push_back(x.name);
    auto hint = rules::closest_match(role, candidates);
    std::cerr << "hallpass explain: the policy has no role '" << role << "'"
              << (hint.empty() ? "" : "; did you mean '" + hint + "'?") << " (roles: " << names << ")\n";
    return 2;
  }
  f.role = role;
  if (!client.empty()) {
    f.client = rules::ip_address::parse(client);
    if (!f.client) {
      std::cerr << "hallpass explain: --client '" << client << "' is not an IPv4 or IPv6 address\n";
      return 2;
    }
    // As the proxy takes a client (worker.cpp): an IPv4-mapped address is its IPv4 address.
    if (const auto v4 = rules::ipv4_mapped(*f.client)) f.client = v4;
  }
  f.user = user;
  // --groups "Year 6,Pupils": the signed-in user's directory groups, as the proxy would have
  // them from the directory. Without it, --user is looked up in logins.ldap when the config has
  // one (groups_of: the service account or anonymous, as a Negotiate sign-in is).
  std::vector<std::string> group_list;
  std::vector<std::string> notes;
  if ((!user.empty() || !groups.empty()) && !result.config->daemon.logins.any()) {
    // The proxy never has a user then, so an exception, ban or role for one never applies
    // there: decided without them, as the proxy decides (differential audit, 2026-12-05).
    notes.push_back("This configuration asks no one to sign in (no logins section): the proxy never knows a user "
                    "or their groups, so this is decided without --user and --groups, as the proxy decides it.");
    user.clear();
    groups.clear();
    f.user = {};
  }
  // The client's network decides whether the proxy asks for a sign-in (logins.networks): where
  // it asks no one (login: none), credentials sent are ignored and the address's role decides;
  // where it requires one, nothing is decided before it (explain audit, 2026-12-07, F2, F3:
  // explain decided as the user on a guest network, and gave the address's verdict where the
  // proxy answers 407 first).
  if (f.client && result.config->daemon.logins.any()) {
    const auto mode = result.config->daemon.logins.mode_for(*f.client);
    if (mode == login_mode::none && (!user.empty() || !groups.empty())) {
      notes.push_back("The network of " + client + " asks no one to sign in (login: none): the proxy ignores a user's "
                      "credentials there, so this is decided without --user and --groups, as the proxy decides it.");
      user.clear();
      groups.clear();
      f.user = {};
    } else if ((mode == login_mode::required || mode == login_mode::page) && user.empty()) {
      notes.push_back(std::string("The network of ") + client + " asks every device to sign in (login: " +
                      std::string(to_string(mode)) + "): until it has, the proxy answers each request with " +
                      (mode == login_mode::page ? "its sign-in page" : "407, a request to sign in") +
                      ", not with this verdict (the address's role's); give --user NAME for the verdict after a sign-in.");
    }
  }
  // The name as the directory spells it, when it gives one: f.user views it until the decision.
  std::string directory_user;
  if (!user.empty() && groups.empty() && result.config->daemon.logins.ldap.configured()) {
    const auto answer = groups_of(result.config->daemon.logins.ldap, user);
    if (answer.result == directory_answer::status::unavailable) {
      std::cerr << "hallpass explain: the directory (logins.ldap.url " << result.config->daemon.logins.ldap.url
                << ") could not give the groups of '" << user << "': " << answer.detail
                << "\n(give --groups \"A,B\" to explain without asking it)\n";
      return 1;
    }
    if (answer.result == directory_answer::status::bad_credentials) {
      notes.push_back("The directory knows no user '" + user + "' (" + answer.detail +
                      "): decided as for a user in no group, as the proxy would after a Negotiate sign-in.");
    } else {
      std::string list;
      for (const auto& g : answer.groups) list += (list.empty() ? "" : ", ") + g;
      notes.push_back("Groups of '" + user + "' from the directory: " + (list.empty() ? "none" : list) + ".");
      group_list = answer.groups;
      // Decided as the proxy decides: for the name as the directory spells it. Kept in
      // directory_user: `answer` ends with this block, and f.user is a view (it pointed into
      // the freed answer, and a user's bans and exceptions were missed: explain audit,
      // 2026-12-07, F1).
      if (!answer.user.empty()) {
        directory_user = answer.user;
        f.user = directory_user;
      }
    }
  }
  for (std::size_t from = 0; !groups.empty() && from <= groups.size();) {
    const auto comma = std::min(groups.find(',', from), groups.size());
    auto g = std::string_view(groups).substr(from, comma - from);
    while (!g.empty() && g.front() == ' ') g.remove_prefix(1);
    while (!g.empty() && g.back() == ' ') g.remove_suffix(1);
    if (!g.empty()) group_list.emplace_back(g);
    from = comma + 1;
  }
  f.groups = group_list;
  // --device NAME, --mac 3c:22:fb:12:9a:01: what the DHCP leases would give the proxy for the
  // client (request_facts::device, ::mac), in the canonical forms bans and exceptions use.
  std::string device_text, mac_text;
  if (!device.empty()) {
    std::string why;
    const auto d = rules::parse_device(device, &why);
    if (!d || d->by != rules::device_key::name) {
      std::cerr << "hallpass explain: --device takes a device name from the DHCP leases"
                << (d ? " (for an address use --client, for a hardware address --mac)" : ": " + why) << "\n";
      return 2;
    }
    device_text = d->text;
    f.device = device_text;
  }
  if (!mac.empty()) {
    const auto m = rules::parse_mac(mac);
    if (!m) {
      std::cerr << "hallpass explain: --mac '" << mac << "' is not a hardware address like 3c:22:fb:12:9a:01\n";
      return 2;
    }
    mac_text = *m;
    f.mac = mac_text;
  }
  // Without --device and --mac, the device the proxy would see at --client: the DHCP leases of
  // the configuration, read once (explain said ALLOW for a device banned by name and BLOCK for
  // one with a device's exception, the proxy the opposite: people-side audit, 2026-12-07, M2).
  const auto& leases = result.config->daemon.dhcp_leases;
  if (f.client && device.empty() && mac.empty() && !leases.path.empty() && !policy_only) {
    std::string why;
    const auto found = read_device_once({leases.path, leases.format}, *f.client, &why);
    if (!found) {
      // As for an unreadable store: no verdict that may be the opposite of the proxy's (a device
      // banned by name "allowed"; review of the session, 2026-12-07).
      std::cerr << "hallpass explain: cannot read the DHCP leases (" << why
                << "): a ban or an exception by device name or hardware address would not be applied, so no "
                   "verdict is given. Run explain as the service user or root, or give --device NAME or --mac "
                   "ADDRESS (or --policy-only).\n";
      return 1;
    } else if (*found) {
      device_text = (*found)->name;
      mac_text = (*found)->hardware_address;
      f.device = device_text;
      f.mac = mac_text;
      notes.push_back("The device at " + client + " from the DHCP leases (" + leases.path + "): " +
                      (device_text.empty() ? std::string("no name") : "name " + device_text) +
                      (mac_text.empty() ? std::string() : ", hardware address " + mac_text) + ".");
    } else {
      notes.push_back("No DHCP lease gives " + client + " now (" + leases.path +
                      "): decided for the address alone (the proxy may still know its hardware address from the "
                      "gateway's neighbour table; give --mac for that).");
    }
  }
  if (!is_http_token(method)) {
    std::cerr << "hallpass explain: --method '" << rules::terminal_safe(method)
              << "' is not an HTTP method (letters, like GET or POST)\n";
    return 2;
  }
  for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  f.method = method;
  std::string url_error;
  auto parts = rules::split_url(url, &url_error);
  if (!parts) {
    std::cerr << "hallpass explain: " << url_error << "\n";
    return 2;
  }
  // A WebSocket URL is decided as the proxy decides its upgrade request: http or https.
  if (parts->scheme == "ws" || parts->scheme == "wss") {
    notes.push_back("A WebSocket is decided as its opening request, an " +
                    std::string(parts->scheme == "ws" ? "http" : "https") + " GET with Upgrade: websocket.");
    parts->scheme = parts->scheme == "ws" ? "http" : "https";
  }
  f.scheme = parts->scheme;
  f.host = parts->host;
  f.port = parts->port;
  f.path = parts->path;
  f.method_overrides = method_overrides;
  // The path and query as the proxy reads the request-target (request_target.hpp): an empty
  // query dropped, "http://h?q" as "/?q" (rules::split_url kept "?q" and "/p?", and explain
  // then decided another path than the proxy: differential audit, 2026-12-05). A target the
  // proxy refuses before any decision (a raw space, tab or non-ASCII byte: browsers
  // percent-encode them) is answered 400 where the proxy sees the path (below). The host is
  // left to the policy (a technician may type an IDN, which a browser would send as punycode).
  std::string proxy_path, target_error;
  // A URL typed without a scheme ("plain.test/blocked?") is read the same way (explain audit,
  // 2026-12-07, F4: its path was taken raw, and "/blocked?" was not "/blocked").
  {
    const auto scheme_end = url.find("://");
    const auto rest = url.find_first_of("/?#", scheme_end == std::string::npos ? 0 : scheme_end + 3);
    const std::string http_form = "http://h" + (rest == std::string::npos ? std::string() : url.substr(rest));
    if (const auto t = parse_request_target(http_form, false, target_error)) {
      proxy_path = t->path + (t->query.empty() ? "" : "?" + t->query);
      f.path = proxy_path;
    }
  }
  // HTTPS is inspected only with a school CA (tls.ca_dir, or --ca-dir here); then
  // decide_inspection says, per host, whether the proxy sees the path (explain_url).
  if (ca_dir.empty()) ca_dir = result.config->daemon.tls.ca_dir;
  if (at.empty()) {
    f.time = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  } else {
    auto when = rules::parse_school_time(p.zone, at);
    if (!when) {
      std::cerr << "hallpass explain: --at '" << at
                << "' is not a school-local time like \"2026-11-23 11:00\" (or with its UTC offset, "
                   "\"2026-10-25 01:30+00:00\")\n";
      return 2;
    }
    f.time = when->at;
    // A clock change makes a local time missing (spring: read as the moment an hour later) or
    // twice over (autumn: the first is used, as for an approval's end); say so.
    if (!when->note.empty()) std::cerr << "hallpass explain: note: " << when->note << "\n";
  }
  // The exceptions and local entries the proxy applies, read (read-only) from the store in the
  // state directory: the config's, or --state-dir.
  if (state_dir.empty()) state_dir = result.config->daemon.state_dir;
  std::shared_ptr<const rules::exception_index> overlay;
  {
    std::string store_error;
    auto st = policy_only ? nullptr : store::exception_store::open_read_only(state_dir, p.zone, &store_error);
    std::optional<std::pair<std::vector<rules::exception_entry>, std::vector<rules::local_entry>>> active;
    if (st) active = st->load_active(f.time, &store_error);
    // The bans in force, as the proxy applies them (rules/ban.hpp).
    std::optional<std::vector<rules::ban_entry>> bans;
    if (active) bans = st->load_bans(f.time, &store_error);
    if (active && bans) {
      overlay = rules::exception_index::build(std::move(active->first), std::move(active->second), std::move(*bans));
    } else if (policy_only) {
      notes.push_back("The store was not read (--policy-only): this is the policy alone, without the exceptions, "
                      "local blocks and bans the proxy applies.");
    } else {
      // A store that is there but cannot be read (the service user's, mode 0640, and explain run
      // as the technician) gave a verdict of the policy alone, exit 0, where the proxy blocked a
      // reported page (people-side audit, 2026-12-07, M3): no verdict is given then.
      std::error_code ec;
      const auto db = std::filesystem::path(state_dir) / "hallpass.db";
      const bool there = std::filesystem::exists(db, ec);
      if (there || ec) {
        std::cerr << "hallpass explain: cannot read the store " << db.string() << " (" << store_error
                  << (ec ? "; " + ec.message() : std::string()) << "): the exceptions, local blocks and bans the proxy "
                  << "applies are in it, so no verdict is given. Run explain as the service user or root, or give "
                     "--policy-only to decide by the policy alone.\n";
        return 1;
      }
      notes.push_back("No store in " + state_dir +
                      " (nobody has approved an exception, blocked a page or banned anyone there yet): this is the "
                      "policy alone. If the proxy uses another state directory, give it with --state-dir.");
    }
  }
  auto e = rules::explain_url(p, f, overlay.get(), !ca_dir.empty());
  // The proxy's own pages are answered before any decision (http_session.cpp): every address
  // on hallpass.invalid (the request form, a block page's details, the sign-in and sign-out
  // pages), and their /.well-known/ paths on a site whose requests the proxy sees (inspected,
  // or decrypted for its block page). The policy never decides them, so neither does explain
  // (it gave the policy's verdict for them: explain audit, 2026-12-07).
  if (const auto page = own_page_of(f, e)) {
    e.v.act = rules::action::allow;
    e.v.matched_rule = nullptr;
    e.v.matched_category = nullptr;
    e.v.rule_id = "hallpass page";
    e.v.reason = *page;
    e.v.clause = {};
    e.v.exception_id.clear();
    e.would_allow.clear();
    e.notes = {"This is the proxy's own address: the proxy answers it itself (" + std::string(*page) +
               "), before any rule, for every role; nothing is sent to a site."};
    e.notes.insert(e.notes.begin(), notes.begin(), notes.end());
    print_explanation(p, f, e, url, json);
    return 0;
  }
  // A refusal by the proxy itself, before or beside the policy: the verdict names it alone.
  const auto refused_by_proxy = [&e](std::string_view rule, std::string_view reason, std::string would_allow) {
    e.v.act = rules::action::block;
    e.v.matched_rule = nullptr;
    e.v.matched_category = nullptr;
    e.v.rule_id = rule;
    e.v.reason = reason;
    e.v.clause = {};
    e.v.exception_id.clear();
    e.would_allow = {std::move(would_allow)};
  };
  // A path the proxy refuses before any decision is answered 400 there, where the proxy sees
  // the path at all (plain http; https on an inspected host, not its block page): so does
  // explain, rather than decide a request that could never be made. A relayed tunnel's path
  // never reaches the proxy, and a blocked host is blocked at its CONNECT.
  if (!target_error.empty() && e.path_seen && !e.block_page && e.v.act == rules::action::allow) {
    refused_by_proxy("malformed request", "the proxy answers such a request with 400 Bad Request",
                     "Nothing: the request itself is refused (" + target_error + "); a browser would percent-encode it.");
    notes.push_back("The proxy refuses this request before deciding it: " + target_error + ".");
  }
  // An https:// URL goes through a CONNECT, which the proxy refuses to a port outside
  // connect.ports (http_session.cpp, serve_connect) when the policy allows the CONNECT (a
  // blocked host gets its block first): so does explain. On an inspected host (path_seen) the
  // CONNECT is allowed even when a path rule then blocks the request: the port comes first.
  const auto& connect_ports = result.config->daemon.connect.ports;
  const std::uint16_t tunnel_port = f.port != 0 ? f.port : 443;
  // A blocked host's tunnel to a port outside connect.ports is refused with the block, never
  // decrypted for the block page (http_session.cpp, serve_connect).
  if ((f.scheme == "https" || f.scheme == "wss") && e.block_page &&
      std::find(connect_ports.begin(), connect_ports.end(), tunnel_port) == connect_ports.end()) {
    e.block_page = false;
    std::erase_if(e.notes, [](const std::string& n) { return n.find("a browser is shown the HTTPS block page") != std::string::npos; });
    notes.push_back("The host is blocked, and port " + std::to_string(tunnel_port) +
                    " is not in connect.ports: every client's CONNECT is refused with the block (a 403), with no "
                    "HTTPS block page.");
  }
  bool tunnel_opened = e.v.act == rules::action::allow || e.path_seen;
  if ((f.scheme == "https" || f.scheme == "wss") && tunnel_opened &&
      std::find(connect_ports.begin(), connect_ports.end(), tunnel_port) == connect_ports.end()) {
    const std::string then = e.v.act == rules::action::allow
                                 ? "; the policy alone would allow it."
                                 : "; the policy would then decide the request (it blocks it: " +
                                       std::string(e.v.rule_id) + ").";
    refused_by_proxy("connect.ports", "tunnels to this port are not allowed",
                     "Adding port " + std::to_string(tunnel_port) + " to connect.ports (the ports a CONNECT may reach)" +
                         then);
    notes.push_back("The proxy refuses a CONNECT to port " + std::to_string(tunnel_port) +
                    ": it is not in connect.ports.");
    tunnel_opened = false;  // nothing after the CONNECT happens: no TLS, no server name
  }
  // A browser sends no server name to an address (https://192.0.2.1/), and the proxy blocks
  // TLS without one when connect.require_sni is on (tunnel.cpp): so does explain. Not a tunnel
  // decrypted only for the HTTPS block page: that page is shown without a server name too.
  if (f.scheme == "https" && tunnel_opened && !e.block_page && result.config->daemon.connect.require_sni &&
      (e.v.host.kind == rules::host_kind::ipv4 || e.v.host.kind == rules::host_kind::ipv6)) {
    refused_by_proxy("connect.require_sni", "HTTPS without a server name is not allowed on the school network",
                     "Setting connect.require_sni: false (a browser sends no server name to an address); the policy "
                     "alone would allow it.");
    notes.push_back("The policy would allow it, but a browser sends no server name (SNI) to an address, and the "
                    "proxy blocks such TLS (connect.require_sni).");
  }
  // Where the proxy will not go whatever the policy says (upstream.cpp, destination.hpp): a
  // plain-HTTP port outside upstream.ports, and an address it will not connect to, for a host
  // whose addresses are known without a lookup (an address, or a name in `hosts:`). A name
  // explain would have to resolve is left to the proxy, which checks each address it resolves.
  const auto& up = result.config->daemon.upstream;
  const std::uint16_t port = f.port != 0 ? f.port : (f.scheme == "https" ? 443 : 80);
  if (f.scheme == "http" && e.v.act == rules::action::allow && !up.any_port) {
    const auto& ports = up.ports_set ? up.ports : default_http_ports();
    if (std::find(ports.begin(), ports.end(), port) == ports.end()) {
      refused_by_proxy("upstream.ports", "requests to this port are not allowed",
                       "Adding port " + std::to_string(port) + " to upstream.ports; the policy alone would allow it.");
    }
  }
  if (e.v.act == rules::action::allow) {
    // The proxy's rules (destination_rules_of), with its listeners as the configuration names
    // them: the daemon's own, the metrics endpoint and the PAC endpoint.
    const auto& daemon = result.config->daemon;
    std::vector<std::pair<std::string, std::uint16_t>> own;
    for (const auto& l : daemon.listen) own.emplace_back(l.host, l.port);
    for (const auto* text : {&daemon.metrics.listen, &daemon.pac.listen}) {
      if (auto l = parse_listen_address(*text)) own.emplace_back(l->host, l->port);
    }
    std::string gateway_error;
    auto gateway = gateway_addresses(&gateway_error);
    if (!gateway) {
      std::cerr << "hallpass explain: cannot read this machine's addresses (" << gateway_error
                << "): the gateway's own addresses are not checked here\n";
    }
    const destination_rules where =
        destination_rules_of(daemon, *result.config->policy, gateway.value_or(std::vector<rules::ip_address>()), own);
    std::vector<rules::ip_address> addresses;
    if (e.v.host.kind != rules::host_kind::name) {
      if (auto ip = rules::ip_address::parse(e.v.host.text)) addresses.push_back(*ip);
    } else if (const auto it = result.config->daemon.hosts.find(e.v.host.text); it != result.config->daemon.hosts.end()) {
      addresses = it->second;
    }
    std::optional<destination_verdict> refused;
    for (const auto& a : addresses) {
      const auto v = check_destination(a, port, where);
      if (v == destination_verdict::allowed) {
        refused.reset();
        break;
      }
      refused = v;
    }
    if (refused) {
      refused_by_proxy("destination", describe(*refused),
                       "Nothing in the policy: the proxy does not connect there (upstream.deny_networks, "
                       "upstream.allow_networks, upstream.allow_loopback).");
      notes.push_back("The policy would allow it, but the proxy does not connect there: " +
                      std::string(describe(*refused)) + ".");
    }
  }
  e.notes.insert(e.notes.begin(), notes.begin(), notes.end());
  print_explanation(p, f, e, url, json);
  return 0;
}

int run_ca(const std::vector<std::string>& args) {
  static constexpr const char* usage =
      "usage: hallpass ca init --dir DIR [--name \"School name\"]\n"
      "       hallpass ca show --dir DIR\n";
  if (args.empty() || (args[0] != "init" && args[0] != "show")) {
    std::cerr << "hallpass ca: give init or show\n" << usage;
    return 2;
  }
  const std::string verb = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  std::string dir, name, error;
  bool name_given = false;
  arg_reader r{rest};
  while (!r.done() && error.empty()) {
    if (r.take("--dir", dir, error)) continue;
    if (verb == "init" && r.take("--name", name, error)) {
      name_given = true;
      continue;
    }
    error = "unknown argument '" + r.peek() + "'";
  }
  if (error.empty() && dir.empty()) error = "--dir DIR is required";
  if (error.empty() && name_given && name.empty()) error = "--name must not be empty";
  if (error.empty() && !one_line_of_text(name)) {
    error = "--name must be one line of text (UTF-8), without control characters";  // it becomes the CA's subject
  }
  if (!error.empty()) {
    std::cerr << "hallpass ca " << verb << ": " << error << "\n" << usage;
    return 2;
  }
  if (verb == "init") {
    auto ca = certs::create_ca(dir, name_given ? name : "hallpass");
    if (!ca) {
      std::cerr << "hallpass ca init: " << ca.error() << "\n";
      return 1;
    }
    std::cout << "Created the school CA in " << dir << ":\n"
              << certs::describe(**ca) << "\n"
              << certs::install_instructions(**ca) << "\nTo use it, add to the policy file:\n"
              << "  tls:\n    ca_dir: " << absolute_path(dir) << "\nand run: hallpass check --config FILE\n";
    return 0;
  }
  const auto l = certs::load_ca(dir);
  if (l.ca) std::cout << certs::describe(*l.ca);
  for (const auto& w : l.warnings) std::cerr << "warning: " << w << "\n";
  for (const auto& e : l.errors) std::cerr << "hallpass ca show: " << e << "\n";
  return l.usable() ? 0 : 1;
}


namespace {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Asks the daemon that recorded its pid in STATE_DIR/hallpass.pid to reload (SIGHUP, the
// documented reload path: it validates aside and keeps the old policy on any error).
void ask_daemon_to_reload(const std::string& state_dir) {
  const std::string pid_file = state_dir + "/hallpass.pid";
  std::ifstream in(pid_file);
  long pid = 0;
  if (!(in >> pid) || pid <= 1) {
    std::cout << "No running daemon recorded in " << pid_file
              << ": the new lists apply when hallpass next starts or reloads.\n";
    return;
  }
  // A running daemon holds STATE_DIR/hallpass.lock (server.cpp, lock_state_dir). When this
  // command can take that lock, no daemon runs on this state directory, whatever the pid file
  // says: its pid may by now be this command's own or an admin's `hallpass check` (re-audit,
  // 2026-12-05: a reused pid got the SIGHUP). A lock file that cannot be opened (another
  // user's) leaves the decision to the checks below.
  const auto stale = [&](const std::string& why) {
    std::cout << "The pid file " << pid_file << " is stale: " << why
              << "; nothing was signalled: the new lists apply when hallpass next starts or reloads "
                 "(`systemctl reload hallpass` if it runs).\n";
  };
  if (pid == ::getpid()) return stale("its pid is this command's own");
  if (const int lock = ::open((state_dir + "/hallpass.lock").c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
      lock >= 0) {
    const bool free = ::flock(lock, LOCK_EX | LOCK_NB) == 0;
    ::close(lock);  // and with it the lock, if taken
    if (free) return stale("no hallpass holds " + state_dir + "/hallpass.lock");
  }
  // The pid file outlives a daemon that was killed or a machine that lost power, and the pid
  // is then reused: SIGHUP ends most programs (an unrelated `sleep` died: outside-in audit I).
  // Only a process named hallpass is signalled, through a pidfd opened before its name is
  // read, so that a pid reused in between is never the one signalled.
  // By syscall: glibc 2.36's <sys/pidfd.h> declares the wrappers without extern "C".
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0u));
  const int open_error = errno;
  std::string name;
  if (pidfd >= 0) {
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::getline(comm, name);
  }
  if (pidfd < 0 || name != "hallpass") {
    if (pidfd >= 0) ::close(pidfd);
    const std::string then =
        "; nothing was signalled: the new lists apply when hallpass next starts or reloads "
        "(`systemctl reload hallpass` if it runs).\n";
    if (pidfd < 0 && open_error != ESRCH) {
      std::cout << "The process recorded in " << pid_file << " (pid " << pid << ") cannot be checked ("
                << std::strerror(open_error) << ")" << then;
    } else if (pidfd >= 0 && name.empty()) {
      std::cout << "The process recorded in " << pid_file << " (pid " << pid
                << ") cannot be checked (its /proc/" << pid << "/comm cannot be read)" << then;
    } else {
      std::cout << "The pid file " << pid_file << " is stale: pid " << pid
                << (pidfd < 0 ? " is not running" : " is not hallpass (it is '" + name + "')") << then;
    }
    return;
  }
  const int sent = static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, SIGHUP, nullptr, 0u));
  const int why = errno;
  ::close(pidfd);
  if (sent != 0) {
    std::cout << "The daemon recorded in " << pid_file << " (pid " << pid << ") could not be signalled ("
              << std::strerror(why) << "): reload it with `systemctl reload hallpass`.\n";
    return;
  }
  std::cout << "Asked the running daemon (pid " << pid << ") to reload.\n";
}

// "2026-12-02 03:12 GMT" for Unix seconds: school-local time, as everything else the DSL reads.
std::string local_minutes(const rules::policy& p, std::int64_t t) {
  return rules::local_minutes(p.zone, std::chrono::sys_seconds{std::chrono::seconds{t}});
}

// The last "loaded" (by the daemon) and "updated" (by `feeds update`) entry of each feed, for
// `feeds status`: the DfE standard's "when each list was last loaded".
void print_last_loads(const rules::policy& p, const feeds::history_read& h, std::int64_t now, std::ostream& out) {
  out << "Last loaded (from the load history; `hallpass feeds history` lists the week's loads):\n";
  for (const auto& f : p.feeds) {
    const feeds::history_entry* loaded = nullptr;
    const feeds::history_entry* updated = nullptr;
    for (const auto& e : h.entries) {
      if (e.feed != f.name) continue;
      if (e.event == "loaded") loaded = &e;
      if (e.event == "updated") updated = &e;
    }
    out << "  " << f.name << ": ";
    if (loaded) {
      out << "loaded by the proxy " << local_minutes(p, loaded->time) << " ("
          << rules::duration_text(std::chrono::seconds{std::max<std::int64_t>(0, now - loaded->time)}) << " ago, version "
          << loaded->version << ")";
    } else {
      out << "never loaded by the proxy";
    }
    if (updated) out << "; last updated " << local_minutes(p, updated->time) << " (version " << updated->version << ")";
    out << "\n";
  }
  if (h.unreadable) out << "  (" << h.unreadable << " lines of the history could not be read and were skipped)\n";
}

// `feeds history`: the loads since a time, as a Markdown table the DSL pastes into the weekly
// figures.
void print_history(const rules::policy& p, const feeds::history_read& h, std::int64_t since, std::int64_t now,
                   std::string_view since_text, std::ostream& out) {
  // Rows in school time without the zone (a column of "GMT" says nothing); the title names the
  // zone, and a row in the other half of the year says so in its own cell.
  const std::string zone_now = rules::zone_label(p.zone, std::chrono::sys_seconds{std::chrono::seconds{now}});
  out << "Category feed loads, " << local_minutes(p, since) << " to " << local_minutes(p, now) << " (last "
      << since_text << "):\n\n| When (" << zone_now
      << ") | Feed | What | Version | Entries | Added | Removed |\n|---|---|---|---|---|---|---|\n";
  std::size_t rows = 0;
  for (const auto& e : h.entries) {
    if (e.time < since || e.time > now) continue;
    std::size_t entries = 0, added = 0, removed = 0;
    bool diffed = false;
    for (const auto& l : e.lists) {
      entries += l.entries;
      if (l.added && l.removed) {
        diffed = true;
        added += *l.added;
        removed += *l.removed;
      }
    }
    std::string when = local_minutes(p, e.time);
    if (when.ends_with(" " + zone_now)) when.resize(when.size() - zone_now.size() - 1);
    out << "| " << when << " | " << e.feed << " | "
        << (e.event == "loaded" ? "loaded by the proxy" : e.event == "updated" ? "downloaded (feeds update)" : e.event)
        << " | " << e.version << " | " << rules::thousands(entries) << " | " << (diffed ? rules::thousands(added) : "") << " | "
        << (diffed ? rules::thousands(removed) : "") << " |\n";
    ++rows;
  }
  if (rows == 0) out << "| (none) | | | | | | |\n";
  out << "\n";
  for (const auto& f : p.feeds) {
    const feeds::history_entry* last = nullptr;
    for (const auto& e : h.entries) {
      if (e.feed == f.name && e.event == "loaded") last = &e;
    }
    out << "Feed " << f.name << " last loaded by the proxy: "
        << (last ? local_minutes(p, last->time) + " (version " + last->version + ")" : std::string("never")) << "\n";
  }
  if (h.unreadable) out << "(" << h.unreadable << " lines of the history could not be read and were skipped)\n";
}

}  // namespace

int run_feeds(const std::vector<std::string>& args) {
  constexpr const char* usage_text =
      "usage: hallpass feeds update [--feed NAME] [--allow-shrink] [--config FILE] [--state-dir DIR]\n"
      "       hallpass feeds status [--config FILE] [--state-dir DIR]\n"
      "       hallpass feeds history [--since DURATION] [--config FILE] [--state-dir DIR]   (default --since 7d)\n";
  if (args.empty() || (args[0] != "update" && args[0] != "status" && args[0] != "history")) {
    std::cerr << "hallpass feeds: " << (args.empty() ? "a verb is required" : "unknown verb '" + args[0] + "'") << "\n"
              << usage_text;
    return 2;
  }
  const bool update = args[0] == "update", history = args[0] == "history";
  std::string config = default_config_path, state_dir, only, since_text = "7d", error;
  bool allow_shrink = false;
  arg_reader r{args};
  r.i = 1;
  while (!r.done() && error.empty()) {
    if (update && r.peek() == "--allow-shrink") {
      allow_shrink = true;
      ++r.i;
      continue;
    }
    if (r.take("--config", config, error) || r.take("--state-dir", state_dir, error) ||
        (update && r.take("--feed", only, error)) || (history && r.take("--since", since_text, error))) {
      continue;
    }
    error = "unknown argument '" + r.peek() + "'";
  }
  const auto since_duration = rules::parse_duration(since_text);
  if (error.empty() && (!since_duration || *since_duration < std::chrono::seconds{1})) {
    error = "--since must be a duration like 7d, 24h or 30m, not '" + since_text + "'";
  }
  if (!error.empty()) {
    std::cerr << "hallpass feeds: " << error << "\n" << usage_text;
    return 2;
  }
  overrides o;
  if (!state_dir.empty()) o.state_dir = state_dir;
  o.feeds_may_be_missing = update || history;
  const auto loaded = load_configuration(config, o, 1);
  if (!loaded.config) {
    print_diagnostics(loaded.errors, std::cerr);
    std::cerr << "hallpass feeds: " << config << " is not valid; nothing was done\n";
    return 1;
  }
  const auto& p = *loaded.config->policy;
  const std::string dir = loaded.config->daemon.state_dir;
  const std::string feeds_dir = dir + "/feeds";
  const std::int64_t now = unix_now();
  if (!update) {
    if (p.feeds.empty()) {
      std::cout << config << " has no feeds section.\n";
      return 0;
    }
    const auto h = feeds::read_history(feeds_dir);
    if (!h.error.empty()) std::cerr << "hallpass feeds: " << h.error << "\n";
    if (history) {
      const auto span = std::chrono::duration_cast<std::chrono::seconds>(*since_duration).count();
      print_history(p, h, now - span, now, since_text, std::cout);
      return h.error.empty() ? 0 : 1;
    }
    std::cout << rules::feeds_summary(p, std::chrono::sys_seconds{std::chrono::seconds{now}});
    print_last_loads(p, h, now, std::cout);
    const bool missing = std::any_of(p.feeds.begin(), p.feeds.end(), [](const auto& f) { return !f.present; });
    return missing || !h.error.empty() ? 1 : 0;
  }
  if (!only.empty() && std::none_of(p.feeds.begin(), p.feeds.end(), [&](const auto& f) { return f.name == only; })) {
    std::cerr << "hallpass feeds update: " << config << " has no feed '" << only << "'\n";
    return 2;
  }
  feeds::update_options uo;
  uo.feeds_dir = feeds_dir;
  uo.now = now;
  uo.allow_shrink = allow_shrink;
  uo.is_registry_suffix = [](std::string_view host) { return is_registry_suffix(host); };
  // Nothing the update writes is for other users: the IWF's list is confidential, and a
  // feed.info may name a private mirror (outside-in audit of the feeds, 2026-12-06, M3; the
  // systemd units had UMask=0027, a hand-run command had the shell's).
  ::umask(027);
  // Run as root for the daemon's state directory (another user's): what is written is given
  // to that user, so that the daemon can read it and its timer's update replace it (H1, M2).
  if (struct stat st{}; ::geteuid() == 0 && ::stat(dir.c_str(), &st) == 0 && st.st_uid != 0) {
    uo.owner = std::pair<uid_t, gid_t>{st.st_uid, st.st_gid};
  }
  int failures = 0, changed = 0;
  std::vector<feeds::history_entry> updated;
  for (const auto& f : p.feeds) {
    if (!only.empty() && f.name != only) continue;
    const auto u = feeds::update_feed(f, uo);
    if (!u.ok) {
      ++failures;
      std::cerr << "hallpass feeds update: feed " << f.name << ": " << u.error
                << (f.present ? "; the lists in force are unchanged\n" : "; the feed is still missing\n");
      continue;
    }
    if (u.unchanged) {
      std::cout << "feed " << f.name << ": unchanged (the server says it is not modified); nothing was written\n";
      continue;
    }
    ++changed;
    std::cout << "feed " << f.name << ": updated in " << uo.feeds_dir << "/" << f.name << "/current\n";
    feeds::history_entry e{now, "updated", f.name, u.version, {}};
    for (const auto& c : u.changes) {
      std::cout << "  " << f.name << "/" << c.list << ": " << c.entries << " entries, +" << c.added << " -"
                << c.removed;
      // What the daemon's journal would say later, said now (outside-in audit of the feeds,
      // 2026-12-06, H2 and L3).
      if (c.skipped > 0) std::cout << "; " << c.skipped << " lines that are not entries skipped";
      if (c.left_out > 0) {
        std::cout << "; " << c.left_out << " left out for naming a whole top-level domain or registry suffix ("
                  << rules::terminal_safe(c.left_out_examples) << (c.left_out > 5 ? ", ..." : "")
                  << "): a feed never blocks every site under one";
      }
      std::cout << "\n";
      e.lists.push_back({c.list, c.entries, c.added, c.removed});
    }
    updated.push_back(std::move(e));
  }
  // Recorded before the reload, so that the daemon's "loaded" line follows it.
  if (auto e = feeds::append_history(feeds_dir, updated); !e.empty()) {
    std::cerr << "hallpass feeds update: warning: the load history was not written: " << e << "\n";
  }
  if (uo.owner) {
    for (const char* name : {"history", "history.lock"}) {
      (void)::lchown((feeds_dir + "/" + name).c_str(), uo.owner->first, uo.owner->second);
    }
  }
  if (changed > 0) ask_daemon_to_reload(dir);
  return failures > 0 ? 1 : 0;
}

}  // namespace hallpass

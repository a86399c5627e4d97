#include "proxy/daemon_config.hpp"

#include <algorithm>
#include <charconv>

#include "proxy/pac_script.hpp"
#include "rules/host.hpp"
#include "rules/yaml_reader.hpp"

namespace hallpass {

std::optional<listen_address> parse_listen_address(std::string_view text) {
  listen_address a;
  a.text = std::string(text);
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  auto ip = rules::ip_address::parse(host);
  if (!ip) return std::nullopt;
  // "[::ffff:127.0.0.1]:3128" is the IPv4 address it spells: IPv6 sockets are IPv6-only here,
  // and cannot bind a mapped address (outside-in audit of IPv6, 2026-12-07, F7: check said OK,
  // and run failed with "Invalid argument").
  if (const auto v4 = rules::ipv4_mapped(*ip)) ip = v4;
  unsigned p = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), p);
  if (r.ec != std::errc() || r.ptr != port.data() + port.size() || p > 65535) return std::nullopt;
  a.host = ip->to_string();
  a.port = static_cast<std::uint16_t>(p);
  return a;
}

std::optional<std::string> parse_name_server(std::string_view text) {
  if (rules::ip_address::parse(text) && text.front() != '[') return std::string(text);  // no port: 53
  auto a = parse_listen_address(text);
  if (!a || a->port == 0) return std::nullopt;
  return a->text;
}

std::vector<std::string> daemon_section_names() {
  return {"listen", "state_dir", "workers", "drain", "upstream", "hosts", "limits", "connect", "access_log", "metrics",
          "admin", "tls", "pac", "dhcp_leases", "logins", "retention", "alerts"};
}

namespace {

class daemon_reader : public rules::yaml_reader {
 public:
  using yaml_reader::yaml_reader;

  daemon_config read(const YAML::Node& root) {
    daemon_config c;
    c.listen.push_back(*parse_listen_address("127.0.0.1:3128"));
    if (const auto n = root["listen"]) {
      c.listen.clear();
      const auto entries = items(n, "listen");
      for (const auto& item : entries) {
        if (item.IsMap()) {
          if (auto a = transparent_listener(item)) c.listen.push_back(std::move(*a));
          continue;
        }
        auto s = scalar(item, "listen address");
        if (!s) continue;
        auto a = parse_listen_address(*s);
        if (!a) {
          error(item, "listen address " + rules::quote(*s) + " must be ADDRESS:PORT, like 127.0.0.1:3128 or [::1]:3128");
          continue;
        }
        c.listen.push_back(std::move(*a));
      }
      if (entries.empty()) error(n, "listen must name at least one ADDRESS:PORT");
    }
    if (const auto n = root["state_dir"]) {
      if (auto s = path(n, "state_dir")) c.state_dir = *s;
    }
    if (const auto n = root["workers"]) {
      if (auto v = integer(n, "workers", 0, 64)) c.workers = static_cast<unsigned>(*v);
    }
    if (const auto n = root["drain"]) {
      if (auto d = duration(n, "drain")) c.drain = *d;
    }
    if (const auto n = root["upstream"]; n && check_map(n, "upstream",
                                                       {"allow_loopback", "connect_timeout", "response_timeout",
                                                        "idle_timeout", "pool_per_origin", "pool_idle", "dns_cache",
                                                        "dns_timeout", "dns_servers", "deny_networks", "allow_networks",
                                                        "ports", "ca_file", "fetch_issuers"})) {
      auto& u = c.upstream;
      if (n["allow_loopback"]) u.allow_loopback = boolean(n["allow_loopback"], "upstream.allow_loopback").value_or(false);
      read_duration(n, "connect_timeout", "upstream.connect_timeout", u.connect_timeout);
      if (n["ca_file"]) u.ca_file = path(n["ca_file"], "upstream.ca_file").value_or("");
      if (n["fetch_issuers"]) u.fetch_issuers = boolean(n["fetch_issuers"], "upstream.fetch_issuers").value_or(true);
      read_duration(n, "response_timeout", "upstream.response_timeout", u.response_timeout);
      read_duration(n, "idle_timeout", "upstream.idle_timeout", u.idle_timeout);
      read_duration(n, "pool_idle", "upstream.pool_idle", u.pool_idle);
      read_duration(n, "dns_cache", "upstream.dns_cache", u.dns_cache);
      read_duration(n, "dns_timeout", "upstream.dns_timeout", u.dns_timeout);
      if (n["dns_timeout"] && u.dns_timeout.count() == 0) error(n["dns_timeout"], "upstream.dns_timeout must be more than 0s");
      if (n["dns_servers"]) {
        for (const auto& item : items(n["dns_servers"], "upstream.dns_servers")) {
          auto s = scalar(item, "upstream.dns_servers entry");
          if (!s) continue;
          if (auto server = parse_name_server(*s)) {
            u.dns_servers.push_back(*server);
          } else {
            error(item, "upstream.dns_servers entry " + rules::quote(*s) +
                            " must be an IP address with an optional port, like 10.0.0.53, 10.0.0.53:5353 or [fd00::53]:53");
          }
        }
      }
      if (n["deny_networks"]) {
        u.deny_networks_set = true;
        read_networks(n["deny_networks"], "upstream.deny_networks", u.deny_networks);
      }
      if (n["allow_networks"]) read_networks(n["allow_networks"], "upstream.allow_networks", u.allow_networks);
      if (n["ports"] && n["ports"].IsScalar() && n["ports"].Scalar() == "any") {
        u.any_port = true;
      } else if (n["ports"]) {
        u.ports_set = true;
        for (const auto& item : items(n["ports"], "upstream.ports")) {
          if (auto v = integer(item, "upstream.ports entry", 1, 65535)) u.ports.push_back(static_cast<std::uint16_t>(*v));
        }
      }
      if (n["pool_per_origin"]) {
        if (auto v = integer(n["pool_per_origin"], "upstream.pool_per_origin", 0, 1024)) u.pool_per_origin = static_cast<unsigned>(*v);
      }
    }
    if (const auto n = root["hosts"]) {
      if (!n.IsMap()) {
        error(n, "hosts must map host names to addresses, like 'origin.test: 127.0.0.1'");
      } else {
        for (const auto& kv : n) {
          const std::string raw = kv.first.Scalar();
          std::string err;
          auto name = rules::normalize_host(raw, &err);
          if (!name || name->kind != rules::host_kind::name) {
            error(kv.first, "hosts: " + rules::quote(raw) + " is not a host name" + (err.empty() ? "" : ": " + err));
            continue;
          }
          // One name twice ("origin.test" and "Origin.test.") would silently pool both entries'
          // addresses (policy audit, 2026-12-05): an error, as a duplicate key is elsewhere.
          if (c.hosts.contains(name->text)) {
            error(kv.first, "hosts: " + rules::quote(raw) + " is " + rules::quote(name->text) + ", which is given twice");
            continue;
          }
          auto& addresses = c.hosts[name->text];
          for (const auto& item : items(kv.second, "hosts." + raw)) {
            auto s = scalar(item, "hosts." + raw);
            if (!s) continue;
            auto ip = rules::ip_address::parse(*s);
            if (!ip) {
              error(item, "hosts." + raw + ": " + rules::quote(*s) + " is not an IPv4 or IPv6 address");
              continue;
            }
            addresses.push_back(*ip);
          }
          if (addresses.empty()) error(kv.first, "hosts." + raw + " needs at least one address");
        }
      }
    }
    if (const auto n = root["limits"]; n && check_map(n, "limits",
                                                     {"header_bytes", "header_count", "response_header_bytes",
                                                      "response_header_count", "body_bytes", "connections",
                                                      "connections_per_client", "head_timeout", "keepalive_timeout",
                                                      "body_min_rate", "body_grace"})) {
      auto& l = c.limits;
      read_size(n, "header_bytes", "limits.header_bytes", l.header_bytes, 1024, 1 << 20);
      read_size(n, "header_count", "limits.header_count", l.header_count, 8, 10000);
      read_size(n, "response_header_bytes", "limits.response_header_bytes", l.response_header_bytes, 1024, 1 << 20);
      read_size(n, "response_header_count", "limits.response_header_count", l.response_header_count, 8, 10000);
      read_size(n, "connections", "limits.connections", l.connections, 1, 1000000);
      read_size(n, "connections_per_client", "limits.connections_per_client", l.connections_per_client, 1, 1000000);
      if (n["body_bytes"]) {
        if (auto v = integer(n["body_bytes"], "limits.body_bytes", 0, 1LL << 50)) l.body_bytes = static_cast<std::uint64_t>(*v);
      }
      read_duration(n, "head_timeout", "limits.head_timeout", l.head_timeout);
      if (n["body_min_rate"]) {
        if (auto v = integer(n["body_min_rate"], "limits.body_min_rate", 0, 1LL << 40)) l.body_min_rate = static_cast<std::uint64_t>(*v);
      }
      read_duration(n, "body_grace", "limits.body_grace", l.body_grace);
      // A grace shorter than a round trip or two refuses bodies that have not begun to arrive
      // with the head (the usual case: curl after a 100, a browser's next TLS record).
      if (l.body_min_rate > 0 && l.body_grace < std::chrono::seconds(1)) {
        error(n["body_grace"] ? n["body_grace"] : n["body_min_rate"],
              "limits.body_grace must be at least 1s while limits.body_min_rate is set (0 turns the pace off)");
      }
      read_duration(n, "keepalive_timeout", "limits.keepalive_timeout", l.keepalive_timeout);
    }
    if (const auto n = root["connect"]; n && check_map(n, "connect", {"ports", "http_ports", "hello_timeout", "require_sni", "allow_non_tls"})) {
      if (n["require_sni"]) c.connect.require_sni = boolean(n["require_sni"], "connect.require_sni").value_or(true);
      if (n["allow_non_tls"]) c.connect.allow_non_tls = boolean(n["allow_non_tls"], "connect.allow_non_tls").value_or(false);
      if (n["ports"]) {
        c.connect.ports.clear();
        for (const auto& item : items(n["ports"], "connect.ports")) {
          if (auto v = integer(item, "connect.ports entry", 1, 65535)) c.connect.ports.push_back(static_cast<std::uint16_t>(*v));
        }
      }
      if (n["http_ports"]) {
        c.connect.http_ports.clear();
        for (const auto& item : items(n["http_ports"], "connect.http_ports")) {
          if (auto v = integer(item, "connect.http_ports entry", 1, 65535)) {
            c.connect.http_ports.push_back(static_cast<std::uint16_t>(*v));
          }
        }
      }
      read_duration(n, "hello_timeout", "connect.hello_timeout", c.connect.hello_timeout);
    }
    if (const auto n = root["access_log"]; n && check_map(n, "access_log", {"path", "keep_query", "queue_lines", "search_terms"})) {
      if (const auto t = n["search_terms"]) {
        using kept = daemon_config::access_log_settings::search_terms_kept;
        const std::string v = t.IsScalar() ? t.Scalar() : std::string();
        if (v == "blocked") c.access_log.search_terms = kept::blocked;
        else if (v == "true" || v == "yes" || v == "on") c.access_log.search_terms = kept::all;
        else if (v == "false" || v == "no" || v == "off") c.access_log.search_terms = kept::none;
        else error(t, "access_log.search_terms must be true (every search's terms), blocked (a blocked search's only) "
                      "or false, not " + (t.IsScalar() ? rules::quote(v) : std::string("that")));
      }
      if (n["path"]) {
        const auto v = scalar(n["path"], "access_log.path").value_or("-");
        c.access_log.path = v == "-" || v == "off" ? v : resolve_path(v);  // "-", "off": not files
      }
      if (n["keep_query"]) c.access_log.keep_query = boolean(n["keep_query"], "access_log.keep_query").value_or(false);
      read_size(n, "queue_lines", "access_log.queue_lines", c.access_log.queue_lines, 16, 10000000);
    }
    if (const auto n = root["admin"]; n && check_map(n, "admin", {"socket", "socket_group", "roles"})) {
      if (n["socket"]) c.admin.socket = path(n["socket"], "admin.socket").value_or("");
      if (n["socket_group"]) c.admin.socket_group = scalar(n["socket_group"], "admin.socket_group").value_or("");
      if (const auto r = n["roles"]; r && check_map(r, "admin.roles", {"headteacher", "technician", "dsl"})) {
        for (const auto& kv : r) {
          auto& who = c.admin.roles[kv.first.Scalar()];
          for (const auto& item : items(kv.second, "admin.roles." + kv.first.Scalar())) {
            if (auto s = scalar(item, "admin.roles." + kv.first.Scalar() + " entry")) {
              if (s->empty() || *s == "@") {
                error(item, "admin.roles entries are OS user names or @group names");
                continue;
              }
              who.push_back(*s);
            }
          }
        }
      }
    }
    if (const auto n = root["tls"]; n && check_map(n, "tls", {"ca_dir", "leaf_cache"})) {
      if (n["ca_dir"]) c.tls.ca_dir = path(n["ca_dir"], "tls.ca_dir").value_or("");
      read_size(n, "leaf_cache", "tls.leaf_cache", c.tls.leaf_cache, 1, 10000000);
    }
    if (const auto n = root["metrics"]; n && check_map(n, "metrics", {"listen"})) {
      if (n["listen"]) {
        auto s = scalar(n["listen"], "metrics.listen");
        if (s && *s != "off" && !s->empty() && !parse_listen_address(*s)) {
          error(n["listen"], "metrics.listen " + rules::quote(*s) + " must be ADDRESS:PORT or off");
        } else if (s) {
          c.metrics.listen = *s == "off" ? "" : *s;
        }
      }
    }
    read_pac(root, c);
    read_dhcp_leases(root, c);
    read_retention(root, c);
    read_alerts(root, c);
    if (const auto n = root["logins"]) read_login_settings(*this, n, c.logins);
    return c;
  }

 private:
  void read_pac(const YAML::Node& root, daemon_config& c) {
    const auto n = root["pac"];
    if (!n || !check_map(n, "pac", {"listen", "proxy", "direct_networks", "direct_domains"})) return;
    if (n["listen"]) {
      auto s = scalar(n["listen"], "pac.listen");
      if (s && *s != "off" && !s->empty() && !parse_listen_address(*s)) {
        error(n["listen"], "pac.listen " + rules::quote(*s) + " must be ADDRESS:PORT (like 10.0.0.1:80 or [fd00::1]:80) or off");
      } else if (s) {
        c.pac.listen = *s == "off" ? "" : *s;
      }
    }
    if (n["proxy"]) {
      for (const auto& item : items(n["proxy"], "pac.proxy")) {
        auto s = scalar(item, "pac.proxy entry");
        if (!s) continue;
        std::string why;
        if (auto p = parse_pac_proxy(*s, &why)) {
          c.pac.proxy.push_back(std::move(*p));
        } else {
          error(item, "pac.proxy: " + why);
        }
      }
    }
    if (n["direct_networks"]) {
      c.pac.direct_networks_set = true;
      read_networks(n["direct_networks"], "pac.direct_networks", c.pac.direct_networks);
    }
    if (n["direct_domains"]) {
      for (const auto& item : items(n["direct_domains"], "pac.direct_domains")) {
        auto s = scalar(item, "pac.direct_domains entry");
        if (!s) continue;
        std::string err;
        auto name = rules::normalize_host(*s, &err);
        if (!name || name->kind != rules::host_kind::name || name->text.find('.') == std::string::npos) {
          error(item, "pac.direct_domains: " + rules::quote(*s) + " is not a domain name like school.internal" +
                          (err.empty() ? "" : ": " + err));
          continue;
        }
        c.pac.direct_domains.push_back(name->text);
      }
    }
  }

  // retention.records and retention.incidents: a duration (at least 1s) or "forever".
  void read_retention(const YAML::Node& root, daemon_config& c) {
    const auto n = root["retention"];
    if (!n || !check_map(n, "retention", {"records", "incidents"})) return;
    const auto read = [&](const char* key, std::optional<std::chrono::seconds>& out, const char* what,
                          std::chrono::seconds least, const char* least_text) {
      if (!n[key]) return;
      const std::string name = std::string("retention.") + key;
      const auto s = scalar(n[key], name);
      if (!s) return;
      if (*s == "forever") {
        out.reset();
        return;
      }
      const auto d = rules::parse_duration(*s);
      if (!d || *d < least || *d > std::chrono::days(36500)) {
        // A suggestion the setting then takes (admin audit, 2026-12-05, F10: "0" was told "0s?").
        const std::string hint = d && d->count() == 0
                                     ? std::string(": 0 would keep no closed record at all; the least is ") + least_text
                                     : rules::duration_hint(*s, least, std::chrono::days(36500));
        error(n[key], name + " must be how long " + what + " are kept, like 365d (" + least_text +
                          " to 36500d), or forever, not " + rules::quote(*s) + hint);
        return;
      }
      out = std::chrono::ceil<std::chrono::seconds>(*d);
    };
    read("records", c.retention.records, "closed records", std::chrono::seconds(1), "1s");
    // At least 30 days: a safeguarding record is never meant to go within hours, and "1s" (or
    // "7" read as it) would wipe every closed incident at the next reload.
    read("incidents", c.retention.incidents, "closed incident records", std::chrono::days(30), "30d");
  }

  // alerts.to: one address, or a list of them (the DSL and the deputies: KCSIE has the DSL
  // name at least one deputy, who should hear of an alert when the DSL is away). Each is one
  // bare address, LOCAL@DOMAIN: no line breaks (they would add headers to the message), no
  // control characters, and nothing that makes a list or a display name inside one entry
  // (spaces, commas, semicolons, angle brackets, quotes): "dsl@x, someone@y" as one string
  // mailed both unseen by check (outside-in audit, 2026-12-06). One @, with text on each side.
  void read_alert_recipients(const YAML::Node& node, daemon_config::alert_settings& a) {
    std::vector<YAML::Node> entries;
    if (node.IsSequence()) {
      for (const auto& item : items(node, "alerts.to")) entries.push_back(item);
      if (entries.empty()) error(node, "alerts.to names nobody: give the DSL's address, or leave alerts.to out");
      if (entries.size() > daemon_config::max_alert_recipients) {
        error(node, "alerts.to names " + std::to_string(entries.size()) + " addresses; at most " +
                        std::to_string(daemon_config::max_alert_recipients) +
                        " (for more people, a list address the school's mail server keeps)");
        return;
      }
    } else {
      entries.push_back(node);
    }
    for (const auto& e : entries) {
      const auto s = scalar(e, "alerts.to");
      if (!s) continue;
      const auto at = s->find('@');
      if (at == std::string::npos || at == 0 || at + 1 == s->size() || s->find('@', at + 1) != std::string::npos ||
          s->size() > 254 || s->find_first_of(" ,;<>\"()[]:\\") != std::string::npos ||
          std::any_of(s->begin(), s->end(), [](unsigned char ch) { return ch < 0x20 || ch >= 0x7f; })) {
        error(e, "alerts.to must be mail addresses like dsl@school.example, in ASCII, one to an entry (for several "
                 "people, a list: [dsl@school.example, deputy@school.example]), not " + rules::quote(*s));
        continue;
      }
      const bool again = std::any_of(a.to.begin(), a.to.end(), [&](const std::string& t) { return rules::ascii_iequals(t, *s); });
      if (again) {
        error(e, "alerts.to names " + rules::quote(*s) + " twice");
        continue;
      }
      a.to.push_back(*s);
    }
  }

  // alerts: which events alert the DSL, and how the alert leaves (proxy/alerts.hpp). Whether
  // each category exists is checked against the policy by load_configuration.
  void read_alerts(const YAML::Node& root, daemon_config& c) {
    const auto n = root["alerts"];
    if (!n || !check_map(n, "alerts", {"categories", "circumvention", "bans", "unblocked_reports", "command", "to",
                                       "every"}))
      return;
    auto& a = c.alerts;
    a.unblocked_reports = true;  // an alerts section: on unless it says otherwise
    if (n["categories"]) {
      for (const auto& item : items(n["categories"], "alerts.categories")) {
        if (auto s = scalar(item, "alerts.categories entry")) a.categories.push_back(*s);
      }
    }
    if (n["circumvention"]) a.circumvention = boolean(n["circumvention"], "alerts.circumvention").value_or(false);
    if (n["bans"]) a.bans = boolean(n["bans"], "alerts.bans").value_or(false);
    if (n["unblocked_reports"]) {
      a.unblocked_reports = boolean(n["unblocked_reports"], "alerts.unblocked_reports").value_or(true);
    }
    if (n["command"]) {
      if (n["command"].IsScalar()) {
        error(n["command"], "alerts.command must be a list: the program and its arguments, run without a shell, "
                            "like [/usr/sbin/sendmail, -t]");
      } else {
        for (const auto& item : items(n["command"], "alerts.command")) {
          if (auto s = scalar(item, "alerts.command entry")) a.command.push_back(*s);
        }
        if (!a.command.empty() && !a.command.front().starts_with('/')) {
          error(n["command"], "alerts.command's program must be an absolute path, like /usr/sbin/sendmail, not " +
                                  rules::quote(a.command.front()));
        }
      }
    }
    if (n["to"]) read_alert_recipients(n["to"], a);
    if (n["every"]) {
      if (auto d = duration(n["every"], "alerts.every")) {
        if (*d < std::chrono::seconds(1) || *d > std::chrono::days(7)) {
          error(n["every"], "alerts.every must be from 1s to 7d, like 10m");
        } else {
          a.every = std::chrono::ceil<std::chrono::seconds>(*d);
        }
      }
    }
    // A command with nothing to alert on is allowed: `hallpass safeguarding-report --send` uses it.
    if (!a.to.empty() && a.command.empty()) {
      error(n["to"], "alerts.to needs alerts.command, the program that sends the message, like [/usr/sbin/sendmail, -t]");
    }
  }

  void read_dhcp_leases(const YAML::Node& root, daemon_config& c) {
    const auto n = root["dhcp_leases"];
    if (!n || !check_map(n, "dhcp_leases", {"path", "format"})) return;
    if (n["path"]) c.dhcp_leases.path = path(n["path"], "dhcp_leases.path").value_or("");
    if (n["format"]) {
      auto s = scalar(n["format"], "dhcp_leases.format");
      if (s) {
        if (auto f = parse_lease_format(*s)) {
          c.dhcp_leases.format = *f;
        } else {
          error(n["format"], "dhcp_leases.format " + rules::quote(*s) +
                                 " must be dnsmasq (dnsmasq.leases), isc (dhcpd.leases) or kea (kea-leases4.csv, kea-leases6.csv)");
        }
      }
    }
  }

  // A map entry of `listen:`: {address: ADDRESS:PORT, mode: transparent | explicit,
  // protocol: http | tls}. `protocol` is required for a transparent listener (each redirected
  // port gets its own listener: guessing TLS from the first byte would let a client choose).
  std::optional<listen_address> transparent_listener(const YAML::Node& item) {
    check_map(item, "listen entry", {"address", "mode", "protocol"});
    const auto address = item["address"] ? scalar(item["address"], "listen.address") : std::nullopt;
    if (!address) {
      if (!item["address"]) error(item, "a listen entry needs address: ADDRESS:PORT");
      return std::nullopt;
    }
    auto a = parse_listen_address(*address);
    if (!a) {
      error(item["address"], "listen address " + rules::quote(*address) +
                                 " must be ADDRESS:PORT, like 0.0.0.0:3129 or [::]:3129");
      return std::nullopt;
    }
    const auto mode = item["mode"] ? scalar(item["mode"], "listen.mode") : std::optional<std::string>("explicit");
    if (!mode) return std::nullopt;
    if (*mode != "explicit" && *mode != "transparent") {
      error(item["mode"], "listen.mode " + rules::quote(*mode) + " must be explicit or transparent");
      return std::nullopt;
    }
    a->transparent = *mode == "transparent";
    if (!a->transparent) {
      if (item["protocol"]) error(item["protocol"], "listen.protocol is only for mode: transparent");
      return a;
    }
    const auto protocol = item["protocol"] ? scalar(item["protocol"], "listen.protocol") : std::nullopt;
    if (!protocol || (*protocol != "http" && *protocol != "tls")) {
      error(item["protocol"] ? item["protocol"] : item,
            "a transparent listener needs protocol: http (for the redirected port 80) or tls (for 443)");
      return std::nullopt;
    }
    a->tls = *protocol == "tls";
    a->text += a->tls ? " (transparent, tls)" : " (transparent, http)";
    return a;
  }
  void read_networks(const YAML::Node& n, const std::string& what, std::vector<rules::ip_network>& out) {
    for (const auto& item : items(n, what)) {
      auto s = scalar(item, what + " entry");
      if (!s) continue;
      std::string why;
      if (auto net = rules::ip_network::parse(*s, &why)) {
        out.push_back(std::move(*net));
      } else {
        error(item, what + ": " + why);
      }
    }
  }
  void read_duration(const YAML::Node& n, const char* key, const std::string& what, std::chrono::milliseconds& out) {
    if (!n[key]) return;
    if (auto d = duration(n[key], what)) out = *d;
  }
  void read_size(const YAML::Node& n, const char* key, const std::string& what, std::size_t& out, long long min,
                 long long max) {
    if (!n[key]) return;
    if (auto v = integer(n[key], what, min, max)) out = static_cast<std::size_t>(*v);
  }
};

}  // namespace

daemon_config load_daemon_config(const YAML::Node& root, const std::string& file, rules::diagnostics& errors) {
  daemon_reader r(file);
  auto c = r.read(root);
  errors.insert(errors.end(), r.errors().begin(), r.errors().end());
  return c;
}

}  // namespace hallpass

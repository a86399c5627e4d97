// The daemon's own settings: the top-level sections of the policy file that are not policy
// (`listen`, `upstream`, `hosts`, `limits`, `connect`, `access_log`, `metrics`, `state_dir`,
// `drain`, `workers`, `admin`, `tls`). Read with the same FILE:LINE:COL errors as the policy, and reloaded
// with it on SIGHUP (settings that need a restart say so; see README "Configuration").
//
// A plain value; immutable once loaded and shared like the policy.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "proxy/dhcp_leases.hpp"
#include "proxy/login_config.hpp"
#include "rules/diagnostic.hpp"
#include "rules/host.hpp"
#include "rules/policy.hpp"

namespace YAML {
class Node;
}

namespace hallpass {

using namespace std::chrono_literals;

struct listen_address {
  std::string host;  // "127.0.0.1", "::1", "0.0.0.0"
  std::uint16_t port = 0;
  std::string text;  // as written
  // `listen: [{address: ..., mode: transparent, protocol: http | tls}]` (proxy/transparent.hpp):
  // the listener gets the connections nftables redirected to it, not proxy requests.
  bool transparent = false;
  bool tls = false;  // transparent only: the redirected port carries TLS (443), else HTTP (80)
};
std::optional<listen_address> parse_listen_address(std::string_view text);  // "127.0.0.1:3128", "[::1]:3128"
// A name server for upstream.dns_servers: "10.0.0.53", "10.0.0.53:5353", "fd00::53", "[fd00::53]:53".
// Returns it as written (the form c-ares' ares_set_servers_ports_csv reads), or nullopt.
std::optional<std::string> parse_name_server(std::string_view text);

struct daemon_config {
  std::vector<listen_address> listen;  // default 127.0.0.1:3128; strings are explicit-proxy listeners
  std::string state_dir = "/var/lib/hallpass";
  unsigned workers = 0;                               // event-loop threads; 0: one per core
  std::chrono::milliseconds drain = 10s;              // SIGTERM: time to let requests finish

  struct upstream_settings {
    bool allow_loopback = false;                      // destinations on 127/8, ::1, the proxy's ports
    std::chrono::milliseconds connect_timeout = 10s;
    std::chrono::milliseconds response_timeout = 60s; // until the response head arrives
    std::chrono::milliseconds idle_timeout = 120s;    // no bytes either way (bodies, tunnels)
    unsigned pool_per_origin = 64;                    // idle keep-alive connections kept per origin
    std::chrono::milliseconds pool_idle = 30s;        // an idle pooled connection is closed after
    std::chrono::milliseconds dns_cache = 60s;        // positive DNS answers are kept this long
    std::chrono::milliseconds dns_timeout = 5s;       // one request's wait for its name: then 504
    // Name servers as "ADDRESS" or "ADDRESS:PORT" ("[v6]:PORT"); empty: /etc/resolv.conf's,
    // read when each worker starts.
    std::vector<std::string> dns_servers;
    // Destinations refused unless in allow_networks (see proxy/destination.hpp); unset: the
    // private ranges of destination.cpp's default_deny_networks().
    std::vector<rules::ip_network> deny_networks;
    bool deny_networks_set = false;
    std::vector<rules::ip_network> allow_networks;
    std::vector<std::uint16_t> ports;                 // plain HTTP destination ports; unset: 80, 443, 8080
    bool ports_set = false;
    bool any_port = false;                            // `ports: any`: no port restriction (tests)
    // Extra CA certificates (PEM) trusted for HTTPS origins of inspected tunnels, besides the
    // system store (/etc/ssl/certs): a school's internal CA, or a test's. "": the system's only.
    std::string ca_file;
    // An inspected origin that sends its certificate without the intermediate that issued it:
    // fetch that intermediate from the "CA Issuers" address its certificate names (plain HTTP,
    // through the destination checks), as browsers do (proxy/issuer_fetch.hpp).
    bool fetch_issuers = true;
  } upstream;

  // Names resolved before DNS, like /etc/hosts (split-horizon schools; tests).
  std::map<std::string, std::vector<rules::ip_address>> hosts;

  struct limit_settings {
    std::size_t header_bytes = 32 * 1024;             // request head
    std::size_t header_count = 100;
    // An origin's answer head: sites send far more than a client does (dozens of Set-Cookie
    // fields; browsers take 256 KiB), and a request's limits made such sites fail (outside-in
    // audit of real clients, 2026-12-05, F2). Squid's reply_header_max_size is 64 KB.
    std::size_t response_header_bytes = 128 * 1024;
    std::size_t response_header_count = 500;
    std::uint64_t body_bytes = 0;                     // request body; 0: no limit
    // A request body must come at least this fast on average, once the proxy has waited
    // body_grace for it in all (body_pace.hpp); slower: 408. 0: no such bound (the idle
    // timeout alone bounds each read).
    std::uint64_t body_min_rate = 500;                // bytes a second
    std::chrono::milliseconds body_grace = 30s;
    std::size_t connections = 10000;                  // client connections in total
    std::size_t connections_per_client = 256;         // per client address
    std::chrono::milliseconds head_timeout = 10s;     // to receive a whole request head
    std::chrono::milliseconds keepalive_timeout = 30s;// idle client between requests
  } limits;

  struct connect_settings {
    std::vector<std::uint16_t> ports = {443};  // CONNECT to other ports is refused, but for:
    // Ports a CONNECT may name to carry plain HTTP only (browsers send a ws:// WebSocket through
    // a CONNECT): its requests are read and decided one by one (tunnel.hpp tunnel_end::http);
    // TLS or other bytes on them are closed. A port in both lists takes either.
    std::vector<std::uint16_t> http_ports = {80};
    std::chrono::milliseconds hello_timeout = 10s;    // for the TLS ClientHello after CONNECT
    bool require_sni = true;     // a ClientHello without a server name is blocked (IP-literal HTTPS)
    bool allow_non_tls = false;  // a tunnel that does not start with TLS is blocked
  } connect;

  struct access_log_settings {
    std::string path = "-";                           // "-": standard output; "" or "off": none
    bool keep_query = false;                          // query strings are personal data: off by default
    // The search terms of inspected (and plain-HTTP) search requests, in the line's `search`
    // field: `true` every search's, `blocked` only a blocked search's (what the DfE standard
    // asks for: a school that keeps less can say so), `false` none. Off by default: personal data.
    enum class search_terms_kept : std::uint8_t { none, blocked, all };
    search_terms_kept search_terms = search_terms_kept::none;
    std::size_t queue_lines = 65536;                  // lines waiting for the writer thread
  } access_log;

  struct admin_settings {
    std::string socket;        // the admin socket's path; "" : no admin socket
    std::string socket_group;  // group that may connect (mode 0660); "" : mode 0600
    // admin role -> OS users and "@group"s: headteacher, technician, dsl
    std::map<std::string, std::vector<std::string>> roles;
  } admin;

  struct metrics_settings {
    std::string listen = "127.0.0.1:9131";            // "" or "off": no metrics endpoint
  } metrics;

  // HTTPS inspection (certs/README.md, proxy/README.md "HTTPS inspection"): with a CA, CONNECT
  // tunnels the policy's `inspection:` section names are decrypted and decided request by request.
  struct tls_settings {
    std::string ca_dir;              // holds ca.crt and ca.key; "": no school CA, no inspection
    std::size_t leaf_cache = 10000;  // ready TLS contexts kept, one per inspected host (LRU)
  } tls;

  // The PAC file served as /proxy.pac and /wpad.dat (proxy/pac_server.hpp, pac_script.hpp).
  struct pac_settings {
    std::string listen;                             // "ADDRESS:PORT"; "" or "off": not served
    std::vector<std::string> proxy;                 // "HOST:PORT"s the PAC names; empty: from listen
    std::vector<rules::ip_network> direct_networks; // unset: every role's networks in the policy
    bool direct_networks_set = false;
    std::vector<std::string> direct_domains;        // the school's internal domains: DIRECT
  } pac;

  // Device names for the access log and the block page (proxy/dhcp_leases.hpp).
  struct dhcp_leases_settings {
    std::string path;                               // the DHCP server's leases file; "": none
    lease_format format = lease_format::dnsmasq;
  } dhcp_leases;
  // Logins on the explicit proxy (proxy/login_config.hpp; README.md "Logins").
  login_settings logins;

  // How long the store keeps what it holds about people once it is closed (store/retention.cpp;
  // deploy/README.md "Logs and retention"): access requests once denied or their exception
  // ended (or never decided), reports, removed local entries, ended bans, and audit entries.
  // nullopt: forever.
  // incidents: closed incident records (README.md "Incident records"); forever by default, as
  // safeguarding records are kept far longer than a year (the school's records policy decides).
  struct retention_settings {
    std::optional<std::chrono::seconds> records = std::chrono::days(365);
    std::optional<std::chrono::seconds> incidents;
  } retention;

  // Immediate alerts for the DSL (proxy/alerts.hpp; README.md "Alerts for the DSL"; the DfE
  // standard: alerts when content is blocked in high-risk categories; 000 7.2, 7.4; 002). Off
  // unless the section names something to alert on.
  static constexpr std::size_t max_alert_recipients = 10;
  struct alert_settings {
    std::vector<std::string> categories;  // a block in one of these policy categories
    bool circumvention = false;           // an attempt to get round the filter
    bool bans = false;                    // a ban the proxy put in force by itself (bans.threshold)
    // A block that a report of inappropriate content put on a page, removed (hallpassctl
    // unblock): on by default once there is an alerts section, as the e-safety officer must hear
    // of it (000 7.3), and it is rare.
    bool unblocked_reports = false;
    // Run for each alert (no shell), the alert as a mail message on standard input: so
    // `[/usr/sbin/sendmail, -t]` mails it to `to`. Empty: alerts go to the access log and
    // the metrics only.
    std::vector<std::string> command;
    // The message's To: line: the DSL and the deputies (KCSIE asks for at least one deputy
    // DSL), at most max_alert_recipients bare addresses; empty: no To: line.
    std::vector<std::string> to;
    std::chrono::seconds every = std::chrono::minutes(10);  // per person or device and kind: one alert
    bool enabled() const { return !categories.empty() || circumvention || bans || unblocked_reports; }
  } alerts;

};

// The top-level keys this file owns (passed to the policy loader as other_sections).
std::vector<std::string> daemon_section_names();

// Reads the daemon sections from the parsed document; errors are appended to `errors`.
daemon_config load_daemon_config(const YAML::Node& root, const std::string& file, rules::diagnostics& errors);

}  // namespace hallpass

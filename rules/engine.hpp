// The decision: one pure function from a compiled policy and the facts of one request to a
// verdict. The proxy calls it for every request and tunnel; `hallpass explain` calls the same
// function, so what explain prints is what the proxy does.
//
// No clock, file or network access: the caller supplies the time. Thread-safe: any number of
// threads may call decide() on the same policy at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "rules/policy.hpp"

namespace hallpass::rules {

struct request_facts {
  std::optional<ip_address> client;
  std::string_view user;    // empty when not known
  // The signed-in user's directory groups (empty when not signed in): the first role in policy
  // order whose roles.<name>.groups holds one of them is chosen before the address's role.
  std::span<const std::string> groups;
  // The device's host name and hardware address from the DHCP leases (empty when the leases do
  // not name it): bans and device-scoped exceptions can name a device by either
  // (rules/device_ref.hpp). The name as the leases give it (compared without case); the
  // hardware address lower case, colon-separated.
  std::string_view device;
  std::string_view mac;
  std::string_view role;    // empty: choose by client address
  std::string_view method;  // "GET", "POST", "CONNECT", ... (compared case-insensitively)
  // The methods the request names in X-HTTP-Method-Override, X-HTTP-Method or
  // X-Method-Override (proxy/http_session.cpp), other than `method`: servers built on many web
  // frameworks (Express's method-override, Laravel, Google's APIs) act on that method instead of
  // the request line's. decide_request decides the request with each of them too.
  std::span<const std::string> method_overrides;
  std::string_view scheme;  // "http" or "https"
  std::string_view host;    // as the client sent it; normalized by decide()
  std::uint16_t port = 0;   // 0: the scheme's default
  std::optional<std::string_view> path;  // path and query ("/a?b=c"); nullopt inside a tunnel
  std::chrono::sys_seconds time{};
  // Set by the proxy for a CONNECT it will inspect (path nullopt): each decrypted request is
  // decided later with its method and path, so the CONNECT is decided on host-level entries
  // only. Entries that need the path or the method (URL prefixes, URL patterns, rules with
  // `methods`, local blocks and exceptions with a path) do not block it; an allow among them
  // that could match some request opens it (the requests are then decided one by one).
  // False (a relayed tunnel): paths are unknown for good, as described in rules/README.md.
  bool path_seen_later = false;
  // Set by decide_request (decision.hpp) when `path` is the reading with path parameters
  // dropped: allow entries written with parameters are read without them too.
  bool path_parameters_dropped = false;
};

struct ban_entry;  // rules/exception_index.hpp

enum class role_source : std::uint8_t { given, network, fallback, group };
std::string_view to_string(role_source s);

// unchecked: the request could not be checked (a host name that is not valid, or URL patterns
// RE2 could not match): blocked, and nothing (exception, local allow, ban list) opens it.
enum class decided_by : std::uint8_t { rule, role_default, locked_category, unchecked };

struct verdict {
  action act = action::block;
  const role* chosen_role = nullptr;
  role_source role_from = role_source::fallback;
  std::string_view role_detail;  // the network or group that matched, or why the fallback was used
  period_at when;
  std::chrono::local_seconds local_time{};
  decided_by by = decided_by::role_default;
  const rule* matched_rule = nullptr;  // when by == rule
  std::string_view rule_id;            // "pupils rule 1", "default for pupils", ...
  const category* matched_category = nullptr;
  std::string_view reason;
  std::string_view clause;
  std::string exception_id;  // set by the exception layer (later); empty here
  // Set when a ban decided (rules/ban.hpp, apply_ban): points into the overlay, like rule_id.
  const ban_entry* ban = nullptr;
  // Set by decide_request when the path as some servers read it (decision.hpp: parameters
  // dropped before dot segments, a backslash as "/") was blocked though the path as written was
  // not: that reading's path ("/admin" for "/page/..;/admin"), which this verdict decided.
  std::string read_as;
  // Set when a block's URL prefix matched the path only without ASCII case ("/SECRET" for a
  // policy entry "example.com/secret": IIS reads them as one): the entry's path. Points into
  // the policy, like rule_id. Allows never match so.
  std::string_view url_without_case;
  // Set by decide_request when an IPv6 address that reaches an IPv4 one (::ffff:1.1.1.1, NAT64;
  // rules/host.hpp, ipv4_reached_by) was blocked as that IPv4 address: its dotted form. `host`
  // stays the IPv6 address as the request named it.
  std::string host_read_as;
  // Set by decide_request when the request was blocked as a method one of its method-override
  // headers names (request_facts::method_overrides) though its own method was not: that method.
  std::string method_read_as;
  normalized_host host;
  std::string host_error;  // when by == unchecked for a host name that is not valid

  std::string_view category_name() const;
  std::string period_name() const;  // "Lesson 2 (lesson)", "outside school hours (weekend)"
};

verdict decide(const policy& p, const request_facts& facts);

// The sets a host is in by its domains (itself and its parent domains), and the sets that have
// URL prefixes on it or on a parent domain: what a CONNECT to it can tell before any path is
// seen. Each list sorted, without repeats.
struct host_sets {
  std::vector<set_id> by_domain;
  std::vector<set_id> by_url_prefix;
};
host_sets sets_of_host(const policy& p, const normalized_host& host);

// The URL as patterns see it: scheme://host[:port]/path?query (port only when not default).
std::string pattern_subject(std::string_view scheme, const normalized_host& host,
                            std::uint16_t port, std::optional<std::string_view> path);
// The same, written into `out` (cleared first; its capacity is reused).
void append_pattern_subject(std::string& out, std::string_view scheme, const normalized_host& host,
                            std::uint16_t port, std::optional<std::string_view> path);

}  // namespace hallpass::rules

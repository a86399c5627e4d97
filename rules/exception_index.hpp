// Headteacher-approved exceptions and the technician's local block/allow entries, as an
// immutable index the proxy consults after decide(). The durable copy lives in SQLite
// (store/); whenever it changes, a new index is built off the event loop and published with
// one atomic store, so a request never waits for the disk.
//
// Order of precedence (apply()):
//   1. a locked category (illegal content) or an invalid host: nothing changes the verdict;
//   2. a local block entry that matches: blocked, for everyone (reported pages, 000 7.3);
//   3. if still blocked: an active exception whose scope (role, user, directory group,
//      device or client network) and target match, or a local allow entry: allowed, with the exception's id;
//   4. otherwise the policy's verdict stands.
// A `prefix` target matches on a path-segment boundary (path_prefix_matches).
// An exception is active from `from` (inclusive) to `until` (exclusive) of the request's
// time, so it ends by itself with nobody acting. Inside a relayed tunnel the path is unknown:
// a `prefix` or `url` exception then does not match (fail closed), while a `prefix` or `url`
// block entry blocks the whole host (fail closed too). For a CONNECT the proxy inspects
// (facts.path_seen_later), each request is decided later with its path: a `prefix` or `url`
// block entry then does not block the CONNECT, and an exception or allow entry with a path
// opens it (its other pages are still decided, and blocked, one by one).
//
// Pure and immutable after build(); thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rules/device_ref.hpp"
#include "rules/engine.hpp"

namespace hallpass::rules {

enum class target_kind : std::uint8_t { domain, prefix, url };
std::string_view to_string(target_kind k);
std::optional<target_kind> parse_target_kind(std::string_view s);

// What an entry matches: a host (and its subdomains for `domain`), plus a path for the others.
struct target {
  target_kind kind = target_kind::domain;
  std::string host;  // normalized
  std::string path;  // path and query; "/" for domain
  std::string text;  // as shown to people: "www.facebook.com", "http://x.test/a?b"
};
// Builds a target from a URL ("https://www.facebook.com/", "x.test/path") and a kind.
std::optional<target> make_target(std::string_view url, target_kind kind, std::string* error);
// The default kind for a URL: domain when its path is "/", else prefix.
target_kind default_target_kind(std::string_view url);

// Whether a `prefix` entry's path covers a request's path (both canonical), on a path-segment
// boundary: "/a" matches "/a", "/a/b" and "/a?x" but never "/admin"; "/a/" matches everything
// under /a/. A prefix with a query ends on a parameter boundary: "/a?x=1" matches "/a?x=1&y"
// but not "/a?x=10". With `path_without_case` (a block: fail closed, as same_page does) the
// path before any '?' compares without ASCII case, so "/Videos" blocks "/videos/x" too; a
// query always compares exactly ("v=abc" and "v=ABC" are different videos). (The policy's own
// URL prefixes, from UT1 and list files, stay plain prefixes: rules/README.md says why.)
bool path_prefix_matches(std::string_view prefix, std::string_view path, bool path_without_case = false);

// Whether a `url` block entry (a reported page) covers a request's path and query (both
// canonical): the same page however it is asked for, so that "?x=1" or a trailing "/" does not
// get round a report. The paths compare without case, a trailing "/" or path parameters
// (";jsessionid=..." in any segment). An entry without a query matches any query; one with a
// query matches when every one of its parameters is among the request's, in any order
// ("/watch?v=abc" blocks "/watch?t=10&v=abc", not "/watch?v=abcd"). A `url` exception or
// allow entry opens exactly its URL: only a block is widened (fail closed).
bool same_page(std::string_view entry, std::string_view request);

// The latest end an exception approved at `now` may have, and how to say it to the
// headteacher: exceptions.max_duration after now when the policy sets it; else the end of the
// term that contains now (or of the next term, between terms) when the policy has terms; else
// 90 days. A pure function of the policy and the instant.
struct exception_limit {
  std::chrono::sys_seconds until{};
  std::string description;  // "exceptions.max_duration (30d)", "the end of term 'Autumn 2026'", "90 days"
};
exception_limit max_exception_until(const policy& p, std::chrono::sys_seconds now);
inline constexpr std::chrono::days default_max_exception{90};
// "30d", "2h", "45m", "90s": the largest whole unit, as the policy file writes durations.
std::string duration_text(std::chrono::seconds d);

// Whom an exception opens the site for (its scope; `hallpassctl approve --who`): any of the
// listed roles, or the user, or a signed-in user in the directory group (compared without
// case, as roles.<name>.groups are), or the device (by its address; or by its DHCP name at the
// address the form came from: device_ref::address), or the client network (requests filed
// with hallpassctl --client). Any one that matches is enough; an approval fills one of them.
struct exception_entry {
  std::int64_t id = 0;
  std::vector<std::string> roles;        // any of these roles
  std::string user;                      // or this user
  std::optional<ip_network> client;      // or this client network / device
  std::string group;                     // or a signed-in user in this directory group
  std::optional<device_ref> device;      // or this device
  rules::target target;
  std::chrono::sys_seconds from{}, until{};
  std::string reason;                    // shown in the verdict
};

struct local_entry {
  std::int64_t id = 0;
  bool block = true;
  rules::target target;
  std::string reason;
};

// A ban in force or still to come (000 7.2; 002): a user name or one device on the
// restricted policy (policy::bans) from `from` to `until`. rules/ban.hpp says how it decides.
// A device is named by its address, its DHCP name or its hardware address (device_ref;
// build() reads which from the subject's canonical form): by name or hardware address the ban
// follows the device when its lease moves.
struct ban_entry {
  std::int64_t id = 0;
  bool device = false;              // subject names a device, else a user
  std::string subject;              // the user name, or the device in canonical form
  device_ref device_id;             // the device as matched (build() reads it from subject)
  std::chrono::sys_seconds from{}, until{};
  std::string reason;               // the adult's reason: explain and the admin verbs, never the page
  std::string how;                  // "command" or "automatic"
  std::string until_text;           // school-local, for explain and the ban page
  std::string rule_id;              // "ban 4": the verdict's rule (set by build())
};

// The rule id a local entry gives the verdicts it decides ("local block 3", "local allow 2"),
// and the entry's id back from a verdict's (or a log line's) rule: nullopt for any other rule.
// The one spelling of it: the log, explain, the admin answers and the report all read it so.
std::string local_entry_rule_id(bool block, std::int64_t id);
std::optional<std::int64_t> local_block_id(std::string_view rule_id);

class exception_index {
 public:
  static std::shared_ptr<const exception_index> build(std::vector<exception_entry> exceptions,
                                                      std::vector<local_entry> entries,
                                                      std::vector<ban_entry> bans = {});

  // Overlays the index on v (see the header comment). Views in v point into this index:
  // the caller keeps the index alive as long as the verdict.
  void apply(verdict& v, const request_facts& facts) const;

  // The id ("local block 3", "exception 7") of the first entry on v's host (exactly that host)
  // that needs the path: a `prefix` or `url` local entry, or such an exception active at
  // facts.time whose scope covers the request. Empty when there is none. decide_inspection
  // asks it: such a host is inspected so the entry applies to its page, not the whole site.
  std::string_view path_entry_for(const verdict& v, const request_facts& facts) const;

  // The ban in force at facts.time on facts.user (when known) or the device (facts.client,
  // facts.device, facts.mac), the one that ends last when several do; null when none.
  const ban_entry* ban_for(const request_facts& facts) const;
  std::size_t active_bans(std::chrono::sys_seconds now) const;

  std::size_t active_exceptions(std::chrono::sys_seconds now) const;
  std::size_t size() const { return exceptions_.size() + entries_.size(); }

 private:
  // `path`: the request's path and query in canonical form; nullopt inside a tunnel.
  // `later`: an inspected CONNECT (request_facts::path_seen_later) without a path.
  // `parameters_dropped`: the path is the reading without parameters (decision.hpp), where an
  // allow entry written with parameters is read without them too.
  static bool target_matches(const rules::target& t, std::optional<std::string_view> path, bool for_block,
                             bool later, bool parameters_dropped = false);
  bool scope_matches(const exception_entry& e, const verdict& v, const request_facts& f) const;

  std::vector<exception_entry> exceptions_;
  std::vector<local_entry> entries_;
  std::vector<ban_entry> bans_;
  std::vector<std::string> ids_;  // "exception 7", "local block 3": the verdict's rule_id
  // host -> indexes into exceptions_ (>= 0) or entries_ (encoded as -1 - i)
  std::unordered_map<std::string, std::vector<std::int64_t>, string_hash, std::equal_to<>> by_host_;
};

}  // namespace hallpass::rules

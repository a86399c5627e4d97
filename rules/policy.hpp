// The compiled policy: everything the engine needs to decide a request, built by the loader
// (policy_loader.hpp) from the YAML the ICT technician edits, then never changed.
//
// A request pins one std::shared_ptr<const policy> for its whole life; a reload builds a new
// policy aside and publishes it with one atomic store, so readers never see a half-built one.
// All members are const after loading; any thread may read them.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <re2/set.h>

#include "rules/domain_table.hpp"
#include "rules/host.hpp"
#include "rules/time_zone.hpp"
#include "rules/timetable.hpp"
#include "rules/url_prefix_list.hpp"

namespace hallpass::rules {

enum class action : std::uint8_t { allow, block };
std::string_view to_string(action a);

using set_id = domain_table::set_id;

// A named list of domains, URL prefixes and URL patterns. Each category is one "set"; a
// rule's own inline lists form another, unnamed set.
struct category {
  std::string name;
  std::string description;
  bool locked = false;  // illegal-content feeds: nothing may allow them
  // Ways round the filter (VPNs, web proxies, DNS over HTTPS): a blocked request in this
  // category is logged and counted as a circumvention attempt (000 7.2; 002). Default: true
  // for a category named "circumvention", false for others; the `circumvention:` key overrides.
  bool circumvention = false;
  // categories.<name>.support: a few words of help shown at the top of its block page, above
  // the way to ask (self-harm: who to talk to, Childline). Empty: none.
  std::string support;
  set_id set = 0;
  std::size_t domain_count = 0, url_count = 0, pattern_count = 0;
  // Where its lists were read from, each with the entries read from it (a reload compares
  // them with the policy in force: rules::emptied_sources).
  struct source {
    std::string name;  // the file as written in the policy, "ut1:NAME" or "feed:FEED/LIST"
    std::size_t entries = 0;
  };
  std::vector<source> sources;
};

// A category feed (the `feeds:` section): a list source that `hallpass feeds update` keeps
// current on disk, and what the loader found of it there. The on-disk layout (feeds/README.md):
// FEEDS_DIR/NAME/current/ holds the version in force (ut1: blacklists/<category>/{domains,urls};
// lines: one file `list`) and `feed.info` (when it was fetched); previous/ the one before.
enum class feed_format : std::uint8_t { ut1, lines };
std::string_view to_string(feed_format f);

struct feed {
  std::string name;
  std::string url;
  feed_format format = feed_format::ut1;
  std::string credentials_file;  // "user:password" on one line; never logged
  std::string ca_file;           // PEM CAs trusted for this feed's HTTPS besides the system's
  std::size_t min_entries = 1;   // each list the policy uses, at update time
  bool locked = false;           // every category fed by it is locked
  std::chrono::seconds connect_timeout{20};  // `feeds update`: to connect (TLS included)
  std::chrono::seconds timeout{600};         // `feeds update`: the whole download
  std::uint64_t max_bytes = 512ull << 20;    // `feeds update`: a larger download is refused
  std::string dir;               // FEEDS_DIR/NAME/current ("" when loaded without a state dir)
  bool present = false;          // `dir` exists: the feed has been fetched at least once
  std::optional<std::int64_t> fetched_at;  // Unix seconds, from current/feed.info
  // The lists of this feed the policy uses, as FEED-CATEGORY names (`gambling`, `list`), and
  // the entries each gave (0 when missing).
  std::vector<std::pair<std::string, std::size_t>> lists;
};

// A rule's target sets, kept two ways: as the policy lists them (read like a
// std::vector<set_id>; the first listed set the request is in names the category a verdict
// reports), and as (word, mask) pairs over a bitset of set ids, so that the engine tests a
// whole rule against the request's sets with one AND per 64 set ids.
class target_sets {
 public:
  struct word_mask {
    std::uint32_t word = 0;  // set id / 64
    std::uint64_t mask = 0;  // bit (set id % 64) for each target in that word
  };

  void push_back(set_id s) {
    ascending_ = ascending_ && (ids_.empty() || ids_.back() < s);
    ids_.push_back(s);
    const auto w = static_cast<std::uint32_t>(s / 64);
    auto it = words_.begin();
    while (it != words_.end() && it->word < w) ++it;
    if (it == words_.end() || it->word != w) it = words_.insert(it, word_mask{w, 0});
    it->mask |= std::uint64_t{1} << (s % 64);
  }

  std::vector<set_id>::const_iterator begin() const { return ids_.begin(); }
  std::vector<set_id>::const_iterator end() const { return ids_.end(); }
  std::size_t size() const { return ids_.size(); }
  bool empty() const { return ids_.empty(); }
  set_id operator[](std::size_t i) const { return ids_[i]; }

  // Sorted by word, each word once.
  const std::vector<word_mask>& words() const { return words_; }
  // True when the ids are listed in increasing order, so the first listed one the request is
  // in is also the lowest.
  bool ascending() const { return ascending_; }

 private:
  std::vector<set_id> ids_;
  std::vector<word_mask> words_;
  bool ascending_ = true;
};

struct rule {
  std::string id;  // "pupils rule 2", or "pupils rule 2 (wikipedia edits)" when named
  action act = action::block;
  // Target sets: the rule applies when the request matches any of them. Empty: any request.
  target_sets targets;
  bool has_targets = false;
  bool needs_patterns = false;         // some target has URL patterns (evaluated lazily)
  std::vector<std::string> methods;    // upper case; empty: any method
  std::uint64_t during = ~0ull;        // period bits; all ones: at any time
  std::string during_text;             // "during lessons", "at any time"
  std::string clause;                  // policy clause, e.g. "000 7.1"
  std::string reason;                  // shown on the block page and in logs
  std::string summary;                 // "block social_media during lessons"
};

struct ip_network {
  ip_address base;
  int prefix = 0;
  std::string text;  // as written, for explanations
  std::size_t role = 0;
  bool contains(const ip_address& a) const;

  // "10.10.0.0/16", "fd00:10::/64", or one address ("10.1.2.3": /32, /128). Returns nullopt
  // with *error set (a sentence about `text`) for anything else: a bad address, a prefix that
  // is not a number from 0 to 32 (IPv4) or 128 (IPv6), or (when `strict`) address bits set
  // after the prefix, which contains() would ignore but which usually mean a typing mistake.
  static std::optional<ip_network> parse(std::string_view text, std::string* error = nullptr, bool strict = true);
  // Why a network of devices (a role's, a logins entry's) written so holds none, or "": an
  // IPv4-compatible one (::10.0.0.0/104).
  std::string why_no_client() const;
};

// SafeSearch for a role (roles.<name>.safesearch), locked by the proxy: search engines
// (Google, Bing, DuckDuckGo) strict or off; YouTube Restricted Mode strict, moderate or off.
// How it is enforced: rules/safesearch.hpp.
enum class safesearch_level : std::uint8_t { off, moderate, strict };
std::string_view to_string(safesearch_level l);
struct safesearch_settings {
  safesearch_level search = safesearch_level::off;   // strict or off (search engines have no moderate lock)
  safesearch_level youtube = safesearch_level::off;
  std::string clause;  // the policy clause the school cites for it
  bool any() const { return search != safesearch_level::off || youtube != safesearch_level::off; }
};

struct role {
  std::string name;
  std::string description;
  action default_action = action::allow;
  std::string default_id;      // "default for pupils"
  std::string default_reason;
  std::vector<rule> rules;
  bool builtin = false;  // the "unassigned" fallback made when the policy names none
  // roles.<name>.audience: who reads this role's pages. `children` (the default, and the
  // built-in fallback's) gets the child-first wording ("ask your teacher"); `adults` (staff,
  // the office, parents and visitors) gets an adult's ("the headteacher decides, 000 7.5").
  bool adults = false;
  safesearch_settings safesearch;
  // roles.<name>.groups: directory groups ("Year 6", "Staff") whose signed-in members get this
  // role, whatever their address; compared case-insensitively (directories do). The first
  // role in policy order with one of the user's groups wins (rules/README.md, "Logins").
  std::vector<std::string> groups;
};

// One entry of inspection.inspect: which CONNECTs to decrypt when a school CA is configured
// (rules/inspection.hpp decides; rules/README.md documents the keys).
struct inspect_entry {
  std::string id;                 // "inspection entry 2 (search engines)"
  std::vector<std::size_t> roles;  // indexes into policy::roles; empty: every role
  std::vector<set_id> categories;  // the host is in one of these categories (by domain)
  bool has_domains = false;        // its own `domains:` (in inspection_settings::inspect_domains)
  bool safesearch = false;         // the search and YouTube hosts of the role's SafeSearch
  bool everything = false;         // every host (except the never list)
  std::string clause;
  std::string why;                 // the sentence explain and the access log show
};

struct inspection_settings {
  // Hosts never decrypted (banking, health, OS and app updates, pinned apps): set 0.
  domain_table never;
  std::size_t never_count = 0;
  std::vector<std::string> never_sources;  // the list files it was read from
  std::vector<inspect_entry> inspect;
  // Each entry's own domains; the set id is the entry's index in `inspect`.
  domain_table inspect_domains;
};

// Heterogeneous lookup, so a string_view finds a std::string key without allocating.
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return domain_table::hash(s); }
};


// The `bans:` section (000 7.2; 002): what a banned user or device may still use, the page's
// words, and the threshold that bans automatically. How a ban decides: rules/ban.hpp.
struct ban_settings {
  // bans.policy: the supervised-use list. A host in one of these domains (or a subdomain), or
  // in one of these categories by domain, is decided as usual; anything else is blocked.
  std::vector<std::string> domains;  // normalized
  std::vector<set_id> categories;
  // bans.message: what the ban page and the verdict's reason say (neutral words, the school's).
  std::string message =
      "For now your internet use at school is limited to the websites your school has chosen for "
      "supervised use. A member of staff can explain, and can help you with your work.";
  // bans.threshold: `attempts` circumvention attempts within `within` ban the user (when known)
  // and the device for `duration`. attempts 0: no automatic bans (the section is absent).
  std::size_t attempts = 0;
  std::chrono::seconds within{0}, duration{0};
  // bans.threshold.apart: attempts by one subject closer together than this count as one (a
  // page that loads several VPN sites' images or frames at once is one, not a ban: review of
  // 2026-12-06). 0s: each counts. Default 10s.
  std::chrono::seconds apart{10};
};

struct policy {
  std::string source_file;
  std::string school_name;
  time_zone zone = time_zone::utc();
  rules::timetable timetable;

  std::vector<category> categories;  // set id == index for categories
  std::vector<std::string> set_names;  // every set: category name, or "rule list of ..."
  std::vector<bool> set_is_locked;
  std::vector<bool> set_has_patterns;
  std::vector<std::size_t> set_category;  // index into categories, or npos for rule lists

  domain_table domains;
  // By host. Each host here is also in `domains` with domain_table::url_prefix_marker, so the
  // engine looks here only for the suffixes of a request's host that have URL prefixes.
  std::unordered_map<std::string, url_prefix_list, string_hash, std::equal_to<>> url_prefixes;
  std::unique_ptr<re2::RE2::Set> patterns;  // null when no set has patterns
  std::vector<set_id> pattern_set;          // pattern index -> set
  // The set every pattern belongs to when they all belong to one (as in the shipped policy):
  // then a match needs no second pass to learn which pattern matched.
  std::optional<set_id> patterns_one_set;
  bool locked_has_patterns = false;

  std::vector<rule> everyone_rules;  // evaluated for every role, before its own
  std::vector<role> roles;
  std::vector<ip_network> networks;  // longest prefix first
  std::size_t fallback_role = 0;
  // `ungrouped_users`: a signed-in user whose groups no role lists, when some role lists groups,
  // gets the fallback role (true, the default: "fallback") or the client address's role
  // ("address"). A machine account, a user of another realm, a new member of staff not yet in
  // a group, must not take a staff network's role by signing in (audit, 2026-12-05).
  bool ungrouped_users_fallback = true;
  // roles.<name>.groups, compared without case: a group name -> the first role in policy order
  // that lists it, and where in that role's list (made by the loader after the roles). A
  // signed-in user's groups choose the role with one lookup each, not one comparison per
  // (role group, user group) pair on every request.
  struct group_role {
    std::size_t role = 0;
    std::size_t group = 0;  // index in roles[role].groups
  };
  struct group_name_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const;
  };
  struct group_name_equal {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const;
  };
  std::unordered_map<std::string, group_role, group_name_hash, group_name_equal> group_roles;
  // exceptions.max_duration: the longest exception the headteacher may approve. Unset: until
  // the end of the current term when the policy has terms, else 90 days (max_exception_until).
  std::optional<std::chrono::seconds> max_exception_duration;
  inspection_settings inspection;
  std::vector<feed> feeds;
  // feeds.required: a missing feed is an error (the daemon does not start) instead of a warning.
  bool feeds_required = false;
  // How to fetch a feed for this configuration: load_options::feeds_update_command, then
  // " --feed NAME" (the missing-feed warning and `check` print it).
  std::string feeds_update_command = "hallpass feeds update";
  ban_settings bans;

  const role* find_role(std::string_view name) const;
  const category* find_category(std::string_view name) const;
  // The categories' names for an error that names an unknown one: "a, b, c", or "none".
  std::string category_list() const;
  std::size_t total_domains() const { return domains.size(); }
};

}  // namespace hallpass::rules

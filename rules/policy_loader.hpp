// Loading a policy: YAML (and the domain lists it names) in, a complete compiled policy or
// every error out. Nothing is half-loaded: on any error the result holds no policy, and the
// caller keeps whatever policy it was already using.
//
// The only code in rules/ that reads files. Call from any thread except the proxy's event
// loop (a large policy takes seconds). Independent calls may run concurrently.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "rules/diagnostic.hpp"
#include "rules/policy.hpp"
#include "rules/yaml_reader.hpp"

namespace hallpass::rules {

// The daemon's sections that rules/school.yaml itself carries (`alerts`: proxy/daemon_config.hpp),
// for loaders of the shipped file that read its policy alone (unit tests, bench/bench_rules):
// other_sections = shipped_daemon_sections. The daemon passes all of its sections.
inline const std::vector<std::string> shipped_daemon_sections = {"alerts"};

struct load_options {
  std::string tzdir = "/usr/share/zoneinfo";
  // Top-level keys that belong to another component (the proxy's `listen`, `upstream`, ...).
  // The loader accepts them without reading them; every other unknown key is an error.
  std::vector<std::string> other_sections;
  // Where the `feeds:` section's feeds are on disk: STATE_DIR/feeds (each feed in NAME/current).
  // Empty: no feed is looked for; each is missing (a warning, or an error with feeds.required).
  std::string feeds_dir;
  // The command that fetches the feeds for this configuration, as the technician would type it
  // ("hallpass feeds update --config rules/school.yaml --state-dir build/state"): a missing
  // feed's warning and `check` name it with `--feed NAME` added. Empty: "hallpass feeds update".
  std::string feeds_update_command;
  // For `hallpass feeds update`: a missing feed is never an error (feeds.required), since the
  // update is what fetches it.
  bool feeds_may_be_missing = false;
  // The moment "today" is taken from for warnings about the calendar (terms that have all
  // ended); unset: the system clock. Decisions never depend on it.
  std::optional<std::chrono::sys_seconds> now;
  // Whether a host (normalised) is a public suffix: a top-level domain ("com") or a name under
  // which anyone registers sites ("co.uk", "github.io"). An entry for one in a list an allow
  // rule uses would open every site under it, so the allow leaves it out, with a warning
  // (rules/README.md, "List files and UT1"). The proxy passes its Public Suffix List check
  // (proxy/public_suffix.hpp: rules/ does not link libpsl); unset: a name of one label is one.
  // Called on the loading thread; must not be called concurrently unless thread-safe.
  std::function<bool(std::string_view host)> is_public_suffix;
  // Whether a host is a top-level domain or a suffix a registry runs (the list's ICANN part:
  // "com", "co.uk", "sch.uk", "gov.uk"; not "github.io"). A feed's entry for one is left out,
  // with a warning, whatever rule uses the list: a line `com` in a downloaded list blocked every
  // .com site, and in a circumvention list banned every device (outside-in audit of the feeds,
  // 2026-12-06, H2). The school's own lists may still block one. Unset: a name of one label.
  std::function<bool(std::string_view host)> is_registry_suffix;
};

struct load_result {
  std::shared_ptr<const policy> compiled;  // null when errors is not empty
  diagnostics errors;
  diagnostics warnings;  // e.g. unreadable lines in an imported list; the policy still loads
  bool ok() const { return compiled != nullptr; }
};

load_result load_policy(const std::string& path, const load_options& options = {});

// A reload must not empty a list that blocked something (rules/README.md): each list source of a
// category (a list file, a UT1 category, a feed list) that gave entries in `before` and gives
// none in `after`, in words. The daemon refuses such a reload, keeping the policy in force (an
// emptied file, a truncated copy, an editor's half-written save would otherwise fail open).
std::vector<std::string> emptied_sources(const policy& before, const policy& after);

// A reload must not halve a list either: each source that gave at least shrink_guard_entries in
// `before` and fewer than half as many (but some) in `after`, in words. A feed's list that
// `hallpass feeds update` replaced meanwhile is not counted (the update has the same guard),
// nor one of a feed that may be empty. A reload audit of 2026-12-06 found a list cut to 7%
// (a feed file cut mid-line) and one emptied beside its feed's URL list accepted without a
// word, and pornography opened for pupils. Only on a reload: at the start, list-sources.json
// refuses only an emptied list, so a restart is how a list is shrunk on purpose.
inline constexpr std::size_t shrink_guard_entries = 20;
std::vector<std::string> shrunk_sources(const policy& before, const policy& after);

// The entries each list source gave, by category then source name (category::source::name):
// what emptied_sources compares. The daemon keeps the last served policy's in its state_dir, so
// that a restart compares too (proxy/list_record.hpp).
using source_counts = std::map<std::string, std::map<std::string, std::size_t>>;
source_counts count_sources(const policy& p);
// emptied_sources against counts kept from an earlier run: `before` says where they came from
// ("when hallpass last ran (FILE)"), `refused` what is refused ("hallpass does not start").
std::vector<std::string> emptied_sources(const source_counts& before, const policy& after, std::string_view before_was,
                                         std::string_view refused);
// shrunk_sources against counts kept from an earlier run, and each feed's fetched_at then
// (`fetched_before`; a feed whose time differs was replaced by `hallpass feeds update`, which
// has its own guard): a list cut on disk while hallpass was stopped was accepted by the start
// that a reload refused (outside-in audit of the feeds, 2026-12-06, H3).
std::vector<std::string> shrunk_sources(const source_counts& before,
                                        const std::map<std::string, std::int64_t>& fetched_before, const policy& after,
                                        std::string_view before_was, std::string_view refused);

// The kinds of category list file: one domain a line (UT1 `domains`, `domain_files`), one URL
// prefix a line (UT1 `urls`, `url_files`), or either (a `lines` feed).
enum class list_file_kind { domains, urls, mixed };

// One line of a list file as the loader reads it: its '#' comment and surrounding blanks gone
// (`text`), and whether it is read as a domain or a URL prefix, by the file's kind (a line of a
// `mixed` file is a URL when a '/' follows its host). Whether it is a valid one is
// list_entry's question (the loader asks it with list_domain and list_url, for the reason).
enum class list_line_kind { blank, domain, url };
struct list_line {
  list_line_kind kind = list_line_kind::blank;
  std::string_view text;
};
list_line classify_list_line(std::string_view raw, list_file_kind kind);

// The entry a line is, as the loader keeps it, or nullopt when the loader skips the line: a
// domain normalised (lower case, punycode, no trailing dot, no leading "*." or "."), or a URL
// prefix as its host and canonical path ("example.com/games"); a URL of a whole site
// ("https://example.com/") is its domain. Two spellings of one entry give the same text, so
// that `hallpass feeds update` counts each entry of a list once against its minimum, and a
// captive portal's HTML page never passes for a list.
std::optional<std::string> list_entry(const list_line& line);

// The policy file's YAML, parsed once: the daemon reads its own sections and the state
// directory from the same document the policy comes from (proxy/configuration.cpp), so that
// no two readings of one file can disagree. `errors`: the syntax error, with its line.
struct parsed_policy_yaml {
  YAML::Node root;
  bool blank = false;  // the text was only white space ("the policy file is empty")
  diagnostics errors;
};
parsed_policy_yaml parse_policy_yaml(std::string_view yaml, const std::string& file_name);
load_result load_policy_parsed(const parsed_policy_yaml& parsed, const std::string& file_name,
                               const load_options& options = {});

// For tests and tools: the YAML text as if read from `file_name` (relative paths inside it
// resolve against file_name's directory).
load_result load_policy_text(std::string_view yaml, const std::string& file_name,
                             const load_options& options = {});

}  // namespace hallpass::rules

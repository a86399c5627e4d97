// The loader of one policy document: the class behind load_policy_parsed (policy_loader.hpp),
// the state it keeps while it reads, and the reading of list lines its parts share. Internal to
// rules/: included only by the files that define its parts, one job a file:
//   policy_loader.cpp            the document, section by section; the public entry points
//   policy_school.cpp            school: name, time zone, timetable, terms and holidays
//   policy_lists.cpp             list entries: a line of a list file, list files, inline lists,
//                                the sets and tables entries go to, URL patterns
//   policy_public_suffixes.cpp   public suffixes in lists that allow
//   policy_categories.cpp        categories, with their list files and UT1 imports
//   policy_feeds.cpp             the feeds section, and the feed lists a category uses
//   policy_rules.cpp             roles, their rules and everyone's, SafeSearch, the fallback role
//   policy_inspection.cpp        the inspection section
//   policy_bans.cpp              the bans section
//
// One loader reads one document, once (run), on one thread.
#pragma once

#include <array>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "rules/file_io.hpp"
#include "rules/policy.hpp"
#include "rules/policy_loader.hpp"
#include "rules/yaml_reader.hpp"

namespace hallpass::rules::loading {

namespace fs = std::filesystem;

// Reads a whole file (rules/file_io.hpp): a regular file only (a FIFO would hang the load, a
// device never end); with `follow_links` false a symbolic link is refused too: a feed's files
// live in the daemon user's directory and are read as root at the start (a link there must not
// make root read another file into the warnings).
inline std::optional<std::string> read_file(const fs::path& path, std::string* error,
                                            bool follow_links = true) {
  return read_regular_file(path.string(), error, follow_links);
}

// A line of a list file, read (policy_lists.cpp).
bool is_plain_domain(std::string_view s);
std::string_view trim(std::string_view s);
std::string_view strip_wildcard(std::string_view s);
bool is_url_line(std::string_view line);
std::optional<std::string> list_domain(std::string_view raw, std::string* err);
std::optional<std::pair<std::string, std::string>> list_url(std::string_view raw, std::string* err);

class loader : private yaml_reader {
 public:
  loader(const load_options& options, std::string file)
      : yaml_reader(std::move(file)), opt_(options) {}

  load_result run(const parsed_policy_yaml& parsed);

 private:
  // What a list file holds: domains, URL prefixes, or either per line (a `lines` feed: an
  // entry with a '/' after its host is a URL prefix).
  using list_kind = list_file_kind;

  // One `feed: NAME/LIST` entry of a category.
  struct feed_list {
    std::size_t feed = 0;  // index into p_->feeds
    std::string list;      // the feed's own category: `gambling`, or `list` for a lines feed
    YAML::Node where;
  };

  fs::path resolve(const std::string& path) const { return resolve_path(path); }

  // policy_loader.cpp
  void load_document(const YAML::Node& root);

  // policy_school.cpp
  void load_school(const YAML::Node& s);
  void warn_about_terms(const YAML::Node& where);
  void load_zone(const std::string& name, const YAML::Node& where);
  std::optional<int> parse_minute(const YAML::Node& n, const std::string& what);
  std::optional<std::chrono::sys_days> parse_date(const YAML::Node& n, const std::string& what);
  std::vector<date_range> load_dates(const YAML::Node& list, const std::string& what);
  void load_timetable(const YAML::Node& t);

  // policy_lists.cpp
  std::optional<set_id> new_set(std::string name, std::size_t category_index, bool locked,
                                const YAML::Node& where);
  // Both say whether the entry was new to its set: a repeated line is loaded and counted once.
  domain_table::add_result add_domain(std::string_view d, set_id set);
  bool add_url(std::string host, std::string path, set_id set);
  // What load_list_file read: its valid entries, a repeated one each time (0: an empty list,
  // as empty_list, emptied_sources and list-sources.json count), and of them those new to the
  // set (a category's distinct domains and URLs, as check and explain show them). An entry the
  // set had from an earlier source of the category is not new: counted as new, a list that
  // repeated another made that list "empty" (review, 2026-12-05).
  struct list_counts {
    std::size_t entries = 0;
    std::size_t new_domains = 0;
    std::size_t new_urls = 0;
  };
  list_counts load_list_file(const fs::path& path, list_kind kind, set_id set, const YAML::Node& where,
                             bool required = true, bool* read = nullptr, domain_table* into = nullptr,
                             bool follow_links = true);
  void add_pattern(const YAML::Node& n, const std::string& text, set_id set);

  // Calls f(normalized domain, its node) for each valid entry of an inline domain list; an
  // invalid entry is an error at its place ("`what`: reason").
  template <class F>
  void each_domain(const YAML::Node& list, const std::string& what, F&& f) {
    for (const auto& d : items(list, what + " domains")) {
      auto s = scalar(d, what + " domain");
      if (!s) continue;
      std::string err;
      auto dom = list_domain(*s, &err);
      if (!dom) {
        error(d, what + ": " + err);
        continue;
      }
      f(*dom, d);
    }
  }

  void load_inline_lists(const YAML::Node& n, const std::string& what, set_id set, category* c);
  void finish_patterns();

  // policy_public_suffixes.cpp
  bool opens_a_suffix(std::string_view host) const;
  std::string suffix_refused(std::string_view host) const;
  static std::string suffix_refused(std::string_view host, const std::string& allowed_by,
                                    const std::string& done);
  void warn_at(const YAML::Node& n, std::string message);
  std::optional<set_id> block_only_set();
  void find_allowing_rules(const YAML::Node& root);
  std::optional<set_id> inline_set(std::string_view host, set_id set, const YAML::Node& where,
                                   bool url);
  static bool is_single_label(std::string_view host);

  // policy_categories.cpp
  void empty_list(const YAML::Node& where, const category& c, const std::string& shown);
  const category* named_category(const YAML::Node& item, const std::string& what);
  void load_categories(const YAML::Node& cats);

  // policy_feeds.cpp
  void load_feeds(const YAML::Node& feeds);
  std::vector<feed_list> feed_lists(const YAML::Node& n, const std::string& what);
  void load_feed_list(const feed_list& fl, category& c);
  void report_missing_feeds();

  // policy_rules.cpp
  std::optional<action> parse_action(const YAML::Node& n, const std::string& what);
  std::uint64_t parse_during(const YAML::Node& n, const std::string& what, std::string& text);
  std::vector<rule> load_rules(const YAML::Node& list, const std::string& owner);
  std::optional<ip_network> parse_network(const YAML::Node& n, const std::string& what);
  void load_roles(const YAML::Node& roles);
  void load_role_groups(const YAML::Node& n, const std::string& what,
                        std::vector<std::string>& out);
  std::optional<rule> search_front_end_lock(const std::string& role, const std::string& clause);
  void load_safesearch(const YAML::Node& n, const std::string& role_what, safesearch_settings& out);
  void choose_fallback(const YAML::Node& n, const YAML::Node& roles);

  // policy_inspection.cpp
  void load_inspection(const YAML::Node& n);

  // policy_bans.cpp
  void load_bans(const YAML::Node& n);

  struct pending_pattern {
    std::string text;
    set_id set;
    YAML::Mark mark;
  };

  const load_options& opt_;
  // Public suffixes in lists that allow (policy_public_suffixes.cpp): the categories an allow
  // rule uses, with the words that name the first such rule; while such a category's lists (or
  // an allow rule's own) are read, the check in force; and each category's block-only set, once
  // made.
  struct allow_check {
    std::string allowed_by;  // "pupils rule 1 allows category 'x'", "pupils rule 2 allows it"
    std::string category;    // empty for a rule's own list
    YAML::Node where;
    std::optional<set_id> block_only;
  };
  std::map<std::string, std::string, std::less<>> allowing_;
  allow_check* checking_ = nullptr;
  // Set while a feed's list is read (load_feed_list): its registry suffixes are left out.
  bool reading_feed_ = false;
  std::map<std::string, set_id, std::less<>> block_only_sets_;
  // The sets that stand for a category where a rule or an inspection entry names it: its own,
  // and where it blocks (an inspection entry is there to show the block page) its block-only
  // set too. The one place that knows a category may have two.
  template <class Sets>  // std::vector<set_id> or target_sets
  void add_category_sets(const category& cat, bool blocks, Sets& out) const {
    out.push_back(cat.set);
    if (!blocks) return;
    if (const auto b = block_only_sets_.find(cat.name); b != block_only_sets_.end())
      out.push_back(b->second);
  }
  fs::path ut1_dir_;
  // Per feed (index into p_->feeds): its YAML node, and the categories that use it.
  std::vector<YAML::Node> feed_nodes_;
  std::vector<std::vector<std::string>> feed_users_;
  std::unique_ptr<policy> p_;
  std::vector<std::string> category_names_, role_names_;
  std::array<std::vector<YAML::Mark>, 7> period_marks_;
  bool timetable_failed_ = false;  // the timetable had an error (its periods may be missing)
  std::vector<pending_pattern> pending_patterns_;
  bool membership_overflow_reported_ = false;
  std::unordered_set<std::string> url_keys_;  // add_url's "set host+path", each URL entry once
};

}  // namespace hallpass::rules::loading

// The policy's categories: each one's description and flags, and its lists: inline entries,
// list files, UT1 categories from ut1_dir, and feed lists (policy_feeds.cpp).
#include "rules/loader.hpp"

#include <set>
#include <system_error>

namespace hallpass::rules::loading {

// A list that yields no entries: a truncated download or the wrong file. A warning (shown by
// check, start and reload), but an error for a locked category: an empty illegal-content
// feed must never pass unnoticed.
void loader::empty_list(const YAML::Node& where, const category& c, const std::string& shown) {
  if (c.locked) {
    error(where, "category " + quote(c.name) + " is locked (illegal content) but its list " +
                     shown +
                     " has no entries: an empty feed would block nothing; fix the download or "
                     "remove the file");
    return;
  }
  const auto mark = where.Mark();
  warnings_.push_back(
      {file_, mark.line + 1, mark.column + 1,
       "category " + quote(c.name) + ": " + shown + " has no entries (empty list file)"});
}

// The category a list item names, or null after an error with a "did you mean".
const category* loader::named_category(const YAML::Node& item, const std::string& what) {
  auto s = scalar(item, what + " category");
  if (!s) return nullptr;
  const category* cat = p_->find_category(*s);
  if (!cat) {
    error(item, what + " names category " + quote(*s) + ", which is not defined" +
                    did_you_mean(*s, category_names_));
  }
  return cat;
}

void loader::load_categories(const YAML::Node& cats) {
  if (!cats.IsMap()) {
    error(cats, "categories must be a mapping from category names to their lists");
    return;
  }
  std::set<std::string> seen;
  for (const auto& kv : cats) {
    const std::string name = kv.first.Scalar();
    if (!seen.insert(name).second) {
      error(kv.first, "category " + quote(name) + " is defined twice");
      continue;
    }
    const std::string what = "category " + quote(name);
    const YAML::Node& n = kv.second;
    if (!check_map(n, what,
                   {"description", "locked", "circumvention", "domains", "domain_files", "urls",
                    "url_files", "patterns", "ut1", "feed", "support"}))
      continue;
    category c;
    c.name = name;
    if (n["description"]) {
      if (auto s = scalar(n["description"], what + " description")) c.description = *s;
    }
    if (n["support"]) {
      if (auto s = scalar(n["support"], what + " support")) {
        if (s->size() > 600) error(n["support"], what + " support is longer than 600 bytes: a few words of help");
        else c.support = *s;
      }
    }
    if (n["locked"]) {
      if (auto b = boolean(n["locked"], what + " locked")) c.locked = *b;
    }
    // A category fed by a locked feed (illegal-content lists) is locked, whatever it says.
    const auto fed = n["feed"] ? feed_lists(n["feed"], what) : std::vector<feed_list>{};
    for (const auto& f : fed) c.locked = c.locked || p_->feeds[f.feed].locked;
    c.circumvention = name == "circumvention";
    if (n["circumvention"]) {
      if (auto b = boolean(n["circumvention"], what + " circumvention")) c.circumvention = *b;
    }
    auto set = new_set(name, p_->categories.size(), c.locked, kv.first);
    if (!set) return;
    c.set = *set;
    // A locked category cannot be allowed (an error when the rules are loaded).
    allow_check check{"", name, kv.first, std::nullopt};
    if (const auto it = allowing_.find(name); it != allowing_.end() && !c.locked) {
      check.allowed_by = it->second;
      checking_ = &check;
    }
    load_inline_lists(n, what, c.set, &c);
    if (n["domain_files"]) {
      for (const auto& f : items(n["domain_files"], what + " domain_files")) {
        if (auto s = scalar(f, what + " domain file")) {
          bool read = false;
          const auto n = load_list_file(resolve(*s), list_kind::domains, c.set, f, true, &read);
          if (read && n.entries == 0) empty_list(f, c, resolve(*s).string());
          c.domain_count += n.new_domains;
          c.sources.push_back({*s, n.entries});
        }
      }
    }
    if (n["url_files"]) {
      for (const auto& f : items(n["url_files"], what + " url_files")) {
        if (auto s = scalar(f, what + " url file")) {
          bool read = false;
          const auto n = load_list_file(resolve(*s), list_kind::urls, c.set, f, true, &read);
          if (read && n.entries == 0) empty_list(f, c, resolve(*s).string());
          c.url_count += n.new_urls;
          c.sources.push_back({*s, n.entries});
        }
      }
    }
    if (n["ut1"]) {
      for (const auto& u : items(n["ut1"], what + " ut1")) {
        auto s = scalar(u, what + " ut1 category");
        if (!s) continue;
        if (ut1_dir_.empty()) {
          error(u, what + " imports UT1 category " + quote(*s) +
                       " but the policy sets no ut1_dir (the folder that holds the UT1 "
                       "'blacklists' categories)");
          continue;
        }
        if (s->find('/') != std::string::npos || s->find("..") != std::string::npos) {
          error(u, quote(*s) + " is not a UT1 category name");
          continue;
        }
        const fs::path dir = ut1_dir_ / *s;
        std::error_code ec;
        if (!fs::is_directory(dir, ec)) {
          error(u,
                "UT1 category " + quote(*s) + " not found: " + dir.string() + " is not a folder");
          continue;
        }
        const bool has_domains = fs::exists(dir / "domains", ec),
                   has_urls = fs::exists(dir / "urls", ec);
        if (!has_domains && !has_urls) {
          error(u, "UT1 category " + quote(*s) + " has neither a 'domains' nor a 'urls' file in " +
                       dir.string());
          continue;
        }
        bool read_domains = false, read_urls = false;
        std::size_t added = 0;
        if (has_domains) {
          const auto n = load_list_file(dir / "domains", list_kind::domains, c.set, u, true, &read_domains);
          c.domain_count += n.new_domains;
          added += n.entries;
        }
        if (has_urls) {
          const auto n = load_list_file(dir / "urls", list_kind::urls, c.set, u, true, &read_urls);
          c.url_count += n.new_urls;
          added += n.entries;
        }
        if ((read_domains || read_urls) && added == 0)
          empty_list(u, c, "UT1 category " + quote(*s) + " in " + dir.string());
        c.sources.push_back({"ut1:" + *s, added});
      }
    }
    for (const auto& f : fed) load_feed_list(f, c);
    checking_ = nullptr;
    if (check.block_only) block_only_sets_[name] = *check.block_only;
    category_names_.push_back(name);
    p_->categories.push_back(std::move(c));
  }
}

}  // namespace hallpass::rules::loading

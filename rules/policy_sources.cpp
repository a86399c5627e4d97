// The entries each list source of a policy gave (count_sources), and the sources a new policy
// emptied (emptied_sources): what a reload or a start refuses (policy_loader.hpp).
#include "rules/policy_loader.hpp"

#include <algorithm>

#include "rules/yaml_reader.hpp"

namespace hallpass::rules {
namespace {

// "feed:ut1/adult" -> "ut1"; "" for a source that is not a feed's list.
std::string_view feed_name_of(std::string_view source) {
  if (!source.starts_with("feed:")) return {};
  const auto slash = source.find('/');
  return source.substr(5, slash == std::string_view::npos ? std::string_view::npos : slash - 5);
}

const feed* find_feed(const policy& p, std::string_view name) {
  const auto it = std::find_if(p.feeds.begin(), p.feeds.end(), [&](const feed& f) { return f.name == name; });
  return it == p.feeds.end() ? nullptr : &*it;
}

// A feed list the school lets be empty (feeds.NAME.min_entries: 0): feeds update accepts an
// empty one, so neither a reload nor a start refuses it.
bool may_be_empty(const policy& p, std::string_view source) {
  const auto name = feed_name_of(source);
  const feed* f = name.empty() ? nullptr : find_feed(p, name);
  return f && f->min_entries == 0;
}

// A feed list that `hallpass feeds update` replaced since `before` (its feed's fetched_at
// differs): that update had its own guard against a list losing more than half
// (feeds/README.md; --allow-shrink after a look at the source).
bool fetched_since(const policy& before, const policy& after, std::string_view source) {
  const auto name = feed_name_of(source);
  if (name.empty()) return false;
  const feed* a = find_feed(before, name);
  const feed* b = find_feed(after, name);
  return a && b && a->fetched_at != b->fetched_at;
}

}  // namespace

source_counts count_sources(const policy& p) {
  source_counts out;
  for (const auto& c : p.categories) {
    auto& sources = out[c.name];
    for (const auto& s : c.sources) sources[s.name] = s.entries;
  }
  return out;
}

std::vector<std::string> emptied_sources(const source_counts& before, const policy& after,
                                         std::string_view before_was, std::string_view refused) {
  std::vector<std::string> out;
  for (const auto& c : after.categories) {
    const auto old = before.find(c.name);
    if (old == before.end()) continue;
    for (const auto& now : c.sources) {
      if (now.entries > 0 || may_be_empty(after, now.name)) continue;
      const auto was = old->second.find(now.name);
      if (was == old->second.end() || was->second == 0) continue;
      out.push_back(
          "category " + quote(c.name) + ": " + now.name + " had " + std::to_string(was->second) +
          " entries " + std::string(before_was) +
          " and has none now (emptied, cut short or the wrong file?): " + std::string(refused) +
          "; to empty it on purpose, take it out of the policy (a feed's list may be empty with "
          "feeds.NAME.min_entries: 0)");
    }
  }
  return out;
}

namespace {
template <class Fetched>
std::vector<std::string> shrunk(const source_counts& counts, const policy& after, Fetched fetched,
                                std::string_view before_was, std::string_view refused) {
  std::vector<std::string> out;
  for (const auto& c : after.categories) {
    const auto old = counts.find(c.name);
    if (old == counts.end()) continue;
    for (const auto& now : c.sources) {
      const auto was = old->second.find(now.name);
      if (now.entries == 0 || was == old->second.end() || was->second < shrink_guard_entries ||
          now.entries * 2 >= was->second) {
        continue;  // emptied ones are emptied_sources' to say
      }
      if (may_be_empty(after, now.name) || fetched(now.name)) continue;
      const auto feed = feed_name_of(now.name);
      out.push_back("category " + quote(c.name) + ": " + now.name + " had " + std::to_string(was->second) +
                    " entries " + std::string(before_was) + " and has " + std::to_string(now.entries) +
                    " now (more than half gone: cut short, a half-written save or the wrong file?): " +
                    std::string(refused) +
                    (feed.empty() ? "; to shrink it on purpose, take the list out of the policy, reload (or start), "
                                    "put it back and reload again"
                                  : "; fetch it again with `hallpass feeds update --feed " + std::string(feed) +
                                        "` (it replaces a damaged copy; --allow-shrink if the source really shrank)"));
    }
  }
  return out;
}
}  // namespace

std::vector<std::string> shrunk_sources(const policy& before, const policy& after) {
  return shrunk(
      count_sources(before), after, [&](std::string_view source) { return fetched_since(before, after, source); },
      "in the policy in force", "the reload is refused and the lists in force stay");
}

std::vector<std::string> shrunk_sources(const source_counts& before,
                                        const std::map<std::string, std::int64_t>& fetched_before, const policy& after,
                                        std::string_view before_was, std::string_view refused) {
  const auto fetched = [&](std::string_view source) {
    const auto name = feed_name_of(source);
    if (name.empty()) return false;
    const feed* f = find_feed(after, name);
    const auto was = fetched_before.find(std::string(name));
    // No time recorded (an older record): an update may have replaced it, as far as can be told.
    return f == nullptr || was == fetched_before.end() || was->second != f->fetched_at;
  };
  return shrunk(before, after, fetched, before_was, refused);
}

std::vector<std::string> emptied_sources(const policy& before, const policy& after) {
  return emptied_sources(count_sources(before), after, "in the policy in force",
                         "the reload is refused and the lists in force stay");
}

}  // namespace hallpass::rules

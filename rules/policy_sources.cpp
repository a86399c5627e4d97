// The entries each list source of a policy gave (count_sources), and the sources a new policy
// emptied (emptied_sources): what a reload or a start refuses (policy_loader.hpp).
#include "rules/policy_loader.hpp"

#include <algorithm>

#include "rules/yaml_reader.hpp"

namespace hallpass::rules {
namespace {

// A feed list the school lets be empty (feeds.NAME.min_entries: 0): feeds update accepts an
// empty one, so neither a reload nor a start refuses it.
bool may_be_empty(const policy& p, std::string_view source) {
  if (!source.starts_with("feed:")) return false;
  const auto name =
      source.substr(5, source.find('/') == std::string_view::npos ? std::string_view::npos
                                                                  : source.find('/') - 5);
  return std::any_of(p.feeds.begin(), p.feeds.end(),
                     [&](const feed& f) { return f.name == name && f.min_entries == 0; });
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

std::vector<std::string> emptied_sources(const policy& before, const policy& after) {
  return emptied_sources(count_sources(before), after, "in the policy in force",
                         "the reload is refused and the lists in force stay");
}

}  // namespace hallpass::rules

// The policy's bans section (000 7.2; 002; rules/ban.hpp): the sites a banned user may still
// reach, the ban page's message, and the threshold (blocked attempts within a time) that bans
// a user, and for how long.
#include "rules/loader.hpp"

#include <chrono>

namespace hallpass::rules::loading {

void loader::load_bans(const YAML::Node& n) {
  if (!check_map(n, "bans", {"policy", "message", "threshold"})) return;
  auto& b = p_->bans;
  if (const auto sp = n["policy"]; sp && check_map(sp, "bans.policy", {"domains", "categories"})) {
    if (sp["domains"]) {
      for (const auto& d : items(sp["domains"], "bans.policy domains")) {
        auto s = scalar(d, "bans.policy domain");
        if (!s) continue;
        std::string err;
        auto dom = list_domain(*s, &err);
        if (!dom) {
          error(d, "bans.policy domain " + quote(*s) + ": " + err);
          continue;
        }
        if (is_single_label(*dom)) {  // written in the policy itself: as inline_set (below)
          warn_at(d, suffix_refused(*dom, "bans.policy lets a banned user reach it", "left out"));
          continue;
        }
        b.domains.push_back(std::move(*dom));
      }
    }
    if (sp["categories"]) {
      for (const auto& c : items(sp["categories"], "bans.policy categories")) {
        const category* cat = named_category(c, "bans.policy");
        if (!cat) continue;
        if (cat->locked || cat->circumvention) {
          error(c, "bans.policy cannot list category " + quote(cat->name) + ": it is " +
                       (cat->locked ? "locked (illegal content)" : "a way round the filter") +
                       ", never a site for supervised use");
          continue;
        }
        b.categories.push_back(cat->set);
      }
    }
  }
  if (n["message"]) {
    if (auto m = scalar(n["message"], "bans.message")) {
      if (m->find_first_not_of(" \t\r\n") == std::string::npos) {
        error(n["message"], "bans.message must not be empty: the ban page shows it");
      } else {
        b.message = *m;
      }
    }
  }
  if (const auto t = n["threshold"];
      t && check_map(t, "bans.threshold", {"attempts", "within", "duration", "apart"})) {
    for (const char* key : {"attempts", "within", "duration"}) {
      if (!t[key])
        error(t, std::string("bans.threshold.") + key +
                     " is missing (e.g. attempts: 3, within: 10m, duration: 1d)");
    }
    if (t["attempts"]) {
      if (auto a = integer(t["attempts"], "bans.threshold.attempts", 1, 100))
        b.attempts = static_cast<std::size_t>(*a);
    }
    auto length = [&](const char* key, std::chrono::seconds min, std::chrono::seconds max,
                      const char* range, std::chrono::seconds& out) {
      if (!t[key]) return;
      auto d = duration(t[key], std::string("bans.threshold.") + key);
      if (!d) return;
      if (*d < min || *d > max) {
        error(t[key], std::string("bans.threshold.") + key + " must be from " + range);
        return;
      }
      out = std::chrono::floor<std::chrono::seconds>(*d);
    };
    length("within", std::chrono::seconds(1), std::chrono::hours(24), "1s to 1d", b.within);
    length("duration", std::chrono::minutes(1), std::chrono::days(366), "1m to 366d", b.duration);
    if (t["apart"]) {
      if (auto d = duration(t["apart"], "bans.threshold.apart")) {
        if (*d > std::chrono::minutes(10)) error(t["apart"], "bans.threshold.apart must be from 0s to 10m");
        else b.apart = std::chrono::floor<std::chrono::seconds>(*d);
      }
    }
    if (b.within.count() == 0 || b.duration.count() == 0) b.attempts = 0;  // after an error: off
  }
}

}  // namespace hallpass::rules::loading

// The policy's roles and their rules (and the everyone rules): targets, methods, times
// (`during`), networks, directory groups, SafeSearch, and the fallback role.
#include "rules/loader.hpp"

#include <algorithm>
#include <cctype>
#include <iterator>
#include <set>

#include "rules/category_words.hpp"
#include "rules/yaml_load.hpp"

namespace hallpass::rules::loading {

std::optional<action> loader::parse_action(const YAML::Node& n, const std::string& what) {
  auto s = scalar(n, what);
  if (!s) return std::nullopt;
  if (*s == "allow") return action::allow;
  if (*s == "block") return action::block;
  error(n, what + " must be 'allow' or 'block', not " + quote(*s));
  return std::nullopt;
}

std::uint64_t loader::parse_during(const YAML::Node& n, const std::string& what,
                                   std::string& text) {
  const auto& tt = p_->timetable;
  std::uint64_t mask = 0;
  std::vector<std::string> words;  // for "did you mean"
  std::string keyword_list;        // "lessons, breaks, ..."
  for (const auto& k : during_keywords) {
    if (!k.listed) continue;
    words.emplace_back(k.word);
    keyword_list += (keyword_list.empty() ? "" : ", ") + std::string(k.word);
  }
  for (const auto& name : tt.period_names) {
    if (std::find(words.begin(), words.end(), name) == words.end()) words.push_back(name);
  }
  std::vector<std::string> shown;
  for (const auto& item : items(n, what)) {
    auto s = scalar(item, what);
    if (!s) continue;
    std::string w = *s;
    std::uint64_t bits = 0;
    if (const auto* keyword = find_during_keyword(w)) {
      bits = tt.bits_of(*keyword);
    } else {
      // By name: every kind the name has on any day (a bit per name and kind).
      for (std::size_t b = 0; b < tt.period_names.size(); ++b) {
        if (tt.period_names[b] == w) bits |= 1ull << b;
      }
      if (bits == 0) {
        if (!timetable_failed_) {
          error(item, what + " names " + quote(w) +
                          ", which is neither a period of the timetable nor one of " + keyword_list +
                          did_you_mean(w, words));
        }
        continue;
      }
    }
    if (bits == 0) {
      // After a timetable error the period may be the one that failed: that error says it.
      if (!timetable_failed_)
        error(item, what + " names " + quote(w) + " but the timetable has no such period");
      continue;
    }
    mask |= bits;
    shown.push_back(w);
  }
  text = mask == ~0ull ? "at any time" : "during " + join(shown, ", ");
  return mask;
}

std::vector<rule> loader::load_rules(const YAML::Node& list, const std::string& owner) {
  std::vector<rule> out;
  if (!list.IsSequence()) {
    error(list, "the rules of " + owner + " must be a list");
    return out;
  }
  int index = 0;
  for (const auto& n : list) {
    ++index;
    const std::string what = "rule " + std::to_string(index) + " of " +
                             (owner == "everyone" ? "everyone" : "role " + owner);
    if (!check_map(n, what,
                   {"name", "action", "categories", "domains", "urls", "patterns", "methods",
                    "during", "clause", "reason"}))
      continue;
    rule r;
    r.id =
        (owner == "everyone" ? std::string("everyone") : owner) + " rule " + std::to_string(index);
    if (n["name"]) {
      if (auto s = text(n["name"], what + " name")) r.id += " (" + *s + ")";
    }
    if (!n["action"]) {
      error(n, what + " has no action: say 'action: allow' or 'action: block'");
      continue;
    }
    auto act = parse_action(n["action"], what + " action");
    if (!act) continue;
    r.act = *act;
    // A key given with nothing in it (`categories:` whose items were commented out, `~`, `[]`)
    // is an editing mistake, not a choice: a block rule so written blocked nothing, while the
    // same rule without the key blocks everything (outside-in audit H, 2026-12-05).
    bool empty_key = false;
    for (const char* key : {"categories", "domains", "urls", "patterns", "methods", "during"}) {
      const YAML::Node v = n[key];
      if (v && (v.IsNull() || (v.IsSequence() && v.size() == 0))) {
        error(v.IsNull() ? n : v, what + " has an empty '" + key +
                                      "' (items commented out?): name at least one, " +
                                      "or leave the key out");
        empty_key = true;
      }
    }
    if (empty_key) continue;
    std::vector<std::string> target_words;
    if (n["categories"]) {
      for (const auto& c : items(n["categories"], what + " categories")) {
        const category* cat = named_category(c, what);
        if (!cat) continue;
        if (cat->locked && r.act == action::allow) {
          error(c, what + " allows category " + quote(cat->name) +
                       ", which is locked: illegal-content lists cannot be allowed by any rule or "
                       "exception");
          continue;
        }
        add_category_sets(*cat, r.act == action::block, r.targets);
        if (p_->set_has_patterns[cat->set]) r.needs_patterns = true;
        target_words.push_back(cat->name);
      }
      r.has_targets = true;
    }
    if (n["domains"] || n["urls"] || n["patterns"]) {
      auto set = new_set("rule list of " + r.id, std::string::npos, false, n);
      if (!set) continue;
      allow_check check{r.id + " allows it", "", n, std::nullopt};
      if (r.act == action::allow) checking_ = &check;
      load_inline_lists(n, what, *set, nullptr);
      checking_ = nullptr;
      r.targets.push_back(*set);
      r.has_targets = true;
      if (p_->set_has_patterns[*set]) r.needs_patterns = true;
      if (n["domains"]) target_words.push_back("listed domains");
      if (n["urls"]) target_words.push_back("listed URLs");
      if (n["patterns"]) target_words.push_back("listed URL patterns");
    }
    if (n["methods"]) {
      for (const auto& m : items(n["methods"], what + " methods")) {
        auto s = scalar(m, what + " method");
        if (!s) continue;
        std::string up = *s;
        for (auto& ch : up) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        if (up.empty() ||
            !std::all_of(up.begin(), up.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; })) {
          error(m, what + " method " + quote(*s) + " is not an HTTP method name");
          continue;
        }
        // Any token is a method to HTTP, but one no client sends is a rule that never matches:
        // `methods: yes`, `PSOT` (outside-in audit H, 2026-12-05). Said, not refused (a
        // school's own WebDAV or API method may be missing here).
        // clang-format off
        static constexpr std::string_view known[] = {
            "GET",   "HEAD",      "POST",  "PUT",   "DELETE", "CONNECT", "OPTIONS", "TRACE",   "PATCH",
            "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE",   "LOCK",    "UNLOCK",  "REPORT", "SEARCH",
            "MKCALENDAR", "ACL", "BIND", "UNBIND", "REBIND", "MERGE", "CHECKOUT", "CHECKIN", "UPDATE", "LABEL",
            "VERSION-CONTROL", "MKWORKSPACE", "MKACTIVITY", "BASELINE-CONTROL", "ORDERPATCH", "QUERY"};
        // clang-format on
        if (std::find(std::begin(known), std::end(known), up) == std::end(known)) {
          const auto mark = m.Mark();
          warnings_.push_back({file_, mark.line + 1, mark.column + 1,
                               what + " method " + quote(*s) +
                                   " is not a method browsers or apps send (a typo?): the rule "
                                   "matches no request by it"});
        }
        r.methods.push_back(up);
      }
    }
    r.during_text = "at any time";
    if (n["during"]) r.during = parse_during(n["during"], what + " during", r.during_text);
    if (n["clause"]) {
      if (auto s = text(n["clause"], what + " clause")) r.clause = *s;
    }
    std::string targets = target_words.empty() ? "everything" : join(target_words, ", ");
    if (!r.methods.empty()) targets += " (" + join(r.methods, ", ") + " requests)";
    r.summary = std::string(to_string(r.act)) + " " + targets + " " + r.during_text;
    if (n["reason"]) {
      if (auto s = text(n["reason"], what + " reason")) r.reason = *s;
    } else {
      // In words for the block page: a category key's underscores read as spaces
      // ("Social media is blocked", not "Social_media").
      r.reason = category_words(targets) + (r.act == action::block ? " is blocked" : " is allowed") + " for " +
                 (owner == "everyone" ? std::string("everyone") : owner) + " " + r.during_text +
                 ".";
      r.reason[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(r.reason[0])));
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::optional<ip_network> loader::parse_network(const YAML::Node& n, const std::string& what) {
  auto s = scalar(n, what);
  if (!s) return std::nullopt;
  std::string why;
  auto net = ip_network::parse(*s, &why);
  if (!net) {
    error(n, what + ": " + why);
  } else if (why = net->why_no_client(); !why.empty()) {
    error(n, what + ": " + why);
    return std::nullopt;
  }
  return net;
}

void loader::load_roles(const YAML::Node& roles) {
  if (!roles.IsMap() || roles.size() == 0) {
    error(roles, "roles must be a mapping from role names (pupils, staff, ...) to their settings");
    return;
  }
  // Names first, so rules can be reported against them and the fallback found.
  std::set<std::string> seen;
  for (const auto& kv : roles) {
    const std::string name = kv.first.Scalar();
    const std::string what = "role " + quote(name);
    if (!seen.insert(name).second) {
      error(kv.first, what + " is defined twice");
      continue;
    }
    // Its rules would read "everyone rule 1" in explain and the log, as the top-level
    // `everyone` rules do (explain audit, 2026-12-06, L5).
    if (name == "everyone") {
      error(kv.first, "a role may not be called 'everyone': the top-level 'everyone' section has that name; call it "
                      "'all_users' or the like");
      continue;
    }
    const YAML::Node& n = kv.second;
    if (!check_map(n, what,
                   {"description", "networks", "default", "rules", "safesearch", "groups", "audience"}))
      continue;
    role r;
    r.name = name;
    if (n["description"]) {
      if (auto s = scalar(n["description"], what + " description")) r.description = *s;
    }
    if (n["audience"]) {
      if (auto s = scalar(n["audience"], what + " audience")) {
        if (*s == "adults") {
          r.adults = true;
        } else if (*s != "children") {
          error(n["audience"], what + " audience must be 'children' or 'adults' (who reads its block pages), not " +
                                   quote(*s));
        }
      }
    }
    if (n["default"]) {
      if (auto a = parse_action(n["default"], what + " default")) r.default_action = *a;
    } else {
      error(n, what + " has no 'default' (allow or block): say what happens when no rule matches");
    }
    r.default_id = "default for " + name;
    r.default_reason =
        r.default_action == action::allow
            ? "No rule blocks this for " + name + ", so it is allowed."
            : "Only sites the policy allows are open to " + name + ", and this is not one of them.";
    if (n["networks"]) {
      for (const auto& net : items(n["networks"], what + " networks")) {
        auto parsed = parse_network(net, what + " network");
        if (!parsed) continue;
        parsed->role = p_->roles.size();
        for (const auto& other : p_->networks) {
          if (other.prefix == parsed->prefix && other.base == parsed->base) {
            error(net,
                  what + " network " + quote(parsed->text) + " is already given to role " +
                      quote(p_->roles.size() > other.role ? p_->roles[other.role].name : name));
          }
        }
        // Wider than the largest private range (10.0.0.0/8; fc00::/7 for IPv6): the role is
        // every device in no narrower network, devices the school does not know included (a
        // pupil's phone on a hotspot, a visitor). fallback_role says that on purpose.
        const bool v4 = !parsed->base.v6;
        if (parsed->prefix < (v4 ? 8 : 7)) {
          warn_at(net, what + " network " + quote(parsed->text) +
                           " takes in addresses outside any school network: every device in no narrower network is " +
                           name + ", unknown devices too. To give " + name +
                           " to every other device on purpose, write fallback_role: " + name);
        }
        p_->networks.push_back(std::move(*parsed));
      }
    }
    if (n["rules"]) r.rules = load_rules(n["rules"], name);
    if (n["safesearch"]) load_safesearch(n["safesearch"], what, r.safesearch);
    if (r.safesearch.search != safesearch_level::off) {
      if (auto lock = search_front_end_lock(name, r.safesearch.clause))
        r.rules.insert(r.rules.begin(), std::move(*lock));
    }
    if (n["groups"]) load_role_groups(n["groups"], what, r.groups);
    role_names_.push_back(name);
    p_->roles.push_back(std::move(r));
  }
  std::stable_sort(p_->networks.begin(), p_->networks.end(),
                   [](const ip_network& a, const ip_network& b) { return a.prefix > b.prefix; });
  // In policy order, so that a name listed twice keeps its first place (emplace keeps it).
  for (std::size_t i = 0; i < p_->roles.size(); ++i) {
    for (std::size_t g = 0; g < p_->roles[i].groups.size(); ++g) {
      p_->group_roles.emplace(p_->roles[i].groups[g], policy::group_role{i, g});
    }
  }
}

// roles.<name>.groups: directory group names, as the directory spells them ("Year 6").
// Empty names and a group listed twice in one role are refused; a group listed by two roles
// is allowed (the first in policy order wins) but warned about, since the second never applies.
void loader::load_role_groups(const YAML::Node& n, const std::string& what,
                              std::vector<std::string>& out) {
  for (const auto& item : items(n, what + " groups")) {
    auto s = scalar(item, what + " group");
    if (!s) continue;
    if (s->empty()) {
      error(item, what + " groups: a group name cannot be empty");
      continue;
    }
    const auto same = [&s](const std::string& g) {
      return g.size() == s->size() &&
             std::equal(g.begin(), g.end(), s->begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) ==
                      std::tolower(static_cast<unsigned char>(b));
             });
    };
    if (std::any_of(out.begin(), out.end(), same)) {
      error(item, what + " lists group " + quote(*s) + " twice");
      continue;
    }
    for (const auto& earlier : p_->roles) {
      if (std::any_of(earlier.groups.begin(), earlier.groups.end(), same)) {
        const auto m = item.Mark();
        warnings_.push_back({file_, m.line + 1, m.column + 1,
                             what + " group " + quote(*s) + " is already listed by role " +
                                 quote(earlier.name) +
                                 ", which comes first and wins: this entry never applies"});
      }
    }
    out.push_back(*s);
  }
}

// DuckDuckGo's HTML and lite pages have no locked front end to connect to, and take their
// searches by POST, which the request rewrite cannot reach: relayed or inspected, a search
// there was never locked (audit20 D1, D2). A role whose search is locked gets them blocked by
// a rule of its own, before the role's rules (an "allow duckduckgo.com" there would open its
// subdomains too), so that the block page, explain and the log say why.
std::optional<rule> loader::search_front_end_lock(const std::string& role,
                                                  const std::string& clause) {
  static const char* const text =
      "[{name: SafeSearch lock, action: block, domains: [html.duckduckgo.com, "
      "lite.duckduckgo.com], reason: \"This version of DuckDuckGo cannot keep search results safe, "
      "so it cannot be locked to safe search at school. Please use duckduckgo.com instead.\"}]";
  auto rules = load_rules(load_yaml(text), role);
  if (rules.size() != 1) return std::nullopt;
  rules[0].id = role + " SafeSearch lock";
  rules[0].summary =
      "block DuckDuckGo's HTML and lite pages, which cannot be locked to safe search";
  rules[0].clause = clause;
  return std::move(rules[0]);
}

// roles.<name>.safesearch: {search: strict|off, youtube: strict|moderate|off, clause: "..."}
void loader::load_safesearch(const YAML::Node& n, const std::string& role_what,
                             safesearch_settings& out) {
  const std::string what = role_what + " safesearch";
  if (!check_map(n, what, {"search", "youtube", "clause"})) return;
  auto level = [&](const char* key, bool moderate_ok) -> std::optional<safesearch_level> {
    auto s = scalar(n[key], what + " " + key);
    if (!s) return std::nullopt;
    if (*s == "strict") return safesearch_level::strict;
    if (*s == "off") return safesearch_level::off;
    if (*s == "moderate" && moderate_ok) return safesearch_level::moderate;
    const std::vector<std::string> words =
        moderate_ok ? std::vector<std::string>{"strict", "moderate", "off"}
                    : std::vector<std::string>{"strict", "off"};
    error(n[key],
          what + " " + key + " must be " +
              (moderate_ok ? "strict, moderate or off" : "strict or off") + ", not " + quote(*s) +
              (!moderate_ok && *s == "moderate" ? " (search engines offer no locked moderate mode)"
                                                : did_you_mean(*s, words)));
    return std::nullopt;
  };
  if (n["search"]) {
    if (auto l = level("search", false)) out.search = *l;
  }
  if (n["youtube"]) {
    if (auto l = level("youtube", true)) out.youtube = *l;
  }
  if (n["clause"]) {
    if (auto s = text(n["clause"], what + " clause")) out.clause = *s;
  }
}

void loader::choose_fallback(const YAML::Node& n, const YAML::Node& roles) {
  if (n) {
    auto s = scalar(n, "fallback_role");
    if (!s) return;
    for (std::size_t i = 0; i < p_->roles.size(); ++i) {
      if (p_->roles[i].name == *s) {
        p_->fallback_role = i;
        return;
      }
    }
    error(n, "fallback_role names role " + quote(*s) + ", which is not defined" +
                 did_you_mean(*s, role_names_));
    return;
  }
  // Not configured: the most restricted role there can be, never unfiltered. A school role of
  // the built-in's name is refused rather than taken for it: taken, its `default: allow` gave
  // every unknown device an unfiltered role the school never chose (policy audit, 2026-12-05).
  if (std::find(role_names_.begin(), role_names_.end(), "unassigned") != role_names_.end()) {
    YAML::Node where = roles;
    for (const auto& kv : roles) {
      if (kv.first.IsScalar() && kv.first.Scalar() == "unassigned") where.reset(kv.first);
    }
    error(where, "role 'unassigned' has the name of the built-in role for devices in no role's networks (it "
                 "blocks everything): rename this role, or set fallback_role: unassigned to make it the "
                 "fallback on purpose");
    return;
  }
  role r;
  r.name = "unassigned";
  r.description = "devices whose address is in no role's networks (fallback_role is not set)";
  r.default_action = action::block;
  r.default_id = "default for unassigned";
  r.default_reason =
      "This device's address is not in any network the school's policy knows, so everything is "
      "blocked. Ask the ICT technician to add it.";
  r.builtin = true;
  p_->fallback_role = p_->roles.size();
  p_->roles.push_back(std::move(r));
}

}  // namespace hallpass::rules::loading

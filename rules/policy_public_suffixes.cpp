// Public suffixes in lists that allow.
//
// `com` in a list an allow rule uses opened every .com site (outside-in audit, 2026-12-05,
// second session). Such an entry is left out of what the rule allows, with a warning at its
// line; it still blocks where a block rule (or an inspection entry) uses the same category,
// through the category's block-only set: blocking a whole top-level domain is a school's
// choice. Which categories allow is read from the rules before the categories are loaded
// (find_allowing_rules), so that only their lists pay for the check.
#include "rules/loader.hpp"

namespace hallpass::rules::loading {

// Whether `host` (normalised) is a top-level domain or a public suffix: by the caller's list
// (load_options::is_public_suffix), else a name of one label. Never an IP address.
bool loader::opens_a_suffix(std::string_view host) const {
  const bool suffix = opt_.is_public_suffix ? opt_.is_public_suffix(host)
                                            : host.find('.') == std::string_view::npos;
  return suffix && !ip_address::parse(host);
}

std::string loader::suffix_refused(std::string_view host) const {
  return suffix_refused(
      host, checking_->allowed_by,
      checking_->category.empty()
          ? "left out"
          : "left out of what it allows (a rule that blocks the category still blocks with it)");
}
std::string loader::suffix_refused(std::string_view host, const std::string& allowed_by,
                                   const std::string& done) {
  return quote(host) +
         " is a top-level domain or a public suffix (a name under which anyone registers sites, " +
         "like co.uk): " + allowed_by + ", and it would open every site under it: " + done;
}

void loader::warn_at(const YAML::Node& n, std::string message) {
  const auto mark = n.Mark();
  warnings_.push_back({file_, mark.line + 1, mark.column + 1, std::move(message)});
}

// The set a public-suffix entry of the list being read goes to: the category's block-only
// set (made at its first such entry: the category's name, so that a block names the
// category), or nullopt for an allow rule's own list, which no block rule uses.
std::optional<set_id> loader::block_only_set() {
  if (checking_->category.empty()) return std::nullopt;
  if (!checking_->block_only) {
    checking_->block_only =
        new_set(checking_->category, p_->categories.size(), false, checking_->where);
  }
  return checking_->block_only;
}

// Which categories an allow rule uses (and the supervised-use list of bans.policy, which
// lets a banned user reach them), by the first such rule. Lenient: mistakes in the rules
// are reported when the rules are loaded.
void loader::find_allowing_rules(const YAML::Node& root) {
  auto note = [&](const YAML::Node& names, const std::string& by) {
    if (!names) return;
    std::vector<YAML::Node> list;
    if (names.IsScalar()) list.push_back(names);
    if (names.IsSequence()) {
      for (const auto& c : names) list.push_back(c);
    }
    for (const auto& c : list) {
      if (c.IsScalar()) allowing_.emplace(c.Scalar(), by + " category " + quote(c.Scalar()));
    }
  };
  auto scan = [&](const YAML::Node& rules, const std::string& owner) {
    if (!rules || !rules.IsSequence()) return;
    int index = 0;
    for (const auto& r : rules) {
      ++index;
      if (!r.IsMap()) continue;
      const YAML::Node a = r["action"];
      if (!a || !a.IsScalar() || a.Scalar() != "allow") continue;
      std::string id = owner + " rule " + std::to_string(index);
      if (const YAML::Node name = r["name"]; name && name.IsScalar())
        id += " (" + name.Scalar() + ")";
      note(r["categories"], id + " allows");
    }
  };
  if (const YAML::Node e = root["everyone"]; e && e.IsMap()) scan(e["rules"], "everyone");
  if (const YAML::Node roles = root["roles"]; roles && roles.IsMap()) {
    for (const auto& kv : roles) {
      if (kv.second.IsMap()) scan(kv.second["rules"], kv.first.Scalar());
    }
  }
  if (const YAML::Node b = root["bans"]; b && b.IsMap()) {
    if (const YAML::Node p = b["policy"]; p && p.IsMap()) {
      note(p["categories"], "bans.policy lets a banned user reach");
    }
  }
}

// The set an inline entry on `host` goes to, as set_for in load_list_file: nullopt when it
// is left out (a top-level domain in an allow rule's own list). A domain written in the policy
// file itself is left out only when it is a single label: `com` is always a slip, while a
// school that writes `gov.uk`, `sch.uk` or `nhs.uk` in its own allow rule means every site
// under it. A URL prefix is checked against the whole list (`url`): `co.uk/news` would match
// /news on every site under co.uk, which no school means (a review of 2026-12-05). Lists from
// files, UT1 and feeds are checked against the whole list (set_for).
std::optional<set_id> loader::inline_set(std::string_view host, set_id set, const YAML::Node& where,
                                         bool url) {
  if (checking_ == nullptr || !(url ? opens_a_suffix(host) : is_single_label(host))) return set;
  warn_at(where, suffix_refused(host));
  return block_only_set();
}

// A name of one label (`com`, `intranet`), not an IP address.
bool loader::is_single_label(std::string_view host) {
  return host.find('.') == std::string_view::npos && !ip_address::parse(host);
}

}  // namespace hallpass::rules::loading

// The policy's inspection section: the domains never decrypted, and the entries that say which
// CONNECTs are decrypted (for which roles: by category, by domain, for SafeSearch, or
// everything). rules/inspection.hpp decides from them.
#include "rules/loader.hpp"

#include <algorithm>

namespace hallpass::rules::loading {

// inspection: {never: {domains, domain_files}, inspect: [{name, roles, categories, domains,
// safesearch, everything, clause, why}]}. Roles and categories must exist (read after them).
void loader::load_inspection(const YAML::Node& n) {
  if (!check_map(n, "inspection", {"never", "inspect"})) return;
  auto& ins = p_->inspection;
  if (const auto nv = n["never"];
      nv && check_map(nv, "inspection.never", {"domains", "domain_files"})) {
    if (nv["domains"]) {
      each_domain(nv["domains"], "inspection.never",
                  [&](const std::string& dom, const YAML::Node&) {
                    ins.never.add(dom, 0);
                    ++ins.never_count;
                  });
    }
    if (nv["domain_files"]) {
      for (const auto& f : items(nv["domain_files"], "inspection.never domain_files")) {
        auto s = scalar(f, "inspection.never domain file");
        if (!s) continue;
        bool read = false;
        const auto n = load_list_file(resolve(*s), list_kind::domains, 0, f, true, &read, &ins.never);
        if (read && n.entries == 0) {
          const auto mark = f.Mark();
          warnings_.push_back(
              {file_, mark.line + 1, mark.column + 1,
               "inspection.never: " + resolve(*s).string() + " has no entries (empty list file)"});
        }
        ins.never_count += n.new_domains;
        ins.never_sources.push_back(*s);
      }
    }
  }
  if (!n["inspect"]) return;
  if (!n["inspect"].IsSequence()) {
    error(n["inspect"],
          "inspection.inspect must be a list of entries ({roles, categories, domains, safesearch, "
          "everything, why})");
    return;
  }
  int index = 0;
  for (const auto& e : n["inspect"]) {
    ++index;
    const std::string what = "inspection.inspect entry " + std::to_string(index);
    if (!check_map(e, what,
                   {"name", "roles", "categories", "domains", "safesearch", "everything", "clause",
                    "why"}))
      continue;
    if (ins.inspect.size() >= 65535) {  // entry indexes are the set ids of inspect_domains
      error(e, "inspection.inspect has more than 65,535 entries");
      return;
    }
    inspect_entry entry;
    const std::size_t errors_before = errors_.size();
    entry.id = "inspection entry " + std::to_string(index);
    if (e["name"]) {
      if (auto s = text(e["name"], what + " name")) entry.id += " (" + *s + ")";
    }
    if (e["roles"]) {
      // An empty list (`roles: []`, `roles: ~`, every item commented out) is not "every role":
      // an entry written for pupils decrypted staff HTTPS too (policy audit, 2026-12-05).
      const auto named = items(e["roles"], what + " roles");
      if (named.empty() && (e["roles"].IsNull() || e["roles"].IsSequence())) {
        error(e["roles"], what + " roles is empty: name the roles it inspects for, or leave 'roles' out "
                                 "to mean every role");
        continue;
      }
      for (const auto& rn : named) {
        auto s = scalar(rn, what + " role");
        if (!s) continue;
        const auto it = std::find(role_names_.begin(), role_names_.end(), *s);
        if (it == role_names_.end()) {
          error(rn, what + " names role " + quote(*s) + ", which is not defined" +
                        did_you_mean(*s, role_names_));
          continue;
        }
        entry.roles.push_back(static_cast<std::size_t>(it - role_names_.begin()));
      }
    }
    if (e["categories"]) {
      for (const auto& c : items(e["categories"], what + " categories")) {
        if (const category* cat = named_category(c, what)) {
          add_category_sets(*cat, true, entry.categories);
        }
      }
    }
    if (e["domains"]) {
      each_domain(e["domains"], what, [&](const std::string& dom, const YAML::Node&) {
        ins.inspect_domains.add(dom, static_cast<set_id>(ins.inspect.size()));
        entry.has_domains = true;
      });
    }
    if (e["safesearch"]) {
      if (auto b = boolean(e["safesearch"], what + " safesearch")) entry.safesearch = *b;
    }
    if (e["everything"]) {
      if (auto b = boolean(e["everything"], what + " everything")) entry.everything = *b;
    }
    if (e["clause"]) {
      if (auto s = text(e["clause"], what + " clause")) entry.clause = *s;
    }
    if (e["why"]) {
      if (auto s = scalar(e["why"], what + " why")) entry.why = *s;
    }
    // Decrypting is a privacy matter: an entry says what it covers, never everything by omission.
    // An empty `categories: []` or `domains: []` names nothing either.
    if (entry.categories.empty() && !entry.has_domains && !entry.safesearch && !entry.everything) {
      if ((e["categories"] || e["domains"]) && errors_.size() > errors_before) continue;  // said already
      error(e, what +
                   " names nothing to inspect: give categories, domains, 'safesearch: true' or "
                   "'everything: true'");
      continue;
    }
    ins.inspect.push_back(std::move(entry));
  }
}

}  // namespace hallpass::rules::loading

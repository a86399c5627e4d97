// Loading a policy (policy_loader.hpp): the public entry points, and the loader's run over the
// document, section by section, in the order the sections depend on each other. Each section's
// reading is in its own file (rules/loader.hpp lists them).
#include "rules/policy_loader.hpp"

#include "rules/loader.hpp"
#include "rules/yaml_load.hpp"
#include "rules/yaml_reader.hpp"

#include <chrono>
#include <memory>

namespace hallpass::rules::loading {

load_result loader::run(const parsed_policy_yaml& parsed) {
  load_result result;
  if (!parsed.errors.empty()) {
    result.errors = parsed.errors;
    return result;
  }
  const YAML::Node& root = parsed.root;
  const bool blank = parsed.blank;
  p_ = std::make_unique<policy>();
  p_->source_file = file_;
  if (!opt_.feeds_update_command.empty()) p_->feeds_update_command = opt_.feeds_update_command;
  if (!root || root.IsNull()) {
    // yaml-cpp reads some broken text (",a: 1") as an empty document: say so, not "empty".
    error_at_file(blank ? "the policy file is empty"
                        : "the policy file holds no settings: YAML read it as empty (look for a "
                          "stray character at its start, such as a comma)");
  } else if (check_map(root, "the policy file",
                       {"school", "categories", "roles", "everyone", "fallback_role",
                        "ungrouped_users", "ut1_dir", "exceptions", "inspection", "feeds", "bans"},
                       opt_.other_sections)) {
    load_document(root);
  }
  result.errors = std::move(errors_);
  result.warnings = std::move(warnings_);
  if (result.errors.empty()) result.compiled = std::move(p_);
  return result;
}

void loader::load_document(const YAML::Node& root) {
  if (root["ut1_dir"]) {
    if (auto s = scalar(root["ut1_dir"], "ut1_dir")) ut1_dir_ = resolve(*s);
  }
  if (root["school"]) {
    load_school(root["school"]);
  } else {
    error_at_file("the policy has no 'school' section (name, timezone, timetable)");
    p_->zone = time_zone::utc();
  }
  if (root["feeds"]) load_feeds(root["feeds"]);
  find_allowing_rules(root);
  if (root["categories"]) load_categories(root["categories"]);
  report_missing_feeds();
  if (root["roles"]) {
    load_roles(root["roles"]);
  } else {
    error_at_file("the policy has no 'roles' section: at least one role is needed");
  }
  if (root["everyone"]) {
    const auto e = root["everyone"];
    if (check_map(e, "everyone", {"rules"}) && e["rules"]) {
      p_->everyone_rules = load_rules(e["rules"], "everyone");
    }
  }
  if (const auto e = root["exceptions"];
      e && check_map(e, "exceptions", {"max_duration"}) && e["max_duration"]) {
    if (auto d = duration(e["max_duration"], "exceptions.max_duration")) {
      if (*d < std::chrono::minutes(1) || *d > std::chrono::days(366)) {
        error(e["max_duration"], "exceptions.max_duration must be from 1m to 366d");
      } else {
        p_->max_exception_duration = std::chrono::floor<std::chrono::seconds>(*d);
      }
    }
  }
  if (root["inspection"]) load_inspection(root["inspection"]);
  if (root["bans"]) load_bans(root["bans"]);
  choose_fallback(root["fallback_role"], root["roles"]);
  if (const YAML::Node u = root["ungrouped_users"]) {
    if (auto s = scalar(u, "ungrouped_users")) {
      if (*s == "fallback" || *s == "address") {
        p_->ungrouped_users_fallback = *s == "fallback";
      } else {
        error(u,
              "ungrouped_users must be fallback (a signed-in user whose groups no role lists gets "
              "the fallback role) or address (the client address's role), not " +
                  quote(*s));
      }
    }
  }
  finish_patterns();
  p_->domains.finish();
  for (auto& [host, prefixes] : p_->url_prefixes) prefixes.finish();
  p_->inspection.never.finish();
  p_->inspection.inspect_domains.finish();
}

}  // namespace hallpass::rules::loading

namespace hallpass::rules {

parsed_policy_yaml parse_policy_yaml(std::string_view yaml, const std::string& file_name) {
  parsed_policy_yaml out;
  out.blank = yaml.find_first_not_of(" \t\r\n") == std::string_view::npos;
  try {
    out.root = load_yaml(yaml);
  } catch (const yaml_refused& e) {
    // Aliases that expand far beyond the file, an alias inside its own anchor's node, nesting
    // deeper than yaml-cpp reads, a second document: refused in words before anything walks
    // the tree (rules/yaml_load.hpp).
    out.errors.push_back({file_name, e.mark.line + 1, e.mark.column + 1, e.msg});
  } catch (const YAML::ParserException& e) {
    out.errors.push_back(
        {file_name, e.mark.line + 1, e.mark.column + 1, "this is not valid YAML: " + e.msg});
  }
  return out;
}

load_result load_policy_parsed(const parsed_policy_yaml& parsed, const std::string& file_name,
                               const load_options& options) {
  loading::loader l(options, file_name);
  return l.run(parsed);
}

load_result load_policy_text(std::string_view yaml, const std::string& file_name,
                             const load_options& options) {
  return load_policy_parsed(parse_policy_yaml(yaml, file_name), file_name, options);
}

load_result load_policy(const std::string& path, const load_options& options) {
  std::string err;
  auto text = loading::read_file(path, &err);
  if (!text) {
    load_result r;
    r.errors.push_back({path, 0, 0, err});  // "school.yaml: is a directory"
    return r;
  }
  return load_policy_text(*text, path, options);
}

}  // namespace hallpass::rules

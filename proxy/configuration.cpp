#include "proxy/configuration.hpp"

#include <yaml-cpp/yaml.h>

#include "rules/policy_loader.hpp"

namespace hallpass {

config_load_result load_configuration(const std::string& path, const overrides& o, std::uint64_t generation) {
  config_load_result out;
  rules::load_options lo;
  lo.other_sections = daemon_section_names();
  auto policy = rules::load_policy(path, lo);
  out.errors = std::move(policy.errors);
  out.warnings = std::move(policy.warnings);

  auto c = std::make_shared<configuration>();
  c->path = path;
  c->generation = generation;
  // The daemon sections are read only from a file that parsed as YAML (else the policy
  // loader has already reported the syntax error).
  // A file the policy loader could not read at all ("FILE: is a directory") is not read again.
  const bool unreadable = !out.errors.empty() && out.errors.front().file == path && out.errors.front().line == 0;
  if (!unreadable) {
    try {
      YAML::Node root = YAML::LoadFile(path);
      if (root.IsMap()) c->daemon = load_daemon_config(root, path, out.errors);
    } catch (const std::exception&) {
      // YAML errors, and std::ios_failure from yaml-cpp's stream reads (a file replaced by a
      // directory since): never let one escape and abort the daemon.
      if (out.errors.empty()) out.errors.push_back({path, 0, 0, "cannot read the file as YAML"});
    }
  }
  if (!out.errors.empty()) return out;

  if (!o.listen.empty()) {
    c->daemon.listen.clear();
    for (const auto& l : o.listen) {
      auto a = parse_listen_address(l);
      if (!a) {
        out.errors.push_back({"--listen", 0, 0, "'" + l + "' must be ADDRESS:PORT, like 127.0.0.1:3128 or [::1]:3128"});
        continue;
      }
      c->daemon.listen.push_back(std::move(*a));
    }
  }
  if (o.access_log) c->daemon.access_log.path = *o.access_log;
  if (o.state_dir) c->daemon.state_dir = *o.state_dir;
  if (o.admin_socket) c->daemon.admin.socket = *o.admin_socket;
  if (o.metrics_listen) c->daemon.metrics.listen = *o.metrics_listen == "off" ? "" : *o.metrics_listen;
  if (!out.errors.empty()) return out;
  c->policy = std::move(policy.compiled);
  out.config = std::move(c);
  return out;
}

config_load_result config_store::reload() {
  std::lock_guard lock(reload_mutex_);
  auto r = load_configuration(path_, overrides_, generation_.load() + 1);
  if (r.config) {
    current_.store(r.config, std::memory_order_release);
    generation_.store(r.config->generation, std::memory_order_release);
  }
  return r;
}

}  // namespace hallpass

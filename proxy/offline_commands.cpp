#include "proxy/offline_commands.hpp"

#include <chrono>
#include <iostream>

#include "rules/explain.hpp"
#include "rules/policy_loader.hpp"
#include "proxy/configuration.hpp"

namespace hallpass {
namespace {

struct arg_reader {
  const std::vector<std::string>& args;
  std::size_t i = 0;
  bool done() const { return i >= args.size(); }
  const std::string& peek() const { return args[i]; }
  // For "--flag VALUE" and "--flag=VALUE".
  bool take(std::string_view flag, std::string& value, std::string& error) {
    const std::string& a = args[i];
    if (a == flag) {
      if (i + 1 >= args.size()) {
        error = std::string(flag) + " needs a value";
        return true;
      }
      value = args[i + 1];
      i += 2;
      return true;
    }
    if (a.size() > flag.size() && a.starts_with(flag) && a[flag.size()] == '=') {
      value = a.substr(flag.size() + 1);
      ++i;
      return true;
    }
    return false;
  }
};

// The same loading `hallpass run` does: the policy and the daemon's sections of the file.
config_load_result load(const std::string& path) { return load_configuration(path, overrides{}, 1); }

void print_diagnostics(const rules::diagnostics& d, std::ostream& out, std::string_view prefix = "") {
  for (const auto& x : d) out << prefix << x.to_string() << "\n";
}

}  // namespace

int run_check(const std::vector<std::string>& args) {
  std::string config, error;
  bool quiet = false;
  arg_reader r{args};
  while (!r.done()) {
    if (r.take("--config", config, error)) {
      if (!error.empty()) break;
    } else if (r.peek() == "--quiet" || r.peek() == "-q") {
      quiet = true;
      ++r.i;
    } else {
      error = "unknown argument '" + r.peek() + "'";
      break;
    }
  }
  if (error.empty() && config.empty()) error = "--config FILE is required";
  if (!error.empty()) {
    std::cerr << "hallpass check: " << error << "\nusage: hallpass check --config FILE [--quiet]\n";
    return 2;
  }
  const auto result = load(config);
  print_diagnostics(result.warnings, std::cerr, "warning: ");
  if (!result.config) {
    print_diagnostics(result.errors, std::cerr);
    std::cerr << config << ": " << result.errors.size() << (result.errors.size() == 1 ? " error" : " errors")
              << "; the policy was not loaded\n";
    return 1;
  }
  std::cout << config << ": OK\n";
  if (!quiet) {
    const auto& d = result.config->daemon;
    std::cout << rules::policy_summary(*result.config->policy);
    std::cout << "Proxy: listen";
    for (const auto& l : d.listen) std::cout << " " << l.text;
    std::cout << "; metrics " << (d.metrics.listen.empty() ? "off" : d.metrics.listen) << "; access log "
              << (d.access_log.path.empty() || d.access_log.path == "off" ? "off" : d.access_log.path)
              << (d.access_log.keep_query ? " (with query strings)" : "") << "; CONNECT ports";
    for (auto p : d.connect.ports) std::cout << " " << p;
    std::cout << "\n";
  }
  return 0;
}

int run_explain(const std::vector<std::string>& args) {
  std::string config, role, client, user, at, method = "GET", url, error;
  bool json = false;
  arg_reader r{args};
  while (!r.done() && error.empty()) {
    if (r.take("--config", config, error) || r.take("--role", role, error) || r.take("--client", client, error) ||
        r.take("--user", user, error) || r.take("--at", at, error) || r.take("--method", method, error)) {
      continue;
    }
    if (r.peek() == "--json") {
      json = true;
      ++r.i;
    } else if (r.peek().starts_with("--")) {
      error = "unknown option '" + r.peek() + "'";
    } else if (url.empty()) {
      url = r.peek();
      ++r.i;
    } else {
      error = "only one URL may be explained at a time ('" + r.peek() + "' is extra)";
    }
  }
  if (error.empty()) {
    if (config.empty()) error = "--config FILE is required";
    else if (role.empty() == client.empty()) error = "give exactly one of --role NAME or --client ADDRESS";
    else if (url.empty()) error = "give the URL to explain";
  }
  if (!error.empty()) {
    std::cerr << "hallpass explain: " << error
              << "\nusage: hallpass explain --config FILE (--role NAME | --client ADDRESS) [--user NAME]\n"
                 "                        [--at \"YYYY-MM-DD HH:MM\"] [--method M] [--json] URL\n";
    return 2;
  }
  const auto result = load(config);
  print_diagnostics(result.warnings, std::cerr, "warning: ");
  if (!result.config) {
    print_diagnostics(result.errors, std::cerr);
    std::cerr << "hallpass explain: " << config << " is not a valid policy\n";
    return 1;
  }
  const rules::policy& p = *result.config->policy;

  rules::request_facts f;
  if (!role.empty() && !p.find_role(role)) {
    std::string names;
    for (const auto& x : p.roles) names += (names.empty() ? "" : ", ") + x.name;
    std::vector<std::string> candidates;
    for (const auto& x : p.roles) candidates.push_back(x.name);
    auto hint = rules::closest_match(role, candidates);
    std::cerr << "hallpass explain: the policy has no role '" << role << "'"
              << (hint.empty() ? "" : "; did you mean '" + hint + "'?") << " (roles: " << names << ")\n";
    return 2;
  }
  f.role = role;
  if (!client.empty()) {
    f.client = rules::ip_address::parse(client);
    if (!f.client) {
      std::cerr << "hallpass explain: --client '" << client << "' is not an IPv4 or IPv6 address\n";
      return 2;
    }
  }
  f.user = user;
  for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  f.method = method;
  std::string url_error;
  auto parts = rules::split_url(url, &url_error);
  if (!parts) {
    std::cerr << "hallpass explain: " << url_error << "\n";
    return 2;
  }
  f.scheme = parts->scheme;
  f.host = parts->host;
  f.port = parts->port;
  f.path = parts->path;
  if (at.empty()) {
    f.time = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  } else {
    auto local = rules::parse_local_time(at);
    if (!local) {
      std::cerr << "hallpass explain: --at '" << at << "' is not a school-local time like \"2026-11-23 11:00\"\n";
      return 2;
    }
    f.time = p.zone.to_sys(*local);
  }
  const auto e = rules::explain(p, f);
  if (json) {
    std::cout << rules::explanation_json(p, f, e) << "\n";
  } else {
    std::cout << "URL:      " << url << "\n" << rules::explanation_text(p, f, e);
  }
  return 0;
}

}  // namespace hallpass

// Helpers more than one of proxy/'s unit tests use: written once (they are compiled together
// in one translation unit in a unity build, HALLPASS_UNITY, where two copies would clash).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "proxy/daemon_config.hpp"

namespace hallpass_test {

// How many times `needle` occurs in `haystack`, overlaps included.
inline std::size_t count(std::string_view haystack, std::string_view needle) {
  std::size_t n = 0;
  for (auto at = haystack.find(needle); at != std::string_view::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

// Whether `part` occurs in `s`.
inline bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// An address the test writes out ("10.0.0.7"), known to be valid.
inline hallpass::rules::ip_address ip(std::string_view s) { return *hallpass::rules::ip_address::parse(s); }

// The daemon's settings from a configuration's text, with every error, one per line.
struct loaded_config {
  hallpass::daemon_config config;
  std::string errors;
};

inline loaded_config load_config(const std::string& yaml) {
  hallpass::rules::diagnostics d;
  loaded_config r;
  r.config = hallpass::load_daemon_config(YAML::Load(yaml), "policy.yaml", d);
  for (const auto& e : d) r.errors += e.to_string() + "\n";
  return r;
}

}  // namespace hallpass_test

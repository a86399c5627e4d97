// Reading a YAML configuration the way a technician needs it read: every problem collected
// as "FILE:LINE:COL: message" in plain words, unknown keys reported with a "did you mean"
// hint, and reading carried on so that all errors are shown at once.
//
// A base for the policy loader and the daemon's own config sections. One instance reads one
// file on one thread.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rules/diagnostic.hpp"

namespace hallpass::rules {

std::string quote(std::string_view s);
std::string join(const std::vector<std::string>& v, std::string_view sep);
// Closest candidate within a small edit distance, for "did you mean ...?" hints; empty if none.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

// A path written in `file`: relative to the file's directory (the working directory of
// whoever runs `check` or `run` must not change what a policy means). Absolute and empty
// paths, and any path when the text was not read from a file ("" file), are returned as they
// are.
std::string resolve_beside(const std::string& file, const std::string& path);

class yaml_reader {
 public:
  explicit yaml_reader(std::string file) : file_(std::move(file)) {}

  const std::string& file() const { return file_; }
  diagnostics& errors() { return errors_; }
  diagnostics& warnings() { return warnings_; }

  void error(const YAML::Node& n, std::string message);
  void error_at(const YAML::Mark& m, std::string message);
  void error_at_file(std::string message);
  static std::string did_you_mean(std::string_view word, const std::vector<std::string>& options);

  // Reports unknown and duplicate keys; returns false (and reports it) only when n is not a
  // mapping. The caller still reads the known keys.
  bool check_map(const YAML::Node& n, const std::string& what, std::initializer_list<std::string_view> allowed,
                 const std::vector<std::string>& also_allowed = {});
  std::optional<std::string> scalar(const YAML::Node& n, const std::string& what);
  // A scalar that people read (the school's name, a rule's name, reason or clause: on block
  // pages, in explain, in hallpassctl): valid UTF-8 without control characters or characters
  // that change how text reads unseen (rules/utf8.hpp, is_unsafe_on_a_terminal), which the
  // admin protocol refuses too. Before 2026-12-05 `check` printed a school name's escape
  // sequences raw (outside-in audit H). Line breaks and tabs (a block scalar, `reason: >`) are
  // read as spaces, and trailing ones dropped.
  std::optional<std::string> text(const YAML::Node& n, const std::string& what);
  // A list, or a single scalar taken as a one-item list.
  std::vector<YAML::Node> items(const YAML::Node& n, const std::string& what);
  std::optional<bool> boolean(const YAML::Node& n, const std::string& what);
  // "500ms", "10s", "5m", "2h", "1d"; a bare number is seconds.
  std::optional<std::chrono::milliseconds> duration(const YAML::Node& n, const std::string& what);
  // A whole number in [min, max].
  std::optional<long long> integer(const YAML::Node& n, const std::string& what, long long min, long long max);
  // A path written in the file: resolve_beside(file(), path).
  std::string resolve_path(const std::string& path) const;
  // scalar(), as a path by resolve_path().
  std::optional<std::string> path(const YAML::Node& n, const std::string& what);

 protected:
  std::string file_;
  diagnostics errors_, warnings_;
};

// Parses "500ms", "10s", "5m", "2h", "1d", at most 100 years. A number without a unit is
// refused, but for "0": "365" could mean seconds or days.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// For an error about a duration: ": a number needs its unit (365s, 365m, 365h or 365d?)" when
// `text` is a bare number, naming only the units that give a duration from `least` to `most`
// (the setting's range); "" when it is not a bare number or no unit would do ("0" for a
// setting of at least 1s).
std::string duration_hint(std::string_view text, std::chrono::milliseconds least = std::chrono::milliseconds(0),
                          std::chrono::milliseconds most = std::chrono::days(36500));

}  // namespace hallpass::rules

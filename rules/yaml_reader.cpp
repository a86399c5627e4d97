#include "rules/yaml_reader.hpp"

#include "rules/utf8.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

namespace hallpass::rules {

std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

namespace {
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t sub = prev[j - 1] + (std::tolower(a[i - 1]) == std::tolower(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}
}  // namespace

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

void yaml_reader::error(const YAML::Node& n, std::string message) {
  const auto m = n.Mark();
  errors_.push_back({file_, m.line >= 0 ? m.line + 1 : 0, m.column >= 0 ? m.column + 1 : 0, std::move(message)});
}

void yaml_reader::error_at(const YAML::Mark& m, std::string message) {
  errors_.push_back({file_, m.line >= 0 ? m.line + 1 : 0, m.column >= 0 ? m.column + 1 : 0, std::move(message)});
}

void yaml_reader::error_at_file(std::string message) { errors_.push_back({file_, 0, 0, std::move(message)}); }

std::string yaml_reader::did_you_mean(std::string_view word, const std::vector<std::string>& options) {
  auto best = closest_match(word, options);
  return best.empty() ? std::string() : "; did you mean " + quote(best) + "?";
}

bool yaml_reader::check_map(const YAML::Node& n, const std::string& what,
                            std::initializer_list<std::string_view> allowed,
                            const std::vector<std::string>& also_allowed) {
  if (!n.IsMap()) {
    error(n, what + " must be a mapping of keys to values");
    return false;
  }
  std::vector<std::string> names(allowed.begin(), allowed.end());
  names.insert(names.end(), also_allowed.begin(), also_allowed.end());
  std::set<std::string> seen;
  for (const auto& kv : n) {
    if (!kv.first.IsScalar()) {
      error(kv.first, "a key in " + what + " must be a plain word");
      continue;
    }
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) error(kv.first, "the key " + quote(key) + " appears twice in " + what);
    if (std::find(names.begin(), names.end(), key) == names.end()) {
      error(kv.first, "unknown key " + quote(key) + " in " + what + did_you_mean(key, names) + " (allowed: " +
                          join(names, ", ") + ")");
    }
  }
  return true;
}

std::string resolve_beside(const std::string& file, const std::string& path) {
  if (path.empty() || file.empty() || path.front() == '/') return path;
  const auto slash = file.rfind('/');
  if (slash == std::string::npos) return path;  // a file in the working directory
  return file.substr(0, slash + 1) + path;
}

std::string yaml_reader::resolve_path(const std::string& path) const { return resolve_beside(file_, path); }

std::optional<std::string> yaml_reader::path(const YAML::Node& n, const std::string& what) {
  auto s = scalar(n, what);
  if (s) *s = resolve_path(*s);
  return s;
}

std::optional<std::string> yaml_reader::scalar(const YAML::Node& n, const std::string& what) {
  if (!n.IsScalar()) {
    error(n, what + " must be a single value, not " +
                 (n.IsSequence() ? "a list" : n.IsMap() ? "a mapping" : "empty"));
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<std::string> yaml_reader::text(const YAML::Node& n, const std::string& what) {
  auto s = scalar(n, what);
  if (!s) return std::nullopt;
  // A block scalar (`reason: >` or `|`) ends in a newline and may hold more: the text is read as
  // one line, its line breaks and tabs as spaces (a reload refused `reason: >` at first: re-audit,
  // 2026-12-05).
  while (!s->empty() && (s->back() == '\n' || s->back() == '\r' || s->back() == ' ')) s->pop_back();
  for (auto& c : *s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  for (std::size_t i = 0; i < s->size();) {
    std::uint32_t cp = 0;
    const std::size_t length = utf8_sequence(*s, i, cp);
    if (length == 0) {
      error(n, what + " is not valid UTF-8 text");
      return std::nullopt;
    }
    if (is_unsafe_on_a_terminal(cp)) {
      error(n, what + " holds a control or invisible character (" + terminal_safe(s->substr(i, length)) +
                   "): write it as plain text");
      return std::nullopt;
    }
    i += length;
  }
  return s;
}

std::vector<YAML::Node> yaml_reader::items(const YAML::Node& n, const std::string& what) {
  std::vector<YAML::Node> out;
  if (n.IsSequence()) {
    for (const auto& i : n) out.push_back(i);
  } else if (n.IsScalar()) {
    out.push_back(n);
  } else if (!n.IsNull()) {
    error(n, what + " must be a list");
  }
  return out;
}

std::optional<bool> yaml_reader::boolean(const YAML::Node& n, const std::string& what) {
  auto s = scalar(n, what);
  if (!s) return std::nullopt;
  if (*s == "true" || *s == "yes" || *s == "on") return true;
  if (*s == "false" || *s == "no" || *s == "off") return false;
  error(n, what + " must be true or false, not " + quote(*s));
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view t) {
  long long v = 0;
  auto r = std::from_chars(t.data(), t.data() + t.size(), v);
  if (r.ec != std::errc() || v < 0) return std::nullopt;
  const std::string_view unit(r.ptr, static_cast<std::size_t>(t.data() + t.size() - r.ptr));
  // A number without a unit is refused (but 0, the same in every unit): "records: 365" meant as
  // days once kept a school's records for six minutes.
  if (unit.empty() && v != 0) return std::nullopt;
  // At most 100 years in any unit, so that no conversion (to a steady_clock's nanoseconds
  // for a timer, about 292 years at most) overflows.
  const long long unit_ms = unit == "ms" ? 1 : unit == "s" || unit.empty() ? 1000 : unit == "m" ? 60'000
                            : unit == "h" ? 3'600'000 : unit == "d" ? 86'400'000 : unit == "w" ? 604'800'000 : 0;
  if (unit_ms == 0 || v > 3'153'600'000'000LL / unit_ms) return std::nullopt;
  return std::chrono::milliseconds{v * unit_ms};
}

std::string duration_hint(std::string_view t, std::chrono::milliseconds least, std::chrono::milliseconds most) {
  const bool digits = !t.empty() && t.size() <= 12 &&
                      std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits) return {};
  // Only the spellings the setting would take: "retention.records: 0" was told "0s, 0m, 0h or
  // 0d?", and 0s was then refused too (admin audit, 2026-12-05, F10).
  const long long n = std::stoll(std::string(t));
  std::vector<std::string> fits;
  for (const auto& [unit, ms] : {std::pair{"s", 1'000LL}, std::pair{"m", 60'000LL}, std::pair{"h", 3'600'000LL},
                                 std::pair{"d", 86'400'000LL}}) {
    if (n > most.count() / ms) continue;
    if (std::chrono::milliseconds(n * ms) >= least) fits.push_back(std::string(t) + unit);
  }
  if (fits.empty()) return {};
  std::string list;
  for (std::size_t i = 0; i < fits.size(); ++i) {
    list += (i == 0 ? "" : i + 1 == fits.size() ? " or " : ", ") + fits[i];
  }
  return ": a number needs its unit (" + list + "?)";
}

std::optional<std::chrono::milliseconds> yaml_reader::duration(const YAML::Node& n, const std::string& what) {
  auto s = scalar(n, what);
  if (!s) return std::nullopt;
  auto d = parse_duration(*s);
  if (!d) error(n, what + " must be a duration like 500ms, 10s, 5m, 2h or 3d, not " + quote(*s) + duration_hint(*s));
  return d;
}

std::optional<long long> yaml_reader::integer(const YAML::Node& n, const std::string& what, long long min,
                                              long long max) {
  auto s = scalar(n, what);
  if (!s) return std::nullopt;
  long long v = 0;
  auto r = std::from_chars(s->data(), s->data() + s->size(), v);
  if (r.ec != std::errc() || r.ptr != s->data() + s->size() || v < min || v > max) {
    error(n, what + " must be a whole number from " + std::to_string(min) + " to " + std::to_string(max) +
                 ", not " + quote(*s));
    return std::nullopt;
  }
  return v;
}

}  // namespace hallpass::rules

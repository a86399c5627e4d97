#include "rules/decision.hpp"

#include <algorithm>

#include "rules/ban.hpp"
#include "rules/host.hpp"

namespace hallpass::rules {

namespace {

verdict decide_one(const policy& p, const exception_index* overlay, const request_facts& facts) {
  verdict v = decide(p, facts);
  if (overlay) {
    overlay->apply(v, facts);
    // A ban wins over exceptions (it is applied after them); locked categories stay locked.
    if (const ban_entry* b = overlay->ban_for(facts)) apply_ban(p, *b, v);
  }
  return v;
}

bool is_backslash_escape(std::string_view s, std::size_t i) {
  return i + 2 < s.size() && s[i] == '%' && s[i + 1] == '5' && (s[i + 2] == 'C' || s[i + 2] == 'c');
}

// "/a\b" and "/a%5Cb" as "/a/b".
std::string backslashes_as_slashes(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '\\') {
      out.push_back('/');
    } else if (is_backslash_escape(path, i)) {
      out.push_back('/');
      i += 2;
    } else {
      out.push_back(path[i]);
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> other_path_readings(std::string_view path_and_query) {
  const std::size_t q = path_and_query.find('?');
  const std::string_view path = path_and_query.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view() : path_and_query.substr(q);
  const bool parameters = path.find(';') != std::string_view::npos;
  bool backslashes = path.find('\\') != std::string_view::npos;
  for (std::size_t i = path.find('%'); !backslashes && i != std::string_view::npos; i = path.find('%', i + 1)) {
    backslashes = is_backslash_escape(path, i);
  }
  std::vector<std::string> out;
  if (!parameters && !backslashes) return out;
  auto add = [&](std::string reading) {
    reading.append(query);
    if (reading != path_and_query && std::find(out.begin(), out.end(), reading) == out.end()) out.push_back(std::move(reading));
  };
  if (parameters) add(path_without_parameters(path));
  if (backslashes) {
    const std::string slashed = backslashes_as_slashes(path);
    add(slashed);
    if (parameters) add(path_without_parameters(slashed));
  }
  return out;
}

std::string read_as_note(const verdict& v) {
  return "decided on the path as some servers read it, '" +
         path_without_parameters(std::string_view(v.read_as).substr(0, v.read_as.find('?'))) +
         "' (path parameters dropped before '..', as Tomcat and Jetty do, or '\\' read as '/', as IIS does): "
         "that reading is blocked";
}

verdict decide_request(const policy& p, const exception_index* overlay, const request_facts& facts) {
  verdict v = decide_one(p, overlay, facts);
  if (v.act == action::block || !facts.path) return v;
  const bool parameters = facts.path->substr(0, facts.path->find('?')).find(';') != std::string_view::npos;
  for (auto& reading : other_path_readings(*facts.path)) {
    request_facts other = facts;
    other.path = reading;
    // Every other reading of a path with parameters drops them (other_path_readings).
    other.path_parameters_dropped = parameters && reading.substr(0, reading.find('?')).find(';') == std::string::npos;
    verdict w = decide_one(p, overlay, other);
    if (w.act == action::block) {
      // Shown as decided: dot segments resolved ("/x/../admin" is "/admin").
      if (std::string canonical; normalize_path(reading, canonical)) reading = std::move(canonical);
      w.read_as = std::move(reading);
      return w;
    }
  }
  return v;
}

}  // namespace hallpass::rules

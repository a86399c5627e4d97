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

bool is_slash_escape(std::string_view s, std::size_t i) {
  return i + 2 < s.size() && s[i] == '%' && s[i + 1] == '2' && (s[i + 2] == 'F' || s[i + 2] == 'f');
}

// "." and ".." as URL parsers recognise them, "%2e" for either dot (WHATWG; RFC 3986 6.2.2.2).
bool is_dot_segment(std::string_view s) { return s == "." || ascii_iequals(s, "%2e"); }
bool is_dot_dot_segment(std::string_view s) {
  return s == ".." || ascii_iequals(s, ".%2e") || ascii_iequals(s, "%2e.") || ascii_iequals(s, "%2e%2e");
}

// RFC 3986 5.2.4's remove_dot_segments as WHATWG's path parser does it: an empty segment is a
// segment ("/a//.." is "/a/"). `path` starts with "/".
std::string dots_resolved_keeping_empty_segments(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t at = !path.empty() && path.front() == '/' ? 1 : 0;
  while (true) {
    const std::size_t slash = path.find('/', at);
    const bool last = slash == std::string_view::npos;
    const std::string_view seg = last ? path.substr(at) : path.substr(at, slash - at);
    if (is_dot_dot_segment(seg)) {
      if (!out.empty()) out.pop_back();
      if (last) out.emplace_back();
    } else if (is_dot_segment(seg)) {
      if (last) out.emplace_back();
    } else {
      out.push_back(seg);
    }
    if (last) break;
    at = slash + 1;
  }
  std::string r;
  for (auto seg : out) r.append("/").append(seg);
  return r.empty() ? std::string("/") : r;
}

// "%2F" as "%252F": an escape normalize_path keeps as it is, so its segment stays whole.
std::string slash_escapes_kept(std::string_view path) {
  std::string out;
  out.reserve(path.size() + 8);
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (is_slash_escape(path, i)) {
      out.append("%252");
      out.push_back(path[i + 2]);
      i += 2;
    } else {
      out.push_back(path[i]);
    }
  }
  return out;
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
  bool encoded_slashes = false;
  for (std::size_t i = path.find('%'); i != std::string_view::npos; i = path.find('%', i + 1)) {
    backslashes = backslashes || is_backslash_escape(path, i);
    encoded_slashes = encoded_slashes || is_slash_escape(path, i);
  }
  const bool empty_segments = path.find("//") != std::string_view::npos;
  if (!parameters && !backslashes && !encoded_slashes && !empty_segments) return {};
  std::vector<std::string> paths;  // without the query, and never the path as written
  auto add = [&](std::string reading) {
    if (reading != path && std::find(paths.begin(), paths.end(), reading) == paths.end()) paths.push_back(std::move(reading));
  };
  if (parameters) add(path_without_parameters(path));
  if (backslashes) {
    const std::string slashed = backslashes_as_slashes(path);
    add(slashed);
    if (parameters) add(path_without_parameters(slashed));
  }
  // The path as written and each reading so far, with dot segments resolved as RFC 3986 5.2.4
  // and WHATWG URL parsers (Node's, undici, Deno) do, empty segments kept: "/bad//.." is
  // "/bad/" to them, where normalize_path (and nginx, Tomcat) collapse "//" first and read "/".
  {
    std::vector<std::string> kept{std::string(path)};
    kept.insert(kept.end(), paths.begin(), paths.end());
    for (const auto& k : kept) {
      if (k.find("//") != std::string::npos) add(dots_resolved_keeping_empty_segments(k));
    }
  }
  // "%2F" kept inside its segment, as servers that do not decode it before routing read it
  // (WHATWG parsers, Express, Apache with AllowEncodedSlashes NoDecode): "/secret/%2F.." is
  // under "/secret/" to them, where normalize_path reads "/". Written "%252F" here, an escape
  // normalize_path keeps as it is (read_as_note shows it as "%2F" again).
  if (encoded_slashes) add(slash_escapes_kept(path));
  std::vector<std::string> out;
  out.reserve(paths.size());
  for (auto& r : paths) out.push_back(r.append(query));
  return out;
}

namespace {

std::string read_as_note(const verdict& v) {
  std::string shown = path_without_parameters(std::string_view(v.read_as).substr(0, v.read_as.find('?')));
  for (std::size_t at = shown.find("%252"); at != std::string::npos; at = shown.find("%252", at + 1)) {
    if (at + 4 < shown.size() && (shown[at + 4] == 'F' || shown[at + 4] == 'f')) shown.erase(at + 1, 2);
  }
  return "decided on the path as some servers read it, '" + shown +
         "' (path parameters dropped before '..', as Tomcat and Jetty do; '\\' read as '/', as IIS does; "
         "'//' kept before '..', as URL parsers such as Node's do; or '%2F' left undecoded): that reading is "
         "blocked";
}

}  // namespace

std::vector<std::string> path_notes(const verdict& v) {
  std::vector<std::string> notes;
  if (!v.host_read_as.empty()) {
    notes.push_back("decided as the IPv4 address " + v.host_read_as + ", which the IPv6 address " + v.host.text +
                    " reaches");
  }
  if (!v.method_read_as.empty()) {
    notes.push_back("decided as the method " + v.method_read_as +
                    ", which the request names in a method-override header (X-HTTP-Method-Override); "
                    "many servers act on that method instead");
  }
  if (!v.read_as.empty()) notes.push_back(read_as_note(v));
  if (!v.url_without_case.empty()) {
    // The entry's path before any query: the query compares exactly, and may be kept out of logs.
    const std::string_view entry = v.url_without_case.substr(0, v.url_without_case.find('?'));
    notes.push_back("the path matches the blocked URL '" + std::string(entry) +
                    "' only without regard to case; servers such as IIS read paths without case, so a "
                    "block's URL matches in any case (an allow's only as written)");
  }
  return notes;
}

namespace {

// decide_request for one host: the path as written, then its other readings.
verdict decide_paths(const policy& p, const exception_index* overlay, const request_facts& facts) {
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

// decide_request for one method: the host as written, then the IPv4 address it reaches.
verdict decide_hosts(const policy& p, const exception_index* overlay, const request_facts& facts) {
  verdict v = decide_paths(p, overlay, facts);
  if (v.act == action::block || v.host.kind != host_kind::ipv6) return v;
  // An IPv6 address that reaches an IPv4 one (::ffff:1.1.1.1, NAT64) is decided as that address
  // too, and blocked if it is blocked: a list's IPv4 entry (a DNS-over-HTTPS resolver) was
  // reached through [::ffff:1.1.1.1] (outside-in audit, 2026-12-05). As with paths, an allow
  // opens only what it opens in both readings. The verdict keeps the host as the request named it.
  const auto address = ip_address::parse(v.host.text);
  const auto reached = address ? ipv4_reached_by(*address) : std::nullopt;
  if (!reached) return v;
  const std::string ipv4 = reached->to_string();
  request_facts other = facts;
  other.host = ipv4;
  verdict w = decide_paths(p, overlay, other);
  if (w.act != action::block) return v;
  w.host_read_as = ipv4;
  w.host = v.host;
  return w;
}

}  // namespace

verdict decide_request(const policy& p, const exception_index* overlay, const request_facts& facts) {
  verdict v = decide_hosts(p, overlay, facts);
  if (v.act == action::block || facts.method_overrides.empty()) return v;
  // A method-override header names the method some servers act on: a rule for DELETE would
  // otherwise not see a POST that says "X-HTTP-Method-Override: DELETE". As with paths, the
  // request is blocked if it is blocked as any method it names.
  for (const std::string& method : facts.method_overrides) {
    if (ascii_iequals(method, facts.method)) continue;
    request_facts other = facts;
    other.method = method;
    other.method_overrides = {};
    verdict w = decide_hosts(p, overlay, other);
    if (w.act == action::block) {
      w.method_read_as = method;
      return w;
    }
  }
  return v;
}

}  // namespace hallpass::rules

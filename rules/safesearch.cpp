#include "rules/safesearch.hpp"

#include "rules/utf8.hpp"

#include <algorithm>
#include <array>

namespace hallpass::rules {
namespace {

bool is_alpha2(std::string_view s) {
  return s.size() == 2 && std::all_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

// "google." followed by com, a two-letter country code, co.CC or com.CC: Google's search
// domains (google.co.uk, google.de, google.com.au), and google.cat, the one of Google's
// supported domains outside that pattern (found missing by an outside-in audit, 2026-12-05).
// "google.evil.com" is not one.
bool is_google_search_host(std::string_view h) {
  if (h.starts_with("www.")) h.remove_prefix(4);
  if (!h.starts_with("google.")) return false;
  h.remove_prefix(7);
  if (h == "com" || h == "cat" || is_alpha2(h)) return true;
  if (h.starts_with("co.")) return is_alpha2(h.substr(3));
  if (h.starts_with("com.")) return is_alpha2(h.substr(4));
  return false;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// Lower case, without a trailing dot: hosts arrive as clients wrote them.
std::string_view host_key(std::string_view host, std::array<char, 256>& buf) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.size() > buf.size()) return {};
  for (std::size_t i = 0; i < host.size(); ++i) buf[i] = lower(host[i]);
  return {buf.data(), host.size()};
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes (and turns '+' into a space); a '%' not followed by two hex digits stays as
// written. Stops once `limit` bytes are out.
std::string form_decode(std::string_view in, std::size_t limit = std::string::npos) {
  std::string out;
  out.reserve(std::min(in.size(), limit));
  for (std::size_t i = 0; i < in.size() && out.size() < limit; ++i) {
    const char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < in.size() && hex_value(in[i + 1]) >= 0 && hex_value(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view param_name(std::string_view piece) { return piece.substr(0, piece.find('=')); }

// path?query with the parameter `name` set to `value`: replaced where it first stands (its
// repeats removed), else appended. nullopt when it already stood there once with that value.
std::optional<std::string> set_param(std::string_view pq, std::string_view name, std::string_view value) {
  const auto q = pq.find('?');
  const std::string_view path = pq.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view() : pq.substr(q + 1);
  std::string wanted(name);
  wanted.append("=").append(value);
  std::string out(path);
  out.reserve(pq.size() + wanted.size() + 2);
  bool any = false, placed = false, changed = false;
  auto append = [&](std::string_view piece) {
    out.push_back(any ? '&' : '?');
    out.append(piece);
    any = true;
  };
  if (!query.empty()) {
    for_each_param(query, [&](std::string_view piece) {
      if (!iequals(form_decode(param_name(piece), 64), name)) {
        append(piece);
      } else if (!placed) {
        append(wanted);
        placed = true;
        changed = changed || piece != wanted;
      } else {
        changed = true;  // a repeat: dropped, so that no reading of the query finds it
      }
    });
  }
  if (!placed) {
    append(wanted);
    changed = true;
  }
  if (!changed) return std::nullopt;
  return out;
}

std::optional<std::string_view> first_param(std::string_view query, std::string_view name) {
  std::optional<std::string_view> found;
  if (query.empty()) return found;
  for_each_param(query, [&](std::string_view piece) {
    if (found) return;
    const auto eq = piece.find('=');
    if (eq == std::string_view::npos) return;
    if (form_decode(piece.substr(0, eq), 64) == name) found = piece.substr(eq + 1);
  });
  return found;
}

// Whether the query names the parameter, spelt any way set_param would replace it.
bool has_param(std::string_view query, std::string_view name) {
  bool found = false;
  if (query.empty()) return found;
  for_each_param(query, [&](std::string_view piece) {
    found = found || iequals(form_decode(param_name(piece), 64), name);
  });
  return found;
}

// Whether a raw ';' in the query starts a parameter called `name` (spelt any way set_param
// reads it): "q=a;safe=off" to a server that also splits at ';'.
bool semicolon_names(std::string_view query, std::string_view name) {
  for (auto at = query.find(';'); at != std::string_view::npos; at = query.find(';', at + 1)) {
    std::string_view piece = query.substr(at + 1);
    piece = piece.substr(0, piece.find_first_of("&;"));
    if (iequals(form_decode(param_name(piece), 64), name)) return true;
  }
  return false;
}

bool one_of(std::string_view s, std::initializer_list<std::string_view> list) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

// Whether a path is one of `paths` however it is spelt ("//Search/", "/search;x",
// "/x/../search", "/%73earch": page_path). Builds one small string: only for a search
// engine's host.
bool path_in(std::string_view path, std::initializer_list<std::string_view> paths) {
  return one_of(page_path(path), paths);
}

bool google_search_path(std::string_view path) {
  return path_in(path, {"/search", "/webhp", "/images", "/imghp", "/complete/search"});
}
bool bing_search_path(std::string_view path) {
  return path_in(path, {"/search", "/images/search", "/videos/search", "/news/search"});
}
bool duckduckgo_search_path(std::string_view path) { return path_in(path, {"/", "/html", "/lite"}); }

}  // namespace

std::string_view to_string(search_service s) {
  switch (s) {
    case search_service::none: return "none";
    case search_service::google: return "Google";
    case search_service::bing: return "Bing";
    case search_service::duckduckgo: return "DuckDuckGo";
    case search_service::youtube: return "YouTube";
  }
  return "none";
}

std::string_view to_string(safesearch_level l) {
  switch (l) {
    case safesearch_level::off: return "off";
    case safesearch_level::moderate: return "moderate";
    case safesearch_level::strict: return "strict";
  }
  return "off";
}

search_service search_service_of(std::string_view raw) {
  std::array<char, 256> buf;
  const std::string_view h = host_key(raw, buf);
  if (h.empty()) return search_service::none;
  // ipv4. and ipv6.google.com serve search too (audit20 D3); images.google.* and
  // encrypted.google.com answer searches or redirect them (audit of ways round the filter,
  // 2026-12-06, F4).
  if (is_google_search_host(h) || one_of(h, {"ipv4.google.com", "ipv6.google.com", "encrypted.google.com"}) ||
      (h.starts_with("images.") && is_google_search_host(h.substr(7)))) {
    return search_service::google;
  }
  if (h == "www.bing.com" || h == "bing.com") return search_service::bing;
  if (one_of(h, {"duckduckgo.com", "www.duckduckgo.com", "html.duckduckgo.com", "lite.duckduckgo.com"})) {
    return search_service::duckduckgo;
  }
  if (one_of(h, {"www.youtube.com", "youtube.com", "m.youtube.com", "music.youtube.com", "youtubei.googleapis.com",
                 "youtube.googleapis.com", "www.youtube-nocookie.com", "youtube-nocookie.com"})) {
    return search_service::youtube;
  }
  return search_service::none;
}

safesearch_level safesearch_for(const policy&, const verdict& v, search_service s) {
  if (!v.chosen_role || s == search_service::none) return safesearch_level::off;
  return s == search_service::youtube ? v.chosen_role->safesearch.youtube : v.chosen_role->safesearch.search;
}

std::optional<std::string_view> safesearch_connect_host(const policy& p, const verdict& v, std::string_view host) {
  std::array<char, 256> buf;
  const std::string_view h = host_key(host, buf);
  const auto service = search_service_of(h);
  const auto level = safesearch_for(p, v, service);
  if (level == safesearch_level::off) return std::nullopt;
  switch (service) {
    case search_service::google: return "forcesafesearch.google.com";
    case search_service::bing: return "strict.bing.com";
    case search_service::duckduckgo:
      // html. and lite. have no safe front end: their requests are rewritten (kp=1) instead.
      if (h == "duckduckgo.com" || h == "www.duckduckgo.com") return "safe.duckduckgo.com";
      return std::nullopt;
    case search_service::youtube:
      return level == safesearch_level::strict ? "restrict.youtube.com" : "restrictmoderate.youtube.com";
    case search_service::none: break;
  }
  return std::nullopt;
}

safesearch_rewrite safesearch_request(const policy& p, const verdict& v, std::string_view host,
                                      std::string_view pq) {
  safesearch_rewrite r;
  const auto service = search_service_of(host);
  const auto level = safesearch_for(p, v, service);
  if (level == safesearch_level::off) return r;
  // Some servers also split a query at ';': when one starts the lock's own parameter
  // ("q=a;safe=off"), the query's ';' are sent as '&', so that the setting is found and
  // replaced (audit20 D4). Any other ';' (a term "a;b") is left as it is.
  const std::string_view lock_param = service == search_service::google       ? "safe"
                                      : service == search_service::bing       ? "adlt"
                                      : service == search_service::duckduckgo ? "kp"
                                                                              : "";
  std::string semicolons;
  if (const auto q = pq.find('?'); q != std::string_view::npos && !lock_param.empty() &&
                                   semicolon_names(pq.substr(q + 1), lock_param)) {
    semicolons = std::string(pq);
    std::replace(semicolons.begin() + static_cast<std::ptrdiff_t>(q), semicolons.end(), ';', '&');
    pq = semicolons;
  }
  const auto q = pq.find('?');
  const std::string_view path = pq.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view() : pq.substr(q + 1);
  // The search paths get the lock; any other path that names the parameter (a search
  // endpoint not listed, "/d.js?kp=-2") has it replaced, so that no request to the engine
  // ever carries "off".
  switch (service) {
    case search_service::google:
      if (google_search_path(path) || has_param(query, "safe")) r.target = set_param(pq, "safe", "active");
      break;
    case search_service::bing:
      if (bing_search_path(path) || has_param(query, "adlt")) r.target = set_param(pq, "adlt", "strict");
      break;
    case search_service::duckduckgo:
      if ((duckduckgo_search_path(path) && first_param(query, "q")) || has_param(query, "kp")) {
        r.target = set_param(pq, "kp", "1");
      }
      break;
    case search_service::youtube:
      r.set_headers.emplace_back("YouTube-Restrict", level == safesearch_level::strict ? "Strict" : "Moderate");
      break;
    case search_service::none: break;
  }
  return r;
}

std::optional<std::string> search_terms(std::string_view host, std::string_view pq) {
  const auto q = pq.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  const std::string_view path = pq.substr(0, q), query = pq.substr(q + 1);
  std::optional<std::string_view> raw;
  switch (search_service_of(host)) {
    case search_service::google:
      if (path_in(path, {"/search", "/webhp", "/images"})) raw = first_param(query, "q");
      break;
    case search_service::bing:
      if (bing_search_path(path)) raw = first_param(query, "q");
      break;
    case search_service::duckduckgo:
      if (duckduckgo_search_path(path)) raw = first_param(query, "q");
      break;
    case search_service::youtube:
      if (path_in(path, {"/results"})) raw = first_param(query, "search_query");
      break;
    case search_service::none: break;
  }
  if (!raw) return std::nullopt;
  const std::string decoded = form_decode(*raw, max_search_terms_bytes + 4);
  // Whatever would act on a reader's terminal becomes a space: control characters (a newline
  // forging a line), and bidi overrides, zero-width and other invisible characters, which the
  // log's JSON escapes but `jq -r` turns back into the characters (audit J, 2026-12-05: a
  // U+202E reached the technician's screen). A byte that is not UTF-8 stays (the log reads it
  // as Latin-1) unless that reading is a C1 control.
  std::string terms;
  terms.reserve(decoded.size());
  for_each_character(
      decoded,
      [&](std::uint32_t cp, std::string_view bytes) {
        if (is_unsafe_on_a_terminal(cp)) {
          terms += ' ';
        } else {
          terms.append(bytes);
        }
      },
      [&](unsigned char byte) { terms += byte < 0xA0 ? ' ' : static_cast<char>(byte); });
  if (terms.size() > max_search_terms_bytes) {
    std::size_t cut = max_search_terms_bytes;
    while (cut > 0 && (static_cast<unsigned char>(terms[cut]) & 0xC0) == 0x80) --cut;
    terms.resize(cut);
  }
  const auto first = terms.find_first_not_of(' ');
  if (first == std::string::npos) return std::nullopt;
  terms.erase(0, first);
  terms.erase(terms.find_last_not_of(' ') + 1);
  return terms;
}

}  // namespace hallpass::rules

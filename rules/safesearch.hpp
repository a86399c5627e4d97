// SafeSearch, locked per role (roles.<name>.safesearch): Google, Bing and DuckDuckGo safe
// search, YouTube Restricted Mode. Two ways, both pure functions of the policy, the verdict
// (for its role) and the request:
//   - the address mapping, for every tunnel, inspected or not: the proxy connects to the
//     provider's locked front end (forcesafesearch.google.com, strict.bing.com,
//     safe.duckduckgo.com, restrict.youtube.com, restrictmoderate.youtube.com) instead of the
//     host's own address, with the SNI and Host unchanged; the provider then serves the
//     locked mode whatever the browser asks;
//   - on requests the proxy reads (plain HTTP, inspected HTTPS): the request rewrite
//     (safe=active, adlt=strict, kp=1, the YouTube-Restrict header), so the lock also holds
//     where the address cannot be mapped, and the search terms for the access log.
// Hosts are compared in normalized form (lower case, no trailing dot).
//
// Pure; no allocation beyond the returned values; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rules/engine.hpp"

namespace hallpass::rules {

enum class search_service : std::uint8_t { none, google, bing, duckduckgo, youtube };
std::string_view to_string(search_service s);
// Which service a host belongs to for SafeSearch: Google's search hosts (www.google.com,
// google.com and the country domains: google.co.uk, www.google.de, google.com.au, ...),
// www.bing.com and bing.com, duckduckgo.com (www., html., lite.), YouTube's web, mobile, API
// and no-cookie hosts. Anything else (mail.google.com, images.example) is none.
search_service search_service_of(std::string_view host);

// The role's lock for a service (off for none).
safesearch_level safesearch_for(const policy& p, const verdict& v, search_service s);

// The host to connect to instead of `host` for v's role, or nullopt when SafeSearch is off
// for the role or the host is not one the providers map. The string is static.
std::optional<std::string_view> safesearch_connect_host(const policy& p, const verdict& v, std::string_view host);

struct safesearch_rewrite {
  std::optional<std::string> target;  // the new path?query; nullopt: unchanged
  std::vector<std::pair<std::string, std::string>> set_headers;  // set (replacing any the client sent)
  bool empty() const { return !target && set_headers.empty(); }
};
// What to change in a request the proxy reads: Google search paths (/search, /webhp, /images,
// /imghp, /complete/search) get safe=active; Bing search paths (/search, /images/search,
// /videos/search, /news/search) adlt=strict; DuckDuckGo searches (a q= parameter) kp=1; every
// YouTube request the header YouTube-Restrict: Strict or Moderate. Paths compare however they
// are spelt ("//Search/", "/search;x", "/%73earch" are /search). On any other path of the
// engine, a request that names the parameter gets it set too ("/d.js?kp=-2"). A parameter of
// the same name (compared after percent-decoding, case-insensitively: s%61fe=off, SAFE=off) is
// replaced where it first stands and its repeats are removed; the rest of the query is kept
// byte for byte.
safesearch_rewrite safesearch_request(const policy& p, const verdict& v, std::string_view host,
                                      std::string_view path_and_query);

// The search terms of a search request, for the access log: q= on Google, Bing and
// DuckDuckGo search paths, search_query= on YouTube's /results. Percent- and plus-decoded
// (a bad escape is kept as written), control characters turned into spaces, cut at
// max_search_terms_bytes on a UTF-8 character boundary. The first of repeated parameters.
// nullopt when the request is not a search or the terms are empty.
inline constexpr std::size_t max_search_terms_bytes = 256;
std::optional<std::string> search_terms(std::string_view host, std::string_view path_and_query);

}  // namespace hallpass::rules

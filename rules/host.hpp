// Host names and IP literals as the policy compares them.
//
// normalize_host() turns whatever a client put in a URL or a CONNECT line into one canonical
// spelling, so that "WWW.Facebook.COM.", "www.facebook.com", "%77ww.facebook.com" and the
// Unicode form of an internationalised name all compare equal, and so that an address written
// as "2130706433" or "0x7f.1" is recognised as the IPv4 address 127.0.0.1 (as browsers do,
// following the WHATWG URL standard) rather than looked up as a name.
//
// Pure functions; thread-safe. No I/O.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace hallpass::rules {

enum class host_kind : std::uint8_t { name, ipv4, ipv6 };

struct normalized_host {
  std::string text;  // lower-case ASCII name (punycode), dotted IPv4, or bracket-less IPv6
  host_kind kind = host_kind::name;
};

// An IPv4 or IPv6 address, as bytes in network order. IPv4 uses the first 4 bytes.
struct ip_address {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};

  static std::optional<ip_address> parse(std::string_view text);  // "10.1.2.3", "::1", "[::1]"
  std::string to_string() const;
  friend bool operator==(const ip_address&, const ip_address&) = default;
};

// The IPv4 address that a connection to IPv6 address `a` reaches: IPv4-mapped ::ffff:a.b.c.d,
// IPv4-compatible ::a.b.c.d (deprecated by RFC 4291, still parsed; not :: or ::1, IPv6's own
// unspecified and loopback addresses) and NAT64 64:ff9b::/96 (RFC 6052) and 64:ff9b:1::/48
// (RFC 8215, the /96 layout its operators use). nullopt for every other address, IPv4 too.
// A list's IPv4 entry (a DNS-over-HTTPS resolver at 1.1.1.1) must not be reached by writing
// it as [::ffff:1.1.1.1] (outside-in audit, 2026-12-05).
std::optional<ip_address> ipv4_reached_by(const ip_address& a);
// The IPv4 address an IPv4-mapped IPv6 address (::ffff:a.b.c.d) spells, nullopt for any other:
// how the proxy takes a client on a dual-stack socket, and a role's network written so.
std::optional<ip_address> ipv4_mapped(const ip_address& a);

// Returns the canonical host or std::nullopt with *error set (when error is not null).
// Accepts an optional trailing dot, percent-encoding, upper case, Unicode (to punycode),
// "[v6]" brackets, and WHATWG IPv4 forms (decimal, octal, hex, fewer than four parts).
std::optional<normalized_host> normalize_host(std::string_view raw, std::string* error = nullptr);

// The same without normalize_host's fast paths (for names and dotted-quad addresses that are
// already canonical): the same answers and errors, slower. Tests compare the two.
std::optional<normalized_host> normalize_host_full(std::string_view raw, std::string* error = nullptr);

// The canonical form of a path and query ("/a/b?x=1"), so that a rule or a local block of
// "/bad" also matches "/%62ad", "//bad", "/x/../bad" and "/x%2F..%2Fbad": percent-escapes of
// unreserved characters (letters, digits, "-._~") and, in the path, of "/" (%2F, which most
// servers read as "/") decoded and the rest written with upper-case hex, then
// in the path runs of "/" collapsed and "." and ".." segments removed (RFC 3986 6.2.2, 5.2.4).
// The query is only percent-normalised. Case is kept. Returns false, leaving `out` alone, when
// `raw` is already canonical (the common case: no allocation); otherwise writes it to `out`.
bool normalize_path(std::string_view raw, std::string& out);

// A path (and query) as a person or a list wrote it, in the canonical form requests are compared
// in: each byte outside visible ASCII percent-encoded (as a browser sends "/wiki/École" or
// "/a b"), then normalize_path ("/%7Euser" is "/~user", "/a/./b" is "/a/b"). How the policy's URL
// entries, exceptions and local entries are stored, so that an entry written with escapes or
// dot segments matches the requests it names (it matched none: outside-in audit, 2026-12-05).
std::string canonical_entry_path(std::string_view typed);

// Whether a category feed's entry for `host` (canonical, without a path) names a whole
// top-level domain or registry suffix ("com", "co.uk", "sch.uk"), which would block every site
// under it: `is_registry_suffix` (the Public Suffix List's ICANN part, proxy/public_suffix.hpp)
// where given, else a name of one label. False for an IP address. The one rule behind the
// loader's leaving such an entry out and `hallpass feeds update`'s report of it.
bool feed_entry_is_registry_suffix(std::string_view host,
                                   const std::function<bool(std::string_view)>& is_registry_suffix);

// Case-insensitive comparison of ASCII text (field names, tokens, host names, dot segments);
// other bytes compare exactly. The one copy: proxy/ uses it too.
bool ascii_iequals(std::string_view a, std::string_view b);

// Whether `path` (canonical, with its query) starts with `prefix` (canonical). With
// `path_without_case` the part of `prefix` before any '?' compares without ASCII case, as
// servers that read paths without case (IIS) would match it; the query always compares exactly
// ("v=abc" and "v=ABC" are different videos). How blocks match (fail closed), never allows.
bool path_starts_with(std::string_view path, std::string_view prefix, bool path_without_case);

// A path (without its query) with each segment's parameters (";jsessionid=...") taken out:
// "/a;x=1/b;y" is "/a/b". What the log and the store keep when access_log.keep_query is off
// (they carry session tokens as a query does: audit19 D4), and how a page exception written
// without them matches a request with them (exception_index.cpp).
std::string path_without_parameters(std::string_view path);

// A path (without its query) as servers that drop path parameters before resolving dot
// segments read it (Tomcat, Jetty): path_without_parameters, then normalize_path's canonical
// form, so "/x/..;/y" is "/y". How blocks match (fail closed); never for forwarding.
std::string path_resolved_without_parameters(std::string_view path);

// A path (without its query) as Windows servers (IIS) read its file names: ':' and '$' decoded
// ("%3A", "%24": IIS decodes them before the file system sees the name), then each segment
// without its trailing dots and spaces (a space as "%20" too, as canonical form keeps it) and
// without a trailing "::$DATA" (an NTFS stream name, any case), so "/secret.", "/secret%20",
// "/secret::$DATA" and "/secret%3A%3A%24DATA" are "/secret". A segment that would be left
// empty ("...") stays as it is. How blocks match (fail closed); never for forwarding.
std::string path_as_windows_reads_it(std::string_view path);
// Whether path_as_windows_reads_it might change `path`, without allocating: a segment ending in
// '.', ' ' or "%20", or a '$', "%24" or "%3A" anywhere. (False means it would not.)
bool windows_reads_differently(std::string_view path);

// A path (without its query) as two spellings of one page compare:
// path_resolved_without_parameters, then path_as_windows_reads_it, then lower case, and
// no trailing "/" (except the root's). For matching a reported page or a search engine's
// search path, never for forwarding: the request is sent as written.
std::string page_path(std::string_view path);

// Calls f(piece) for each '&'-separated piece of a query (without its '?'), empty pieces
// included: how a reported page's parameters and SafeSearch's read a query. With
// `separators` "&;" a ';' also ends a piece, as servers that take ';' as a parameter separator
// read a query (older PHP set-ups, Java's and Perl's CGI libraries): how a reported page's
// parameters are found in a request (fail closed), never for an allow.
template <class F>
void for_each_param(std::string_view query, F&& f, std::string_view separators = "&") {
  while (true) {
    const auto end = query.find_first_of(separators);
    f(query.substr(0, end));
    if (end == std::string_view::npos) return;
    query.remove_prefix(end + 1);
  }
}

// Returns true when `host` equals `domain` or ends with "." + domain. Both must be normalized.
bool is_same_or_subdomain(std::string_view host, std::string_view domain);

}  // namespace hallpass::rules

// Whether a host name is a public suffix: a top-level domain ("com", "test") or a name under
// which anyone may register sites ("co.uk", "sch.uk", "github.io"), by the Public Suffix List
// (Mozilla's, read with libpsl: the list Debian's `publicsuffix` package keeps up to date, else
// the copy built into libpsl). An exception for such a domain would open every site under it:
// the admin socket refuses one (admin_server.cpp). Names not on the list count as suffixes by
// the list's default rule when they have one label ("intranet"): a domain exception for one
// would cover its subdomains too; a page or prefix exception names the host alone.
#pragma once

#include <string>
#include <string_view>

namespace hallpass {

// `host` normalised (lower case, punycode, no trailing dot). False for IP addresses. With
// `listed_only`, a name the list does not name (a single-label intranet host, "printer") is no
// suffix: a local block of it closes only the school's own host. Thread-safe; the list is read
// once, at the first call (off the event loop: the admin socket's thread).
bool is_public_suffix(std::string_view host, bool listed_only = false);

// The site a host belongs to: its registrable domain by the list ("www.nordvpn.com" and
// "cdn.nordvpn.com" are "nordvpn.com", "a.b.sch.uk" is "b.sch.uk"); the host itself for an
// address or a name that is a suffix. For counting one visit once (circumvention_tracker.hpp).
// `host` normalised. Thread-safe once the list is loaded.
std::string registrable_domain(std::string_view host);

// Whether `host` is a top-level domain or a suffix a registry runs: the list's ICANN part ("com",
// "co.uk", "sch.uk", "gov.uk"), not its private part ("github.io", "blogspot.com"), and any name of
// one label. False for IP addresses. For feeds' entries (rules::load_options::is_registry_suffix).
bool is_registry_suffix(std::string_view host);

// Reads the list now (a file read: at start, before any event loop runs), so that no later
// call reads it on an event loop.
void load_public_suffixes();

}  // namespace hallpass

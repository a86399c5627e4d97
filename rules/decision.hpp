// The one decision hallpass makes about a request: the compiled policy first (rules, role
// defaults, locked categories), then the overlay of the headteacher's exceptions and the
// technician's local block/allow entries (never over a locked category), then the bans in the
// same overlay (rules/ban.hpp: a banned user or device gets the supervised-use list of the
// policy's `bans:` section, and nothing else). The proxy, `hallpass
// explain` and the admin socket all call this function, so what explain prints is what the
// proxy does.
//
// Pure; any thread. The verdict's views point into `p` and into `overlay`: keep both alive
// (pin the shared_ptrs) for as long as the verdict.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "rules/engine.hpp"
#include "rules/exception_index.hpp"

namespace hallpass::rules {

// overlay may be null (no store, or none loaded yet): the policy alone decides.
//
// A path servers read in more than one way is decided in each: as written (RFC 3986: a
// segment "..;" is no dot segment), with each segment's ";parameters" dropped before dot
// segments are resolved (Tomcat, Jetty, Spring: "/page/..;/admin" is "/admin"), and with "\" or
// "%5C" read as "/" (IIS, ASP.NET: "/page/..\admin"), with empty segments kept when dot segments
// are resolved (RFC 3986 5.2.4 and WHATWG URL parsers, as Node's: "/bad//.." is "/bad/", where
// the canonical form collapses "//" first), and with "%2F" left undecoded (servers that route
// before decoding it: "/secret/%2F.." is under "/secret/"). If any reading is blocked, that verdict
// is the answer (verdict::read_as names the reading), so that a block (a rule, a locked
// category, a local block or report) is not escaped by a spelling, and an allow (a rule, an
// exception for a page or prefix) opens only what it opens in every reading (fail closed).
// Paths without ';', '\', "%5C", "%2F" or "//" (nearly all) are decided once.
//
// Likewise an IPv6 address that reaches an IPv4 one (::ffff:a.b.c.d, ::a.b.c.d, NAT64
// 64:ff9b::/96: rules/host.hpp, ipv4_reached_by) is decided as written and as that IPv4
// address, and blocked if either is (verdict::host_read_as names the IPv4 address). And a request
// that names other methods in method-override headers (request_facts::method_overrides) is
// decided as each of them too, and blocked if any is (verdict::method_read_as).
verdict decide_request(const policy& p, const exception_index* overlay, const request_facts& facts);

// For the log and explain, when an IPv6 address was blocked as the IPv4 address it reaches
// (verdict::host_read_as), or when how a server may read the path decided a block: "decided on the
// path as some servers read it, '/admin' ..." (verdict::read_as: the reading's path without its
// query or parameters, what access_log.keep_query off leaves out), and "the path matches the
// block's URL '/secret' only without regard to case ..." (verdict::url_without_case). Empty
// for nearly every verdict.
std::vector<std::string> path_notes(const verdict& v);

// The other readings of `path_and_query` (above), without repeats and without the path as
// written; empty when it has none. The query is kept as written.
std::vector<std::string> other_path_readings(std::string_view path_and_query);

}  // namespace hallpass::rules

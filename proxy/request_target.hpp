// The request-target of a request the proxy received (RFC 9112 3.2), split into the facts the
// session decides on and forwards: absolute-form "http://host[:port]/path?query" for plain
// HTTP, authority-form "host:port" for CONNECT.
//
// Pure: no I/O, no Asio or Beast, no clock. A function of its arguments; any thread.
// Fuzzed by tests/fuzz/fuzz_request_target.cpp and, behind Beast's parser and the framing
// checks, by tests/fuzz/fuzz_request_head.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hallpass {

struct parsed_target {
  std::string scheme;      // "http" (absolute-form) or "https" (CONNECT)
  std::string host;        // without userinfo; an IPv6 literal in brackets, "[::1]", as a Host field writes it
  std::string path;        // absolute-form only: starts with '/', no query, no fragment
  std::string query;       // absolute-form only: after the first '?', without the '?'
  std::uint16_t port = 0;  // never 0 on success; 80 when an absolute-form URL names none
  // The URL had neither a path nor a query ("http://h", "http://h#f"), or the target was "*"
  // (asterisk-form, inside a tunnel or on a transparent listener). `path` is "/" for the
  // decision either way; an OPTIONS request is forwarded as "OPTIONS *" (RFC 9112 3.2.4).
  bool no_path = false;
};

// Splits `target`. On failure returns nullopt and sets `error` to a short reason fit for a
// 400 page and the log, except for an origin-form target ("/path", a request addressed to
// the proxy itself), where `error` is exactly "origin-form" so that the session can answer
// with its own page, and for "*" (asterisk-form: OPTIONS asking about the proxy itself), where
// `error` is exactly "asterisk-form".
//
// Refused:
//  - any byte outside visible ASCII (0x21-0x7E): raw non-ASCII, controls, spaces. Beast's
//    parser passes obs-text (0x80-0xFF) through, and an origin may read it differently (or
//    as a second request line); a browser always percent-encodes, so nothing real is lost;
//  - CONNECT: anything but host:port ("[v6]:port" for IPv6), an empty host, a port that is
//    not decimal 1-65535;
//  - otherwise: anything but an absolute http:// URL (scheme case-insensitive) whose
//    authority has a non-empty host and, if any, a port 1-65535 (an empty port is 80).
// Kept as rules::split_url reads them: userinfo ("user@") is dropped from the host, a
// fragment ("#...") is dropped, "http://h?q" has path "/" and query "q". The host is not
// validated here (the policy engine judges it: an invalid host is blocked there).
std::optional<parsed_target> parse_request_target(std::string_view target, bool connect,
                                                  std::string& error);

// A request inside an inspected tunnel (CONNECT tunnel_host:tunnel_port, decrypted): the
// browser sends origin-form ("/path?query") with a Host field, or, rarely, absolute-form
// "https://host[:port]/path". Either must name the tunnel's host (compared without case and
// a trailing dot) and port (443 when none is written): a request for another site inside the
// tunnel (domain fronting) is refused with `error` saying which names differ. `host_field` is
// the request's Host value (nullopt when it has none: HTTP/1.0); a Host that is there but
// empty names no site, and origin-form with it is refused (RFC 9112 3.2 allows an empty Host
// only for a target without an authority, which an http or https URL always has: it was taken
// as the tunnel's host, audit of 2026-12-06). The result has scheme "https" and
// the tunnel's host and port. The visible-ASCII rule of parse_request_target applies. A target
// of "*" (asterisk-form, for OPTIONS: the caller refuses it with any other method) is the
// tunnel's site itself: path "/", no_path set.
// With `tls` false, a tunnel that carries plain HTTP (a browser's ws:// WebSocket, which
// Chromium and Firefox open through a CONNECT): the same rules with "http://", port 80 when
// none is written, and scheme "http".
// `other_site`, when given, is set when the refusal is that the request names another host or
// port (domain fronting: the session counts it as a way round the filter).
std::optional<parsed_target> parse_tunnel_request_target(std::string_view target,
                                                         std::optional<std::string_view> host_field,
                                                         std::string_view tunnel_host, std::uint16_t tunnel_port,
                                                         std::string& error, bool tls = true,
                                                         bool* other_site = nullptr);

// A request on a transparent HTTP listener (transparent.hpp): the client thinks it talks to
// the site, so it sends origin-form ("/path?query") with a Host field, or rarely absolute-form
// "http://host[:port]/path". The host is the Host field's (or the URL's); without one
// (HTTP/1.0: nullopt) it is `destination_host`, the address the client connected to; an empty
// one with origin-form is refused, as inside a tunnel. The port is
// always `destination_port`, the original destination's: a Host or URL naming another port is
// refused, as is a Host that is not plain host[:port] (no '/', '?', '#', '@'). Scheme "http".
// The visible-ASCII rule of parse_request_target applies; "*" is read as inside a tunnel.
std::optional<parsed_target> parse_transparent_request_target(std::string_view target,
                                                              std::optional<std::string_view> host_field,
                                                              std::string_view destination_host,
                                                              std::uint16_t destination_port, std::string& error);

// A host as a URL or a Host field writes it: an IPv6 literal ("::1", as the policy engine
// normalises it) in brackets, "[::1]"; anything else (already bracketed too) unchanged.
std::string host_for_url(std::string_view host);

// An IPv6 literal's host without its brackets ("[::1]" -> "::1", as the policy engine
// normalises it); anything else unchanged.
std::string_view without_brackets(std::string_view host);

// "host[:port]" as a Host field writes it: the host by host_for_url, the port only when it is
// not the scheme's default (80 for http, 443 for https).
std::string authority_of(std::string_view scheme, std::string_view host, std::uint16_t port);

// "scheme://" + authority_of + path_and_query. For pages, forms and the log.
std::string url_of(std::string_view scheme, std::string_view host, std::uint16_t port,
                   std::string_view path_and_query);

}  // namespace hallpass

// Every string in a JSON value made valid UTF-8 (rules/utf8.hpp: bytes that are not text
// become U+FFFD). Boost.JSON serializes a string's bytes as they are, and its parser, like
// hallpassctl's, refuses invalid UTF-8: one such byte from outside (a form, a DHCP host name, a
// sign-in name) in a stored request would make every later answer that includes it unreadable.
// Applied where JSON leaves the daemon (the admin protocol) and where it is stored (the audit
// table).
#pragma once

#include <boost/json/value.hpp>

#include "rules/utf8.hpp"

namespace hallpass::store {

inline void make_valid_utf8(boost::json::value& v) {
  if (auto* s = v.if_string()) {
    if (!rules::is_valid_utf8(*s)) *s = rules::valid_utf8(*s);
  } else if (auto* a = v.if_array()) {
    for (auto& e : *a) make_valid_utf8(e);
  } else if (auto* o = v.if_object()) {
    for (auto& kv : *o) make_valid_utf8(kv.value());
  }
}

}  // namespace hallpass::store

// What a Kerberos keytab file holds: the principal, realm and key version of each key, read
// from its bytes (the MIT file format that MIT's kadmin, Heimdal and Active Directory's ktpass
// all write: version 0x05 0x02, big-endian; 0x05 0x01 is the native-endian version 1, which no
// current tool writes and which is refused here). No keys are kept: only their names.
//
// `check` and the configuration's load use it to refuse a keytab that is not one (a truncated
// copy, the wrong file) and one that holds keys of several realms with no
// logins.negotiate.principal to say which (the acceptor strips the realm of the key that
// accepted a ticket: two realms' users would then share names). Pure; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hallpass {

struct keytab_entry {
  std::string principal;  // "HTTP/proxy.school.internal@SCHOOL.INTERNAL"
  std::string realm;      // "SCHOOL.INTERNAL"
  std::uint32_t kvno = 0;
};

// The entries of a keytab's bytes, in file order (one per key: a principal usually has one
// per encryption type); nullopt with *error set when the bytes are not a version 2 keytab.
std::optional<std::vector<keytab_entry>> read_keytab(std::string_view bytes, std::string* error);

// The distinct realms of `entries`, in order of first appearance.
std::vector<std::string> keytab_realms(const std::vector<keytab_entry>& entries);

}  // namespace hallpass

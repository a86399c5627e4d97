// Keytab bytes for tests: entries as MIT's kadmin ktadd writes them (version 2, big-endian), with
// a made-up key. proxy/keytab_file.hpp reads them.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

namespace hallpass::test {

inline std::string big_endian(std::uint32_t v, int width) {
  std::string out;
  for (int i = width - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

inline std::string counted(const std::string& s) { return big_endian(static_cast<std::uint32_t>(s.size()), 2) + s; }

// One entry (its size first), with the 32-bit key version after the key.
inline std::string keytab_entry_bytes(const std::string& realm, std::initializer_list<std::string> components,
                                      std::uint32_t kvno) {
  std::string body = big_endian(static_cast<std::uint32_t>(components.size()), 2) + counted(realm);
  for (const auto& c : components) body += counted(c);
  body += big_endian(1, 4) + big_endian(1764950400, 4) + big_endian(kvno & 0xff, 1) + big_endian(18, 2) +
          counted(std::string(32, 'k')) + big_endian(kvno, 4);
  return big_endian(static_cast<std::uint32_t>(body.size()), 4) + body;
}

// A whole keytab file: the version, then `entries`.
inline std::string keytab_file_bytes(const std::string& entries) { return std::string("\x05\x02", 2) + entries; }

}  // namespace hallpass::test

#include "proxy/keytab_file.hpp"

#include <algorithm>

namespace hallpass {

namespace {

// A bounded big-endian reader over one entry's bytes.
struct keytab_reader {
  std::string_view in;
  bool ok = true;

  std::uint32_t number(std::size_t width) {
    if (!ok || in.size() < width) {
      ok = false;
      return 0;
    }
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < width; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
    in.remove_prefix(width);
    return v;
  }
  std::string_view counted() {
    const std::uint32_t length = number(2);
    if (!ok || in.size() < length) {
      ok = false;
      return {};
    }
    const std::string_view s = in.substr(0, length);
    in.remove_prefix(length);
    return s;
  }
};

}  // namespace

std::optional<std::vector<keytab_entry>> read_keytab(std::string_view bytes, std::string* error) {
  const auto fail = [error](std::string why) -> std::optional<std::vector<keytab_entry>> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  if (bytes.size() < 2 || bytes[0] != 5) return fail("it does not begin as a keytab does");
  if (bytes[1] != 2) return fail("it is a version " + std::to_string(static_cast<int>(bytes[1])) +
                                 " keytab; only version 2 (what current tools write) is read");
  bytes.remove_prefix(2);
  std::vector<keytab_entry> entries;
  while (bytes.size() >= 4) {
    keytab_reader size_reader{bytes.substr(0, 4)};
    const auto size = static_cast<std::int32_t>(size_reader.number(4));
    bytes.remove_prefix(4);
    if (size == 0) break;  // the end, as MIT reads it
    const std::uint64_t length = size < 0 ? static_cast<std::uint64_t>(-static_cast<std::int64_t>(size))
                                          : static_cast<std::uint64_t>(size);
    if (length > bytes.size()) return fail("an entry runs past the end of the file (a truncated copy?)");
    const std::string_view body = bytes.substr(0, length);
    bytes.remove_prefix(length);
    if (size < 0) continue;  // a hole left by a removed entry
    keytab_reader r{body};
    const std::uint32_t components = r.number(2);
    keytab_entry e;
    e.realm = std::string(r.counted());
    std::string name;
    for (std::uint32_t i = 0; r.ok && i < components; ++i) {
      if (i > 0) name += '/';
      name += r.counted();
    }
    r.number(4);  // name type
    r.number(4);  // timestamp
    e.kvno = r.number(1);
    r.number(2);  // encryption type
    r.counted();  // the key itself: not kept
    if (!r.ok || components == 0 || e.realm.empty()) return fail("an entry is not a key entry");
    if (r.in.size() >= 4) {
      // The 32-bit key version, when written, replaces the 8-bit one (unless 0: MIT's rule).
      if (const std::uint32_t kvno32 = r.number(4); kvno32 != 0) e.kvno = kvno32;
    }
    e.principal = name + "@" + e.realm;
    entries.push_back(std::move(e));
  }
  if (!bytes.empty() && bytes.size() < 4) return fail("it ends in the middle of an entry (a truncated copy?)");
  if (entries.empty()) return fail("it holds no keys");
  return entries;
}

std::vector<std::string> keytab_realms(const std::vector<keytab_entry>& entries) {
  std::vector<std::string> realms;
  for (const auto& e : entries) {
    if (std::find(realms.begin(), realms.end(), e.realm) == realms.end()) realms.push_back(e.realm);
  }
  return realms;
}

}  // namespace hallpass

// The compiled policy's own functions (policy.hpp): an IP network parsed and matched, and a
// role or a category found by name.
#include "rules/policy.hpp"

#include <algorithm>
#include <charconv>

namespace hallpass::rules {

std::optional<ip_network> ip_network::parse(std::string_view text, std::string* error,
                                            bool strict) {
  auto fail = [&](const std::string& why) -> std::optional<ip_network> {
    if (error) *error = why;
    return std::nullopt;
  };
  const std::string quoted = "'" + std::string(text) + "'";
  const auto slash = text.find('/');
  auto ip = ip_address::parse(text.substr(0, slash));
  if (!ip)
    return fail(quoted + " is not an IPv4 or IPv6 network like 10.10.0.0/16 or fd00:10::/64");
  const int max = ip->v6 ? 128 : 32;
  int prefix = max;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    auto r = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || r.ec != std::errc() || r.ptr != digits.data() + digits.size() ||
        prefix < 0 || prefix > max) {
      return fail(quoted + " has a prefix length that is not a number from 0 to " +
                  std::to_string(max));
    }
  }
  // An IPv4-mapped IPv6 network (::ffff:10.30.0.0/112) is the IPv4 network it spells: the
  // proxy matches an IPv4-mapped client address as IPv4, so kept as IPv6 it never matched
  // (policy audit, 2026-12-05: a pupil's device fell to another role).
  if (const auto v4 = ipv4_mapped(*ip); v4 && prefix >= 96) {
    ip = v4;
    prefix -= 96;
  }
  const int bits = ip->v6 ? 128 : 32;
  ip_network net{*ip, prefix, std::string(text), 0};
  ip_network masked = net;
  for (int b = prefix; b < bits; ++b)
    masked.base.bytes[b / 8] &= static_cast<std::uint8_t>(~(0x80u >> (b % 8)));
  if (strict && !(masked.base == net.base)) {
    return fail(quoted + " has address bits set after the prefix; did you mean '" +
                masked.base.to_string() + "/" + std::to_string(prefix) + "'?");
  }
  return net;
}

std::string ip_network::why_no_client() const {
  // An IPv4-compatible network (::10.0.0.0/104) holds no client: a client is IPv4, or
  // IPv4-mapped and read as IPv4 (outside-in audit of IPv6, 2026-12-07, F9: accepted, it matched
  // nothing). (::/N with N < 96, and ::1, are IPv6's own.) Destinations' lists may name one: a
  // destination carrying an IPv4 address is judged by it too (proxy/destination.hpp).
  if (!base.v6 || prefix < 96 ||
      !std::all_of(base.bytes.begin(), base.bytes.begin() + 12, [](std::uint8_t b) { return b == 0; }) ||
      !ipv4_reached_by(base))
    return {};
  ip_address v4;
  std::copy(base.bytes.begin() + 12, base.bytes.end(), v4.bytes.begin());
  return "'" + text + "' is an IPv4-compatible IPv6 network, which holds no device: write the IPv4 network '" +
         v4.to_string() + "/" + std::to_string(prefix - 96) + "'";
}

bool ip_network::contains(const ip_address& a) const {
  if (a.v6 != base.v6) return false;
  if (prefix < 0 || prefix > (base.v6 ? 128 : 32)) return false;  // never built so by parse()
  const int full = prefix / 8;
  for (int i = 0; i < full; ++i) {
    if (a.bytes[i] != base.bytes[i]) return false;
  }
  if (const int rest = prefix % 8) {
    const auto m = static_cast<std::uint8_t>(0xFF00u >> rest);
    if ((a.bytes[full] & m) != (base.bytes[full] & m)) return false;
  }
  return true;
}

const role* policy::find_role(std::string_view name) const {
  for (const auto& r : roles) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

const category* policy::find_category(std::string_view name) const {
  for (const auto& c : categories) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string policy::category_list() const {
  std::string out;
  for (const auto& c : categories) out += (out.empty() ? "" : ", ") + c.name;
  return out.empty() ? "none" : out;
}

}  // namespace hallpass::rules

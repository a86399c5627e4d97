#include "proxy/dhcp_leases.hpp"

#include "proxy/ipv6_neighbours.hpp"
#include "rules/file_io.hpp"
#include "rules/host.hpp"

#include <sys/stat.h>

#include <unordered_map>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <iostream>
#include <sstream>

#include "rules/utf8.hpp"

namespace hallpass {

std::optional<lease_format> parse_lease_format(std::string_view text) {
  if (text == "dnsmasq") return lease_format::dnsmasq;
  if (text == "isc") return lease_format::isc;
  if (text == "kea") return lease_format::kea;
  return std::nullopt;
}

std::string_view to_string(lease_format f) {
  switch (f) {
    case lease_format::dnsmasq:
      return "dnsmasq";
    case lease_format::isc:
      return "isc";
    case lease_format::kea:
      return "kea";
  }
  return "dnsmasq";
}

namespace {

constexpr std::size_t max_name_bytes = 253;  // a DNS name; DHCP allows longer, nobody needs it

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t from = 0;
  for (;;) {
    const auto at = s.find(sep, from);
    out.push_back(
        s.substr(from, at == std::string_view::npos ? std::string_view::npos : at - from));
    if (at == std::string_view::npos) return out;
    from = at + 1;
  }
}

std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const std::size_t from = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > from) out.push_back(line.substr(from, i - from));
  }
  return out;
}

template <typename Int>
std::optional<Int> number(std::string_view s) {
  Int v{};
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// "3C:22:FB:12:9A:1" (ISC prints octets below 0x10 with one digit) -> "3c:22:fb:12:9a:01".
// Empty input gives "" (no hardware address); nullopt when it is not octets and colons.
std::optional<std::string> hardware_address(std::string_view s) {
  if (s.empty()) return std::string();
  std::string out;
  const auto parts = split(s, ':');
  if (parts.size() > 32) return std::nullopt;
  for (const auto p : parts) {
    if (p.empty() || p.size() > 2) return std::nullopt;
    for (const char ch : p) {
      if (!std::isxdigit(static_cast<unsigned char>(ch))) return std::nullopt;
    }
    if (!out.empty()) out += ':';
    if (p.size() == 1) out += '0';
    for (const char ch : p) out += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  return out;
}

// A device's host name as the lease gives it: at most 253 bytes, without trailing dots (cut
// first, so that a cut that falls after a dot leaves none either), as valid UTF-8 (a device
// chooses its own name: bytes that are not text become U+FFFD, so that the name can go into a
// stored request and the admin protocol's JSON), without the characters that act on a terminal
// or hide themselves (rules::is_unsafe_on_a_terminal: ESC, bidi overrides, zero-width, ...):
// ISC dhcpd keeps them, and the access log's `device` reached the technician's terminal
// through `jq -r` and the block page with them (admin audit, 2026-12-05, F6).
std::string host_name(std::string_view s) {
  std::string name;
  rules::for_each_character(
      rules::valid_utf8(s.substr(0, max_name_bytes)),
      [&](std::uint32_t cp, std::string_view bytes) {
        if (!rules::is_unsafe_on_a_terminal(cp)) name.append(bytes);
      },
      [](unsigned char) {});  // none: valid_utf8 made every byte text
  // U+FFFD is three bytes: back to the bound, on a character boundary.
  while (name.size() > max_name_bytes) {
    name.pop_back();
    while (!name.empty() && (static_cast<unsigned char>(name.back()) & 0xC0) == 0x80) name.pop_back();
    if (!name.empty() && static_cast<unsigned char>(name.back()) >= 0xC0) name.pop_back();
  }
  while (!name.empty() && name.back() == '.') name.pop_back();
  return name;
}

std::optional<device_identity> identity(std::string name, std::string mac) {
  if (name.empty() && mac.empty()) return std::nullopt;
  return device_identity{std::move(name), std::move(mac)};
}

class result_builder {
 public:
  void lease(const rules::ip_address& a, std::optional<device_identity> d) {
    out_.entries.push_back({a, std::move(d)});
  }
  void ended(const rules::ip_address& a) { out_.entries.push_back({a, std::nullopt}); }
  void skip(std::size_t line, std::string why) {
    if (out_.skipped++ == 0)
      out_.first_error = "line " + std::to_string(line) + ": " + std::move(why);
  }
  lease_parse_result done() { return std::move(out_); }

 private:
  lease_parse_result out_;
};

// Calls f(line_number, line) for each line, without its "\r\n" or "\n".
template <typename F>
void for_each_line(std::string_view text, F f) {
  std::size_t number = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    f(++number, line);
  }
}

}  // namespace

lease_parse_result parse_dnsmasq_leases(std::string_view text, std::int64_t now) {
  result_builder b;
  for_each_line(text, [&](std::size_t n, std::string_view line) {
    const auto f = fields_of(line);
    if (f.empty()) return;
    if (f[0] == "duid") return;  // the server's DUID: the DHCPv6 leases follow
    if (f.size() != 5 && f.size() != 4)
      return b.skip(n, "expected EXPIRY MAC ADDRESS NAME CLIENT-ID");
    const auto expiry = number<std::int64_t>(f[0]);
    if (!expiry) return b.skip(n, "the expiry time is not a number");
    const auto address = rules::ip_address::parse(f[2]);
    if (!address || f[2].front() == '[')
      return b.skip(n, "'" + std::string(f[2]) + "' is not an IP address");
    std::string mac;
    if (address->v6) {
      // The IAID, in decimal ("T" marks a temporary address); no hardware address is written.
      const auto iaid = f[1].starts_with("T") ? f[1].substr(1) : f[1];
      if (!number<std::uint32_t>(iaid))
        return b.skip(n, "the IAID of a DHCPv6 lease is not a number");
    } else {
      // "3c:22:fb:12:9a:01", or "HH-..." with the hardware type when it is not Ethernet.
      std::string_view hw = f[1];
      if (hw.size() >= 3 && hw[2] == '-') hw.remove_prefix(3);
      auto m = hardware_address(hw);
      if (!m) return b.skip(n, "'" + std::string(f[1]) + "' is not a hardware address");
      mac = std::move(*m);
    }
    if (*expiry != 0 && *expiry <= now) return b.ended(*address);
    b.lease(*address, identity(f[3] == "*" ? std::string() : host_name(f[3]), std::move(mac)));
  });
  return b.done();
}

namespace {

// The tokens of dhcpd.leases: words, quoted strings (unescaped), and the punctuation { } ; =.
// Comments run from '#' to the end of the line.
struct isc_token {
  enum kind_t { word, string, open, close, semicolon, equals, end, bad } kind = end;
  std::string text;
  std::size_t line = 0;
};

class isc_lexer {
 public:
  explicit isc_lexer(std::string_view s) : s_(s) {}

  isc_token next() {
    skip_space();
    isc_token t;
    t.line = line_;
    if (i_ >= s_.size()) return t;
    const char c = s_[i_];
    if (c == '{' || c == '}' || c == ';' || c == '=') {
      ++i_;
      t.kind = c == '{'   ? isc_token::open
               : c == '}' ? isc_token::close
               : c == ';' ? isc_token::semicolon
                          : isc_token::equals;
      return t;
    }
    if (c == '"') return quoted(t);
    const std::size_t from = i_;
    while (i_ < s_.size() && !std::isspace(static_cast<unsigned char>(s_[i_])) && s_[i_] != '{' &&
           s_[i_] != '}' && s_[i_] != ';' && s_[i_] != '"' && s_[i_] != '#') {
      ++i_;
    }
    t.kind = isc_token::word;
    t.text = std::string(s_.substr(from, i_ - from));
    return t;
  }

 private:
  void skip_space() {
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == '\n') {
        ++line_;
        ++i_;
      } else if (std::isspace(static_cast<unsigned char>(c))) {
        ++i_;
      } else if (c == '#') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else {
        return;
      }
    }
  }
  // A string with dhcpd's escapes: \" \\ and three octal digits ("\001").
  isc_token quoted(isc_token& t) {
    ++i_;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c == '\n') ++line_;
      if (c == '\\' && i_ < s_.size()) {
        if (i_ + 2 < s_.size() && s_[i_] >= '0' && s_[i_] <= '3' && s_[i_ + 1] >= '0' &&
            s_[i_ + 1] <= '7' && s_[i_ + 2] >= '0' && s_[i_ + 2] <= '7') {
          c = static_cast<char>((s_[i_] - '0') * 64 + (s_[i_ + 1] - '0') * 8 + (s_[i_ + 2] - '0'));
          i_ += 3;
        } else {
          c = s_[i_++];
        }
      }
      t.text += c;
    }
    if (i_ >= s_.size()) {
      t.kind = isc_token::bad;  // unterminated: nothing after it can be trusted
      return t;
    }
    ++i_;
    t.kind = isc_token::string;
    return t;
  }

  std::string_view s_;
  std::size_t i_ = 0;
  std::size_t line_ = 1;
};

// "ends 3 2026/12/02 20:00:00" (UTC), "ends epoch 1764705600", "ends never": Unix seconds, or
// INT64_MAX for never; nullopt when malformed.
std::optional<std::int64_t> isc_time(const std::vector<isc_token>& words) {
  if (words.size() == 2 && words[1].text == "never") return INT64_MAX;
  if (words.size() == 3 && words[1].text == "epoch") return number<std::int64_t>(words[2].text);
  if (words.size() != 4) return std::nullopt;
  const auto date = split(words[2].text, '/');
  const auto time = split(words[3].text, ':');
  if (date.size() != 3 || time.size() != 3) return std::nullopt;
  const auto y = number<int>(date[0]);
  const auto mo = number<unsigned>(date[1]);
  const auto d = number<unsigned>(date[2]);
  const auto h = number<int>(time[0]);
  const auto mi = number<int>(time[1]);
  const auto s = number<int>(time[2]);
  if (!y || !mo || !d || !h || !mi || !s) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year(*y), std::chrono::month(*mo),
                                        std::chrono::day(*d)};
  if (!ymd.ok() || *h > 23 || *mi > 59 || *s > 60) return std::nullopt;
  const auto days = std::chrono::sys_days(ymd).time_since_epoch().count();
  return static_cast<std::int64_t>(days) * 86400 + *h * 3600 + *mi * 60 + *s;
}

}  // namespace

lease_parse_result parse_isc_leases(std::string_view text, std::int64_t now) {
  result_builder b;
  isc_lexer lex(text);
  // Skips to the end of a statement: its ';', or its { ... } block. Returns false at the end
  // of the input (or of the enclosing block, when `stop_at_close`).
  const auto skip_statement = [&](isc_token t) {
    int depth = 0;
    for (;; t = lex.next()) {
      if (t.kind == isc_token::end || t.kind == isc_token::bad) return false;
      if (t.kind == isc_token::open) ++depth;
      if (t.kind == isc_token::close && --depth <= 0) return true;
      if (t.kind == isc_token::semicolon && depth == 0) return true;
    }
  };
  for (isc_token t = lex.next(); t.kind != isc_token::end; t = lex.next()) {
    if (t.kind == isc_token::bad) {
      b.skip(t.line, "a string is not closed; the rest of the file is ignored");
      break;
    }
    if (t.kind != isc_token::word || t.text != "lease") {
      // authoring-byte-order, server-duid, failover peer state, DHCPv6 ia-na blocks, host,
      // class: not leases of an address to a device with a name.
      if (!skip_statement(t)) break;
      continue;
    }
    const std::size_t line = t.line;
    const isc_token addr = lex.next();
    const isc_token open = lex.next();
    const auto address =
        addr.kind == isc_token::word ? rules::ip_address::parse(addr.text) : std::nullopt;
    bool ok = address && !address->v6 && addr.text.front() != '[' && open.kind == isc_token::open;
    std::string why = ok ? "" : "expected 'lease ADDRESS {'";
    if (open.kind != isc_token::open) {
      if (!skip_statement(open)) break;
      b.skip(line, why);
      continue;
    }
    std::string name, mac, state;
    std::optional<std::int64_t> ends;
    bool closed = false;
    // The lease's statements, each a list of words ending in ';' (nested blocks skipped).
    while (!closed) {
      std::vector<isc_token> words;
      isc_token w = lex.next();
      if (w.kind == isc_token::close) {
        closed = true;
        break;
      }
      for (;
           w.kind == isc_token::word || w.kind == isc_token::string || w.kind == isc_token::equals;
           w = lex.next()) {
        words.push_back(std::move(w));
      }
      if (w.kind == isc_token::open) {
        if (!skip_statement(w)) break;
        continue;
      }
      if (w.kind == isc_token::close) {  // a statement without its ';'
        ok = false;
        why = "a statement in the lease does not end with ';'";
        closed = true;
        break;
      }
      if (w.kind != isc_token::semicolon) break;  // end of input or a bad string
      if (words.empty()) continue;
      const std::string& key = words[0].text;
      if (key == "binding" && words.size() == 3 && words[1].text == "state") {
        state = words[2].text;
      } else if (key == "ends") {
        ends = isc_time(words);
        if (!ends) {
          ok = false;
          why = "'ends' is not 'never', 'epoch SECONDS' or 'W YYYY/MM/DD HH:MM:SS'";
        }
      } else if (key == "hardware" && words.size() == 3) {
        auto m = hardware_address(words[2].text);
        if (!m) {
          ok = false;
          why = "'" + words[2].text + "' is not a hardware address";
        } else {
          mac = std::move(*m);
        }
      } else if (key == "client-hostname" && words.size() == 2 &&
                 words[1].kind == isc_token::string) {
        name = host_name(words[1].text);
      }
    }
    if (!closed) {
      b.skip(line, "the lease block is not closed; the rest of the file is ignored");
      break;
    }
    if (!ok) {
      b.skip(line, why);
      continue;
    }
    // "active" alone is a device holding the address; free, expired, released, abandoned and
    // backup are not. A lease whose end has passed is not either, whatever its state says
    // (dhcpd writes the new state only when it gets round to it).
    if (state != "active" || (ends && *ends <= now)) {
      b.ended(*address);
    } else {
      b.lease(*address, identity(std::move(name), std::move(mac)));
    }
  }
  return b.done();
}

namespace {

// Kea escapes commas in text columns as "&#x2c" (its CSV has no quoting).
std::string kea_unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s.substr(i, 5) == "&#x2c") {
      out += ',';
      i += 4;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

lease_parse_result parse_kea_leases(std::string_view text, std::int64_t now) {
  result_builder b;
  std::vector<std::string> header;
  std::optional<std::size_t> c_address, c_hwaddr, c_hostname, c_expire, c_valid, c_state, c_type;
  for_each_line(text, [&](std::size_t n, std::string_view line) {
    if (line.empty()) return;
    const auto cols = split(line, ',');
    if (header.empty()) {
      for (const auto c : cols) header.emplace_back(c);
      const auto column = [&](std::string_view name) -> std::optional<std::size_t> {
        const auto it = std::find(header.begin(), header.end(), name);
        if (it == header.end()) return std::nullopt;
        return static_cast<std::size_t>(it - header.begin());
      };
      c_address = column("address");
      c_hwaddr = column("hwaddr");
      c_hostname = column("hostname");
      c_expire = column("expire");
      c_valid = column("valid_lifetime");
      c_state = column("state");
      c_type = column("lease_type");
      if (!c_address || !c_expire || !c_valid) {
        header.clear();  // not Kea's header: every line is reported as malformed
        b.skip(n, "the first line is not Kea's CSV header (address,hwaddr,...,expire,...)");
      }
      return;
    }
    if (cols.size() != header.size()) {
      return b.skip(n, "has " + std::to_string(cols.size()) + " columns; the header has " +
                           std::to_string(header.size()));
    }
    const auto address = rules::ip_address::parse(cols[*c_address]);
    if (!address || cols[*c_address].empty() || cols[*c_address].front() == '[') {
      return b.skip(n, "'" + std::string(cols[*c_address]) + "' is not an IP address");
    }
    const auto expire = number<std::int64_t>(cols[*c_expire]);
    const auto valid = number<std::uint64_t>(cols[*c_valid]);
    const auto state = c_state ? number<int>(cols[*c_state]) : std::optional<int>(0);
    const auto type = c_type ? number<int>(cols[*c_type]) : std::optional<int>(0);
    if (!expire || !valid || !state || !type)
      return b.skip(n, "expire, valid_lifetime, state or lease_type is not a number");
    if (*type == 2) return;  // a delegated prefix (DHCPv6 PD): a router's network, not a device
    auto mac =
        c_hwaddr ? hardware_address(cols[*c_hwaddr]) : std::optional<std::string>(std::string());
    if (!mac) return b.skip(n, "'" + std::string(cols[*c_hwaddr]) + "' is not a hardware address");
    // State 0 is a lease in use; 1 declined, 2 expired and reclaimed. A valid lifetime of 0 is
    // how memfile records a deleted lease.
    if (*state != 0 || *valid == 0 || *expire <= now) return b.ended(*address);
    b.lease(*address,
            identity(c_hostname ? host_name(kea_unescape(cols[*c_hostname])) : std::string(),
                     std::move(*mac)));
  });
  return b.done();
}

lease_parse_result parse_arp_table(std::string_view text) {
  lease_parse_result r;
  bool header = true;
  for (const auto line : split(text, '\n')) {
    if (header) {  // "IP address       HW type     Flags       HW address            Mask     Device"
      header = false;
      continue;
    }
    std::vector<std::string_view> f;
    for (const auto w : split(line, ' ')) {
      if (!w.empty()) f.push_back(w);
    }
    if (f.empty()) continue;
    if (f.size() < 6) {
      ++r.skipped;
      continue;
    }
    const auto address = rules::ip_address::parse(f[0]);
    auto mac = hardware_address(f[3]);
    // Ethernet (HW type 0x1) only, complete entries (ATF_COM, 0x2), a real hardware address.
    if (!address || address->v6 || f[1] != "0x1" || !mac || mac->empty() || *mac == "00:00:00:00:00:00") continue;
    const std::string_view flags = f[2].starts_with("0x") ? f[2].substr(2) : f[2];
    unsigned flag_bits = 0;
    if (std::from_chars(flags.data(), flags.data() + flags.size(), flag_bits, 16).ec != std::errc() || !(flag_bits & 0x2)) {
      continue;
    }
    r.entries.push_back({*address, device_identity{std::string(), std::move(*mac)}});
  }
  return r;
}

lease_parse_result parse_leases(lease_format f, std::string_view text, std::int64_t now) {
  switch (f) {
    case lease_format::dnsmasq:
      return parse_dnsmasq_leases(text, now);
    case lease_format::isc:
      return parse_isc_leases(text, now);
    case lease_format::kea:
      return parse_kea_leases(text, now);
  }
  return {};
}

std::size_t device_table::address_hash::operator()(const rules::ip_address& a) const {
  std::uint64_t h = 1469598103934665603ull ^ (a.v6 ? 1u : 0u);
  for (const auto byte : a.bytes) h = (h ^ byte) * 1099511628211ull;
  return static_cast<std::size_t>(h);
}

device_table::device_table(const std::vector<lease_parse_result>& leases, const lease_parse_result& neighbours) {
  for (const auto& p : leases) {
    for (const auto& e : p.entries) {
      if (e.device) {
        by_address_[e.address] = *e.device;
      } else {
        by_address_.erase(e.address);
      }
    }
  }
  // Built before the neighbours overrule any lease: a lease's name stays its hardware address's.
  std::unordered_map<std::string, std::string> name_of;
  for (const auto& [address, d] : by_address_) {
    if (!d.name.empty() && !d.hardware_address.empty()) name_of[d.hardware_address] = d.name;
  }
  for (const auto& e : neighbours.entries) {
    if (!e.device || e.device->hardware_address.empty()) continue;
    const auto it = by_address_.find(e.address);
    // A lease without a hardware address (dnsmasq's IPv6 leases give a DUID) cannot disagree.
    if (it != by_address_.end() &&
        (it->second.hardware_address.empty() || it->second.hardware_address == e.device->hardware_address)) {
      continue;
    }
    by_address_[e.address] = device_identity{"", e.device->hardware_address};
  }
  // A neighbour's address (a SLAAC or temporary IPv6 address, a static one) whose hardware
  // address a lease names: the lease's name, so that a ban or an exception by that name follows
  // the device there too (the review of the session, 2026-12-07: a ban by name held on IPv4 only).
  if (name_of.empty()) return;
  for (auto& [address, d] : by_address_) {
    if (!d.name.empty() || d.hardware_address.empty()) continue;
    if (const auto it = name_of.find(d.hardware_address); it != name_of.end()) d.name = it->second;
  }
}

const device_identity* device_table::find(const rules::ip_address& a) const {
  const auto it = by_address_.find(a);
  return it == by_address_.end() ? nullptr : &it->second;
}

namespace {
bool is_device(const device_identity& d, std::string_view name_or_mac) {
  return rules::ascii_iequals(d.name, name_or_mac) || d.hardware_address == name_or_mac;
}
}  // namespace

std::vector<rules::ip_address> device_table::addresses_of(std::string_view name_or_mac) const {
  std::vector<rules::ip_address> out;
  for (const auto& [address, d] : by_address_) {
    if (is_device(d, name_or_mac)) out.push_back(address);
  }
  return out;
}

bool device_table::names(std::string_view name_or_mac) const {
  return std::any_of(by_address_.begin(), by_address_.end(),
                     [&](const auto& entry) { return is_device(entry.second, name_or_mac); });
}

std::optional<std::optional<device_identity>> read_device_once(const lease_watcher_source& s,
                                                                const rules::ip_address& client, std::string* error) {
  std::vector<lease_parse_result> parsed;
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const auto files = lease_watcher::files_of(s);
  for (std::size_t i = 0; i < files.size(); ++i) {
    std::string why;
    auto text = rules::read_regular_file(files[i], &why, true, lease_watcher::max_file_bytes);
    if (!text) {
      // Kea's older files are read when present, as the proxy reads them; the main file must be.
      if (i + 1 < files.size() && why == "does not exist") continue;
      if (error) *error = files[i] + " " + why;
      return std::nullopt;
    }
    parsed.push_back(parse_leases(s.format, *text, now));
  }
  const device_table table(parsed);
  const device_identity* d = table.find(client);
  return d ? std::optional<device_identity>(*d) : std::optional<device_identity>();
}

// --- lease_watcher -----------------------------------------------------------------------------

namespace {

// A table is re-read at least this often even when the file has not changed, so that leases
// which end without the server rewriting the file (dhcpd, Kea) stop naming their address.
constexpr auto reread_every = std::chrono::seconds(60);

}  // namespace

lease_watcher::lease_watcher(std::function<source()> settings,
                             std::atomic<std::shared_ptr<const device_table>>& target, counters c,
                             std::chrono::milliseconds interval)
    : settings_(std::move(settings)),
      target_(target),
      counters_(std::move(c)),
      interval_(interval) {}

lease_watcher::~lease_watcher() {
  stop();
}

std::vector<std::string> lease_watcher::files_of(const source& s) {
  if (s.path.empty()) return {};
  // Kea's lease file cleanup moves older rows to FILE.2 (and FILE.1 while it runs); Kea reads
  // them in this order at start, and so do we.
  if (s.format == lease_format::kea) return {s.path + ".2", s.path + ".1", s.path};
  return {s.path};
}

std::vector<lease_watcher::file_state> lease_watcher::stat_files(
    const std::vector<std::string>& files) {
  std::vector<file_state> states;
  for (const auto& f : files) {
    struct stat st {};
    file_state s;
    if (::stat(f.c_str(), &st) == 0) {
      s.exists = true;
      s.size = static_cast<std::uintmax_t>(st.st_size);
      s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
      s.inode = st.st_ino;
    }
    states.push_back(s);
  }
  return states;
}

bool lease_watcher::poll() {
  const source src = settings_();
  const auto files = files_of(src);
  const auto states = stat_files(files);
  const bool same_source =
      read_once_ && src.path == last_source_.path && src.format == last_source_.format;
  const auto now_steady = std::chrono::steady_clock::now();
  // The gateway's own ARP table (its network namespace's), a few KB, read at each poll: a
  // device on the LAN link that holds an address outside the leases (a static address) is
  // still known by its hardware address, so a ban of that address holds (audit, 2026-12-05).
  std::string arp;
  if (!src.path.empty() && !neighbours_path_.empty()) {
    std::ifstream in(neighbours_path_, std::ios::binary);
    char buf[65536];
    while (in && arp.size() < max_neighbour_bytes) {
      in.read(buf, sizeof buf);
      arp.append(buf, static_cast<std::size_t>(in.gcount()));
    }
  }
  // Compared by what the table says (each complete entry's address and hardware address), not
  // by its text: flags, incomplete entries (a device probing addresses) and their order change
  // the text every second, and each change re-read the whole leases file (up to 64 MiB) and
  // built a new table (event-loop review, 2026-12-06).
  auto neighbours = parse_arp_table(arp);
  // And IPv6's (no /proc file: rtnetlink), so a device on a SLAAC or temporary address is known
  // by its hardware address as on IPv4 (outside-in audit of IPv6, 2026-12-07, F4). A failure
  // keeps the IPv4 ones, said once.
  if (!src.path.empty() && read_ipv6_neighbours_) {
    std::string why;
    auto six = read_ipv6_neighbours(&why);
    if (!why.empty() && !ipv6_neighbours_failing_) {
      std::cerr << "hallpass: device names: cannot read the IPv6 neighbour table (" << why
                << "): devices on IPv6 addresses outside the leases are known by address only" << std::endl;
    }
    ipv6_neighbours_failing_ = !why.empty();
    for (auto& e : six.entries) neighbours.entries.push_back(std::move(e));
  }
  std::vector<std::string> pairs;
  for (const auto& e : neighbours.entries) pairs.push_back(e.address.to_string() + " " + e.device->hardware_address);
  std::sort(pairs.begin(), pairs.end());
  std::string neighbour_key;
  for (const auto& p : pairs) neighbour_key += p + "\n";
  const bool same_neighbours = neighbour_key == last_neighbours_;
  if (same_source && same_neighbours && states == last_files_ && now_steady - last_read_ < reread_every) return false;
  last_neighbours_ = std::move(neighbour_key);

  if (src.path.empty()) {
    const bool had = target_.load() != nullptr;
    target_.store(nullptr);
    last_source_ = src;
    last_files_ = states;
    read_once_ = true;
    return had;
  }
  // The main file must be there; Kea's older files are read when present.
  std::string error;
  if (!states.back().exists) error = "cannot read " + src.path + ": it does not exist";
  std::vector<lease_parse_result> parsed;
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  for (std::size_t i = 0; i < files.size() && error.empty(); ++i) {
    if (!states[i].exists) continue;
    if (states[i].size > max_file_bytes) {
      error =
          files[i] + " is larger than " + std::to_string(max_file_bytes >> 20) + " MiB; not read";
      break;
    }
    std::ifstream in(files[i], std::ios::binary);
    std::string text;
    if (in) {
      text.resize(static_cast<std::size_t>(states[i].size));
      in.read(text.data(), static_cast<std::streamsize>(text.size()));
      text.resize(static_cast<std::size_t>(in.gcount()));  // shorter if it shrank meanwhile
    }
    if (!in && !in.eof()) {
      error = "cannot read " + files[i];
      break;
    }
    parsed.push_back(parse_leases(src.format, text, now));
  }
  last_read_ = now_steady;
  // dnsmasq rewrites its file in place: a file that changed while it was read may be half
  // written. It is read again at the next poll, once it has stood still for one.
  if (error.empty() && stat_files(files) != states) return false;
  if (!error.empty()) {
    // The previous table stays: the names it has are the best there are.
    if (!failing_ || !same_source) {
      std::cerr << "hallpass: device names: " << error << "; keeping the "
                << (target_.load() ? "names read before" : "addresses without names") << std::endl;
    }
    if (counters_.read_failed) counters_.read_failed();
    failing_ = true;
    last_source_ = src;
    last_files_ = states;
    read_once_ = true;
    return false;
  }
  std::size_t skipped = 0;
  std::string first_error;
  for (std::size_t i = 0, j = 0; i < files.size(); ++i) {
    if (!states[i].exists) continue;
    if (parsed[j].skipped && first_error.empty())
      first_error = files[i] + ": " + parsed[j].first_error;
    skipped += parsed[j++].skipped;
  }
  // The devices the leases know (the metric and the journal count those), then the table
  // with the neighbours: who holds each address now (device_table's constructor).
  const std::size_t devices = device_table(parsed).size();
  auto table = std::make_shared<const device_table>(parsed, neighbours);
  target_.store(std::move(table));
  if (counters_.skipped && skipped) counters_.skipped(skipped);
  if (counters_.devices) counters_.devices(devices);
  // Reported when something changed that a technician would want to know, not every minute.
  const bool changed_source = !same_source;
  if (changed_source || failing_ || (skipped && (states != last_files_))) {
    std::cerr << "hallpass: device names: " << devices << " devices from " << src.path << " ("
              << to_string(src.format) << ")";
    if (skipped)
      std::cerr << "; " << skipped << " malformed entries skipped, the first: " << first_error;
    std::cerr << std::endl;
  }
  failing_ = false;
  last_source_ = src;
  last_files_ = states;
  read_once_ = true;
  return true;
}

void lease_watcher::start() {
  poll();
  thread_ = std::thread([this] { run(); });
}

void lease_watcher::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void lease_watcher::run() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, interval_, [this] { return stopping_; })) {
    lock.unlock();
    try {
      poll();
    } catch (const std::exception& e) {
      // Out of memory on a huge file and the like: report, keep the table, try again.
      std::cerr << "hallpass: device names: " << e.what() << std::endl;
    }
    lock.lock();
  }
}

}  // namespace hallpass

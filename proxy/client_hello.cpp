#include "proxy/client_hello.hpp"

#include <algorithm>

#include "rules/host.hpp"

namespace hallpass {

namespace {

constexpr std::uint8_t content_type_handshake = 22;
constexpr std::uint8_t handshake_client_hello = 1;
constexpr std::size_t record_header_bytes = 5;
constexpr std::size_t max_record_payload = 16384;  // 2^14, RFC 8446 5.1
constexpr std::uint16_t ext_server_name = 0;
constexpr std::uint16_t ext_alpn = 16;
constexpr std::uint16_t ext_encrypted_client_hello = 0xfe0d;

hello_result fail(hello_status s, std::string error) {
  hello_result r;
  r.status = s;
  r.error = std::move(error);
  return r;
}

hello_result need_more() {
  return hello_result{};
}

std::uint8_t byte_at(std::string_view s, std::size_t i) {
  return static_cast<std::uint8_t>(s[i]);
}

// Bounds-checked big-endian reads over one structure; every read fails cleanly at the end.
class tls_reader {
 public:
  explicit tls_reader(std::string_view s) : s_(s) {}
  bool empty() const { return s_.empty(); }
  std::size_t size() const { return s_.size(); }

  bool u8(std::uint8_t& v) {
    if (s_.size() < 1) return false;
    v = byte_at(s_, 0);
    s_.remove_prefix(1);
    return true;
  }
  bool u16(std::uint16_t& v) {
    if (s_.size() < 2) return false;
    v = static_cast<std::uint16_t>(byte_at(s_, 0) << 8 | byte_at(s_, 1));
    s_.remove_prefix(2);
    return true;
  }
  bool bytes(std::size_t n, std::string_view& out) {
    if (s_.size() < n) return false;
    out = s_.substr(0, n);
    s_.remove_prefix(n);
    return true;
  }
  // opaque<0..2^8-1> and opaque<0..2^16-1>: a length prefix, then that many bytes.
  bool prefixed8(std::string_view& out) {
    std::uint8_t n;
    return u8(n) && bytes(n, out);
  }
  bool prefixed16(std::string_view& out) {
    std::uint16_t n;
    return u16(n) && bytes(n, out);
  }

 private:
  std::string_view s_;
};

// RFC 6066 3: ServerNameList. Other name types are skipped as opaque<1..2^16-1>, as Go does.
std::optional<std::string> parse_server_name(std::string_view data, client_hello& out) {
  tls_reader r(data);
  std::string_view list;
  if (!r.prefixed16(list) || !r.empty()) return "bad server_name length";
  if (list.empty()) return "empty server_name list";
  tls_reader names(list);
  while (!names.empty()) {
    std::uint8_t type;
    std::string_view name;
    if (!names.u8(type) || !names.prefixed16(name)) return "bad server_name entry";
    if (type != 0) continue;
    if (out.sni) return "more than one host_name";
    if (name.empty()) return "empty host_name";
    std::string host;
    host.reserve(name.size());
    for (char c : name) {
      auto b = static_cast<unsigned char>(c);
      if (b <= 0x20 || b >= 0x7f) return "host_name is not printable ASCII";
      host += (b >= 'A' && b <= 'Z') ? static_cast<char>(b + ('a' - 'A')) : c;
    }
    const auto normalized = rules::normalize_host(host);
    out.sni_is_address = normalized && normalized->kind != rules::host_kind::name;
    out.sni = std::move(host);
  }
  return std::nullopt;
}

// RFC 7301 3.1: ProtocolNameList, each name opaque<1..2^8-1>.
std::optional<std::string> parse_alpn(std::string_view data, client_hello& out) {
  tls_reader r(data);
  std::string_view list;
  if (!r.prefixed16(list) || !r.empty()) return "bad ALPN length";
  if (list.empty()) return "empty ALPN list";
  tls_reader names(list);
  while (!names.empty()) {
    std::string_view name;
    if (!names.prefixed8(name)) return "bad ALPN entry";
    if (name.empty()) return "empty ALPN protocol name";
    out.alpn.emplace_back(name);
  }
  return std::nullopt;
}

// RFC 8446 4.1.2 (and the TLS 1.2 form, where extensions may be absent).
std::optional<std::string> parse_body(std::string_view body, client_hello& out) {
  tls_reader r(body);
  std::string_view random, session_id, suites, compression;
  if (!r.u16(out.legacy_version)) return "truncated ClientHello";
  if (out.legacy_version >> 8 != 3) return "bad ClientHello version";
  if (!r.bytes(32, random)) return "truncated ClientHello";
  if (!r.prefixed8(session_id)) return "bad session id length";
  if (session_id.size() > 32) return "session id longer than 32 bytes";
  if (!r.prefixed16(suites)) return "bad cipher suites length";
  if (suites.empty() || suites.size() % 2 != 0) return "bad cipher suites length";
  if (!r.prefixed8(compression)) return "bad compression methods length";
  if (compression.empty()) return "no compression methods";
  if (r.empty()) return std::nullopt;

  std::string_view extensions;
  if (!r.prefixed16(extensions)) return "bad extensions length";
  if (!r.empty()) return "bytes after the extensions";
  tls_reader ext(extensions);
  std::vector<std::uint16_t> seen;
  while (!ext.empty()) {
    std::uint16_t type;
    std::string_view data;
    if (!ext.u16(type) || !ext.prefixed16(data)) return "bad extension length";
    if (std::find(seen.begin(), seen.end(), type) != seen.end()) return "duplicate extension";
    seen.push_back(type);
    std::optional<std::string> error;
    if (type == ext_server_name) {
      error = parse_server_name(data, out);
    } else if (type == ext_alpn) {
      error = parse_alpn(data, out);
    } else if (type == ext_encrypted_client_hello) {
      out.ech_extension = true;
    }
    if (error) return error;
  }
  return std::nullopt;
}

}  // namespace

hello_result parse_client_hello(std::string_view bytes) {
  // Reassemble the handshake message from as many records as carry it. Each check runs as
  // soon as its bytes are present, so a wrong stream is recognised from its first bytes.
  std::string handshake;
  std::size_t pos = 0;
  std::size_t message_bytes = 0;  // 4 + body length, once the handshake header is in
  while (true) {
    const bool first = pos == 0;
    // The next record needs a header and at least one byte: with the limit reached, give up
    // rather than ask for more, so max_client_hello_bytes of input always gets an answer.
    if (pos + record_header_bytes >= max_client_hello_bytes)
      return fail(hello_status::malformed, "ClientHello larger than 64 KiB");
    if (bytes.size() <= pos) return need_more();
    if (byte_at(bytes, pos) != content_type_handshake)
      return first ? fail(hello_status::not_tls, "not a TLS handshake record")
                   : fail(hello_status::malformed, "another record type inside the ClientHello");
    if (bytes.size() <= pos + 1) return need_more();
    if (byte_at(bytes, pos + 1) != 3)
      return first ? fail(hello_status::not_tls, "not a TLS record version")
                   : fail(hello_status::malformed, "bad record version");
    if (bytes.size() <= pos + 2) return need_more();
    if (auto minor = byte_at(bytes, pos + 2); minor < 1 || minor > 4)
      return fail(hello_status::malformed, "unsupported record version");
    if (bytes.size() < pos + record_header_bytes) return need_more();
    std::size_t length =
        static_cast<std::size_t>(byte_at(bytes, pos + 3)) << 8 | byte_at(bytes, pos + 4);
    if (length == 0) return fail(hello_status::malformed, "empty handshake record");
    if (length > max_record_payload) return fail(hello_status::malformed, "record too long");
    const std::size_t payload = pos + record_header_bytes;
    if (payload + length > max_client_hello_bytes)
      return fail(hello_status::malformed, "ClientHello larger than 64 KiB");
    const std::size_t available = std::min(length, bytes.size() - payload);
    handshake.append(bytes.substr(payload, available));

    if (!handshake.empty() && byte_at(handshake, 0) != handshake_client_hello)
      return fail(hello_status::malformed, "first handshake message is not a ClientHello");
    if (message_bytes == 0 && handshake.size() >= 4) {
      std::size_t body = static_cast<std::size_t>(byte_at(handshake, 1)) << 16 |
                         static_cast<std::size_t>(byte_at(handshake, 2)) << 8 |
                         byte_at(handshake, 3);
      if (body + 4 > max_client_hello_bytes)
        return fail(hello_status::malformed, "ClientHello larger than 64 KiB");
      message_bytes = body + 4;
    }
    if (message_bytes != 0 && handshake.size() >= message_bytes) break;
    if (available < length) return need_more();
    pos = payload + length;
  }

  hello_result r;
  if (auto error = parse_body(std::string_view(handshake).substr(4, message_bytes - 4), r.hello)) {
    return fail(hello_status::malformed, std::move(*error));
  }
  r.status = hello_status::ok;
  return r;
}

std::string_view to_string(hello_status s) {
  switch (s) {
    case hello_status::need_more:
      return "need_more";
    case hello_status::not_tls:
      return "not_tls";
    case hello_status::malformed:
      return "malformed";
    case hello_status::ok:
      return "ok";
  }
  return "unknown";
}

}  // namespace hallpass

// What the bench's load clients (tls_load.cpp, negotiate_load.cpp) share: a failure value,
// the error counts they report, an IPv4 ADDR:PORT parser and the blocking TCP connect with
// read and write timeouts that bounds every socket call (a stuck peer ends the run with an
// error, never a hang).
//
// Thread-safety: error_counts may be used from every load thread at once (one mutex); the
// functions keep no state.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace hallpass::bench {

struct failure {
  std::string kind, message;
};

// Errors counted by kind, the first message of each kind kept for the report.
class error_counts {
 public:
  void add(const std::string& kind, const std::string& message) {
    std::lock_guard lock(mutex_);
    auto& n = counts_[kind];
    if (n++ == 0) first_[kind] = message;
  }
  // {"KIND":{"count":N,"first":"MESSAGE"},...}
  std::string json() const {
    std::lock_guard lock(mutex_);
    std::string s = "{";
    for (const auto& [k, n] : counts_) {
      if (s.size() > 1) s += ",";
      s += "\"" + escape(k) + "\":{\"count\":" + std::to_string(n) + ",\"first\":\"" + escape(first_.at(k)) + "\"}";
    }
    return s + "}";
  }
  std::uint64_t total() const {
    std::lock_guard lock(mutex_);
    std::uint64_t t = 0;
    for (const auto& [k, n] : counts_) t += n;
    return t;
  }
  // A JSON string's content: quotes and backslashes escaped, control characters as spaces.
  static std::string escape(const std::string& in) {
    std::string out;
    for (unsigned char c : in) {
      if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
      else if (c < 0x20) out += ' ';
      else out += static_cast<char>(c);
    }
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t> counts_;
  std::map<std::string, std::string> first_;
};

// "127.0.0.1:8080"; nullopt when it is not an IPv4 address, a colon and a port.
inline std::optional<sockaddr_in> ipv4_address(const std::string& hostport) {
  const auto colon = hostport.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (colon == std::string::npos || inet_pton(AF_INET, hostport.substr(0, colon).c_str(), &a.sin_addr) != 1)
    return std::nullopt;
  char* end = nullptr;
  const unsigned long port = std::strtoul(hostport.c_str() + colon + 1, &end, 10);
  if (end == hostport.c_str() + colon + 1 || *end != '\0' || port == 0 || port > 65535) return std::nullopt;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  return a;
}

// Opens a blocking TCP connection to `to` whose every read and write gives up after
// `io_timeout` seconds, with TCP_NODELAY. `fd` is set as soon as the socket exists, also when
// the connect fails: the caller closes it.
inline std::optional<failure> connect_tcp(int& fd, const sockaddr_in& to, double io_timeout) {
  fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return failure{"socket", std::strerror(errno)};
  const auto whole = static_cast<time_t>(io_timeout);
  const timeval tv{whole, static_cast<suseconds_t>((io_timeout - static_cast<double>(whole)) * 1e6)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) return failure{"connect", std::strerror(errno)};
  return std::nullopt;
}

}  // namespace hallpass::bench

#include "certs/openssl_handles.hpp"

#include <openssl/err.h>

namespace hallpass::certs {

std::string openssl_error() {
  std::string out;
  char buf[256];
  while (const unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no detail from OpenSSL" : out;
}

}  // namespace hallpass::certs

// Base64 (RFC 4648 alphabet, padded) by OpenSSL's EVP_EncodeBlock: the Negotiate reply token
// (negotiate_acceptor.cpp) and an alert's Subject outside ASCII (RFC 2047, alerts.cpp).
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <string>

namespace hallpass {

inline std::string encode_base64(const void* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), static_cast<const unsigned char*>(data),
                                static_cast<int>(size));
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

}  // namespace hallpass

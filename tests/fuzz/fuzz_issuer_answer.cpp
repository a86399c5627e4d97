// libFuzzer target: what a "CA Issuers" address answers (certs/fetched_issuers.hpp), bytes from
// any web server named in any site's certificate: a DER certificate, PEM, a PKCS#7 bundle, or
// anything else.
//
// Asserted beyond "no crash, no sanitizer report":
//  - an error always says why, and a success returns 1 to 8 certificates, each a CA
//    certificate (basicConstraints CA:TRUE);
//  - kept in a store of capacity 4, the store never holds more, never holds one twice (adding
//    the same answer again adds none), and offers for a certificate only kept ones that
//    issued it, as a stack the caller can free.
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "certs/fetched_issuers.hpp"
#include "tests/fuzz/fuzz_require.hpp"

using namespace hallpass::certs;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;  // the fetch's own limit (proxy/issuer_fetch.hpp)
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto parsed = fetched_issuers::parse(body);
  if (!parsed) {
    FUZZ_REQUIRE(!parsed.error().empty());
    return 0;
  }
  FUZZ_REQUIRE(!parsed->empty() && parsed->size() <= 8);
  for (const auto& c : *parsed) FUZZ_REQUIRE(X509_check_ca(c.get()) == 1);
  X509* first = (*parsed)[0].get();
  X509_up_ref(first);
  const x509_ptr probe(first);
  fetched_issuers store(4);
  const std::size_t count = parsed->size();
  const std::size_t added = store.add(std::move(*parsed));
  FUZZ_REQUIRE(added <= count && store.size() == std::min<std::size_t>(added, 4));
  auto again = fetched_issuers::parse(body);
  FUZZ_REQUIRE(again.ok());
  if (count <= 4) FUZZ_REQUIRE(store.add(std::move(*again)) == 0);
  STACK_OF(X509)* none = sk_X509_new_null();
  if (STACK_OF(X509)* offered = store.with_issuers_of(probe.get(), none)) {
    for (int i = 0; i < sk_X509_num(offered); ++i) {
      FUZZ_REQUIRE(X509_check_ca(sk_X509_value(offered, i)) == 1);
    }
    sk_X509_pop_free(offered, X509_free);
  }
  sk_X509_free(none);
  return 0;
}

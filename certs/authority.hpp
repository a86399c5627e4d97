// The school's root CA (certificate authority): the certificate that pupils' and staff devices
// trust, and its private key, which signs the leaf certificates the proxy shows for inspected
// HTTPS sites. Kept in a directory as ca.crt (PEM, public) and ca.key (PEM, mode 0600).
//
// create_ca() makes a new one; load_ca() reads and checks one, for `hallpass ca show`,
// `hallpass check` and (later) `hallpass run`. An `authority` is immutable once loaded and is
// shared as std::shared_ptr<const authority>: any thread may read it and sign with its key
// (OpenSSL 3 signs with a shared EVP_PKEY from many threads at once).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "certs/openssl_handles.hpp"
#include "certs/result.hpp"

namespace hallpass::certs {

using clock = std::chrono::system_clock;

struct authority {
  x509_ptr certificate;
  pkey_ptr key;
  std::string subject;             // one line: "CN=... web filter CA,O=..."
  std::string fingerprint_sha256;  // "AB:CD:...", as browsers and MDM consoles show it
  std::string key_type;            // "ECDSA P-256", "RSA 2048", ...
  clock::time_point not_before, not_after;
  std::string dir;  // where it was loaded from or created
};

// The file names inside a CA directory.
std::string ca_certificate_path(const std::string& dir);  // DIR/ca.crt
std::string ca_key_path(const std::string& dir);          // DIR/ca.key

// How long a new CA is valid for.
inline constexpr auto ca_lifetime = std::chrono::days(3652);  // 10 years
// load_ca() warns when the CA expires sooner than this.
inline constexpr auto ca_expiry_warning = std::chrono::days(90);

// Creates DIR (mode 0700, its parents like `mkdir -p`) if it does not exist, then DIR/ca.key (mode
// 0600 from its creation) and DIR/ca.crt: ECDSA P-256, self-signed, subject "CN=<school_name> web
// filter CA, O=<school_name>", basicConstraints critical CA:TRUE pathlen:0, keyUsage critical
// keyCertSign+cRLSign, subject and authority key identifiers, a random 128-bit serial, valid
// from `now` for ca_lifetime. Refuses (and changes nothing) when either file exists.
// REQUIRES: school_name is not empty.
result<std::shared_ptr<const authority>> create_ca(const std::string& dir,
                                                   const std::string& school_name,
                                                   clock::time_point now = clock::now());

// What load_ca() found. `ca` is set whenever both files could be read and parsed (so `ca show`
// can still describe an expired CA); the CA may only be used when usable().
struct ca_load {
  std::shared_ptr<const authority> ca;
  std::vector<std::string> errors;    // each a full sentence naming the file
  std::vector<std::string> warnings;  // e.g. expires within 90 days
  bool usable() const { return ca && errors.empty(); }
};

// Reads DIR/ca.crt and DIR/ca.key and checks that: both are readable PEM; the certificate is a
// CA (basicConstraints CA:TRUE) that may sign certificates (keyUsage keyCertSign, when the
// extension is present); the key matches the certificate; `now` is inside its validity (a
// warning when it ends within ca_expiry_warning); the key file gives no access to group or
// others (mode 0600 or 0400).
ca_load load_ca(const std::string& dir, clock::time_point now = clock::now());

// The certificate in PEM, and a multi-line description for people: subject, SHA-256
// fingerprint, validity, key type.
std::string certificate_pem(const authority& ca);
std::string describe(const authority& ca);

// The steps to make devices trust this CA (Windows group policy, ChromeOS admin console,
// iPad MDM profile, macOS, Firefox enterprise policy), naming the file and fingerprint.
std::string install_instructions(const authority& ca);

}  // namespace hallpass::certs

#include "certs/authority.hpp"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "certs/x509_fields.hpp"

namespace hallpass::certs {
namespace {

std::string errno_text(int e) {
  return std::strerror(e);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Writes `data` to a new file created with exactly `mode` (O_EXCL: never replaces a file, and
// the key is never readable by others, not even briefly), then fsyncs it.
std::string write_new_file(const std::string& path, const std::string& data, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return "cannot create " + path + ": " + errno_text(errno);
  std::string error;
  if (::fchmod(fd, mode) != 0) error = "cannot set the mode of " + path + ": " + errno_text(errno);
  std::size_t done = 0;
  while (error.empty() && done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      error = "cannot write " + path + ": " + errno_text(errno);
    else
      done += static_cast<std::size_t>(n);
  }
  if (error.empty() && ::fsync(fd) != 0) error = "cannot sync " + path + ": " + errno_text(errno);
  ::close(fd);
  if (!error.empty()) ::unlink(path.c_str());
  return error;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

bool add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  if (!ext) return false;
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1;
}

std::shared_ptr<const authority> make_authority(x509_ptr cert, pkey_ptr key,
                                                const std::string& dir) {
  auto a = std::make_shared<authority>();
  a->subject = one_line_name(X509_get_subject_name(cert.get()));
  a->fingerprint_sha256 = sha256_fingerprint(cert.get());
  a->key_type = key_type(key.get());
  a->not_before = to_time_point(X509_get0_notBefore(cert.get()));
  a->not_after = to_time_point(X509_get0_notAfter(cert.get()));
  a->dir = dir;
  a->certificate = std::move(cert);
  a->key = std::move(key);
  return a;
}

// A passphrase callback that gives none: an encrypted ca.key is an error, not a prompt on
// the daemon's terminal.
int no_passphrase(char*, int, int, void*) {
  return -1;
}

}  // namespace

std::string ca_certificate_path(const std::string& dir) {
  return dir + "/ca.crt";
}
std::string ca_key_path(const std::string& dir) {
  return dir + "/ca.key";
}

result<std::shared_ptr<const authority>> create_ca(const std::string& dir,
                                                   const std::string& school_name,
                                                   clock::time_point now) {
  using r = result<std::shared_ptr<const authority>>;
  if (school_name.empty()) return r::failure("the school's name must not be empty");
  const std::string crt_path = ca_certificate_path(dir), key_path = ca_key_path(dir);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    // Parents as `mkdir -p` makes them; the CA's own directory for its owner only.
    std::error_code ec;
    const auto parent = std::filesystem::path(dir).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec)
      return r::failure("cannot create the directory " + parent.string() + ": " + ec.message());
    if (::mkdir(dir.c_str(), 0700) != 0) {
      return r::failure("cannot create the directory " + dir + ": " + errno_text(errno));
    }
  } else if (!S_ISDIR(st.st_mode)) {
    return r::failure(dir + " exists and is not a directory");
  } else if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    // Others could swap ca.key and ca.crt in it (outside-in audit of operations, 2026-12-07, L6).
    return r::failure(dir + " may be written by other users: whoever can swap ca.key in it breaks inspection for "
                            "everyone. Run: chmod go-w " + dir + " (0700 suits it), or name a new directory");
  }
  for (const auto& p : {key_path, crt_path}) {
    if (exists(p)) {
      return r::failure(
          "refusing to overwrite " + p + ": a school CA already exists in " + dir +
          ". Every device that trusts it would stop trusting the proxy. To replace it on purpose, "
          "move ca.crt and ca.key away first.");
    }
  }

  pkey_ptr key(EVP_EC_gen("P-256"));
  x509_ptr cert(X509_new());
  if (!key || !cert) return r::failure("cannot generate the CA key: " + openssl_error());
  const std::string cn =
      truncate_utf8(school_name, 64 - 14) + " web filter CA";  // CN is at most 64 characters
  const std::string org = truncate_utf8(school_name, 64);
  X509_NAME* name = X509_get_subject_name(cert.get());
  auto serial = random_serial(16);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  const bool built =
      serial && X509_set_version(cert.get(), X509_VERSION_3) == 1 &&
      X509_set_serialNumber(cert.get(), serial.get()) == 1 &&
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) == 1 &&
      X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(org.c_str()), -1, -1,
                                 0) == 1 &&
      X509_set_issuer_name(cert.get(), name) == 1 && X509_set_pubkey(cert.get(), key.get()) == 1 &&
      set_time(X509_getm_notBefore(cert.get()), now) &&
      set_time(X509_getm_notAfter(cert.get()), now + ca_lifetime) &&
      add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
      add_extension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") &&
      add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash") &&
      add_extension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always") &&
      X509_sign(cert.get(), key.get(), EVP_sha256()) > 0;
  if (!built) return r::failure("cannot build the CA certificate: " + openssl_error());

  bio_ptr key_pem(BIO_new(BIO_s_mem())), crt_pem(BIO_new(BIO_s_mem()));
  if (!key_pem || !crt_pem ||
      PEM_write_bio_PrivateKey(key_pem.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1 ||
      PEM_write_bio_X509(crt_pem.get(), cert.get()) != 1) {
    return r::failure("cannot encode the CA: " + openssl_error());
  }
  if (auto e = write_new_file(key_path, bio_text(key_pem.get()), 0600); !e.empty())
    return r::failure(e);
  if (auto e = write_new_file(crt_path, bio_text(crt_pem.get()), 0644); !e.empty()) {
    ::unlink(key_path.c_str());  // no half CA: a key without its certificate is useless
    return r::failure(e);
  }
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);  // the new names survive a power cut
    ::close(dfd);
  }
  return make_authority(std::move(cert), std::move(key), dir);
}

ca_load load_ca(const std::string& dir, clock::time_point now) {
  ca_load out;
  const std::string crt_path = ca_certificate_path(dir), key_path = ca_key_path(dir);

  x509_ptr cert;
  if (FILE* f = std::fopen(crt_path.c_str(), "re")) {
    cert.reset(PEM_read_X509(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    if (!cert) out.errors.push_back(crt_path + " is not a PEM certificate: " + openssl_error());
  } else {
    out.errors.push_back(
        "cannot read " + crt_path + ": " + errno_text(errno) +
        (errno == ENOENT ? " (create a CA with: hallpass ca init --dir " + dir + ")" : ""));
  }

  pkey_ptr key;
  struct stat st {};
  // The directory too: other users who may write in it can swap the key and the certificate
  // (outside-in audit of operations, 2026-12-07, L6: check said OK of a 0777 one).
  if (::stat(dir.c_str(), &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    out.errors.push_back(dir + " may be written by other users (mode " + mode +
                         "): they could swap ca.key and ca.crt. Run: chmod go-w " + dir);
  }
  if (FILE* f = std::fopen(key_path.c_str(), "re")) {
    if (::fstat(::fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      out.errors.push_back(
          key_path + " may be read or changed by other users (mode " + mode +
          "); whoever has it can impersonate any website to the school's devices. Run: chmod 600 " +
          key_path);
    }
    key.reset(PEM_read_PrivateKey(f, nullptr, no_passphrase, nullptr));
    std::fclose(f);
    if (!key) {
      out.errors.push_back(key_path + " is not an unencrypted PEM private key: " + openssl_error());
    }
  } else {
    out.errors.push_back("cannot read " + key_path + ": " + errno_text(errno));
  }
  if (!cert || !key) return out;

  X509* x = cert.get();
  const uint32_t flags = X509_get_extension_flags(x);
  if ((flags & EXFLAG_CA) == 0 || (flags & EXFLAG_BCONS) == 0) {
    out.errors.push_back(
        crt_path +
        " is not a CA certificate (its basicConstraints do not say CA:TRUE), so it "
        "cannot sign the certificates of inspected sites");
  } else if ((flags & EXFLAG_KUSAGE) == 0) {
    // RFC 5280 4.2.1.3: a CA's certificate must carry keyUsage. Without it OpenSSL's strict
    // verification (and so some clients) refuses every leaf it signs. A warning, not an error:
    // browsers accept it, and a school running on such a CA must not lose its filter on an
    // upgrade.
    out.warnings.push_back(crt_path +
                           " has no keyUsage extension: browsers accept the certificates it signs, but strict "
                           "clients (openssl verify -x509_strict, some apps) refuse them; when you can, make a new "
                           "CA with hallpass ca init (keyUsage keyCertSign) and install it on the devices");
  } else if ((X509_get_key_usage(x) & KU_KEY_CERT_SIGN) == 0) {
    out.errors.push_back(
        crt_path + " is a CA whose keyUsage does not allow signing certificates (keyCertSign)");
  }
  if (X509_check_private_key(x, key.get()) != 1) {
    ERR_clear_error();
    out.errors.push_back(key_path + " is not the key of " + crt_path + " (they do not match)");
  }
  auto ca = make_authority(std::move(cert), std::move(key), dir);
  if (now < ca->not_before) {
    out.errors.push_back(crt_path + " is not valid yet: it starts on " + utc_text(ca->not_before) +
                         " (is this machine's clock right?)");
  } else if (now >= ca->not_after) {
    out.errors.push_back(crt_path + " expired on " + utc_text(ca->not_after) +
                         "; create a new CA and install it on every device");
  } else if (ca->not_after - now < ca_expiry_warning) {
    const auto days = std::chrono::duration_cast<std::chrono::days>(ca->not_after - now).count();
    out.warnings.push_back(crt_path + " expires on " + utc_text(ca->not_after) + " (in " +
                           std::to_string(days) +
                           " days): create a new CA and install it on every device before then");
  }
  out.ca = std::move(ca);
  return out;
}

std::string certificate_pem(const authority& ca) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), ca.certificate.get()) != 1) return "";
  return bio_text(bio.get());
}

std::string describe(const authority& ca) {
  std::string out;
  out += "Subject:     " + ca.subject + "\n";
  out += "SHA-256:     " + ca.fingerprint_sha256 + "\n";
  out += "Valid:       " + utc_text(ca.not_before) + " to " + utc_text(ca.not_after) + "\n";
  out += "Key:         " + ca.key_type + "\n";
  out +=
      "Certificate: " + ca_certificate_path(ca.dir) + " (install this on the school's devices)\n";
  out += "Key file:    " + ca_key_path(ca.dir) + " (secret: never copy it to a device)\n";
  return out;
}

std::string install_instructions(const authority& ca) {
  const std::string crt = ca_certificate_path(ca.dir);
  return "Install " + crt +
         " as a trusted root on every school device (not the key!).\n"
         "Check on each kind of device that the fingerprint shown is\n  SHA-256 " +
         ca.fingerprint_sha256 +
         "\n"
         "\n"
         "Windows (domain group policy):\n"
         "  Group Policy Management > edit a GPO linked to the computers' OU > Computer "
         "Configuration >\n"
         "  Policies > Windows Settings > Security Settings > Public Key Policies >\n"
         "  Trusted Root Certification Authorities > right-click, Import > " +
         crt +
         ".\n"
         "  Devices pick it up at the next policy refresh (gpupdate /force). Chrome and Edge use "
         "it.\n"
         "ChromeOS (Google Admin console):\n"
         "  Devices > Networks > Certificates > choose the organisational unit > Add certificate "
         ">\n"
         "  upload " +
         crt +
         " > tick 'Chromebook' under 'Certificate authority' > Save.\n"
         "iPad and iPhone (MDM profile):\n"
         "  In the MDM (Jamf, Intune, Apple School Manager's MDM, ...) add a configuration "
         "profile\n"
         "  with a Certificate payload holding " +
         crt +
         ", and assign it to the devices. On\n"
         "  supervised devices an MDM-installed root is trusted at once; a profile installed by "
         "hand\n"
         "  also needs Settings > General > About > Certificate Trust Settings > full trust.\n"
         "macOS:\n"
         "  The same MDM Certificate payload; or, on one Mac:\n"
         "  sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain " +
         crt +
         "\n"
         "Firefox (enterprise policy: policies.json, or the Firefox ADMX templates in group "
         "policy):\n"
         "  {\"policies\": {\"Certificates\": {\"ImportEnterpriseRoots\": true}}}  to trust the "
         "system's roots\n"
         "  (the same as about:config security.enterprise_roots.enabled = true), or\n"
         "  {\"policies\": {\"Certificates\": {\"Install\": [\"" +
         crt +
         "\"]}}}  to install this file.\n"
         "\n"
         "Keep " +
         ca_key_path(ca.dir) +
         " secret (mode 0600, owned by the user hallpass runs as):\n"
         "whoever has it can impersonate any website to every device that trusts this CA. Keep an\n"
         "encrypted offline backup. See certs/README.md.\n";
}

}  // namespace hallpass::certs

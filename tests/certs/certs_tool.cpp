// certs_tool: drives certs/ from the integration test (tests/integration/certs_test.py) so
// that real clients (openssl, curl) check what it makes. Not installed.
//
//   certs_tool write --ca-dir DIR --host HOST --cert FILE --key FILE
//       mint a leaf for HOST and write it and the shared leaf key as PEM.
//   certs_tool serve --ca-dir DIR --port PORT --count N
//       serve N HTTPS connections on 127.0.0.1:PORT (30 s at most), each presenting the leaf
//       the leaf_cache gives for the client's SNI (no SNI: 127.0.0.1), answering one request with
//       "host=HOST alpn=ALPN"; then print the cache's counters.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include "certs/leaf_cache.hpp"

using namespace hallpass::certs;

namespace {

std::map<std::string, std::string> flags(int argc, char** argv) {
  std::map<std::string, std::string> out;
  for (int i = 2; i + 1 < argc; i += 2) out[argv[i]] = argv[i + 1];
  return out;
}

std::shared_ptr<const leaf_minter> minter_for(const std::string& dir) {
  const auto l = load_ca(dir);
  for (const auto& e : l.errors) std::cerr << "certs_tool: " << e << "\n";
  if (!l.usable()) return nullptr;
  auto m = leaf_minter::create(l.ca);
  if (!m) std::cerr << "certs_tool: " << m.error() << "\n";
  return m ? *m : nullptr;
}

bool write_pem(const std::string& path, bool key, X509* cert, EVP_PKEY* pkey) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return false;
  const bool ok = key ? PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr) == 1
                      : PEM_write_X509(f, cert) == 1;
  return std::fclose(f) == 0 && ok;
}

int write(std::map<std::string, std::string> f) {
  auto minter = minter_for(f["--ca-dir"]);
  if (!minter) return 1;
  auto leaf = minter->mint(f["--host"]);
  if (!leaf) {
    std::cerr << "certs_tool: " << leaf.error() << "\n";
    return 1;
  }
  if (!write_pem(f["--cert"], false, leaf->get(), nullptr) ||
      !write_pem(f["--key"], true, nullptr, minter->leaf_key())) {
    std::cerr << "certs_tool: cannot write the files\n";
    return 1;
  }
  return 0;
}

// SNI callback: present the cached leaf for the name the client asked for.
int pick_leaf(SSL* ssl, int*, void* arg) {
  auto* cache = static_cast<leaf_cache*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  auto f = cache->get(name ? name : "127.0.0.1");
  if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready || !f.get())
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  if (!cache->minter().use_leaf(ssl, f.get()->get())) return SSL_TLSEXT_ERR_ALERT_FATAL;
  return SSL_TLSEXT_ERR_OK;
}

int serve(std::map<std::string, std::string> f) {
  auto minter = minter_for(f["--ca-dir"]);
  if (!minter) return 1;
  leaf_cache cache(minter, {.capacity = 100, .threads = 1});
  // The minter's one shared context (this tool's own minter): the servername callback, which
  // OpenSSL calls with or without SNI, sets the cached leaf on each connection.
  SSL_CTX* front = minter->server_context().get();
  SSL_CTX_set_tlsext_servername_callback(front, pick_leaf);
  SSL_CTX_set_tlsext_servername_arg(front, &cache);

  const int count = std::stoi(f["--count"]);
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(f["--port"])));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listener, 16) != 0) {
    std::perror("certs_tool: bind");
    return 1;
  }
  std::cout << "ready" << std::endl;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (int served = 0; served < count && std::chrono::steady_clock::now() < deadline;) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 500) <= 0) continue;
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++served;
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ssl_ptr ssl(SSL_new(front));
    SSL_set_fd(ssl.get(), fd);
    if (SSL_accept(ssl.get()) == 1) {
      char buf[4096];
      SSL_read(ssl.get(), buf, sizeof buf);  // the request head; small enough for one record
      const char* name = SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name);
      const unsigned char* alpn = nullptr;
      unsigned alpn_len = 0;
      SSL_get0_alpn_selected(ssl.get(), &alpn, &alpn_len);
      const std::string body = "host=" + std::string(name ? name : "127.0.0.1") + " alpn=" +
                               std::string(reinterpret_cast<const char*>(alpn), alpn_len) + "\n";
      const std::string response =
          "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
          "\r\nConnection: close\r\n\r\n" + body;
      SSL_write(ssl.get(), response.data(), static_cast<int>(response.size()));
      SSL_shutdown(ssl.get());
    }
    ERR_clear_error();
    ::close(fd);
  }
  ::close(listener);
  const auto s = cache.stats();
  std::cout << "mints=" << s.mints << " hits=" << s.hits << " joined=" << s.joined << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string verb = argc > 1 ? argv[1] : "";
  if (verb == "write") return write(flags(argc, argv));
  if (verb == "serve") return serve(flags(argc, argv));
  std::cerr << "usage: certs_tool write --ca-dir DIR --host HOST --cert FILE --key FILE\n"
               "       certs_tool serve --ca-dir DIR --port PORT --count N\n";
  return 2;
}

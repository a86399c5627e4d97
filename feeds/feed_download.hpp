// Downloading one feed with libcurl: HTTPS with certificate verification, connect and total
// timeouts, a size limit, and a conditional request (ETag / If-Modified-Since) so that an
// unchanged feed costs one small response and nothing is rewritten.
//
// Blocking; call from a command-line tool or any thread but a proxy event loop. Independent
// calls may run concurrently (curl_global_init is done once, thread-safely).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace hallpass::feeds {

struct download_request {
  std::string url;
  std::string credentials;    // "user:password" for HTTP basic auth, or empty; never logged
  std::string etag;           // from the version on disk: sent as If-None-Match
  std::string last_modified;  // sent as If-Modified-Since
  std::string ca_file;        // PEM CAs trusted besides the system's (a private mirror's CA), or empty
  std::string into;           // the file the body is written to (created; removed on failure)
  std::chrono::seconds connect_timeout{20};
  std::chrono::seconds total_timeout{600};
  std::uint64_t max_bytes = 512ull << 20;  // the UT1 tarball is about 20 MB gzipped
};

struct download_result {
  bool ok = false;
  bool not_modified = false;  // 304: the version on disk is current; `into` was not written
  std::string error;          // when !ok: in words, with the HTTP status or curl's reason
  std::string etag, last_modified;
  std::uint64_t bytes = 0;
};

download_result download(const download_request& r);

}  // namespace hallpass::feeds

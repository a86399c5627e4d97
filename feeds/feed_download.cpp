#include "feeds/feed_download.hpp"

#include <cerrno>
#include <cstring>

#include <curl/curl.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>

namespace hallpass::feeds {
namespace {

struct sink {
  std::FILE* file = nullptr;
  std::uint64_t bytes = 0, max = 0;
  bool too_large = false, write_failed = false;
  std::string etag, last_modified;
  // The response whose headers were read last (reset at each status line: a redirect's, then
  // the final one's): whether its body's end can be told from a connection cut short.
  long status = 0;
  bool http1 = false, has_length = false, chunked = false;
  bool unframed = false;  // a body arrived that close_delimited() says cannot be verified
  // HTTP/1.x ends a body with neither Content-Length nor chunked coding by closing the
  // connection, which a server that died or a network that dropped does too: such a body may
  // be cut anywhere (a list eroded run after run; `compare.example` went in as `com`).
  // HTTP/2 and 3 frame every body. 204 has no body.
  bool close_delimited() const {
    return http1 && !has_length && !chunked && status >= 200 && status <= 299 && status != 204;
  }
};

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* s = static_cast<sink*>(user);
  const std::size_t len = size * n;
  if (s->close_delimited()) {
    s->unframed = true;
    return 0;  // aborts the transfer: nothing of it is used
  }
  if (s->bytes + len > s->max) {
    s->too_large = true;
    return 0;  // aborts the transfer
  }
  if (std::fwrite(data, 1, len, s->file) != len) {
    s->write_failed = true;
    return 0;
  }
  s->bytes += len;
  return len;
}

std::string header_value(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() || line[name.size()] != ':') return {};
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return {};
  }
  line.remove_prefix(name.size() + 1);
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' '))
    line.remove_suffix(1);
  return std::string(line);
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* s = static_cast<sink*>(user);
  const std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    // "HTTP/1.1 200 OK", "HTTP/2 200": a new response begins.
    s->http1 = line.starts_with("HTTP/1.");
    s->has_length = s->chunked = false;
    s->status = 0;
    if (const auto sp = line.find(' '); sp != std::string_view::npos) {
      for (std::size_t i = sp + 1;
           i < line.size() && i < sp + 4 && std::isdigit(static_cast<unsigned char>(line[i])); ++i)
        s->status = s->status * 10 + (line[i] - '0');
    }
  }
  if (!header_value(line, "content-length").empty()) s->has_length = true;
  if (auto v = header_value(line, "transfer-encoding"); !v.empty()) {
    for (auto& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    s->chunked = v.find("chunked") != std::string::npos;
  }
  if (auto v = header_value(line, "etag"); !v.empty()) s->etag = v;
  if (auto v = header_value(line, "last-modified"); !v.empty()) s->last_modified = v;
  return size * n;
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

download_result download(const download_request& r) {
  global_init();
  download_result out;
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) {
    out.error = "libcurl could not start";
    return out;
  }
  sink s;
  s.max = r.max_bytes;
  s.file = std::fopen(r.into.c_str(), "wb");
  if (!s.file) {
    // The reason, and what usually causes it: a directory another user (root) made.
    out.error = "cannot create " + r.into + ": " + std::strerror(errno) +
                (errno == EACCES ? " (is its directory another user's? run `hallpass feeds update` once as root, "
                                   "which gives the feeds to the state directory's owner)"
                                 : "");
    return out;
  }
  CURL* c = curl.get();
  char curl_error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
  // A redirect keeps the feed's scheme or goes from http to https: it never downgrades an https
  // feed to http, and never leaves for file://, ftp:// and the like. An http feed gains nothing
  // from forbidding http (a same-host relative redirect failed: outside-in audit I).
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR,
                   r.url.starts_with("http://") ? "http,https" : "https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!r.ca_file.empty()) {
    // CAINFO replaces Debian's bundle file, but the CA directory (/etc/ssl/certs, libcurl's
    // built-in CAPATH) is still searched: the feed's CA is trusted besides the system's.
    curl_easy_setopt(c, CURLOPT_CAINFO, r.ca_file.c_str());
  }
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, static_cast<long>(r.connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT, static_cast<long>(r.total_timeout.count()));
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(r.max_bytes));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "hallpass-feeds/" HALLPASS_VERSION);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_error);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &s);
  if (!r.credentials.empty()) {
    // Sent only to the feed's own host (libcurl drops it on a redirect to another host).
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERPWD, r.credentials.c_str());
  }
  curl_slist* headers = nullptr;
  if (!r.etag.empty()) headers = curl_slist_append(headers, ("If-None-Match: " + r.etag).c_str());
  if (!r.last_modified.empty())
    headers = curl_slist_append(headers, ("If-Modified-Since: " + r.last_modified).c_str());
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> header_list(headers, curl_slist_free_all);
  if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

  const CURLcode rc = curl_easy_perform(c);
  const bool closed = std::fclose(s.file) == 0;
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  auto fail = [&](std::string why) {
    std::error_code ec;
    std::filesystem::remove(r.into, ec);
    out.error = std::move(why);
    return out;
  };
  if (s.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
    return fail("the download is larger than the limit of " + std::to_string(r.max_bytes >> 20) +
                " MiB");
  }
  if (s.write_failed || !closed) return fail("cannot write " + r.into + " (disk full?)");
  if (s.unframed || (rc == CURLE_OK && s.close_delimited())) {
    return fail(
        "the server sent the list with neither a Content-Length nor chunked transfer-coding, "
        "only closing the connection at its end, so a download cut short cannot be told from a "
        "whole one; the server must send the length");
  }
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    return fail(std::string("timed out (") + (curl_error[0] ? curl_error : curl_easy_strerror(rc)) +
                ")");
  }
  if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE) {
    return fail(std::string("the server's certificate could not be verified (") +
                (curl_error[0] ? curl_error : curl_easy_strerror(rc)) +
                (r.ca_file.empty() ? "; a private mirror's CA goes in the feed's ca_file" : "; ca_file " + r.ca_file) +
                ")");
  }
  if (rc == CURLE_UNSUPPORTED_PROTOCOL) {
    // Said in libcurl's words ("Protocol "http" not supported or disabled in libcurl"), this
    // read as a broken install (outside-in audit of the feeds, 2026-12-06, L3).
    return fail("the server redirected to an address hallpass does not follow (an https feed never goes to http, "
                "and no feed to file://, ftp:// or the like): give the feed's final https address as its url");
  }
  if (rc != CURLE_OK) return fail(curl_error[0] ? curl_error : curl_easy_strerror(rc));
  if (status == 304) {
    std::error_code ec;
    std::filesystem::remove(r.into, ec);
    out.ok = out.not_modified = true;
    return out;
  }
  // 200 only: a 206 is part of a list (hallpass never asks for a range; a cache or a proxy in
  // between may answer with one), and was installed as a whole one, its last entry cut
  // (outside-in audit of the feeds, 2026-12-06, M1); other 2xx carry no list either.
  if (status != 200) {
    return fail("the server answered HTTP " + std::to_string(status) +
                (status == 206 ? " (only part of the list)" : "") + ", not 200 with the whole list");
  }
  out.ok = true;
  out.bytes = s.bytes;
  out.etag = s.etag;
  out.last_modified = s.last_modified;
  return out;
}

}  // namespace hallpass::feeds

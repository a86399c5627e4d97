#include "proxy/log_files.hpp"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

namespace hallpass {
namespace {

constexpr std::size_t max_log_line = 1024 * 1024;

}  // namespace

std::vector<std::string> access_log_files(const std::string& path, std::chrono::sys_seconds from) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  const std::string base = p.filename().string();
  std::vector<std::pair<long, std::string>> rotated;  // (N of PATH.N[.gz], file)
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(base + ".")) continue;
    std::string_view rest = std::string_view(name).substr(base.size() + 1);
    if (rest.ends_with(".gz")) rest.remove_suffix(3);
    long n = 0;
    if (rest.empty() || std::from_chars(rest.data(), rest.data() + rest.size(), n).ptr != rest.data() + rest.size()) {
      continue;  // not logrotate's PATH.N
    }
    struct stat st {};
    if (::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (std::chrono::sys_seconds{std::chrono::seconds{st.st_mtime}} < from) continue;  // nothing newer in it
    rotated.emplace_back(n, it->path().string());
  }
  // Oldest first; for one N, the plain file before its .gz (logrotate is compressing it: the .gz
  // may be half written), and the .gz then left out.
  std::sort(rotated.begin(), rotated.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second.size() < b.second.size();
  });
  std::vector<std::string> out;
  for (std::size_t k = 0; k < rotated.size(); ++k) {
    if (k > 0 && rotated[k].first == rotated[k - 1].first) continue;
    out.push_back(std::move(rotated[k].second));
  }
  out.push_back(path);
  return out;
}

std::string read_log_lines(const std::string& file, const std::function<void(std::string_view)>& line) {
  // A directory named by mistake is said as such, not read as an empty log. A pipe is read
  // (--log <(journalctl -u hallpass -o cat), when the log goes to the journal).
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    return file + ": not a file but a directory (name the access log's files, not their directory)";
  }
  gzFile f = ::gzopen(file.c_str(), "rb");
  if (!f) return file + ": " + std::strerror(errno ? errno : ENOENT);
  ::gzbuffer(f, 128 * 1024);
  std::string current;
  bool overlong = false;
  char buf[64 * 1024];
  std::string error;
  for (;;) {
    const int n = ::gzread(f, buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      const char* msg = ::gzerror(f, &code);
      // zlib's message starts with the path itself: said once.
      std::string_view said = msg ? msg : "read error";
      if (said.starts_with(file + ": ")) said.remove_prefix(file.size() + 2);
      error = file + ": " + std::string(said) + " (the lines before it were read)";
      break;
    }
    if (n == 0) break;
    std::string_view chunk(buf, static_cast<std::size_t>(n));
    for (;;) {
      const auto nl = chunk.find('\n');
      const auto part = chunk.substr(0, nl);
      if (!overlong) {
        if (current.size() + part.size() > max_log_line) {
          overlong = true;
          current.clear();
        } else {
          current.append(part);
        }
      }
      if (nl == std::string_view::npos) break;
      line(overlong ? std::string_view() : std::string_view(current));
      current.clear();
      overlong = false;
      chunk.remove_prefix(nl + 1);
    }
  }
  // A last line without its newline (the writer was mid-line): read like the others.
  if (error.empty() && (overlong || !current.empty())) line(overlong ? std::string_view() : std::string_view(current));
  // A gzip file cut short reads as its end with no error from gzread; gzclose_r says so.
  const int closed = ::gzclose_r(f);
  if (error.empty() && closed != Z_OK) error = file + ": cut short or damaged (the lines before it were read)";
  return error;
}

}  // namespace hallpass

#include "proxy/list_record.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "rules/policy_loader.hpp"

namespace hallpass {
namespace json = boost::json;

std::string list_record_path(const std::string& state_dir) {
  return (std::filesystem::path(state_dir) / "list-sources.json").string();
}

std::vector<std::string> emptied_since_last_run(const std::string& state_dir, const rules::policy& p,
                                                std::vector<std::string>& warnings) {
  const std::string path = list_record_path(state_dir);
  // Read as root before privileges are dropped, in the daemon user's directory: never through
  // a link, never a FIFO that would hang the start, at most 16 MiB.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) warnings.push_back(path + " cannot be read (" + std::strerror(errno) + "): the lists are not "
                                            "compared with the last run");
    return {};  // ENOENT: the first run, or a state_dir without one
  }
  std::string text;
  struct stat st {};
  const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= (16 << 20);
  if (regular) {
    text.resize(static_cast<std::size_t>(st.st_size));
    const ssize_t n = ::read(fd, text.data(), text.size());
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  ::close(fd);
  boost::system::error_code ec;
  const json::value v = regular ? json::parse(text, ec) : json::value();
  rules::source_counts before;
  const json::object* categories = nullptr;
  if (!ec && v.is_object()) {
    if (const json::value* c = v.as_object().if_contains("categories")) categories = c->if_object();
  }
  if (!categories) {
    warnings.push_back(path + " cannot be read (" + (ec ? ec.message() : std::string("not the expected object")) +
                       "): a list emptied while hallpass was stopped cannot be told from one emptied on purpose");
    return {};
  }
  for (const auto& [category, sources] : *categories) {
    const json::object* o = sources.if_object();
    if (!o) continue;
    auto& counts = before[std::string(category)];
    for (const auto& [source, entries] : *o) {
      if (entries.is_int64() && entries.as_int64() >= 0) counts[std::string(source)] = static_cast<std::size_t>(entries.as_int64());
      if (entries.is_uint64()) counts[std::string(source)] = static_cast<std::size_t>(entries.as_uint64());
    }
  }
  return rules::emptied_sources(before, p, "when hallpass last ran (" + path + ")",
                                "hallpass does not start (to start without this comparison, remove " + path + ")");
}

std::string write_list_record(const std::string& state_dir, const rules::policy& p) {
  json::object categories;
  for (const auto& [category, sources] : rules::count_sources(p)) {
    json::object o;
    for (const auto& [source, entries] : sources) o[source] = entries;
    categories[category] = std::move(o);
  }
  const std::string text = json::serialize(json::object{{"categories", std::move(categories)}}) + "\n";
  const std::string path = list_record_path(state_dir);
  const std::string tmp = path + ".tmp";
  // A new file, never one that is there (nor what a symbolic link there names).
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0) return tmp + ": " + std::strerror(errno);
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string e = tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return e;
    }
    done += static_cast<std::size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  const int sync_errno = errno;
  if (::close(fd) != 0 || !synced) {
    const std::string e = tmp + ": " + std::strerror(synced ? errno : sync_errno);
    ::unlink(tmp.c_str());
    return e;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string e = path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return e;
  }
  return {};
}

}  // namespace hallpass

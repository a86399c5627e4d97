#include "feeds/feed_update.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <vector>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "feeds/feed_download.hpp"
#include "rules/host.hpp"

namespace hallpass::feeds {
namespace {

namespace fs = std::filesystem;

std::string trim(std::string s) {
  while (!s.empty() &&
         (s.back() == '\r' || s.back() == '\n' || s.back() == ' ' || s.back() == '\t'))
    s.pop_back();
  std::size_t b = 0;
  while (b < s.size() && (s[b] == ' ' || s[b] == '\t')) ++b;
  return s.substr(b);
}

// The `key: value` lines of a feed.info.
std::string info_value(const fs::path& info, std::string_view key) {
  std::ifstream in(info);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 &&
        line[key.size()] == ':') {
      return trim(line.substr(key.size() + 1));
    }
  }
  return {};
}

bool valid_list_name(std::string_view s) {
  return !s.empty() && s.size() <= 64 && s != "." && s != ".." &&
         std::all_of(s.begin(), s.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
         });
}

// The download, read through zlib for libarchive: zlib undoes gzip and checks each member's
// CRC-32 and length, which libarchive's gzip filter does not (a flipped byte or a damaged
// trailer went in: audit14 D4); anything else zlib passes through as it is, for libarchive's
// own filters. One pass: the archive is decompressed once.
struct gz_source {
  gzFile gz = nullptr;
  std::vector<char> buf = std::vector<char>(65536);
  // Every byte the archive unpacks to, the members skipped included (unpack_limits::archive_bytes).
  std::uint64_t read = 0, limit = ~std::uint64_t{0};
  bool over = false;
  ~gz_source() {
    if (gz != nullptr) gzclose(gz);
  }
  // The rest of the stream, read to its end: the tar reader stops at the archive's end blocks,
  // before gzip's trailer, where the check is. Empty, or what is wrong.
  std::string finish() {
    int n = 0;
    while ((n = gzread(gz, buf.data(), static_cast<unsigned>(buf.size()))) > 0) {
      read += static_cast<std::uint64_t>(n);
      if (read > limit) {
        over = true;
        return "over the limit";
      }
    }
    int code = Z_OK;
    return n < 0 ? std::string("gzip: ") + gzerror(gz, &code) : std::string();
  }
};

la_ssize_t read_through_zlib(archive* a, void* data, const void** block) {
  auto& src = *static_cast<gz_source*>(data);
  const int n = gzread(src.gz, src.buf.data(), static_cast<unsigned>(src.buf.size()));
  if (n < 0) {
    int code = Z_OK;
    archive_set_error(a, EIO, "gzip: %s", gzerror(src.gz, &code));
    return -1;
  }
  src.read += static_cast<std::uint64_t>(n);
  if (src.read > src.limit) {
    src.over = true;
    archive_set_error(a, EFBIG, "the archive unpacks to more than the limit");
    return -1;
  }
  *block = src.buf.data();
  return n;
}

// "1024 MiB", or "150 bytes" for a limit that is not a whole number of MiB (tests).
std::string size_text(std::uint64_t bytes) {
  if (bytes % (std::uint64_t{1} << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace

std::string unpack_ut1(const std::string& archive_path, const std::string& dir_name,
                       const unpack_limits& limits) {
  const fs::path dir(dir_name);
  gz_source src;
  src.limit = limits.archive_bytes;
  // Past the limit on every byte unpacked (members skipped included: 8 GiB of zeros in a
  // skipped member cost 18 s of CPU, outside-in audit of the feeds, 2026-12-06, L1), else damaged.
  const auto damaged = [&](const char* why) {
    if (src.over) {
      return "the archive unpacks to more than " + size_text(limits.archive_bytes) +
             ", the limit (a compression bomb, or not the UT1 archive?)";
    }
    return std::string("the archive is damaged or truncated: ") + (why ? why : "");
  };
  src.gz = gzopen(archive_path.c_str(), "rb");
  if (src.gz == nullptr) return "cannot read " + archive_path;
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  if (archive_read_open(a.get(), &src, nullptr, read_through_zlib, nullptr) != ARCHIVE_OK) {
    return damaged(archive_error_string(a.get()));
  }
  // A bomb is refused before its bytes are written where the header says how large a member
  // is, and at the limit while writing otherwise (a header can understate: a sparse member).
  const std::string bomb = " (a compression bomb, or not the UT1 archive?)";
  std::size_t lists = 0;
  std::uint64_t total = 0;
  archive_entry* e = nullptr;
  for (;;) {
    const int rc = archive_read_next_header(a.get(), &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
      return damaged(archive_error_string(a.get()));
    }
    std::string path = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    while (path.starts_with("./")) path.erase(0, 2);
    // blacklists/<category>/<file>
    const auto s1 = path.find('/'), s2 = path.find('/', s1 == std::string::npos ? 0 : s1 + 1);
    const bool wanted = archive_entry_filetype(e) == AE_IFREG && s1 != std::string::npos &&
                        s2 != std::string::npos && path.substr(0, s1) == "blacklists" &&
                        path.find('/', s2 + 1) == std::string::npos &&
                        valid_list_name(path.substr(s1 + 1, s2 - s1 - 1)) &&
                        (path.substr(s2 + 1) == "domains" || path.substr(s2 + 1) == "urls");
    if (!wanted) {
      if (archive_read_data_skip(a.get()) != ARCHIVE_OK) {
        return damaged(archive_error_string(a.get()));
      }
      continue;
    }
    if (++lists > limits.list_files) {
      return "the archive holds more than " + std::to_string(limits.list_files) +
             " list files (blacklists/<list>/domains or urls), the limit" + bomb;
    }
    const auto declared = archive_entry_size_is_set(e) && archive_entry_size(e) > 0
                              ? static_cast<std::uint64_t>(archive_entry_size(e))
                              : 0;
    auto too_large = [&](std::uint64_t file_bytes, std::uint64_t total_bytes) -> std::string {
      if (file_bytes > limits.list_file_bytes) {
        return path + " is larger than " + size_text(limits.list_file_bytes) +
               ", the limit for one list file" + bomb;
      }
      if (total_bytes > limits.total_bytes) {
        return "the archive's list files together are larger than " +
               size_text(limits.total_bytes) + ", the limit" + bomb;
      }
      return {};
    };
    if (auto why = too_large(declared, total + declared); !why.empty()) return why;
    const fs::path out = dir / path;
    std::error_code ec;
    fs::create_directories(out.parent_path(), ec);
    std::FILE* f = std::fopen(out.c_str(), "wb");
    if (!f) return "cannot create " + out.string();
    char buf[65536];
    la_ssize_t n = 0;
    std::uint64_t written = 0;
    bool write_ok = true;
    std::string over;
    while ((n = archive_read_data(a.get(), buf, sizeof buf)) > 0) {
      written += static_cast<std::uint64_t>(n);
      if (over = too_large(written, total + written); !over.empty()) break;
      write_ok = write_ok &&
                 std::fwrite(buf, 1, static_cast<std::size_t>(n), f) == static_cast<std::size_t>(n);
    }
    write_ok = std::fclose(f) == 0 && write_ok;
    if (!over.empty()) return over;
    if (n < 0)
      return damaged(archive_error_string(a.get()));
    if (!write_ok) return "cannot write " + out.string() + " (disk full?)";
    total += written;
  }
  if (auto e = src.finish(); !e.empty()) return damaged(e.c_str());
  if (lists == 0)
    return "not a UT1 archive: it holds no blacklists/<category>/domains or urls file";
  return {};
}

namespace {

// The entries of one list in a version directory (both files of a UT1 list).
std::vector<std::string> list_entries(const fs::path& version, const rules::feed& f,
                                      const std::string& list, skipped_lines* skipped = nullptr) {
  using kind = rules::list_file_kind;
  if (f.format == rules::feed_format::lines)
    return read_entries((version / "list").string(), kind::mixed, skipped);
  auto out =
      read_entries((version / "blacklists" / list / "domains").string(), kind::domains, skipped);
  for (auto& u :
       read_entries((version / "blacklists" / list / "urls").string(), kind::urls, skipped))
    out.push_back(std::move(u));
  return out;
}

// Whether a list entry ("com", "co.uk/", a host, "host/page") names a whole top-level domain or
// registry suffix (update_options::is_registry_suffix); a page under one does not.
bool registry_suffix_entry(std::string_view e, const update_options& o) {
  if (const auto slash = e.find('/'); slash != std::string_view::npos) {
    if (slash + 1 < e.size()) return false;
    e = e.substr(0, slash);
  }
  return rules::feed_entry_is_registry_suffix(e, o.is_registry_suffix);
}

// Gives `path` (and, for a directory, all it holds; links themselves, never what they name) to
// `owner`. "" or the first failure.
std::string give_to(const fs::path& path, const std::pair<uid_t, gid_t>& owner) {
  auto one = [&](const fs::path& p) -> std::string {
    if (::lchown(p.c_str(), owner.first, owner.second) != 0)
      return "cannot give " + p.string() + " to the state directory's owner: " + std::strerror(errno);
    return {};
  };
  if (auto e = one(path); !e.empty()) return e;
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(path, ec))) return {};
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (auto e = one(it->path()); !e.empty()) return e;
  }
  return ec ? "cannot read " + path.string() + ": " + ec.message() : std::string();
}

bool list_exists(const fs::path& version, const rules::feed& f, const std::string& list) {
  std::error_code ec;
  if (f.format == rules::feed_format::lines) return fs::exists(version / "list", ec);
  return fs::exists(version / "blacklists" / list / "domains", ec) ||
         fs::exists(version / "blacklists" / list / "urls", ec);
}

// `text` for an error message: at most `max` characters, each not printable ASCII shown as '?'
// (a download's bytes must not act on the technician's terminal).
std::string printable(std::string_view text, std::size_t max) {
  std::string out;
  for (const char c : text.substr(0, max)) out += c >= 0x20 && c < 0x7f ? c : '?';
  if (text.size() > max) out += "...";
  return out;
}

// Whether a download is a web page rather than a list or an archive: its first bytes, after a
// byte order mark and blanks, are '<' (`<!DOCTYPE html>`, `<html>`, `<?xml ...>`, `<head>`).
// No list line and no archive begins so; a captive portal's sign-in page or a server's error
// page served with 200 does. "" or the error.
std::string page_instead_of_list(const fs::path& download) {
  std::ifstream in(download, std::ios::binary);
  std::string head(512, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<std::size_t>(in.gcount()));
  std::string_view v(head);
  if (v.starts_with("\xEF\xBB\xBF")) v.remove_prefix(3);
  while (!v.empty() &&
         (v.front() == ' ' || v.front() == '\t' || v.front() == '\r' || v.front() == '\n'))
    v.remove_prefix(1);
  if (!v.starts_with('<')) return {};
  return "the download is a web page, not a list (it begins '" +
         printable(v.substr(0, v.find('\n')), 40) +
         "'): a captive portal's sign-in page or a server's error page?";
}

// Points `link` at `target` (a name in the same directory) atomically.
bool relink(const fs::path& link, const std::string& target, std::string* error) {
  const fs::path tmp = link.string() + ".tmp";
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_directory_symlink(target, tmp, ec);
  if (!ec) fs::rename(tmp, link, ec);
  if (ec) *error = "cannot point " + link.string() + " at " + target + ": " + ec.message();
  return !ec;
}

void sort_unique(std::vector<std::string>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

// Entries in `after` and not in `before` (added), and the other way round (removed); both
// sorted and without repeats.
void count_differences(const std::vector<std::string>& before,
                       const std::vector<std::string>& after, list_change& c) {
  std::size_t i = 0, j = 0;
  while (i < before.size() && j < after.size()) {
    const int cmp = before[i].compare(after[j]);
    if (cmp < 0) {
      ++c.removed;
      ++i;
    } else if (cmp > 0) {
      ++c.added;
      ++j;
    } else {
      ++i;
      ++j;
    }
  }
  c.removed += before.size() - i;
  c.added += after.size() - j;
}

}  // namespace

std::vector<std::string> read_entries(const std::string& path, rules::list_file_kind kind,
                                      skipped_lines* skipped) {
  std::vector<std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const auto entry = rules::classify_list_line(line, kind);
    if (auto e = rules::list_entry(entry)) {
      out.push_back(std::move(*e));
    } else if (skipped != nullptr && entry.kind != rules::list_line_kind::blank) {
      if (skipped->count++ == 0) skipped->first = printable(line, 60);
    }
  }
  return out;
}

std::string url_without_credentials(std::string_view url) {
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  const auto start = scheme + 3;
  const auto end = url.find_first_of("/?#", start);
  const auto authority = url.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, start)) + std::string(url.substr(start + at + 1));
}

update_result update_feed(const rules::feed& f, const update_options& o) {
  update_result r;
  const fs::path home = fs::path(o.feeds_dir) / f.name;
  const fs::path current = home / "current";
  std::error_code ec;
  fs::create_directories(home, ec);
  if (ec) {
    r.error = "cannot create " + home.string() + ": " + ec.message();
    return r;
  }
  if (o.owner) {
    // Root works inside directories the daemon's user owns: never through a link it may have
    // put there in place of one (review, 2026-12-06; what is below is walked with lchown and
    // no link followed).
    for (const auto& d : {fs::path(o.feeds_dir), home}) {
      if (fs::is_symlink(fs::symlink_status(d, ec))) {
        r.error = d.string() + " is a symbolic link: run as root, hallpass works only in real directories there";
        return r;
      }
    }
    // The feeds directory and the feed's own: the daemon's user must be able to write in the
    // feed's (its timer's updates) and search both.
    for (const auto& d : {fs::path(o.feeds_dir), home}) {
      if (::lchown(d.c_str(), o.owner->first, o.owner->second) != 0) {
        r.error = "cannot give " + d.string() + " to the state directory's owner: " + std::strerror(errno);
        return r;
      }
    }
  }
  const std::string tag = std::to_string(o.now) + "-" + std::to_string(::getpid());
  const fs::path download_file = home / (".download-" + tag);
  const fs::path fresh = home / (".new-" + tag);
  // Whatever happens below, no scratch file outlives the command.
  struct cleanup {
    fs::path a, b;
    ~cleanup() {
      std::error_code e;
      fs::remove(a, e);
      fs::remove_all(b, e);
    }
  } scratch{download_file, fresh};

  download_request d;
  d.url = f.url;
  d.ca_file = f.ca_file;
  d.into = download_file.string();
  d.connect_timeout = f.connect_timeout;
  d.total_timeout = f.timeout;
  d.max_bytes = f.max_bytes;
  // A `lines` download is the list file itself: never larger than one list file may be (max_mib
  // goes up to 64 GiB; the daemon would refuse such a file on its next reload or start).
  if (f.format == rules::feed_format::lines)
    d.max_bytes = std::min(d.max_bytes, unpack_limits{}.list_file_bytes);
  const bool have_current = fs::is_directory(current, ec);
  if (have_current) {
    d.etag = info_value(current / "feed.info", "etag");
    d.last_modified = info_value(current / "feed.info", "last_modified");
  }
  if (!f.credentials_file.empty()) {
    std::ifstream in(f.credentials_file);
    std::getline(in, d.credentials);
    d.credentials = trim(d.credentials);
    if (!in && d.credentials.empty()) {
      r.error = "cannot read credentials_file " + f.credentials_file;
      return r;
    }
  }
  auto got = download(d);
  if (!got.ok) {
    r.error = "download from " + url_without_credentials(f.url) + " failed: " + got.error;
    return r;
  }
  if (got.not_modified) {
    // Only a version in force makes the request conditional; a 304 without one (a broken
    // server or cache) leaves the feed missing, which is no success.
    if (!have_current) {
      r.error = "the server answered 304 Not Modified, but there is no version in force to keep";
      return r;
    }
    r.ok = r.unchanged = true;
    return r;
  }

  if (auto why = page_instead_of_list(download_file); !why.empty()) {
    r.error = why;
    return r;
  }
  fs::create_directories(fresh, ec);
  if (ec) {
    r.error = "cannot create " + fresh.string() + ": " + ec.message();
    return r;
  }
  if (f.format == rules::feed_format::ut1) {
    if (auto e = unpack_ut1(download_file.string(), fresh.string()); !e.empty()) {
      r.error = e;
      return r;
    }
  } else {
    fs::rename(download_file, fresh / "list", ec);
    if (ec) {
      r.error = "cannot move the download into " + fresh.string() + ": " + ec.message();
      return r;
    }
  }

  // Verify every list the policy uses before anything is switched.
  std::vector<std::string> lists;
  for (const auto& [list, n] : f.lists) {
    if (std::find(lists.begin(), lists.end(), list) == lists.end()) lists.push_back(list);
  }
  if (f.format == rules::feed_format::lines && lists.empty()) lists.push_back("list");
  const std::size_t minimum = std::max<std::size_t>(f.min_entries, f.locked ? 1 : 0);
  for (const auto& list : lists) {
    const std::string shown = f.name + "/" + list;
    if (!list_exists(fresh, f, list)) {
      r.error = "list " + shown + " is not in the download" +
                (f.locked ? " (the feed is locked: a missing list is never accepted)" : "");
      return r;
    }
    skipped_lines skipped;
    // Sorted vectors, not std::set: the adult list alone can hold millions of entries (4.1 M
    // in the bench), and node-per-entry sets made the update slow and large (bench/README.md,
    // issue 11).
    std::vector<std::string> after = list_entries(fresh, f, list, &skipped), before;
    const std::size_t entry_lines = after.size();
    // A whole top-level domain or registry suffix ("com", "co.uk") is left out, as the loader
    // leaves it out of a feed's list (outside-in audit of the feeds, 2026-12-06, H2): not
    // counted, and reported.
    std::size_t left_out = 0;
    std::string left_out_examples;
    const auto suffix = [&](const std::string& e) { return registry_suffix_entry(e, o); };
    sort_unique(after);
    std::erase_if(after, [&](const std::string& e) {
      if (!suffix(e)) return false;
      if (++left_out <= 5) left_out_examples += (left_out_examples.empty() ? "" : ", ") + e;
      return true;
    });
    sort_unique(after);
    // Each entry once, as the loader keeps it: one domain on 100,000 lines (or written as
    // Example.COM., *.example.com and example.com) is one entry, and passed a minimum of 1,000
    // when lines were counted (outside-in audit, 2026-12-05, second session).
    const std::size_t count = after.size();
    if (count < minimum) {
      r.error = "list " + shown + " has " + std::to_string(count) +
                " entries, fewer than its minimum of " + std::to_string(minimum) +
                (f.locked ? " (the feed is locked: an empty list is never accepted)" : "");
      return r;
    }
    // A list is entries, with perhaps a few lines the loader skips; a page or a message with a
    // line or two that happen to read as domains is mostly other lines (a captive portal's
    // page passed a locked feed with 2 "entries": outside-in audit I).
    if (skipped.count > entry_lines) {
      r.error = "list " + shown + " has more lines that are not entries (" +
                std::to_string(skipped.count) + ", the first '" + skipped.first +
                "') than entries (" + std::to_string(entry_lines) +
                "): an error or sign-in page, not a list?";
      return r;
    }
    if (have_current) before = list_entries(current, f, list);
    std::erase_if(before, suffix);
    sort_unique(before);
    list_change c;
    c.list = list;
    c.entries = count;
    c.skipped = skipped.count;
    c.left_out = left_out;
    c.left_out_examples = std::move(left_out_examples);
    count_differences(before, after, c);
    if (!o.allow_shrink && before.size() >= shrink_guard_entries && after.size() * 2 < before.size()) {
      r.error = "list " + shown + " would shrink from " + std::to_string(before.size()) + " to " +
                std::to_string(after.size()) +
                " entries (more than half gone: a truncated or wrong download?); if the source really "
                "shrank, run `hallpass feeds update --feed " + f.name + " --allow-shrink`";
      return r;
    }
    r.changes.push_back(c);
  }

  {
    // The URL without credentials: they belong in credentials_file (one written in the URL was
    // copied here: outside-in audit of the feeds, 2026-12-06, M3).
    std::ofstream info(fresh / "feed.info");
    info << "# Written by `hallpass feeds update`; read by the policy loader.\n"
         << "fetched_at: " << o.now << "\nurl: " << url_without_credentials(f.url) << "\n";
    if (!got.etag.empty()) info << "etag: " << got.etag << "\n";
    if (!got.last_modified.empty()) info << "last_modified: " << got.last_modified << "\n";
    info.close();
    if (!info) {
      r.error = "cannot write " + (fresh / "feed.info").string();
      return r;
    }
  }

  if (o.owner) {
    if (auto e = give_to(fresh, *o.owner); !e.empty()) {
      r.error = e;
      return r;
    }
  }
  // Switch: the new version gets its name, previous -> the version in force, current -> new.
  const std::string version = "v" + tag;
  fs::rename(fresh, home / version, ec);
  if (ec) {
    r.error = "cannot rename " + fresh.string() + ": " + ec.message();
    return r;
  }
  std::string old_version;
  if (fs::is_symlink(fs::symlink_status(current, ec))) {
    old_version = fs::read_symlink(current, ec).filename().string();
  } else if (have_current) {
    // A real directory (made by hand, or an older hallpass): it becomes a version itself.
    old_version = "v0-" + tag;
    fs::rename(current, home / old_version, ec);
    if (ec) {
      r.error = "cannot move " + current.string() + " aside: " + ec.message();
      return r;
    }
  }
  std::string old_previous;
  if (fs::is_symlink(fs::symlink_status(home / "previous", ec))) {
    old_previous = fs::read_symlink(home / "previous", ec).filename().string();
  }
  std::string err;
  if (!relink(current, version, &err)) {
    r.error = err;
    return r;
  }
  if (o.owner) (void)::lchown(current.c_str(), o.owner->first, o.owner->second);
  if (!old_version.empty()) {
    if (!relink(home / "previous", old_version, &err)) {
      r.error = "the new version is in force, but " + err;
      return r;
    }
    if (o.owner) (void)::lchown((home / "previous").c_str(), o.owner->first, o.owner->second);
    if (!old_previous.empty() && old_previous != old_version && old_previous != version) {
      fs::remove_all(home / old_previous, ec);
    }
  }
  r.ok = true;
  r.version = version;
  return r;
}

}  // namespace hallpass::feeds

#include "feeds/feed_history.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "rules/file_io.hpp"
#include "rules/json_writer.hpp"
#include "rules/utf8.hpp"

namespace hallpass::feeds {
namespace {

namespace fs = std::filesystem;

// A reader for the lines to_json writes (objects, arrays, strings with rules::json_escape's
// escapes, unsigned integers); anything else makes the line unreadable, which readers skip.
struct reader {
  std::string_view s;
  std::size_t i = 0;
  bool ok = true;

  void space() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) ++i;
  }
  bool eat(char c) {
    space();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  void expect(char c) { ok = ok && eat(c); }
  std::string string() {
    std::string out;
    expect('"');
    while (ok && i < s.size() && s[i] != '"') {
      char c = s[i++];
      if (c == '\\') {
        if (i >= s.size()) break;
        c = s[i++];
        if (c == 'n') {
          c = '\n';
        } else if (c == 'r') {
          c = '\r';
        } else if (c == 't') {
          c = '\t';
        } else if (c == 'u') {
          // As rules::json_escape writes it: a character's \\uXXXX, a surrogate pair above U+FFFF.
          auto v = hex4();
          if (v && *v >= 0xD800 && *v <= 0xDBFF) {
            const auto low = s.substr(i, 2) == "\\u" ? (i += 2, hex4()) : std::nullopt;
            v = low && *low >= 0xDC00 && *low <= 0xDFFF ? std::optional<unsigned>(0x10000 + ((*v - 0xD800) << 10) + (*low - 0xDC00))
                                                         : std::nullopt;
          } else if (v && *v >= 0xDC00 && *v <= 0xDFFF) {
            v.reset();
          }
          if (!v) {
            ok = false;
            break;
          }
          rules::append_utf8(out, *v);
          continue;
        }
      }
      out += c;
    }
    expect('"');
    return out;
  }
  std::optional<unsigned> hex4() {
    unsigned v = 0;
    if (i + 4 > s.size()) return std::nullopt;
    const auto [end, ec] = std::from_chars(s.data() + i, s.data() + i + 4, v, 16);
    if (ec != std::errc() || end != s.data() + i + 4) return std::nullopt;
    i += 4;
    return v;
  }
  std::int64_t number() {
    space();
    std::int64_t v = 0;
    const std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
    ok = ok && i > start && i - start < 19;
    return v;
  }
  // Calls field(key) for each key of an object; field reads the value.
  template <class F>
  void object(F field) {
    expect('{');
    if (eat('}')) return;
    do {
      if (!ok) return;
      const std::string key = string();
      expect(':');
      if (!ok) return;
      field(key);
    } while (eat(','));
    expect('}');
  }
  // Skips a value of a key this reader does not know (a later hallpass may add fields).
  void skip() {
    space();
    if (i >= s.size()) {
      ok = false;
    } else if (s[i] == '"') {
      string();
    } else if (s[i] == '{') {
      object([this](const std::string&) { skip(); });
    } else if (s[i] == '[') {
      ++i;
      if (eat(']')) return;
      do skip();
      while (ok && eat(','));
      expect(']');
    } else {
      number();
    }
  }
};

struct lock_file {
  int fd = -1;
  ~lock_file() {
    if (fd >= 0) ::close(fd);  // releases the flock
  }
};

}  // namespace

std::string to_json(const history_entry& e) {
  std::string lists = "[";
  for (const auto& l : e.lists) {
    rules::json_object o;
    o.str("list", l.list).num("entries", static_cast<std::int64_t>(l.entries));
    if (l.added) o.num("added", static_cast<std::int64_t>(*l.added));
    if (l.removed) o.num("removed", static_cast<std::int64_t>(*l.removed));
    if (lists.size() > 1) lists += ',';
    lists += o.done();
  }
  lists += ']';
  return rules::json_object()
      .num("time", e.time)
      .str("event", e.event)
      .str("feed", e.feed)
      .str("version", e.version)
      .raw("lists", lists)
      .done();
}

std::optional<history_entry> parse_history_line(const std::string& line) {
  history_entry e;
  bool has_time = false;
  reader r{line};
  r.object([&](const std::string& key) {
    if (key == "time") {
      e.time = r.number();
      has_time = true;
    } else if (key == "event") {
      e.event = r.string();
    } else if (key == "feed") {
      e.feed = r.string();
    } else if (key == "version") {
      e.version = r.string();
    } else if (key == "lists") {
      r.expect('[');
      if (r.eat(']')) return;
      do {
        history_list l;
        r.object([&](const std::string& k) {
          if (k == "list")
            l.list = r.string();
          else if (k == "entries")
            l.entries = static_cast<std::size_t>(r.number());
          else if (k == "added")
            l.added = static_cast<std::size_t>(r.number());
          else if (k == "removed")
            l.removed = static_cast<std::size_t>(r.number());
          else
            r.skip();
        });
        e.lists.push_back(std::move(l));
      } while (r.ok && r.eat(','));
      r.expect(']');
    } else {
      r.skip();
    }
  });
  r.space();
  if (!r.ok || r.i != line.size() || !has_time || e.feed.empty() || e.event.empty())
    return std::nullopt;
  return e;
}

std::string append_history(const std::string& feeds_dir,
                           const std::vector<history_entry>& entries) {
  if (entries.empty()) return {};
  const fs::path dir(feeds_dir), file = dir / "history";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return "cannot create " + dir.string() + ": " + ec.message();
  lock_file lock;
  lock.fd = ::open((dir / "history.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (lock.fd < 0 || ::flock(lock.fd, LOCK_EX) != 0) {
    return "cannot lock " + (dir / "history.lock").string() + ": " + std::strerror(errno);
  }
  // The whole file is rewritten (at most history_lines short lines) and renamed into place.
  std::vector<std::string> lines;
  {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) lines.push_back(std::move(line));
    }
  }
  for (const auto& e : entries) lines.push_back(to_json(e));
  const std::size_t first = lines.size() > history_lines ? lines.size() - history_lines : 0;
  std::string text;
  for (std::size_t n = first; n < lines.size(); ++n) text += lines[n] + "\n";

  return rules::replace_file_durably(file.string(), text, 0640);
}

history_read read_history(const std::string& feeds_dir) {
  history_read out;
  const fs::path file = fs::path(feeds_dir) / "history";
  std::ifstream in(file);
  if (!in) {
    std::error_code ec;
    if (fs::exists(file, ec)) out.error = "cannot read " + file.string();
    return out;
  }
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (auto e = parse_history_line(line)) {
      out.entries.push_back(std::move(*e));
    } else {
      ++out.unreadable;
    }
  }
  return out;
}

std::vector<history_entry> loads_between(const rules::policy* before, const rules::policy& after,
                                         std::int64_t now) {
  std::vector<history_entry> out;
  for (const auto& f : after.feeds) {
    if (!f.present) continue;
    const std::string version = fs::path(f.dir).filename().string();
    bool same = false;
    if (before) {
      for (const auto& b : before->feeds) {
        same = same || (b.name == f.name && b.present && b.dir == f.dir);
      }
    }
    if (same) continue;
    history_entry e;
    e.time = now;
    e.event = "loaded";
    e.feed = f.name;
    e.version = version;
    for (const auto& [list, n] : f.lists) e.lists.push_back({list, n, std::nullopt, std::nullopt});
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace hallpass::feeds

#include "proxy/configuration.hpp"

#include <malloc.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>
#include <vector>

#include "certs/origin_context.hpp"
#include "proxy/list_record.hpp"
#include "proxy/public_suffix.hpp"
#include "rules/file_io.hpp"
#include "rules/policy_loader.hpp"
#include "rules/yaml_reader.hpp"

namespace hallpass {

namespace {

// Loads the school CA of tls.ca_dir and makes the TLS contexts inspection needs. The leaf
// cache of `previous` is kept when it belongs to the same CA (same fingerprint) and the same
// bound, so a reload mints nothing again; a changed CA gets a new cache (connections holding
// contexts from the old one keep them).
void load_tls(configuration& c, const configuration* previous, config_load_result& out) {
  const auto& tls = c.daemon.tls;
  const std::string& dir = tls.ca_dir;
  auto l = certs::load_ca(dir);
  for (auto& w : l.warnings) out.warnings.push_back({c.path, 0, 0, "tls.ca_dir: " + w});
  if (!l.usable()) {
    for (auto& e : l.errors) out.errors.push_back({c.path, 0, 0, "tls.ca_dir: " + e});
    if (l.errors.empty()) out.errors.push_back({c.path, 0, 0, "tls.ca_dir: the school CA in " + dir + " cannot be used"});
    return;
  }
  if (previous && previous->leaves && previous->leaves->ca_fingerprint() == l.ca->fingerprint_sha256 &&
      previous->leaves->capacity() == tls.leaf_cache) {
    c.leaves = previous->leaves;
  } else {
    auto minter = certs::leaf_minter::create(l.ca);
    if (!minter) {
      out.errors.push_back({c.path, 0, 0, "tls.ca_dir: " + minter.error()});
      return;
    }
    certs::leaf_cache::options lo;
    lo.capacity = tls.leaf_cache;
    c.leaves = std::make_shared<certs::leaf_cache>(*minter, lo);
  }
  c.issuers = previous && previous->issuers ? previous->issuers : std::make_shared<certs::fetched_issuers>();
  auto origin = certs::make_origin_context(c.daemon.upstream.ca_file,
                                           c.daemon.upstream.fetch_issuers ? c.issuers : nullptr);
  if (!origin) {
    out.errors.push_back({c.path, 0, 0, origin.error()});
    c.leaves.reset();
    return;
  }
  c.origin_tls = *origin;
}

// The policy's feeds are read from STATE_DIR/feeds, so the state directory is known before the
// policy loads: --state-dir, else the file's state_dir, else the default. (load_daemon_config
// reads and checks the same key again, after the policy.) `root`: the file's one parse.
std::string feeds_dir_for(const std::string& path, const YAML::Node& root, const overrides& o) {
  std::string dir = daemon_config{}.state_dir;
  if (o.state_dir) {
    dir = *o.state_dir;
  } else if (root.IsMap() && root["state_dir"] && root["state_dir"].IsScalar()) {
    dir = rules::resolve_beside(path, root["state_dir"].Scalar());  // relative to the policy file
  }
  return dir.empty() ? std::string() : dir + "/feeds";
}

// A path as one word for a POSIX shell: as it is when it needs no quoting, else in single quotes.
std::string shell_word(const std::string& s) {
  const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char ch) {
    return std::isalnum(ch) || ch == '/' || ch == '.' || ch == '_' || ch == '-' || ch == '+' || ch == ':' || ch == '@';
  });
  if (plain) return s;
  std::string out = "'";
  for (const char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// The command that fetches this configuration's feeds, as the technician would type it: a
// missing feed's warning and `check` name it (docs audit, 2026-12-05: the bare `hallpass feeds
// update --feed ut1` read /etc/hallpass/school.yaml after a quick start on rules/school.yaml).
// --config and --state-dir only where they are not what the command would use anyway.
std::string feeds_update_command_for(const std::string& path, const overrides& o) {
  std::string cmd = "hallpass feeds update";
  if (path != default_config_path) cmd += " --config " + shell_word(path);
  if (o.state_dir) cmd += " --state-dir " + shell_word(*o.state_dir);
  return cmd;
}

}  // namespace

namespace {

thread_local bool event_loop_thread = false;

// The one thread that frees configurations dropped on an event loop, started by the first
// mark_event_loop_thread (before that loop runs) and never joined: it outlives the workers and
// ends with the process. Releasing costs the loop a lock and a push, never a thread creation.
struct releaser {
  std::mutex mutex;
  std::condition_variable wake;
  std::vector<configuration*> queue;  // guarded by mutex
  std::atomic<int> pending{0};        // queued or being freed

  void run() {
    std::unique_lock lock(mutex);
    for (;;) {
      wake.wait(lock, [this] { return !queue.empty(); });
      std::vector<configuration*> batch;
      batch.swap(queue);
      lock.unlock();
      for (configuration* c : batch) {
        delete c;
        pending.fetch_sub(1);
      }
      // The freed policy's heap back to the system: glibc keeps freed pages for reuse, so a
      // daemon with a feed of millions of entries stayed at three times the policy's size after
      // its first reloads (bench/README.md, "Memory after reloads"). Here, on this thread, off
      // the loops: the trim takes each arena's lock in turn (7-28 ms in all, measured), and the
      // big one is the reload thread's, where the policies are built; the loops' own are small.
      ::malloc_trim(0);
      lock.lock();
    }
  }
};

releaser& the_releaser() {
  static releaser* r = new releaser;  // never destroyed: its thread may still be waiting on it
  return *r;
}

std::once_flag releaser_started;

// The deleter of every configuration (configuration.hpp, mark_event_loop_thread).
void release_configuration(configuration* c) {
  if (!event_loop_thread) {
    // Freed here, and trimmed here too: the reload thread (SIGHUP's, or the admin socket's)
    // drops the configuration it replaced, and when every worker has already taken the new
    // one that drop is the last. Freed without a trim, the old policy's heap stayed with
    // glibc until some later release trimmed it: CI of 2026-12-06 read 92 MB 10 s after a
    // second reload and 44 MB after the third (proxy_lifecycle_test, memory after reloads).
    delete c;
    ::malloc_trim(0);
    return;
  }
  auto& r = the_releaser();
  r.pending.fetch_add(1);
  {
    std::lock_guard lock(r.mutex);
    r.queue.push_back(c);
  }
  r.wake.notify_one();
}

}  // namespace

void mark_event_loop_thread() {
  try {
    std::call_once(releaser_started, [] { std::thread([] { the_releaser().run(); }).detach(); });
  } catch (const std::system_error&) {
    return;  // no thread to be had: this loop frees in place, a stall rather than a leak
  }
  event_loop_thread = true;
}

void wait_for_released_configurations(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (the_releaser().pending.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

config_load_result load_configuration(const std::string& path, const overrides& o, std::uint64_t generation,
                                      const configuration* previous) {
  config_load_result out;
  // The file is read once, and the policy, its state directory and the daemon's own sections
  // all come from those bytes: read three times, a file saved in place during a reload (the
  // weekly feeds reload takes seconds) gave a policy from one version and daemon settings from
  // an empty file, all defaults, with no error (outside-in audit H, 2026-12-05: admin roles,
  // hosts and upstream lost on a reload that said "reloaded"). A regular file only (a FIFO
  // would hang the load), read into memory first (yaml-cpp's LoadFile leaks its buffer when
  // the stream read fails; LeakSanitizer caught it).
  std::string read_error;
  const auto text = rules::read_regular_file(path, &read_error);
  if (!text) {
    out.errors.push_back({path, 0, 0, read_error});  // "school.yaml: is a directory"
    return out;
  }
  // And parsed once: the policy, the feeds' directory and the daemon's sections are read from one
  // document. A syntax error is the policy loader's to report, with its line.
  const auto parsed = rules::parse_policy_yaml(*text, path);
  rules::load_options lo;
  lo.other_sections = daemon_section_names();
  lo.feeds_dir = feeds_dir_for(path, parsed.root, o);
  lo.feeds_update_command = feeds_update_command_for(path, o);
  lo.feeds_may_be_missing = o.feeds_may_be_missing;
  // The Public Suffix List: an allow rule's list that names `com` or `co.uk` must not open
  // every site under it (rules/README.md). Thread-safe (proxy/public_suffix.hpp).
  lo.is_public_suffix = [](std::string_view host) { return is_public_suffix(host); };
  lo.is_registry_suffix = [](std::string_view host) { return is_registry_suffix(host); };
  auto policy = rules::load_policy_parsed(parsed, path, lo);
  out.errors = std::move(policy.errors);
  out.warnings = std::move(policy.warnings);

  std::shared_ptr<configuration> c(new configuration, release_configuration);
  c->path = path;
  c->generation = generation;
  try {
    // Anything but a map (an empty file, a list) the policy loader has reported already.
    if (parsed.root.IsMap()) c->daemon = load_daemon_config(parsed.root, path, out.errors);
  } catch (const std::exception&) {
    // yaml-cpp throws on a node of the wrong shape: never let one escape and abort the daemon.
    if (out.errors.empty()) out.errors.push_back({path, 0, 0, "cannot read the file's daemon settings"});
  }
  if (!out.errors.empty()) return out;

  if (!o.listen.empty()) {
    // --listen names explicit-proxy listeners: the file's transparent ones stay (they belong
    // with the nftables rules, not with a command line).
    std::erase_if(c->daemon.listen, [](const listen_address& l) { return !l.transparent; });
    for (const auto& l : o.listen) {
      auto a = parse_listen_address(l);
      if (!a) {
        out.errors.push_back({"--listen", 0, 0, "'" + l + "' must be ADDRESS:PORT, like 127.0.0.1:3128 or [::1]:3128"});
        continue;
      }
      c->daemon.listen.push_back(std::move(*a));
    }
  }
  if (o.access_log) c->daemon.access_log.path = *o.access_log;
  out.state_dir_in_file = c->daemon.state_dir;
  if (o.state_dir) c->daemon.state_dir = *o.state_dir;
  if (o.admin_socket) c->daemon.admin.socket = *o.admin_socket;
  if (o.metrics_listen) c->daemon.metrics.listen = *o.metrics_listen == "off" ? "" : *o.metrics_listen;
  if (o.ca_dir) c->daemon.tls.ca_dir = *o.ca_dir;
  if (!out.errors.empty()) return out;
  // An alert on a category the policy does not have would never fire: the DSL would rely on
  // an alert that cannot come.
  if (policy.compiled) {
    for (const auto& name : c->daemon.alerts.categories) {
      if (!policy.compiled->find_category(name)) {
        out.errors.push_back({path, 0, 0, "alerts.categories: " + rules::quote(name) +
                                              " is not a category of this policy (its categories: " +
                                              policy.compiled->category_list() + ")"});
      }
    }
  }
  // A command that cannot run would lose every alert; said now rather than at the first alert.
  if (const auto& cmd = c->daemon.alerts.command; !cmd.empty()) {
    std::error_code ec;
    const auto st = std::filesystem::status(cmd.front(), ec);
    if (ec || !std::filesystem::is_regular_file(st) || ::access(cmd.front().c_str(), X_OK) != 0) {
      out.errors.push_back({path, 0, 0, "alerts.command: " + rules::quote(cmd.front()) +
                                            " is not a program that can be run (install the mail transfer agent, "
                                            "or name another program)"});
    } else if (std::ifstream f(cmd.front(), std::ios::binary); f) {
      // The command is started without a shell (posix_spawn): a script without a "#!" line
      // fails with "Exec format error" at every alert (outside-in audit, 2026-12-06). A file
      // this user cannot read is left to the start: a binary needs only the execute bit.
      char magic[4] = {};
      f.read(magic, sizeof magic);
      const std::string_view head(magic, static_cast<std::size_t>(f.gcount()));
      if (!head.starts_with("#!") && head != std::string_view("\x7f" "ELF", 4)) {
        out.errors.push_back({path, 0, 0, "alerts.command: " + rules::quote(cmd.front()) +
                                              " is neither a program nor a script that starts with a #! line (it is "
                                              "run without a shell): add a line such as #!/bin/sh at its top"});
      }
    }
  }
  if (!out.errors.empty()) return out;
  if (o.serving && !c->daemon.tls.ca_dir.empty()) {
    load_tls(*c, previous, out);
    if (!out.errors.empty()) return out;
  }
  c->policy = std::move(policy.compiled);
  out.config = std::move(c);
  return out;
}

config_load_result config_store::reload() {
  std::lock_guard lock(reload_mutex_);
  const auto previous = current_.load(std::memory_order_acquire);
  // A running daemon keeps the state directory it started with: its store, lock and pid file
  // are open there. A reload that took the file's new state_dir read the feeds and wrote the
  // lists' record there while the store stayed behind, and said only "reloaded" (admin audit,
  // 2026-12-05, F8). The change takes effect at the next restart, and the reload says so.
  overrides o = overrides_;
  const bool pinned = previous && overrides_.serving && !overrides_.state_dir;
  if (pinned) o.state_dir = previous->daemon.state_dir;
  auto r = load_configuration(path_, o, generation_.load() + 1, previous.get());
  if (pinned && r.config && r.state_dir_in_file != previous->daemon.state_dir) {
    r.warnings.push_back({path_, 0, 0,
                          "state_dir is now " + r.state_dir_in_file + " in the file: that takes effect at the next "
                          "restart, and until then the store, the feeds and the lock stay in " +
                              previous->daemon.state_dir + ". Move hallpass.db (with hallpass.db.made) and feeds/ "
                              "there before restarting, or it will start on an empty store there"});
  }
  if (r.config) {
    // A list that gave entries and gives none: against the policy in force on a reload, and
    // against the record of the last run at the start (proxy/list_record.hpp).
    std::vector<std::string> found, warnings;
    if (previous) {
      found = rules::emptied_sources(*previous->policy, *r.config->policy);
      auto halved = rules::shrunk_sources(*previous->policy, *r.config->policy);
      found.insert(found.end(), std::make_move_iterator(halved.begin()), std::make_move_iterator(halved.end()));
    } else if (overrides_.serving) {
      found = emptied_since_last_run(r.config->daemon.state_dir, *r.config->policy, warnings);
    }
    for (auto& e : found) r.errors.push_back({path_, 0, 0, std::move(e)});
    for (auto& w : warnings) r.warnings.push_back({path_, 0, 0, std::move(w)});
    if (!r.errors.empty()) r.config.reset();
  }
  if (r.config) {
    current_.store(r.config, std::memory_order_release);
    generation_.store(r.config->generation, std::memory_order_release);
  }
  return r;
}

}  // namespace hallpass

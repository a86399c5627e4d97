#include "proxy/server.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <string_view>
#include <mutex>
#include <thread>
#include <vector>

#include "feeds/feed_history.hpp"
#include "proxy/access_log.hpp"
#include "proxy/alerts.hpp"
#include "proxy/list_record.hpp"
#include "proxy/admin_server.hpp"
#include "proxy/metrics.hpp"
#include "proxy/net.hpp"
#include "proxy/pac_server.hpp"
#include "proxy/public_suffix.hpp"
#include "proxy/login_service.hpp"
#include "proxy/negotiate_acceptor.hpp"
#include "proxy/shared_state.hpp"
#include "proxy/worker.hpp"
#include "proxy/request_target.hpp"
#include "rules/yaml_reader.hpp"

namespace hallpass {
namespace {

// Set by stop_daemon_on_failure, returned by run_server.
std::atomic<int> exit_code{0};

void print_errors(const rules::diagnostics& d, std::string_view prefix = "") {
  for (const auto& e : d) std::cerr << prefix << e.to_string() << "\n";
}

// Descriptors: the soft limit is raised to the hard one, at most 2^20 (systemd's LimitNOFILE sets both, but a
// shell's soft limit is 1024, far below what limits.connections needs), and a start whose limit
// is short of `connections` says so. A relayed tunnel takes six descriptors (two sockets, two
// splice pipes); the upstream pool, listeners, store and logs about a thousand more. Without
// this, one device's 167 tunnels under a soft 1024 left every other device a 502 that blamed
// the site, and nothing said why (resource audit, 2026-12-06).
void raise_descriptor_limit(std::size_t connections) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  // At most 2^20: a hard limit of fs.nr_open (about 10^9, systemd's LimitNOFILE=infinity)
  // would otherwise pass to the alert command and any child that closes every descriptor.
  const rlim_t ceiling = rlim_t{1} << 20;
  const rlim_t target = rl.rlim_max == RLIM_INFINITY ? ceiling : std::min(rl.rlim_max, ceiling);
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < target) {
    rlimit want = rl;
    want.rlim_cur = target;
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  const std::uint64_t need = 6 * static_cast<std::uint64_t>(connections) + 1024;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
    // Admission is not capped by it: the bench's 10,000 idle connections take one descriptor
    // each. A device's relayed tunnels can then use the descriptors up before the connection
    // limits stop it (each is a 503 "too busy" for others, counted): said here, at the start.
    std::cerr << "hallpass: warning: the descriptor limit is " << rl.rlim_cur << ", and limits.connections "
              << connections << " may need up to " << need << " (six per relayed tunnel, and about 1,024 more): "
              << "one device's tunnels could use the descriptors up before its connection limit; raise "
              << "LimitNOFILE (systemctl edit hallpass) or lower limits.connections\n";
  }
}

// A core dump of the daemon would hold the school CA's key, the directory's service password,
// credentials in flight and pupils' words, kept wherever the system keeps cores (systemd-
// coredump) outside any retention the school configured (audit of privacy, 2026-12-06, L1).
// So none is written: the soft and hard limits are 0 before anything secret is read. (Started
// as root with --user, setuid already stops them; under systemd's User= it does not.)
// HALLPASS_ALLOW_CORE_DUMPS=1 in the environment keeps the limits as they are, to debug a
// crash on a test machine.
void forbid_core_dumps() {
  if (const char* allow = std::getenv("HALLPASS_ALLOW_CORE_DUMPS"); allow && std::string_view(allow) == "1") return;
  const rlimit none{0, 0};
  if (::setrlimit(RLIMIT_CORE, &none) != 0) {
    std::cerr << "hallpass: warning: cannot turn core dumps off: " << std::strerror(errno) << "\n";
  }
}

// Binds one listening socket with SO_REUSEPORT so each worker can have its own.
int bind_listener(const tcp::endpoint& ep, std::string& error) {
  net::io_context tmp;
  tcp::acceptor a(tmp);
  error_code ec;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) {
    const int one = 1;
    if (::setsockopt(a.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      ec = error_code(errno, boost::system::system_category());
    }
  }
  if (!ec && ep.address().is_v6()) a.set_option(net::ip::v6_only(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    error = ec.message();
    return -1;
  }
  return a.release();
}

// The supplementary groups `pw` is a member of in /etc/group, without its primary group.
// Empty when it is in none (or when the list cannot be read).
std::vector<gid_t> supplementary_groups(const passwd& pw) {
  std::vector<gid_t> gids(32);
  for (int attempt = 0;; ++attempt) {
    int n = static_cast<int>(gids.size());
    if (::getgrouplist(pw.pw_name, pw.pw_gid, gids.data(), &n) >= 0) {
      gids.resize(static_cast<std::size_t>(n));
      break;
    }
    if (attempt == 3) return {};
    gids.resize(static_cast<std::size_t>(n));  // n is now the number needed
  }
  std::erase(gids, pw.pw_gid);
  return gids;
}

// Becomes `user`: its primary group and its supplementary groups from /etc/group (as login and
// systemd's User= do), then its uid. The supplementary groups are kept on purpose: the admin
// socket is given to admin.socket_group after the drop, which needs the daemon's user to be a
// member of that group (deploy/README.md, "The admin socket").
bool drop_privileges(const std::string& user) {
  const passwd* pw = ::getpwnam(user.c_str());
  if (!pw) {
    std::cerr << "hallpass: --user " << user << ": no such user\n";
    return false;
  }
  const std::vector<gid_t> groups = supplementary_groups(*pw);
  if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(pw->pw_gid) != 0 ||
      ::setuid(pw->pw_uid) != 0) {
    std::cerr << "hallpass: cannot drop privileges to " << user << ": " << std::strerror(errno) << "\n";
    return false;
  }
  if (::setuid(0) == 0) {
    std::cerr << "hallpass: privileges were not dropped (could regain root)\n";
    return false;
  }
  return true;
}

// The error when admin.socket_group names no group, or when `user` (who will own the socket)
// is not in it and so may not give the socket to it (chown(2) needs membership). "" when
// fine. `in_group(gid)` says whether the user has the group.
template <typename InGroup>
std::string socket_group_error(const daemon_config& d, const std::string& user, InGroup in_group) {
  if (d.admin.socket.empty() || d.admin.socket_group.empty()) return {};
  const group* g = ::getgrnam(d.admin.socket_group.c_str());
  if (!g) {
    return "admin.socket_group '" + d.admin.socket_group +
           "' is not a group on this system; create it with: groupadd --system " +
           d.admin.socket_group;
  }
  if (in_group(g->gr_gid)) return {};
  return "the daemon's user " + user + " is not a member of admin.socket_group '" +
         d.admin.socket_group +
         "', so it cannot give the admin socket to that group; add it with: usermod -aG " +
         d.admin.socket_group + " " + user + " (then start hallpass again)";
}

// For --user, before the drop: one clear message instead of an EPERM from chown after it.
std::string check_socket_group(const daemon_config& d, const passwd& pw) {
  const auto groups = supplementary_groups(pw);
  return socket_group_error(d, pw.pw_name, [&](gid_t gid) {
    return gid == pw.pw_gid || std::find(groups.begin(), groups.end(), gid) != groups.end();
  });
}

// For a daemon started as its own user (systemd's User=): the groups it has now.
std::string check_own_socket_group(const daemon_config& d) {
  if (::geteuid() == 0) return {};  // root may give the socket to any group
  const passwd* pw = ::getpwuid(::geteuid());
  const std::string user = pw ? pw->pw_name : "uid " + std::to_string(::geteuid());
  return socket_group_error(d, user, [](gid_t gid) {
    if (gid == ::getegid()) return true;
    std::vector<gid_t> groups(static_cast<std::size_t>(std::max(::getgroups(0, nullptr), 0)));
    const int n = ::getgroups(static_cast<int>(groups.size()), groups.data());
    return n > 0 && std::find(groups.begin(), groups.begin() + n, gid) != groups.begin() + n;
  });
}

// The admin socket's directory when it does not exist yet (/run/hallpass outside systemd,
// which makes it with RuntimeDirectory=): created as root, then given to the daemon's user,
// which creates the socket in it after the drop. An existing directory is left as it is.
void prepare_socket_directory(const daemon_config& d, const passwd& pw) {
  if (d.admin.socket.empty()) return;
  const auto dir = std::filesystem::path(d.admin.socket).parent_path();
  std::error_code ec;
  if (dir.empty() || std::filesystem::exists(dir, ec)) return;
  if (!std::filesystem::create_directories(dir, ec) ||
      ::chown(dir.c_str(), pw.pw_uid, pw.pw_gid) != 0 || ::chmod(dir.c_str(), 0755) != 0) {
    std::cerr << "hallpass: warning: cannot prepare " << dir
              << " for the admin socket: " << (ec ? ec.message() : std::strerror(errno)) << "\n";
  }
}

}  // namespace

void stop_daemon_on_failure::operator()(std::exception_ptr e) const {
  if (!e) return;
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
  }
  std::cerr << "hallpass: " << loop << " failed: " << what << "; stopping the daemon (exit "
            << loop_failure_exit_code << ") so that the service manager restarts it" << std::endl;
  exit_code = loop_failure_exit_code;
  // The same stop as `systemctl stop`: run_server's signal handler drains and returns.
  ::kill(::getpid(), SIGTERM);
}

namespace {

// The files of the store (store/README.md), which a daemon started as root may have made.
constexpr const char* store_files[] = {"hallpass.db", "hallpass.db-wal", "hallpass.db-shm", "list-sources.json",
                                       "hallpass.pid", "hallpass.lock", "hallpass.db.made"};

// STATE_DIR/hallpass.lock, locked (flock) for as long as the daemon runs. A second `hallpass run`
// on the same state directory would share the exception store and, with SO_REUSEPORT, the
// proxy's port: the school's traffic split between two daemons that may hold different
// policies, and hallpass.pid naming only one of them for `feeds update`. Returns "" or why this
// one must not start. The descriptor stays open on purpose: the kernel lets go of the lock when
// the process ends, however it ends. A lock file that cannot be opened is a warning only (the
// store itself will say what is wrong with the directory).
std::string lock_state_dir(const std::string& state_dir) {
  const std::string path = state_dir + "/hallpass.lock";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
  if (fd < 0) {
    std::cerr << "hallpass: warning: cannot open " << path << " (" << std::strerror(errno)
              << "): a second hallpass started on this state_dir would not be noticed\n";
    return {};
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return {};
  const int err = errno;
  ::close(fd);
  if (err != EWOULDBLOCK) {
    std::cerr << "hallpass: warning: cannot lock " << path << " (" << std::strerror(err)
              << "): a second hallpass started on this state_dir would not be noticed\n";
    return {};
  }
  std::string pid;
  std::ifstream(state_dir + "/hallpass.pid") >> pid;
  return "another hallpass" + (pid.empty() ? std::string() : " (pid " + pid + ")") +
         " is already running with state_dir " + state_dir +
         ": two would share its exception store and split the school's traffic between them. Stop it "
         "first (systemctl stop hallpass), or give this one a state_dir of its own.";
}

// Whether a root-owned state directory that hallpass did not just make is hallpass's own, and so
// its to tighten and, under --user, to give to the service user. A mistyped state_dir (/var/lib)
// must not be: it holds others' files. hallpass's own holds nothing but what hallpass writes
// there: the store's files (store_files above), the feeds `hallpass feeds update` fetched, the
// Kerberos replay cache deploy/hallpass.service keeps here (krb5_*), and the admin socket or
// access log when the configuration puts them there (`also_own`). Not the store's marker
// alone: hallpass writes it in a foreign directory it was started on without --user (with a
// warning), and that must not make the directory its own for the next start with --user
// (a review of 2026-12-05: /var/lib would have been given to the service user).
// `*foreign`: the first other name found, for the message.
bool holds_only_hallpass_state(const std::string& dir, const std::vector<std::string>& also_own,
                               std::string* foreign) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const bool own = std::find(std::begin(store_files), std::end(store_files), name) != std::end(store_files) ||
                     name == "feeds" || name.starts_with("krb5_") ||
                     std::find(also_own.begin(), also_own.end(), name) != also_own.end();
    if (!own) {
      *foreign = name;
      return false;
    }
  }
  return true;
}

// Before hallpass changes anything about its state directory (its mode, its owner under
// --user). A directory every user may write (sticky like /tmp, or o+w) or one another user owns
// is refused: the store of pupils' requests does not belong there, and hallpass used to tighten
// or chown whatever directory state_dir named (outside-in audit H, 2026-12-05: a 1777 directory
// became 1771; `run --user` gave another user's directory to the service account).
struct state_dir_check {
  std::string refused;  // why hallpass must not start; empty: go on
  std::string warning;  // to say on stderr, starting anyway
  bool ours = false;    // hallpass's to tighten and chown
};

state_dir_check check_state_dir(const std::string& dir, bool created, const passwd* user,
                                const std::vector<std::string>& also_own) {
  state_dir_check out;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return out;  // the store says what is wrong
  if ((st.st_mode & (S_ISVTX | S_IWOTH)) != 0) {
    out.refused = "state_dir " + dir +
                  " may be written by every user (like /tmp): the exception store, with pupils' requests and the "
                  "audit log, must not live there. Give hallpass a directory of its own (it makes a missing one, "
                  "mode 0750).";
    return out;
  }
  // Copied at once: getpwuid below would overwrite the buffer getpwnam filled.
  const std::string user_name = user ? user->pw_name : "";
  const uid_t service = user ? user->pw_uid : ::geteuid();
  if (st.st_uid != 0 && st.st_uid != service && st.st_uid != ::geteuid()) {
    const passwd* owner = ::getpwuid(st.st_uid);
    out.refused = "state_dir " + dir + " belongs to " +
                  (owner ? std::string(owner->pw_name) : std::to_string(st.st_uid)) +
                  ", not to hallpass's user: a mistyped state_dir? Give hallpass a directory of its own.";
    return out;
  }
  std::string foreign;
  out.ours = created || (st.st_uid != 0 && st.st_uid == service) || holds_only_hallpass_state(dir, also_own, &foreign);
  if (out.ours) return out;
  if (user) {
    out.refused = "state_dir " + dir + " belongs to root and holds files that are not hallpass's ('" + foreign +
                  "'): a mistyped state_dir? hallpass gives its state directory to " + user_name +
                  ", and will not give this one; if it really is hallpass's, run: chown " + user_name + " " + dir;
  } else {
    out.warning = "state_dir " + dir + " holds files that are not hallpass's ('" + foreign +
                  "'); its mode is left as it is";
  }
  return out;
}

// Runs `change` on the regular file at `path` when it has one name and is not reached through
// a symbolic link (opened O_NOFOLLOW, checked with fstat on the same descriptor: no window for
// a swap, and a FIFO is not waited for). The daemon, still root here, acts on files in its
// service user's directories.
template <typename Change>
void change_own_file(const std::string& path, Change change) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1) change(fd, st);
  ::close(fd);
}

// Takes other users' bits off the store's files (a store made by an older hallpass outside
// systemd was 0644), and their read and write bits off the state directory (its search bit
// stays: an admin socket placed there must stay reachable by its group's members; the files
// are closed to them anyway; only when `directory_too`: check_state_dir found it hallpass's).
// Said on stderr when it changes anything.
void restrict_store_files(const std::string& state_dir, bool directory_too) {
  struct stat st {};
  if (directory_too && ::lstat(state_dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0006) != 0) {
    if (::chmod(state_dir.c_str(), st.st_mode & 07771) == 0)
      std::cerr << "hallpass: " << state_dir << " could be listed or written by every user; it no longer can\n";
  }
  for (const char* name : store_files) {
    const std::string path = state_dir + "/" + name;
    change_own_file(path, [&](int fd, const struct stat& f) {
      if ((f.st_mode & 0007) != 0 && ::fchmod(fd, f.st_mode & 07770) == 0)
        std::cerr << "hallpass: " << path << " was open to every user; it no longer is\n";
    });
  }
}

// run --user: a file a run as root made becomes the daemon user's, so that it can still write
// it (a root-made store was "a readonly database" after the drop; a root-made access log could
// not be reopened). With `keep_group`, a group other than root's stays: an access log made
// hallpass:adm by hand or by logrotate, then owned by root, stays readable by the technician's
// adm (privacy audit, 2026-12-06, where it became hallpass:hallpass). Never for the store,
// whose group must be the daemon's own (review, 2026-12-06).
void give_file(const std::string& path, const passwd& pw, bool keep_group = false) {
  change_own_file(path, [&](int fd, const struct stat& f) {
    const gid_t group = keep_group && f.st_gid != 0 ? static_cast<gid_t>(-1) : pw.pw_gid;
    if (f.st_uid == 0 && ::fchown(fd, pw.pw_uid, group) != 0)
      std::cerr << "hallpass: warning: cannot give " << path << " to " << pw.pw_name << ": " << std::strerror(errno)
                << "\n";
  });
}

void give_store_files(const std::string& state_dir, const passwd& pw) {
  for (const char* name : store_files) give_file(state_dir + "/" + name, pw);
}

// The first load of the configuration, made before the listeners bind and privileges drop.
// Started as root with --user, it reads as that user: on a thread of its own whose file-system
// identity (fsuid, fsgid, supplementary groups) is the user's. Linux keeps credentials per
// thread, and the raw system calls change only the calling thread's (glibc's setgroups would
// change every thread's); moving fsuid off 0 also clears the thread's CAP_DAC_OVERRIDE. The
// kernel then checks every open of the policy, its lists, the CA and the password files as it
// does on each reload, which runs as that user: modes, ACLs, the directories on the way. So a
// link the user planted in a folder it can write (a list folder) leads nowhere it could not read
// itself (root used to read another file into the load's warnings), and a file only root can
// read stops the start instead of failing the first reload.
config_load_result first_load(config_store& configs, const run_options& options) {
  if (!options.user || ::geteuid() != 0) return configs.reload();
  const passwd* pw = ::getpwnam(options.user->c_str());
  if (pw == nullptr) return configs.reload();  // drop_privileges says so and stops the start
  const uid_t uid = pw->pw_uid;
  const gid_t gid = pw->pw_gid;
  const std::vector<gid_t> groups = supplementary_groups(*pw);
  config_load_result out;
  std::string failed;
  std::thread loader([&] {
    if (::syscall(SYS_setgroups, groups.size(), groups.data()) != 0) {
      failed = std::string("setgroups: ") + std::strerror(errno);
      return;
    }
    ::syscall(SYS_setfsgid, gid);
    ::syscall(SYS_setfsuid, uid);
    // Both return the previous value, never an error: an invalid id (-1) reads the current one.
    if (static_cast<uid_t>(::syscall(SYS_setfsuid, static_cast<uid_t>(-1))) != uid ||
        static_cast<gid_t>(::syscall(SYS_setfsgid, static_cast<gid_t>(-1))) != gid) {
      failed = "the file-system identity did not change";
      return;
    }
    out = configs.reload();
  });
  loader.join();
  if (!failed.empty()) {
    out = {};
    out.errors.push_back({options.config_path, 0, 0, "cannot read it as " + *options.user + " (" + failed + ")"});
  }
  return out;
}

}  // namespace

int daemon_exit_code() {
  return exit_code.load();
}

int run_server(const run_options& options) {
  ::signal(SIGPIPE, SIG_IGN);
  forbid_core_dumps();
  overrides flags = options.flags;
  flags.serving = true;
  config_store configs(options.config_path, std::move(flags));
  auto loaded = first_load(configs, options);
  print_errors(loaded.warnings, "warning: ");
  if (!loaded.config) {
    print_errors(loaded.errors);
    std::cerr << "hallpass: " << options.config_path << " is not valid; not starting\n";
    return 1;
  }
  auto cfg = loaded.config;
  loaded.config.reset();
  const auto& d = cfg->daemon;  // startup only: dangles once cfg is dropped (below)

  std::error_code fs_ec;
  const bool state_dir_created = std::filesystem::create_directories(d.state_dir, fs_ec);
  if (fs_ec) std::cerr << "hallpass: warning: cannot create state_dir " << d.state_dir << ": " << fs_ec.message() << "\n";
  const passwd* service_user = options.user && ::geteuid() == 0 ? ::getpwnam(options.user->c_str()) : nullptr;
  // The admin socket and the access log are hallpass's too when the configuration puts them in
  // the state directory.
  std::vector<std::string> also_own;
  for (const std::string& file : {d.admin.socket, d.access_log.path}) {
    const std::filesystem::path f(file);
    std::error_code same_ec;
    if (!file.empty() && f.has_parent_path() && std::filesystem::equivalent(f.parent_path(), d.state_dir, same_ec))
      also_own.push_back(f.filename().string());
  }
  const auto state_dir_checked = check_state_dir(d.state_dir, state_dir_created, service_user, also_own);
  if (!state_dir_checked.refused.empty()) {
    std::cerr << "hallpass: " << state_dir_checked.refused << "\n";
    return 1;
  }
  if (!state_dir_checked.warning.empty()) std::cerr << "hallpass: warning: " << state_dir_checked.warning << "\n";
  restrict_store_files(d.state_dir, state_dir_checked.ours);
  if (auto e = lock_state_dir(d.state_dir); !e.empty()) {
    std::cerr << "hallpass: " << e << "\n";
    return 1;
  }
  // What the lists gave, for the next start to compare with (proxy/list_record.hpp). Written
  // only once privileges are dropped (below): the state directory is the daemon user's, and
  // root must not write files there (audit19 D1).
  const auto remember_lists = [](const configuration& c) {
    if (auto e = write_list_record(c.daemon.state_dir, *c.policy); !e.empty()) {
      std::cerr << "hallpass: warning: the lists' entry counts were not recorded (" << e
                << "): the next start cannot tell a list emptied meanwhile" << std::endl;
    }
  };

  std::unique_ptr<metrics> m;
  try {
    m = std::make_unique<metrics>(d.metrics.listen);
  } catch (const std::exception& e) {
    std::cerr << "hallpass: metrics endpoint " << d.metrics.listen << ": " << e.what() << "\n";
    return 1;
  }
  access_log log(d.access_log.path, d.access_log.queue_lines, m.get());
  shared_state state(configs, *m, log);
  // Alerts for the DSL: its thread runs the alert command, never an event loop. Outlives the
  // workers and the admin server, which raise alerts.
  alert_sender alerts(m.get());
  state.alerts = &alerts;
  // Sign-ins are checked on threads of their own (never on a worker's loop). Made even when no
  // directory is configured yet, so a reload can turn logins on; the thread count
  // (logins.ldap.max_in_flight) takes effect at a restart. Outlives the workers.
  // Negotiate tokens are accepted on the login service's threads: made before it, so it is
  // destroyed after the service has joined them.
  negotiate_acceptor negotiate;
  state.negotiate = &negotiate;
  login_service logins(d.logins.ldap.max_in_flight);
  state.logins = &logins;
  m->policy_generation.Set(static_cast<double>(cfg->generation));
  // hallpass_feed_*: from the policy in force at each scrape (a reload after `feeds update`
  // shows the new lists; the age is computed then).
  m->set_feed_source([&configs] {
    std::vector<metrics::feed_sample> out;
    const auto c = configs.current();
    if (!c || !c->policy) return out;
    for (const auto& f : c->policy->feeds) out.push_back({f.name, f.present, f.fetched_at, f.lists});
    return out;
  });
  // The metrics endpoint is never a destination either: it is for the admin network only
  // (deploy/nftables-hallpass.nft), and a pupil must not reach it through the proxy.
  if (auto ml = parse_listen_address(d.metrics.listen)) state.own_listeners.emplace_back(ml->host, ml->port);
  // The gateway's own addresses, never a destination (destination.hpp): read now, and every
  // second by the main loop below. A start that cannot read them refuses, rather than open the
  // gateway's own pages to every pupil (a sandbox without AF_NETLINK: outside-in audit of
  // operations, 2026-12-07, H2).
  {
    std::string why;
    auto addresses = gateway_addresses(&why);
    if (!addresses) {
      std::cerr << "hallpass: cannot read this machine's own addresses (" << why
                << "), which the proxy must never connect to for its users: not started. A service sandbox must "
                   "allow AF_NETLINK sockets (deploy/hallpass.service, RestrictAddressFamilies)"
                << std::endl;
      return 1;
    }
    state.gateway_addresses.store(std::make_shared<const std::vector<rules::ip_address>>(std::move(*addresses)));
  }

  raise_descriptor_limit(d.limits.connections);
  load_public_suffixes();  // a file read: here, not on an event loop at the first circumvention attempt

  unsigned n_workers = d.workers ? d.workers : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::unique_ptr<worker>> workers;
  for (unsigned i = 0; i < n_workers; ++i) workers.push_back(std::make_unique<worker>(state, i));

  for (const auto& l : d.listen) {
    tcp::endpoint ep(net::ip::make_address(l.host), l.port);
    for (auto& w : workers) {
      std::string err;
      const int fd = bind_listener(ep, err);
      if (fd < 0) {
        std::cerr << "hallpass: cannot listen on " << l.text << ": " << err << "\n";
        return 1;
      }
      if (ep.port() == 0) {
        // Port 0: the kernel chose one; the other workers share it.
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        ep.port(ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&ss)->sin_port));
      }
      w->adopt_acceptor(fd, ep, l.transparent, l.tls);
    }
    state.own_listeners.emplace_back(ep.address().to_string(), ep.port());
    std::cerr << "hallpass: listening on " << host_for_url(ep.address().to_string())
              << ":" << ep.port() << (l.transparent ? (l.tls ? " (transparent, tls)" : " (transparent, http)") : "")
              << "\n";
  }

  // The PAC endpoint binds now, like the listeners, so that port 80 works when started as root.
  pac_server pac(configs, *m);
  if (!d.pac.listen.empty()) {
    if (auto e = pac.bind(d.pac.listen); !e.empty()) {
      std::cerr << "hallpass: " << e << "\n";
      return 1;
    }
    const auto ep = *pac.endpoint();
    state.own_listeners.emplace_back(ep.address().to_string(), ep.port());
    const std::string host = host_for_url(ep.address().to_string());
    std::cerr << "hallpass: PAC file on http://" << host << ":" << ep.port() << "/proxy.pac and /wpad.dat\n";
  }

  if (options.user && ::geteuid() == 0) {
    // The state directory is the daemon's to write (the exception store lives there).
    if (const passwd* pw = ::getpwnam(options.user->c_str())) {
      if (state_dir_checked.ours && ::chown(d.state_dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        std::cerr << "hallpass: warning: cannot give " << d.state_dir << " to " << *options.user << ": "
                  << std::strerror(errno) << "\n";
      }
      give_store_files(d.state_dir, *pw);
      if (log.enabled() && d.access_log.path != "-") give_file(d.access_log.path, *pw, true);
      if (auto e = check_socket_group(d, *pw); !e.empty()) {
        std::cerr << "hallpass: " << e << "\n";
        return 1;
      }
      prepare_socket_directory(d, *pw);
    }
    if (!drop_privileges(*options.user)) return 1;
    std::cerr << "hallpass: running as " << *options.user << "\n";
  } else if (::geteuid() == 0) {
    // Every privilege kept, for as long as it runs (the quick start does this): said, so that a
    // gateway is not left so by mistake (outside-in audit of operations, 2026-12-07, M2).
    std::cerr << "hallpass: warning: running as root with every privilege, for as long as it runs: give --user "
                 "(an account of its own, such as hallpass) to drop them after binding, as deploy/README.md "
                 "installs it\n";
  }
  // Files the daemon makes from here (the store and its journal, the pid file, the lists'
  // record) hold personal data: never readable by other users, under systemd (UMask=0027) or
  // not (audit19 D2: outside systemd the store was 0644 in a 0755 directory). Set only now, so
  // that the directories made above as root (state_dir's parents, the admin socket's) stay
  // reachable by the user it runs as.
  ::umask(0027);
  remember_lists(*cfg);

  // STATE_DIR/feeds/history gets a "loaded" line for each feed version this daemon starts
  // serving (feeds/feed_history.hpp). Called on the signal thread or the admin thread, never
  // on a worker's event loop: it writes and syncs a small file.
  auto record_feed_loads = [](const rules::policy* before, const configuration& after) {
    const auto loads = feeds::loads_between(before, *after.policy, std::chrono::duration_cast<std::chrono::seconds>(
                                                                      std::chrono::system_clock::now().time_since_epoch())
                                                                      .count());
    if (auto e = feeds::append_history(after.daemon.state_dir + "/feeds", loads); !e.empty()) {
      std::cerr << "hallpass: warning: the feeds' load history was not written: " << e << std::endl;
    }
  };

  // One reload for SIGHUP and `hallpassctl reload`: validate aside, swap, or keep the old one.
  // The reload and its report under one lock: reported under a second lock taken after it, a
  // SIGHUP and a `hallpassctl reload` at the same moment could report out of order, leaving
  // hallpass_policy_generation and the lists' record one generation behind the policy in force
  // (outside-in audit of reloads, 2026-12-07, finding 3). `before` is then the one replaced.
  std::mutex reload_report_mutex;
  auto reload = [&]() -> admin_server::reload_outcome {
    std::lock_guard lock(reload_report_mutex);
    const auto before = configs.current();
    auto r = configs.reload();
    print_errors(r.warnings, "warning: ");
    std::string warnings;
    for (const auto& w : r.warnings) warnings += w.to_string() + "\n";
    if (!r.config) {
      m->reload_failures.Increment();
      std::string all;
      for (const auto& e : r.errors) all += e.to_string() + "\n";
      std::cerr << all << "hallpass: reload failed; still serving policy generation " << configs.generation()
                << std::endl;
      return {all, warnings, configs.generation()};
    }
    m->reloads.Increment();
    m->policy_generation.Set(static_cast<double>(r.config->generation));
    record_feed_loads(before->policy.get(), *r.config);
    remember_lists(*r.config);
    std::cerr << "hallpass: reloaded " << options.config_path << ": policy generation " << r.config->generation
              << std::endl;
    const auto& a = before->daemon;
    const auto& b = r.config->daemon;
    alerts.settings_changed(b.alerts, r.config->generation);
    const auto listen_text = [](const daemon_config& c) {
      std::string all;
      for (const auto& l : c.listen) all += l.text + "\n";  // the text names a transparent listener's mode
      return all;
    };
    if (listen_text(a) != listen_text(b) || a.metrics.listen != b.metrics.listen ||
        a.access_log.path != b.access_log.path || a.workers != b.workers || a.admin.socket != b.admin.socket ||
        a.admin.socket_group != b.admin.socket_group || a.pac.listen != b.pac.listen ||
        a.logins.ldap.max_in_flight != b.logins.ldap.max_in_flight) {
      std::cerr << "hallpass: note: listen, metrics, access_log.path, admin.socket, admin.socket_group, pac.listen, "
                   "workers and logins.ldap.max_in_flight take effect at the next restart\n";
    }
    // The socket keeps the group it was given at start: a technician who took a group's access
    // away must know it is not gone yet (audit, 2026-12-06: the reload said nothing).
    if (a.admin.socket_group != b.admin.socket_group) {
      const auto group = [](const std::string& g) { return g.empty() ? std::string("(none)") : rules::quote(g); };
      const std::string text = "admin.socket_group changed to " + group(b.admin.socket_group) +
                               ": the socket keeps group " + group(a.admin.socket_group) +
                               " until hallpass restarts (systemctl restart hallpass)";
      std::cerr << "hallpass: warning: " << text << std::endl;
      warnings += text + "\n";
    }
    return {std::string(), warnings, r.config->generation};
  };

  // The store and the admin socket, after privileges are dropped: the database and the
  // socket belong to the daemon's user.
  if (auto e = check_own_socket_group(d); !e.empty()) {
    std::cerr << "hallpass: " << e << "\n";
    return 1;
  }
  admin_server admin(state, reload);
  if (auto e = admin.start(); !e.empty()) {
    std::cerr << "hallpass: " << e << "\n";
    return 1;
  }
  state.admin = &admin;
  if (!d.admin.socket.empty()) std::cerr << "hallpass: admin socket " << d.admin.socket << "\n";

  // Device names: read once now (the first requests already have them), then watched on a
  // thread of its own. The settings in force are read at each check, so a reload applies them.
  lease_watcher leases(
      [&configs] {
        const auto c = configs.current();
        return lease_watcher::source{c->daemon.dhcp_leases.path, c->daemon.dhcp_leases.format};
      },
      state.devices,
      {[&m](std::size_t n) { m->dhcp_skipped.Increment(static_cast<double>(n)); },
       [&m] { m->dhcp_read_failures.Increment(); },
       [&m](std::size_t n) { m->dhcp_devices.Set(static_cast<double>(n)); }});
  leases.start();
  pac.start();

  // SIGHUP's reloads run on a thread of their own, not in the signal handler: a reload of a
  // large policy (the UT1 feed: 4-8 s, longer from a slow disk) made SIGTERM and SIGUSR1 wait
  // for it, and with systemd's TimeoutStopSec a slow reload and then the drain could end in
  // SIGKILL (event-loop review, 2026-12-06). SIGHUPs that come during a reload make one more
  // reload after it, which reads the file as it is then.
  std::mutex hup_mutex;
  std::condition_variable hup_wake;
  bool hup_pending = false, hup_stop = false;
  std::thread hup_thread([&] {
    std::unique_lock lock(hup_mutex);
    while (true) {
      hup_wake.wait(lock, [&] { return hup_pending || hup_stop; });
      if (hup_stop) return;
      hup_pending = false;
      lock.unlock();
      const auto outcome = reload();
      admin.audit_reload("SIGHUP", outcome.errors.empty(), outcome.generation, outcome.errors);
      lock.lock();
    }
  });

  net::io_context main_ioc;
  net::signal_set signals(main_ioc, SIGHUP, SIGTERM, SIGINT);
  signals.add(SIGUSR1);
  for (auto& w : workers) w->start();
  std::cerr << "hallpass: serving " << cfg->policy->school_name << " with policy generation " << cfg->generation << " ("
            << cfg->policy->roles.size() << " roles, " << cfg->policy->domains.size() << " domains), " << n_workers
            << " workers; metrics " << (d.metrics.listen.empty() ? "off" : "on " + d.metrics.listen) << "; access log "
            << (log.enabled() ? d.access_log.path : "off") << std::endl;

  // STATE_DIR/hallpass.pid: where `hallpass feeds update` finds the daemon to send SIGHUP to.
  const std::string pid_file = d.state_dir + "/hallpass.pid";
  if (std::ofstream pf(pid_file); !(pf << ::getpid() << "\n")) {
    std::cerr << "hallpass: warning: cannot write " << pid_file << ": feeds update cannot ask for a reload\n";
  }
  record_feed_loads(nullptr, *cfg);
  // From here the configuration in force is held by `configs` (and the workers' caches) alone.
  // Held here for the daemon's life, the first policy stayed in memory beside every later one:
  // with a feed of 3.7 M lines, 253 MB in use after a reload instead of 130 (bench/README.md,
  // "Memory after reloads"). `d` refers into it and is not used after this line.
  cfg.reset();

  bool stopping = false;
  net::steady_timer drain_timer(main_ioc);
  std::chrono::steady_clock::time_point drain_deadline;
  // Polls until every connection is gone or the drain deadline passes, then stops the workers.
  // The gateway's addresses again every second: an IPv6 gateway gains and loses addresses
  // (temporary addresses, a renumbered prefix), a DHCP WAN address changes; read once at start,
  // an address gained later was an open destination (outside-in audit of IPv6, 2026-12-07, F1).
  // getifaddrs is a netlink dump of a few microseconds, on this thread, never a worker's.
  net::steady_timer gateway_timer(main_ioc);
  bool gateway_unreadable_said = false;
  std::function<void(const error_code&)> reread_gateway = [&](const error_code& ec) {
    if (ec || stopping) return;
    std::string why;
    if (auto now = gateway_addresses(&why)) {
      const auto held = state.gateway_addresses.load(std::memory_order_acquire);
      if (!held || *held != *now) {
        state.gateway_addresses.store(std::make_shared<const std::vector<rules::ip_address>>(std::move(*now)),
                                      std::memory_order_release);
      }
      gateway_unreadable_said = false;
    } else if (!gateway_unreadable_said) {
      std::cerr << "hallpass: cannot read this machine's own addresses (" << why
                << "); those last read stay refused as destinations" << std::endl;
      gateway_unreadable_said = true;
    }
    gateway_timer.expires_after(std::chrono::seconds(1));
    gateway_timer.async_wait(reread_gateway);
  };
  gateway_timer.expires_after(std::chrono::seconds(1));
  gateway_timer.async_wait(reread_gateway);
  std::function<void(const error_code&)> poll_drain = [&](const error_code&) {
    if (state.connections() == 0 || std::chrono::steady_clock::now() >= drain_deadline) {
      for (auto& w : workers) w->stop();
      signals.cancel();
      gateway_timer.cancel();
      return;
    }
    drain_timer.expires_after(std::chrono::milliseconds(20));
    drain_timer.async_wait(poll_drain);
  };
  std::function<void(const error_code&, int)> on_signal;
  on_signal = [&](const error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP && !stopping) {
      {
        std::lock_guard lock(hup_mutex);
        hup_pending = true;
      }
      hup_wake.notify_one();
    } else if (sig == SIGUSR1) {
      log.reopen();
    } else if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
      stopping = true;
      state.draining = true;
      for (auto& w : workers) w->begin_drain();
      drain_deadline = std::chrono::steady_clock::now() + configs.current()->daemon.drain;
      std::cerr << "hallpass: stopping; draining " << state.connections() << " connections" << std::endl;
      poll_drain({});
    }
    if (!stopping) signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);
  main_ioc.run();
  {
    std::lock_guard lock(hup_mutex);
    hup_stop = true;  // a reload under way ends first (it cannot be stopped half way)
  }
  hup_wake.notify_one();
  hup_thread.join();
  ::unlink(pid_file.c_str());
  for (auto& w : workers) w->join();
  pac.stop();
  leases.stop();
  wait_for_released_configurations(std::chrono::seconds{10});
  state.admin = nullptr;
  admin.stop();
  // A writer stuck in a write (a stalled log disk, a pipe nobody reads) would hold the stop
  // for ever, until systemd's SIGKILL (resource audit, 2026-12-06): it is given a few seconds.
  if (!log.finish(std::chrono::seconds{5})) {
    std::cerr << "hallpass: the access log's writer has been stuck for 5 s writing to "
              << (log.path() == "-" ? std::string("standard output") : log.path())
              << " (a disk or pipe that takes no data): the lines still queued are lost; stopped without it"
              << std::endl;
    std::_Exit(1);
  }
  const std::size_t left = state.connections();
  std::cerr << "hallpass: stopped" << (left ? " (closed " + std::to_string(left) + " connections at the drain deadline)" : "")
            << std::endl;
  return daemon_exit_code();
}

}  // namespace hallpass

// `hallpass run`: loads the configuration, binds the listeners, drops privileges, starts one
// worker per core, and handles signals on the main thread: SIGHUP reloads (validate, then
// swap; the old configuration stays on any error), SIGUSR1 reopens the access log, SIGTERM
// and SIGINT stop accepting and drain for `drain`, then close what is left.
#pragma once

#include <exception>
#include <optional>
#include <string>

#include "proxy/configuration.hpp"

namespace hallpass {

struct run_options {
  std::string config_path;
  overrides flags;
  std::optional<std::string> user;  // drop to this user after binding when started as root
};

// Returns the process exit code: 0 after a stop by signal, 1 when it could not start,
// loop_failure_exit_code when a loop failed (below).
int run_server(const run_options& options);

// EX_SOFTWARE: a loop the daemon cannot serve without ended by an exception.
inline constexpr int loop_failure_exit_code = 70;

// Completion handler for co_spawn of a loop that must run as long as the daemon: the workers'
// accept and sweep loops, the admin socket's accept loop and the store's prune loop. Without
// it (net::detached) an exception would end the loop silently and the daemon would go on
// serving without accepting, or never prune again. Instead, the exception is reported on
// standard error (the journal) and the daemon stops the way SIGTERM stops it (stop accepting,
// drain, flush the access log), then exits with loop_failure_exit_code, so that systemd's
// Restart=on-failure starts it afresh. A loop that returns normally (a stop) is not reported.
// Callable from any thread.
struct stop_daemon_on_failure {
  const char* loop;  // names the loop in the report: "worker 0 accept loop"
  void operator()(std::exception_ptr e) const;
};

// The exit code run_server() will return: 0, or loop_failure_exit_code after a loop failed.
int daemon_exit_code();

}  // namespace hallpass

// `hallpass run`: loads the configuration, binds the listeners, drops privileges, starts one
// worker per core, and handles signals on the main thread: SIGHUP reloads (validate, then
// swap; the old configuration stays on any error), SIGUSR1 reopens the access log, SIGTERM
// and SIGINT stop accepting and drain for `drain`, then close what is left.
#pragma once

#include <optional>
#include <string>

#include "proxy/configuration.hpp"

namespace hallpass {

struct run_options {
  std::string config_path;
  overrides flags;
  std::optional<std::string> user;  // drop to this user after binding when started as root
};

// Returns the process exit code.
int run_server(const run_options& options);

}  // namespace hallpass

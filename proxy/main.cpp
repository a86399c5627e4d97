// hallpass: the school web filter. This file only dispatches to the sub-commands.
#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "proxy/offline_commands.hpp"
#include "proxy/server.hpp"

namespace {

constexpr const char* usage = R"(hallpass - a web-filtering forward proxy for schools

usage:
  hallpass run --config FILE [--listen ADDRESS:PORT ...] [--access-log PATH|-] [--state-dir DIR]
               [--metrics-listen ADDRESS:PORT|off] [--admin-socket PATH] [--user NAME]
               [--ca-dir DIR]
      Serve as the school's forward proxy. Flags override the file (--ca-dir: tls.ca_dir,
      the school CA that turns HTTPS inspection on). SIGHUP reloads the
      policy (the old one stays if the new one has errors), SIGUSR1 reopens the access log,
      SIGTERM drains and stops.
  hallpass check --config FILE [--state-dir DIR] [--ca-dir DIR] [--quiet]
      Validate a policy. Exit 0 with a summary when valid; exit 1 with every error as
      FILE:LINE:COL: message when not. Feeds are read from DIR/feeds (default: state_dir).
      --ca-dir checks the school CA that `run --ca-dir DIR` would use instead of tls.ca_dir.
  hallpass feeds update [--feed NAME] [--allow-shrink] [--config FILE] [--state-dir DIR]
      Download, verify and install the policy's feeds (default config /etc/hallpass/school.yaml),
      then ask the running daemon to reload. Exit 1 when a feed failed (its lists in force stay).
      A list that lost more than half its entries is refused unless --allow-shrink.
  hallpass feeds status [--config FILE] [--state-dir DIR]
      Each feed's last update, age and entry counts, and when the proxy last loaded it (from
      STATE_DIR/feeds/history); exit 1 when a feed is missing.
  hallpass feeds history [--since DURATION] [--config FILE] [--state-dir DIR]
      The feeds' downloads and loads since DURATION ago (default 7d), as a table for the weekly
      figures.
  hallpass explain --config FILE (--role NAME | --client ADDRESS) [--user NAME] [--groups "A,B"]
                   [--device NAME] [--mac MAC] [--at "YYYY-MM-DD HH:MM"] [--method M]
                   [--state-dir DIR] [--ca-dir DIR] [--json] URL
      Decide one request as the proxy would and say why: the role and how it was chosen,
      the period, the rule and category that decided, and what would allow a block.
      --at is school-local time (default: now). --user without --groups reads the user's
      groups from logins.ldap (exit 1 when the directory cannot be reached). --device and
      --mac: as for a device the DHCP leases name so. Approved exceptions and local blocks
      are read from the store in DIR (default: state_dir); --ca-dir: as `run --ca-dir`.
  hallpass safeguarding-report [--since DURATION] [--config FILE] [--log FILE ...]
                               [--categories A,B] [--send]
      The DSL's report of the access log for the last whole school week (Monday to Monday,
      school time), or since DURATION ago: blocks in high-risk
      categories (alerts.categories, or --categories), attempts to get round the filter,
      bans, blocked searches, blocks by category and site, in plain words. Reads the access
      log and its rotations (gzip too), or the --log files. --send mails it through
      alerts.command to alerts.to instead of printing it.
  hallpass ca init --dir DIR [--name "School name"]
      Create the school's root CA (DIR/ca.crt, DIR/ca.key) for HTTPS inspection, and print
      how to install it on the school's devices. Never overwrites an existing CA.
  hallpass ca show --dir DIR
      Print the CA's subject, SHA-256 fingerprint, validity and key type; exit 1 when it is
      missing or cannot be used.
  hallpass --help | --version

Exit codes: 0 done, 1 the policy is invalid, 2 bad usage.
)";

int run_command(const std::vector<std::string>& args) {
  hallpass::run_options o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= args.size()) {
        std::cerr << "hallpass run: " << a << " needs a value\n";
        return false;
      }
      out = args[++i];
      return true;
    };
    std::string v;
    if (a == "--config") {
      if (!value(o.config_path)) return 2;
    } else if (a == "--listen") {
      if (!value(v)) return 2;
      o.flags.listen.push_back(v);
    } else if (a == "--access-log") {
      if (!value(v)) return 2;
      o.flags.access_log = v;
    } else if (a == "--state-dir") {
      if (!value(v)) return 2;
      o.flags.state_dir = v;
    } else if (a == "--metrics-listen") {
      if (!value(v)) return 2;
      o.flags.metrics_listen = v;
    } else if (a == "--ca-dir") {
      if (!value(v)) return 2;
      o.flags.ca_dir = v;
    } else if (a == "--admin-socket") {
      if (!value(v)) return 2;
      o.flags.admin_socket = v;
    } else if (a == "--user") {
      if (!value(v)) return 2;
      o.user = v;
    } else {
      std::cerr << "hallpass run: unknown argument '" << a << "'\n" << usage;
      return 2;
    }
  }
  if (o.config_path.empty()) {
    std::cerr << "hallpass run: --config FILE is required\n";
    return 2;
  }
  return hallpass::run_server(o);
}

}  // namespace

int main(int argc, char** argv) {
  // A write to a peer that went away is an error to report, never the end of the process:
  // `explain --user` asks the directory, whose connection (made asynchronously so that its TLS
  // handshake has a deadline: ldap_directory.cpp) may have been refused by the time the
  // request is written. The daemon sets the same in run_server.
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << usage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "hallpass " << HALLPASS_VERSION << "\n";
    return 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  if (command == "run") return run_command(args);
  if (command == "check") return hallpass::run_check(args);
  if (command == "explain") return hallpass::run_explain(args);
  if (command == "ca") return hallpass::run_ca(args);
  if (command == "feeds") return hallpass::run_feeds(args);
  if (command == "safeguarding-report") return hallpass::run_safeguarding_report(args);
  std::cerr << "hallpass: unknown command '" << command << "'\n" << usage;
  return 2;
}

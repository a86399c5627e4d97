// hallpass: the school web filter. This file only dispatches to the sub-commands.
#include <iostream>
#include <string>
#include <vector>

#include "proxy/offline_commands.hpp"

namespace {

constexpr const char* usage = R"(hallpass - a web-filtering forward proxy for schools

usage:
  hallpass check --config FILE [--quiet]
      Validate a policy. Exit 0 with a summary when valid; exit 1 with every error as
      FILE:LINE:COL: message when not.
  hallpass explain --config FILE (--role NAME | --client ADDRESS) [--user NAME]
                   [--at "YYYY-MM-DD HH:MM"] [--method M] [--json] URL
      Decide one request as the proxy would and say why: the role and how it was chosen,
      the period, the rule and category that decided, and what would allow a block.
      --at is school-local time (default: now).
  hallpass --help | --version

Exit codes: 0 done, 1 the policy is invalid, 2 bad usage.
)";

}  // namespace

int main(int argc, char** argv) {
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
  if (command == "check") return hallpass::run_check(args);
  if (command == "explain") return hallpass::run_explain(args);
  std::cerr << "hallpass: unknown command '" << command << "'\n" << usage;
  return 2;
}

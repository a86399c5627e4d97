// The commands that work on a policy file without serving: `hallpass check`, `hallpass
// safeguarding-report` (safeguarding_report_command.cpp) and
// `hallpass explain`. They load the policy the same way the daemon does and call the same
// decide() the proxy calls. And `hallpass ca`, which makes and shows the school CA
// (certs/README.md).
#pragma once

#include <string>
#include <vector>

namespace hallpass {

// Each returns the process exit code: 0 success, 1 the policy is invalid, 2 bad usage.
int run_check(const std::vector<std::string>& args);
int run_explain(const std::vector<std::string>& args);
// `hallpass ca init|show`: 0 done, 1 the CA could not be made or is missing or broken, 2 usage.
int run_ca(const std::vector<std::string>& args);
// `hallpass feeds update [--feed NAME] [--config FILE] [--state-dir DIR]` and
// `hallpass feeds status [--config FILE] [--state-dir DIR]` (feeds/README.md).
int run_feeds(const std::vector<std::string>& args);
// `hallpass safeguarding-report [--since DURATION] [--config FILE] [--log FILE ...]
// [--categories A,B] [--send]`: 0 done, 1 the configuration is invalid or no log could be
// read or the message could not be sent, 2 usage.
// (safeguarding_report_command.cpp)
int run_safeguarding_report(const std::vector<std::string>& args);

}  // namespace hallpass

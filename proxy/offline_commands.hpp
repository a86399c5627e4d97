// The commands that work on a policy file without serving: `hallpass check` and
// `hallpass explain`. They load the policy the same way the daemon does and call the same
// decide() the proxy calls.
#pragma once

#include <string>
#include <vector>

namespace hallpass {

// Each returns the process exit code: 0 success, 1 the policy is invalid, 2 bad usage.
int run_check(const std::vector<std::string>& args);
int run_explain(const std::vector<std::string>& args);

}  // namespace hallpass

// Top-level keys of the policy file that belong to the daemon rather than to the policy
// engine. The rules loader accepts them without reading them; the daemon validates them.
#pragma once

#include <string>
#include <vector>

namespace hallpass {

inline std::vector<std::string> config_section_names() {
  return {};
}

}  // namespace hallpass

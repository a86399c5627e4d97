// A problem found while loading a policy, with where it is: "FILE:LINE:COL: message".
// Lines and columns are 1-based; 0 means "the whole file".
#pragma once

#include <string>
#include <vector>

#include "rules/utf8.hpp"

namespace hallpass::rules {

struct diagnostic {
  std::string file;
  int line = 0;
  int column = 0;
  std::string message;

  // Safe on a terminal (rules/utf8.hpp): a message may quote a list file's line, which a feed
  // (text from outside the school) wrote, control bytes and escape sequences included.
  std::string to_string() const {
    std::string s = file;
    if (line > 0) s += ":" + std::to_string(line) + ":" + std::to_string(column);
    return terminal_safe(s + ": " + message);
  }
};

using diagnostics = std::vector<diagnostic>;

}  // namespace hallpass::rules

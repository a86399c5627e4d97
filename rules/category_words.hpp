#pragma once

// A category key as people read it: "self harm", not the policy's key "self_harm". The one
// spelling for the block page, a rule's default reason, the alert mails, the weekly report and
// hallpassctl's answers (people-side audit, 2026-12-07, L8; a maintainer's review found it
// made in five places). The access log and JSON keep the key itself.

#include <algorithm>
#include <string>
#include <string_view>

namespace hallpass::rules {

inline std::string category_words(std::string_view key) {
  std::string out(key);
  std::replace(out.begin(), out.end(), '_', ' ');
  return out;
}

}  // namespace hallpass::rules

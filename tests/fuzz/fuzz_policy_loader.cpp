// libFuzzer target: the policy loader on YAML text (rules/policy_loader.hpp,
// load_policy_text), as `hallpass check` and a reload read a policy file.
//
// The loader reads the files a policy names (domain_files, url_files, ut1_dir, the time zone).
// So that the fuzzer reads nothing but its own files, the policy is loaded as if from a fresh
// temporary directory holding two small lists (domains.txt, urls.txt), and an input with a
// scalar that starts with '/' or contains ".." is skipped (a /dev/zero list would only measure
// the disk). Time zones come from /usr/share/zoneinfo (the loader refuses names with "..").
//
// Asserted beyond "no crash, no sanitizer report":
//  - a policy comes out exactly when there are no errors (nothing is half-loaded), and every
//    error has a file name and a message;
//  - loading the same text again gives the same errors and the same outcome (no hidden state);
//  - a loaded policy has roles and a fallback role among them, and decide() answers for every
//    role, for a plain-HTTP request, a relayed tunnel and an inspected one (path_seen_later),
//    without failing; decide_inspection and the SafeSearch mapping answer for the tunnels.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include <yaml-cpp/yaml.h>

#include "rules/engine.hpp"
#include "rules/inspection.hpp"
#include "rules/policy_loader.hpp"
#include "rules/safesearch.hpp"
#include "rules/yaml_load.hpp"
#include "tests/fuzz/fuzz_require.hpp"

using namespace hallpass::rules;

namespace {

std::string policy_file;  // <temporary directory>/policy.yaml (never written)

// True when some scalar (key or value) could make the loader read outside the directory.
bool names_outside_path(const YAML::Node& n, int depth = 0) {
  if (depth > 64) return true;  // not worth the stack; the loader would refuse it anyway
  switch (n.Type()) {
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      return (!s.empty() && s.front() == '/') || s.find("..") != std::string::npos;
    }
    case YAML::NodeType::Sequence:
      for (const auto& item : n) {
        if (names_outside_path(item, depth + 1)) return true;
      }
      return false;
    case YAML::NodeType::Map:
      for (const auto& kv : n) {
        if (names_outside_path(kv.first, depth + 1) || names_outside_path(kv.second, depth + 1))
          return true;
      }
      return false;
    default:
      return false;
  }
}

bool same_errors(const diagnostics& a, const diagnostics& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].to_string() != b[i].to_string()) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char dir[] = "/tmp/hallpass-fuzz-policy-XXXXXX";
  if (!::mkdtemp(dir)) std::abort();
  std::ofstream(std::string(dir) + "/domains.txt")
      << "example.org\nwww.example.com\n# a comment\nbad..name\n";
  std::ofstream(std::string(dir) + "/urls.txt") << "example.net/blocked/path\nexample.org/a\n";
  policy_file = std::string(dir) + "/policy.yaml";
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 16 * 1024) return 0;  // a policy file, not a list: lists come from files
  const std::string text(reinterpret_cast<const char*>(data), size);
  // load_yaml, as the loader reads it (only the first document, its aliases bounded: walked
  // here, a few hundred bytes of nested aliases would cost billions of steps). Not
  // YAML::LoadAll: yaml-cpp 0.7's LoadAll never returns on some invalid text (",a: 1"),
  // allocating without bound.
  try {
    if (names_outside_path(load_yaml(text))) return 0;
  } catch (const std::exception&) {
    // Not YAML, too deep or too many aliases: the loader must say so itself, reading no file.
  }

  const auto r = load_policy_text(text, policy_file);
  FUZZ_REQUIRE(r.ok() == r.errors.empty());
  for (const auto& e : r.errors) FUZZ_REQUIRE(!e.file.empty() && !e.message.empty());
  for (const auto& w : r.warnings) FUZZ_REQUIRE(!w.file.empty() && !w.message.empty());

  const auto again = load_policy_text(text, policy_file);
  FUZZ_REQUIRE(again.ok() == r.ok() && same_errors(again.errors, r.errors) &&
               same_errors(again.warnings, r.warnings));
  if (!r.ok()) return 0;

  const policy& p = *r.compiled;
  FUZZ_REQUIRE(!p.roles.empty() && p.fallback_role < p.roles.size());
  for (const auto& role : p.roles) {
    for (const int kind : {0, 1, 2}) {  // plain HTTP, relayed tunnel, inspected tunnel
      const bool tunnel = kind > 0;
      request_facts f;
      f.role = role.name;
      f.method = tunnel ? "CONNECT" : "GET";
      f.scheme = tunnel ? "https" : "http";
      f.host = "www.example.org";
      if (!tunnel) f.path = std::string_view("/a/b?c=d");
      f.path_seen_later = kind == 2;
      f.time = std::chrono::sys_seconds(
          std::chrono::seconds(1796112000));  // 2026-12-01 08:00 UTC, a Tuesday: school hours
      const auto v = decide(p, f);
      FUZZ_REQUIRE(v.chosen_role != nullptr);
      if (tunnel) {
        FUZZ_REQUIRE(!decide_inspection(p, nullptr, f, v).why.empty());
        (void)safesearch_connect_host(p, v, "www.google.com");
      }
    }
  }
  return 0;
}

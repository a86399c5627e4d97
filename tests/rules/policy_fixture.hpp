// Helpers for engine tests: load a policy from inline YAML and decide at a local time.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "rules/engine.hpp"
#include "rules/explain.hpp"
#include "rules/policy_loader.hpp"

namespace test {

inline std::shared_ptr<const hallpass::rules::policy> load_yaml(const std::string& yaml,
                                                                const std::string& file = "test.yaml") {
  auto r = hallpass::rules::load_policy_text(yaml, file);
  std::string all;
  for (const auto& e : r.errors) all += e.to_string() + "\n";
  REQUIRE_MESSAGE(r.ok(), all);
  return r.compiled;
}

struct ask {
  const hallpass::rules::policy& p;
  std::string role;
  std::string client;
  std::string method = "GET";

  hallpass::rules::verdict at(const std::string& local, const std::string& url) const {
    auto parts = hallpass::rules::split_url(url, nullptr);
    REQUIRE(parts);
    auto t = hallpass::rules::parse_local_time(local);
    REQUIRE(t);
    hallpass::rules::request_facts f;
    f.role = role;
    if (!client.empty()) f.client = hallpass::rules::ip_address::parse(client);
    f.method = method;
    f.scheme = parts->scheme;
    f.host = parts->host;
    f.port = parts->port;
    f.path = parts->path;
    f.time = p.zone.to_sys(*t);
    return hallpass::rules::decide(p, f);
  }
  bool allowed(const std::string& local, const std::string& url) const {
    return at(local, url).act == hallpass::rules::action::allow;
  }
};

// The facts of a CONNECT to `host` (port 443) by `role` at school-local time `local`. The
// facts view `role` and `host`: keep them alive.
inline hallpass::rules::request_facts connect_facts(const hallpass::rules::policy& p, std::string_view role,
                                                    std::string_view host, const std::string& local) {
  hallpass::rules::request_facts f;
  f.role = role;
  f.method = "CONNECT";
  f.scheme = "https";
  f.host = host;
  f.port = 443;
  auto t = hallpass::rules::parse_local_time(local);
  REQUIRE(t);
  f.time = p.zone.to_sys(*t);
  return f;
}

// A school day like the shipped one; 2026-11-23 is a Monday.
inline const char* timetable_yaml = R"(
school:
  name: Test School
  timezone: Europe/London
  timetable:
    weekdays:
      - {name: Lesson 1, kind: lesson, from: "08:50", to: "10:30"}
      - {name: Break,    kind: break,  from: "10:30", to: "10:45"}
      - {name: Lesson 2, kind: lesson, from: "10:45", to: "12:00"}
      - {name: Lunch,    kind: lunch,  from: "12:00", to: "13:00"}
      - {name: Lesson 3, kind: lesson, from: "13:00", to: "15:15"}
)";

}  // namespace test

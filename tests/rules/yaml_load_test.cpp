// The bound on what a policy's YAML aliases expand to (rules/yaml_load.hpp): sizes as written
// and as expanded, the limits, and the policy loader refusing a "billion laughs" file quickly.
#include <doctest/doctest.h>

#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "rules/policy_loader.hpp"
#include "rules/yaml_load.hpp"

using namespace hallpass::rules;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `levels` categories, each a list of ten aliases of the one before; the first is ten domains.
// Ten levels expand to 10^10 entries: the audit's 1.6 KB file (outside-in audit H, 2026-12-05).
std::string laughs(int levels) {
  std::string y =
      "school: {name: S, timezone: Europe/London}\n"
      "categories:\n"
      "  bomb0: {domains: &b0 [a.test, a.test, a.test, a.test, a.test, a.test, a.test, a.test, "
      "a.test, a.test]}\n";
  for (int i = 1; i < levels; ++i) {
    const std::string prev = "*b" + std::to_string(i - 1);
    y += "  bomb" + std::to_string(i) + ": {domains: &b" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) y += (j ? ", " : "") + prev;
    y += "]}\n";
  }
  y += "roles:\n  pupils: {default: allow, rules: [{action: block, categories: [bomb0]}]}\n";
  return y;
}

// The audit's 783 KB file in small: one anchored list of `entries` domains named by `uses`
// categories. Linear, not exponential, and still a hundred times the file.
std::string one_list_many_uses(int entries, int uses) {
  std::string y = "school: {name: S, timezone: Europe/London}\ncategories:\n  amp0: {domains: &D [";
  for (int i = 0; i < entries; ++i)
    y += (i ? "," : "") + std::string("d") + std::to_string(i) + ".test";
  y += "]}\n";
  for (int i = 1; i < uses; ++i) y += "  amp" + std::to_string(i) + ": {domains: *D}\n";
  y += "roles:\n  pupils: {default: allow, rules: [{action: block, categories: [amp0]}]}\n";
  return y;
}


}  // namespace

TEST_CASE("yaml sizes: every node once as written, an alias as the nodes its anchor names") {
  // map, a, [list, 1, 2], b, *x
  const auto s = measure_yaml("a: &x [1, 2]\nb: *x\n");
  CHECK(s.nodes == 7);
  CHECK(s.expanded_nodes == 9);  // the alias is the list's three nodes
  CHECK(s.bytes == 4);           // a, 1, 2, b
  CHECK(s.expanded_bytes == 6);
  CHECK(s.depth == 2);  // the mapping, the list in it
  CHECK(s.most_nodes.name == "x");
  CHECK(s.most_nodes.nodes == 3);
  CHECK(s.most_nodes.mark.line == 1);  // 0-based: `b: *x` on line 2
  CHECK(s.most_nodes.mark.column == 3);

  // Nulls (`~`, an empty value), an anchored scalar and an alias as a key.
  const auto t = measure_yaml("k: &s long-scalar\n*s : ~\nempty:\n");
  CHECK(t.nodes == 7);
  CHECK(t.expanded_nodes == 7);
  CHECK(t.expanded_bytes == t.bytes + 11);

  CHECK(measure_yaml("").nodes == 0);
  CHECK(measure_yaml("just a scalar").depth == 0);
  CHECK_THROWS_AS(measure_yaml("a: [unclosed\n"), YAML::ParserException);
}

TEST_CASE(
    "yaml sizes: the shipped policy and a policy of 100000 inline domains are their own size") {
  const auto school = read_text(HALLPASS_SOURCE_DIR "/rules/school.yaml");
  const auto s = measure_yaml(school);
  CHECK(s.nodes > 500);
  CHECK(s.expanded_nodes == s.nodes);
  CHECK(s.expanded_bytes == s.bytes);
  CHECK(s.depth < 10);
  CHECK_FALSE(check_yaml_size(s));
  load_options shipped;
  shipped.other_sections = shipped_daemon_sections;
  CHECK(load_policy_text(school, HALLPASS_SOURCE_DIR "/rules/school.yaml", shipped).ok());

  std::string big =
      "school: {name: S, timezone: Europe/London}\ncategories:\n  many:\n    domains: [";
  for (int i = 0; i < 100000; ++i) big += (i ? ", d" : "d") + std::to_string(i) + ".example.org";
  big += "]\nroles:\n  pupils: {default: allow, rules: [{action: block, categories: [many]}]}\n";
  const auto b = measure_yaml(big);
  CHECK(b.expanded_nodes == b.nodes);
  const auto r = load_policy_text(big, "big.yaml");
  REQUIRE(r.ok());
  CHECK(r.compiled->categories.size() == 1);
}

TEST_CASE("yaml sizes: an anchored list named a few times is within the bound") {
  // A school's networks or a short list written once and named by several roles: the use
  // aliases are for.
  const auto y = one_list_many_uses(1000, 20);
  const auto s = measure_yaml(y);
  CHECK(s.expanded_nodes > 19 * 1000);
  CHECK_FALSE(check_yaml_size(s));
  CHECK(load_policy_text(y, "p.yaml").ok());
}

TEST_CASE("billion laughs: refused at the largest alias, naming the bound") {
  // Unbounded, 10^10 entries: the load would not finish (CTest's timeout would end it). No
  // clock here: the brief keeps timing out of tests (bench/ measures it; rules/README.md).
  const auto r = load_policy_text(laughs(10), "laughs.yaml");
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.errors.size() == 1);
  const auto& e = r.errors[0];
  CHECK(e.file == "laughs.yaml");
  CHECK(e.line == 12);  // bomb9's list, where *b8 stands for 10^9 + ... nodes
  CHECK(e.message.find("the policy expands to more than ") == 0);
  CHECK(e.message.find(" nodes through YAML aliases (anchors)") != std::string::npos);
  CHECK(e.message.find("*b8 here stands for 1111111111") != std::string::npos);
  CHECK(e.to_string().find("laughs.yaml:12:") == 0);
}

TEST_CASE("the audit's file in small: one list of 1000 named by 3000 categories is refused") {
  const auto y = one_list_many_uses(1000, 3000);
  const auto s = measure_yaml(y);
  CHECK(s.expanded_nodes > 3'000'000);
  const auto refusal = check_yaml_size(s);
  REQUIRE(refusal);
  CHECK(refusal->message.find("*D here stands for 1001") != std::string::npos);
  CHECK(refusal->mark.line == 3);  // 0-based: line 4, the first use (amp1's)
  const auto r = load_policy_text(y, "amp.yaml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].message.find("expands to more than") != std::string::npos);
}

TEST_CASE("yaml sizes saturate instead of wrapping round 64 bits") {
  // 30 levels of ten-fold: 10^30 nodes. Wrapped, the sum could come out small and pass.
  const auto s = measure_yaml(laughs(30));
  CHECK(s.expanded_nodes == std::numeric_limits<std::uint64_t>::max());
  const auto refusal = check_yaml_size(s);
  REQUIRE(refusal);
  CHECK(refusal->message.find("become more than 18446744073709551615") != std::string::npos);
}

TEST_CASE("a long text named by many aliases is refused by its bytes") {
  // 1000 rules whose reason is one anchored 100 KB text: 100 MB of reasons kept in memory.
  std::string y =
      "school: {name: S, timezone: Europe/London}\nroles:\n  pupils:\n    default: allow\n"
      "    rules:\n      - {action: block, domains: [a.test], reason: &r " +
      std::string(100'000, 'x') + "}\n";
  for (int i = 1; i < 1000; ++i) y += "      - {action: block, domains: [a.test], reason: *r}\n";
  const auto s = measure_yaml(y);
  CHECK_FALSE(s.expanded_nodes > s.nodes * 10 + 1'000'000);  // few nodes: only the bytes tell
  const auto refusal = check_yaml_size(s);
  REQUIRE(refusal);
  CHECK(refusal->message.find("bytes of text through YAML aliases (anchors)") != std::string::npos);
  CHECK(refusal->message.find("*r here stands for 100000 bytes") != std::string::npos);
  CHECK_THROWS_AS(load_yaml(y), yaml_too_large);
}

TEST_CASE(
    "an alias inside the node its anchor names is refused (yaml-cpp builds a node that holds "
    "itself)") {
  for (const char* y : {"a: &x [1, *x]\n", "a: &x {k: *x}\n", "a: &x 1\nb: &x [*x]\n"}) {
    CAPTURE(y);
    try {
      (void)load_yaml(y);
      FAIL("accepted");
    } catch (const yaml_too_large& e) {
      CHECK(e.msg ==
            "the alias *x is inside the node its anchor &x names: a node cannot hold itself");
    }
  }
  // An alias of an earlier anchor of the same name is fine.
  CHECK(load_yaml("a: &x 1\nb: [*x]\n")["b"][0].as<int>() == 1);
  const auto r = load_policy_text("school: &s {name: [*s]}\n", "self.yaml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].to_string() ==
        "self.yaml:1:20: the alias *s is inside the node its anchor &s names: a node cannot hold "
        "itself");
}

TEST_CASE(
    "nesting deeper than yaml-cpp reads is refused in words, with aliases or without") {
  // yaml-cpp 0.7 refuses 500 levels itself (DepthGuard), saying only "bad file". 100,000 '['
  // neither exhaust the stack nor take long.
  const std::string deep(100'000, '[');
  for (const std::string& y : {deep, "a: &x 1\nb: *x\nc: " + deep}) {
    try {
      (void)load_yaml(y);
      FAIL("accepted");
    } catch (const yaml_too_large& e) {
      CHECK(e.msg ==
            "the policy nests lists and mappings deeper than yaml-cpp reads (it stops at 500 "
            "levels); a policy "
            "needs fewer than 10");
      CHECK(e.mark.line >= 0);
    }
  }
  const auto r = load_policy_text("school: " + deep, "deep.yaml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].to_string().find("deep.yaml:1:") == 0);
  CHECK(r.errors[0].message.find(
            "the policy nests lists and mappings deeper than yaml-cpp reads") == 0);

  // 400 levels are read, and are an ordinary error where a domain is expected.
  const std::string nested = std::string(400, '[') + "a.test" + std::string(400, ']');
  CHECK(measure_yaml(nested).depth == 400);
  const auto n = load_policy_text(
      "school: {name: S, timezone: Europe/London}\ncategories:\n  c: {domains: [" + nested +
          "]}\nroles:\n  pupils: {default: allow, rules: [{action: block, categories: [c]}]}\n",
      "nested.yaml");
  CHECK_FALSE(n.ok());
}

TEST_CASE("text without both '*' and '&' has no alias and loads as YAML::Load loads it") {
  // The measuring pass is skipped there (it costs about what the parse costs): the outcome is
  // the same, whatever the size.
  const std::string y = "patterns: ['^https?://([a-z0-9-]+\\.)*wikipedia\\.org']\nq: a&b\n";
  CHECK(YAML::Dump(load_yaml(y)) == YAML::Dump(YAML::Load(y)));
  CHECK_THROWS_AS(load_yaml("a: *x\n"),
                  YAML::ParserException);  // an alias of no anchor: yaml-cpp's error
  CHECK(load_yaml("a: &x 1\n")["a"].as<int>() == 1);
}

TEST_CASE("only the first document is measured, and a second is refused before it is read") {
  const auto y = "a: 1\n---\n" + laughs(30);
  CHECK(measure_yaml(y).nodes == 3);
  CHECK_THROWS_AS(load_yaml(y), yaml_more_documents);
}

TEST_CASE("load_yaml gives what YAML::Load gives, and its refusals are parser exceptions") {
  const std::string y = "a: &x [1, 2]\nb: *x\nc: {d: e}\n";
  const auto n = load_yaml(y);
  CHECK(n["b"].size() == 2);
  CHECK(n["c"]["d"].as<std::string>() == "e");
  CHECK(YAML::Dump(n) == YAML::Dump(YAML::Load(y)));
  CHECK(load_yaml("").IsNull());
  // Code that catches yaml-cpp's parse errors (proxy/configuration.cpp) catches these too.
  CHECK_THROWS_AS(load_yaml(laughs(10)), YAML::ParserException);
  // Limits may be set: the file's own nodes and no allowance refuse any alias of a list.
  yaml_limits tight;
  tight.node_factor = 1;
  tight.extra_nodes = 0;
  CHECK_THROWS_AS(load_yaml(y, tight), yaml_too_large);
}

TEST_CASE("one document: a second after '---' or '...' is refused where it begins, never ignored") {
  // YAML::Load reads the first document only: rules pasted after a `---` never applied (policy
  // audit, 2026-12-05).
  CHECK_FALSE(second_document("a: 1\nb: 2\n").has_value());
  CHECK_FALSE(second_document("---\na: 1\n").has_value());                  // the first's own start
  CHECK_FALSE(second_document("# policy\n%YAML 1.2\n---\na: 1\n...\n").has_value());
  CHECK_FALSE(second_document("\xEF\xBB\xBF---\r\na: 1\r\n...\r\n# end\n").has_value());
  CHECK_FALSE(second_document("a: |\n  ---\n  text\nb: \"x\n  --- y\"\n").has_value());  // inside scalars
  CHECK_FALSE(second_document("a: ----\nb: ...x\n").has_value());           // not markers
  auto at = second_document("a: 1\n---\nb: 2\n");
  REQUIRE(at.has_value());
  CHECK(at->line == 1);
  at = second_document("---\na: 1\n--- # more\nb: 2\n");
  REQUIRE(at.has_value());
  CHECK(at->line == 2);
  at = second_document("a: 1\n...\n\nb: 2\n");
  REQUIRE(at.has_value());
  CHECK(at->line == 3);
  at = second_document("a: 1\n...\n---\n");
  REQUIRE(at.has_value());
  CHECK(at->line == 2);
  CHECK_THROWS_AS(load_yaml("roles: {}\n---\neveryone: {}\n"), yaml_more_documents);
  CHECK(load_yaml("---\nroles: {a: 1}\n...\n")["roles"]["a"].as<int>() == 1);
}

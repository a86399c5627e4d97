// doctest's main, with one guard: a run that names test cases (-tc / --test-case, as CTest's
// doctest_discover_tests does for every test) and finds none fails instead of passing.
// Without it a test case whose name CTest cannot pass through (a ';' splits it in two) would
// run nothing and still be reported as passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string_view>

namespace {

unsigned cases_matched = 0;

struct match_counter : doctest::IReporter {
  explicit match_counter(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& s) override { cases_matched = s.numTestCasesPassingFilters; }
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("match_counter", 1, match_counter);

int main(int argc, char** argv) {
  bool names_cases = false, lists = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.starts_with("-tc=") || a.starts_with("--test-case=")) names_cases = true;
    if (a.starts_with("-ltc") || a.starts_with("--list") || a.starts_with("-lts") || a.starts_with("-lr") ||
        a == "-h" || a == "--help" || a == "-v" || a == "--version" || a.starts_with("-c") || a.starts_with("--count")) {
      lists = true;
    }
  }
  doctest::Context context(argc, argv);
  const int result = context.run();
  if (result == 0 && names_cases && !lists && cases_matched == 0) {
    std::fprintf(stderr, "no test case matches the name given with -tc/--test-case; nothing was tested\n");
    return 1;
  }
  return result;
}

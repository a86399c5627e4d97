// What the store answers to `audit` and `reports` (admin audit, 2026-12-05, F3 and F9), on real
// SQLite files in a temporary directory: the audit log answers its newest entries within a
// count and a size, saying how many older ones it left out, and pages back with `before`; a
// report whose block was removed says so.
#include "store/exception_store.hpp"
#include "tests/store/store_fixture.hpp"

#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace {

namespace json = boost::json;
using namespace hallpass;
using store_test::open_store;
using store_test::technician;
using store_test::temp_dir;

// A form from the block page with the longest answers the page takes (200 and 2,000
// characters): each filing writes an audit entry of some 6.8 KB.
std::int64_t file_long_form(store::exception_store& s, int n) {
  store::request_form f;
  f.url = "http://a.test/page" + std::to_string(n);
  f.requester = std::string(200, 'r');
  f.reasons = std::string(2000, 'w');
  f.site_content = std::string(2000, 's');
  f.roles = {"pupils"};
  f.source = "block page";
  // A device each: one asker may have at most store::max_pending_per_asker waiting.
  f.client_address = "10.10." + std::to_string(n / 250) + "." + std::to_string(n % 250 + 1);
  auto r = s.file_request(store_test::block_page, f);
  REQUIRE(r.ok);
  return r.data.at("id").as_int64();
}

std::vector<std::int64_t> ids_of(const store::result& r) {
  std::vector<std::int64_t> out;
  for (const auto& e : r.data.at("entries").as_array()) out.push_back(e.at("id").as_int64());
  return out;
}

}  // namespace

TEST_CASE("audit answers the newest entries, oldest first, and counts the older ones it left out") {
  temp_dir dir;
  auto s = open_store(dir);
  for (int i = 0; i < 250; ++i) file_long_form(*s, i);
  const auto every = ids_of(s->audit(std::nullopt, std::nullopt, 1000));
  REQUIRE(every.size() == 250);
  const auto slice = [&](std::size_t from, std::size_t to) {
    return std::vector<std::int64_t>(every.begin() + static_cast<std::ptrdiff_t>(from),
                                     every.begin() + static_cast<std::ptrdiff_t>(to));
  };

  auto r = s->audit(std::nullopt);  // the default: the newest 200
  REQUIRE(r.ok);
  CHECK(ids_of(r) == slice(50, 250));
  CHECK(r.data.at("omitted").as_int64() == 50);

  // Paging back: those before the first shown.
  r = s->audit(std::nullopt, /*before=*/every[50], /*limit=*/30);
  CHECK(ids_of(r) == slice(20, 50));
  CHECK(r.data.at("omitted").as_int64() == 20);
  r = s->audit(std::nullopt, every[20], 200);
  CHECK(ids_of(r) == slice(0, 20));
  CHECK_FALSE(r.data.as_object().contains("omitted"));
  CHECK(ids_of(s->audit(std::nullopt, every[0], 200)).empty());

  // since: only what was written from then (all of it here), and none from the future.
  CHECK(ids_of(s->audit(store::now_seconds() - std::chrono::hours(1), std::nullopt, 1000)).size() == 250);
  r = s->audit(store::now_seconds() + std::chrono::hours(1));
  CHECK(ids_of(r).empty());
  CHECK_FALSE(r.data.as_object().contains("omitted"));
}

TEST_CASE("audit answers no more than its size allows, however many entries were asked for") {
  // 2,550 such forms made `audit` longer than hallpassctl's 16 MiB answer (admin audit,
  // 2026-12-05, F3); within a byte budget the answer is the newest that fit.
  temp_dir dir;
  auto s = open_store(dir);
  for (int i = 0; i < 40; ++i) file_long_form(*s, i);
  const auto all = s->audit(std::nullopt, std::nullopt, 1000);
  REQUIRE(ids_of(all).size() == 40);
  const auto one = json::serialize(all.data.at("entries").as_array().back()).size();
  CHECK(one > 6000);

  const auto r = s->audit(std::nullopt, std::nullopt, 1000, /*max_bytes=*/(one + 1) * 10 + 5);
  const auto ids = ids_of(r);
  CHECK(ids.size() == 10);
  CHECK(ids.back() == ids_of(all).back());
  CHECK(r.data.at("omitted").as_int64() == 30);
  CHECK(json::serialize(r.data).size() < one * 11);
  // The newest entry always, even when it alone is larger.
  CHECK(ids_of(s->audit(std::nullopt, std::nullopt, 1000, 10)) == std::vector<std::int64_t>{ids_of(all).back()});
  CHECK(store::max_audit_bytes * 3 < 16u * 1024 * 1024);  // room under hallpassctl's limit
}

TEST_CASE("a report whose block was removed says who removed it, when and why") {
  // `reports` said "blocked" of a page open again (admin audit, 2026-12-05, F9).
  temp_dir dir;
  auto s = open_store(dir);
  std::string error;
  auto t = rules::make_target("http://rep.test/x", rules::target_kind::url, &error);
  REQUIRE(t);
  auto filed = s->file_report(technician, "http://rep.test/x", "violent images", "Mrs B", std::nullopt, t);
  REQUIRE(filed.ok);
  const auto entry = filed.data.at("entry").as_int64();
  auto plain = s->file_report(technician, "http://other.test/", "spam", "Mr C", std::nullopt, std::nullopt);
  REQUIRE(plain.ok);

  auto reports = s->reports().data.at("reports").as_array();
  REQUIRE(reports.size() == 2);
  CHECK(reports[0].at("action").at("removed").is_null());
  CHECK(reports[1].at("action").is_null());

  REQUIRE(s->remove_local(store_test::headteacher, entry, "added by mistake").ok);
  reports = s->reports().data.at("reports").as_array();
  const auto& action = reports[0].at("action").as_object();
  CHECK(action.at("taken").as_string() == "blocked");
  CHECK(action.at("entry").as_int64() == entry);
  const auto& removed = action.at("removed").as_object();
  CHECK(removed.at("by").as_string() == "mrs.head");
  CHECK(removed.at("reason").as_string() == "added by mistake");
  CHECK(removed.at("at").as_string().size() > 10);
  CHECK(reports[1].at("action").is_null());
}

#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "proxy/block_page.hpp"
#include "tests/proxy/test_support.hpp"

using namespace hallpass;
using namespace std::string_literals;

namespace {

block_page_info sample() {
  block_page_info i;
  i.school_name = "Pimperne C of E Primary School";
  i.url = "https://www.instagram.com/explore/";
  i.host = "www.instagram.com";
  i.role = "pupils";
  i.rule = "pupils rule 1 (social media)";
  i.category = "social_media";
  i.reason = "Pupils may not use social media in school.";
  i.clause = "000 6.9; 003 s6";
  i.period = "Lesson 2 (lesson)";
  i.time_text = "Monday 23 November 2026, 11:00";
  i.client = "10.10.4.20";
  return i;
}

using hallpass_test::count;

using hallpass_test::contains;

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    i += n;
  }
  return true;
}

// What every page hallpass serves must be: a complete, self-contained, accessible document.
void check_document(const std::string& page) {
  CHECK(page.rfind("<!doctype html>\n", 0) == 0);
  CHECK(contains(page, "<html lang=\"en-GB\">"));
  CHECK(contains(page, "<meta charset=\"utf-8\">"));
  CHECK(contains(page, "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
  CHECK(count(page, "<title>") == 1);
  CHECK(count(page, "<main>") == 1);
  CHECK(count(page, "</main>") == 1);
  CHECK(count(page, "<h1") == 1);
  CHECK(contains(page, "</html>\n"));
  // No scripts and nothing fetched from elsewhere.
  CHECK_FALSE(contains(page, "<script"));
  CHECK_FALSE(contains(page, " src="));
  CHECK_FALSE(contains(page, "<link"));
  CHECK_FALSE(contains(page, "url("));
  CHECK_FALSE(contains(page, "@import"));
  CHECK(page.size() < 10 * 1024);  // the forms' looks are in the shared style too (2026-12-06)
  CHECK(valid_utf8(page));
}

// WCAG 2.1 relative luminance and contrast ratio of "#rrggbb" colours.
double luminance(std::string_view hex) {
  auto channel = [&](std::size_t i) {
    double v = std::stoi(std::string(hex.substr(i, 2)), nullptr, 16) / 255.0;
    return v <= 0.03928 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4);
  };
  if (hex.size() == 4) {  // "#fff"
    std::string full = "#";
    for (char c : hex.substr(1)) full += std::string(2, c);
    return luminance(full);
  }
  return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
}
double contrast(std::string_view a, std::string_view b) {
  double x = luminance(a), y = luminance(b);
  if (x < y) std::swap(x, y);
  return (x + 0.05) / (y + 0.05);
}

// The custom properties of each :root block in order (light, then dark).
std::vector<std::map<std::string, std::string>> colour_schemes(const std::string& page) {
  std::vector<std::map<std::string, std::string>> schemes;
  for (auto p = page.find(":root{"); p != std::string::npos; p = page.find(":root{", p + 1)) {
    auto end = page.find('}', p);
    std::map<std::string, std::string> vars;
    std::string block = page.substr(p, end - p);
    for (auto v = block.find("--"); v != std::string::npos; v = block.find("--", v + 1)) {
      auto colon = block.find(':', v);
      auto stop = block.find_first_of(";}", colon);
      vars[block.substr(v + 2, colon - v - 2)] = block.substr(colon + 1, stop - colon - 1);
    }
    schemes.push_back(vars);
  }
  return schemes;
}

}  // namespace

TEST_CASE("the block page says what, why, which rule, category, when and clause") {
  auto page = render_block_page(sample());
  check_document(page);
  CHECK(contains(page, "<h1>This page is blocked</h1>"));
  CHECK(contains(
      page, "<title>Blocked: www.instagram.com \u2013 Pimperne C of E Primary School</title>"));
  CHECK(contains(page, "<dt>Page</dt><dd class=\"code\">https://www.instagram.com/explore/</dd>"));
  CHECK(contains(page, "<dt>Website</dt><dd>www.instagram.com</dd>"));
  CHECK(contains(page, "<dt>Your group</dt><dd>pupils</dd>"));
  CHECK(contains(page, "<dt>Why</dt><dd>Pupils may not use social media in school.</dd>"));
  CHECK(contains(page, "<dt>Rule</dt><dd>pupils rule 1 (social media)</dd>"));
  CHECK(contains(page, "<dt>Category</dt><dd>social media</dd>"));
  CHECK(contains(page,
                 "<dt>When</dt><dd>Monday 23 November 2026, 11:00 \u00b7 Lesson 2 (lesson)</dd>"));
  CHECK(contains(page, "<dt>School policy</dt><dd>000 6.9; 003 s6</dd>"));
  CHECK(contains(page, "<dt>Your device</dt><dd>10.10.4.20</dd>"));
  CHECK_FALSE(contains(page, "<dt>Device name</dt>"));  // no DHCP leases: no line
  auto named = sample();
  named.device_name = "pupil-laptop-07";
  CHECK(contains(render_block_page(named),
                 "<dt>Your device</dt><dd>10.10.4.20</dd></div>\n<div><dt>Device name</dt><dd>pupil-laptop-07</dd>"));
  // The site in one short sentence; the group and the category are the adults' (details), not
  // in the child's part (audit of the pages, 2026-12-06).
  CHECK(contains(page, "The school\u2019s internet filter stopped this page on <strong>www.instagram.com</strong>."));
  const auto lead_end = page.find("<section class=\"ask\"");
  CHECK(page.substr(0, lead_end).find("<strong>pupils</strong>") == std::string::npos);
  CHECK(page.substr(0, lead_end).find("social media</strong>") == std::string::npos);
  // A child reads the reason first, then how to ask; the details for adults are folded below.
  CHECK(contains(page, "<p class=\"lead\">Pupils may not use social media in school.</p>"));
  const auto ask = page.find("<section class=\"ask\"");
  const auto details = page.find("<details>\n<summary>Details for your teacher or the ICT technician</summary>");
  const auto rule = page.find("<dt>Rule</dt>");
  REQUIRE(ask != std::string::npos);
  REQUIRE(details != std::string::npos);
  CHECK(ask < details);
  CHECK(details < rule);
  CHECK(page.find("</details>") > page.find("<dt>Your device</dt>"));
  // Users are told that filtering and monitoring are in place (004 8.1, 8.2), without
  // frightening a child.
  CHECK(contains(page, "The school checks how its internet is used"));
}

TEST_CASE("a circumvention block warns, in plain words, of the ban it can lead to") {
  auto info = sample();
  CHECK_FALSE(contains(render_block_page(info), "Trying to get round"));
  info.circumvention_warning = "a day";
  const auto page = render_block_page(info);
  CHECK(contains(page, "<p><strong>Trying to get round the school\u2019s internet filter can stop your internet at "
                       "school for a day.</strong></p>"));
  CHECK(page.find("Trying to get round") < page.find("<section class=\"ask\""));
}

TEST_CASE("the block page says how to ask for access, and keeps a place for the form") {
  auto page = render_block_page(sample());
  CHECK(contains(page, "<section class=\"ask\" aria-labelledby=\"ask\">"));
  CHECK(contains(page, "<p>Ask your teacher. They can ask for the page to be opened for a while"));

  auto info = sample();
  info.request_form_html = "<form method=\"post\" action=\"/request\"><button>Ask</button></form>";
  auto with_form = render_block_page(info);
  CHECK(
      contains(with_form, "<form method=\"post\" action=\"/request\"><button>Ask</button></form>"));
  CHECK_FALSE(contains(with_form, "blocked content access request form (000 7.5)"));
  CHECK(count(with_form, "<h1") == 1);
}

TEST_CASE("without the form, the page links to the person's page at the proxy's own address") {
  auto info = sample();
  info.ask_url = "http://hallpass.invalid/blocked?url=http%3A%2F%2Fx.test%2F&q=\"<";
  auto page = render_block_page(info);
  check_document(page);
  CHECK(contains(page, "<a class=\"askbtn\" href=\"http://hallpass.invalid/blocked?url=http%3A%2F%2Fx.test%2F&amp;q=&quot;&lt;\">"
                       "Ask for this page</a>"));
  CHECK_FALSE(contains(page, "blocked content access request form (000 7.5)"));
  // The form, where there is one, comes first: the link is for the page without it.
  info.request_form_html = "<form method=\"post\" action=\"/request\"></form>";
  CHECK_FALSE(contains(render_block_page(info), "askbtn\" href"));
}

TEST_CASE("where no exception could help, the page still links to the person's own page, and a ban's too") {
  auto info = sample();
  info.details_url = "http://hallpass.invalid/blocked?url=http%3A%2F%2Fx.test%2F&q=\"<";
  const auto page = render_block_page(info);
  check_document(page);
  CHECK(contains(page, "<a href=\"http://hallpass.invalid/blocked?url=http%3A%2F%2Fx.test%2F&amp;q=&quot;&lt;\">"
                       "Who is signed in on this device, and the details</a>"));
  CHECK_FALSE(contains(page, "askbtn\" href"));  // not offered as a way to ask
  info.ban_until = "Thursday 3 December 2026, 16:30 GMT";
  const auto ban = render_block_page(info);
  check_document(ban);
  CHECK(contains(ban, "Only some websites are open for now"));
  CHECK(contains(ban, "Who is signed in on this device, and the details</a>"));
  // The person's ban page (behind that link) says who is signed in, with the sign-out link.
  info.details_url = {};
  info.user = "amy";
  info.signout_url = "http://hallpass.invalid/signout";
  const auto mine = render_block_page(info);
  CHECK(contains(mine, "<dt>Signed in as</dt><dd>amy</dd>"));
  CHECK(contains(mine, "This device is signed in as amy. <a href=\"http://hallpass.invalid/signout\">Sign out</a>"));
  CHECK_FALSE(contains(mine, "Who is signed in on this device, and the details"));
}

TEST_CASE("everything the client sent is escaped") {
  auto info = sample();
  info.url = "http://evil.example/<script>alert('x')</script>?a=1&b=\"2\"";
  info.host = "<b>host</b>";
  info.school_name = "St Mary's & \"All\" <Saints>";
  info.reason = "</dd><script>";
  info.client = "\x01\x1b[31m";
  auto page = render_block_page(info);
  check_document(page);
  CHECK(contains(page,
                 "http://evil.example/&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;?a=1&amp;"
                 "b=&quot;2&quot;"));
  CHECK(contains(page,
                 "<title>Blocked: &lt;b&gt;host&lt;/b&gt; \u2013 St Mary&#39;s &amp; "
                 "&quot;All&quot; &lt;Saints&gt;</title>"));
  CHECK(contains(page, "<dd>&lt;/dd&gt;&lt;script&gt;</dd>"));
  CHECK(contains(page, "<dd>\ufffd\ufffd[31m</dd>"));
  CHECK_FALSE(contains(page, "<b>"));
  CHECK_FALSE(contains(page, "\x1b"));
}

TEST_CASE("empty fields leave their line out") {
  block_page_info bare;
  bare.url = "http://a.example/";
  bare.host = "a.example";
  auto page = render_block_page(bare);
  check_document(page);
  CHECK(contains(page, "<dt>Page</dt>"));
  for (auto label :
       {"Your group", "Why", "Rule", "Category", "When", "School policy", "Your device"}) {
    CAPTURE(label);
    CHECK_FALSE(contains(page, "<dt>"s + label + "</dt>"));
  }
  CHECK(contains(page, "The school\u2019s internet filter stopped this page on <strong>a.example</strong>."));

  auto info = sample();
  info.time_text = "";
  CHECK(contains(render_block_page(info), "<dt>When</dt><dd>Lesson 2 (lesson)</dd>"));
  info = sample();
  info.period = "";
  CHECK(contains(render_block_page(info), "<dt>When</dt><dd>Monday 23 November 2026, 11:00</dd>"));
}

TEST_CASE("huge values are shortened, on a character boundary, and the page stays small") {
  auto info = sample();
  std::string url = "https://www.example.org/" + std::string(100000, 'a');
  std::string long_reason;
  for (int i = 0; i < 1000; ++i) long_reason += "\u00e9\u20ac";  // 2- and 3-byte characters
  info.url = url;
  info.reason = long_reason;
  info.rule = long_reason;
  info.category = long_reason;
  info.clause = long_reason;
  info.school_name = long_reason;
  info.host = long_reason;
  info.role = long_reason;
  info.client = long_reason;
  info.period = long_reason;
  info.time_text = long_reason;
  auto page = render_block_page(info);
  check_document(page);
  CHECK(contains(page, std::string(500, 'a') + "\u2026</dd>"));
  // Cutting at every byte offset keeps UTF-8 valid.
  for (std::size_t pad = 0; pad < 4; ++pad) {
    info = sample();
    std::string r = std::string(pad, 'x');
    for (int i = 0; i < 200; ++i) r += "\u20ac";
    info.reason = r;
    CHECK(valid_utf8(render_block_page(info)));
  }
}

TEST_CASE("colours meet WCAG AA contrast in light and dark schemes") {
  auto schemes = colour_schemes(render_block_page(sample()));
  REQUIRE(schemes.size() == 2);
  for (auto& c : schemes) {
    for (auto key : {"bg", "card", "text", "muted", "band", "ask"}) REQUIRE(c.count(key) == 1);
    CHECK(contrast(c["text"], c["card"]) >= 7.0);
    CHECK(contrast(c["text"], c["ask"]) >= 7.0);
    CHECK(contrast(c["muted"], c["card"]) >= 4.5);
    CHECK(contrast(c["muted"], c["bg"]) >= 4.5);
    CHECK(contrast("#ffffff", c["band"]) >= 7.0);
    // The "Ask for this page" button and the form's button: the card's colour on the line's.
    REQUIRE(c.count("askline") == 1);
    CHECK(contrast(c["card"], c["askline"]) >= 4.5);
  }
}

TEST_CASE("error pages") {
  auto page = render_error_page(504, "The website did not answer",
                                "www.example.org took too long to reply.", "Pashley Down");
  check_document(page);
  CHECK(contains(page, "<h1>The website did not answer</h1>"));
  CHECK(contains(page, "<title>The website did not answer \u2013 Pashley Down</title>"));
  CHECK(contains(page, "www.example.org took too long to reply."));
  CHECK(contains(page, "Error 504"));
  CHECK(contains(page, "Pashley Down"));

  auto hostile = render_error_page(400, "<i>Bad</i>", "a & b <script>", "");
  check_document(hostile);
  CHECK(contains(hostile, "<h1>&lt;i&gt;Bad&lt;/i&gt;</h1>"));
  CHECK(contains(hostile, "a &amp; b &lt;script&gt;"));
  CHECK(contains(hostile, "Error 400"));
}

TEST_CASE("html_escape") {
  CHECK(html_escape("<a href=\"x\">'&'</a>") ==
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  CHECK(html_escape("plain text, caf\u00e9") == "plain text, caf\u00e9");
  CHECK(html_escape("tab\tnew\nline") == "tab\tnew\nline");
  CHECK(html_escape("nul\0del\x7f"s) == "nul\ufffddel\ufffd");
  CHECK(html_escape("") == "");
}

TEST_CASE("a ban's page says until when in the school's words, accuses no one and offers no form") {
  hallpass::block_page_info info;
  info.school_name = "Test School";
  info.url = "http://open.example/";
  info.host = "open.example";
  info.role = "pupils";
  info.rule = "ban 4";
  info.reason = "Only some websites are open for now.";
  info.clause = "000 7.2; 002";
  info.ban_until = "Thursday 3 December 2026, 16:30";
  info.request_form_html = "<form id=request-form>";
  const std::string page = hallpass::render_block_page(info);
  CHECK(page.find("Only some websites are open for now</h1>") != std::string::npos);
  CHECK(page.find("Only some websites are open for now.") != std::string::npos);
  CHECK(page.find("This lasts until <strong>Thursday 3 December 2026, 16:30</strong>") != std::string::npos);
  CHECK(page.find("request-form") == std::string::npos);
  CHECK(page.find("This page is blocked") == std::string::npos);
  CHECK(page.find("circumvent") == std::string::npos);
  CHECK(page.find("recorded") == std::string::npos);
}

TEST_CASE("a block page names the person only when it goes to them, not to the site's scripts") {
  // Fetch Metadata (HTTPS): the top-level page only.
  CHECK(block_page_for_the_person("navigate", "document"));
  CHECK_FALSE(block_page_for_the_person("cors", "empty"));  // fetch() by the site
  CHECK_FALSE(block_page_for_the_person("no-cors", "image"));
  CHECK_FALSE(block_page_for_the_person("same-origin", "empty"));
  CHECK_FALSE(block_page_for_the_person("websocket", "websocket"));
  CHECK_FALSE(block_page_for_the_person("navigate", "iframe"));  // any frame: a parent of its origin may read it
  CHECK_FALSE(block_page_for_the_person("navigate", "frame"));
  CHECK(block_page_for_the_person("navigate", ""));  // Chrome 76-79: no destination
  CHECK_FALSE(block_page_for_the_person("nested-navigate", ""));
  CHECK_FALSE(block_page_for_the_person("cors", ""));
  // No Fetch Metadata (plain HTTP, an older browser, curl): nothing tells a script apart.
  CHECK(block_page_for_the_person("", ""));
}

TEST_CASE("an adult's block page speaks to an adult: the headteacher decides, no 'ask your teacher'") {
  auto info = sample();
  info.role = "staff";
  info.adults = true;
  const auto page = render_block_page(info);
  check_document(page);
  CHECK(contains(page, "Need this page for your work?"));
  CHECK(contains(page, "Ask the headteacher, who can open it for a while"));
  CHECK(contains(page, "<summary>Details for the ICT technician</summary>"));
  CHECK(contains(page, "blocked by mistake, tell the ICT technician."));
  CHECK_FALSE(contains(page, "teacher."));
  CHECK_FALSE(contains(page, "school work"));
  CHECK_FALSE(contains(page, "your teacher"));
  // The same page for a child keeps the child's words.
  const auto child = render_block_page(sample());
  CHECK(contains(child, "Need this page for your school work?"));
  CHECK(contains(child, "Details for your teacher or the ICT technician"));

  info.ban_until = "Thursday 3 December 2026, 16:30";
  info.ban_until_spoken = "4:30 this afternoon";
  const auto ban = render_block_page(info);
  CHECK(contains(ban, "Need a website for your work?"));
  CHECK(contains(ban, "This lasts until <strong>4:30 this afternoon</strong>"));
  CHECK(contains(ban, "<dt>Until</dt><dd>Thursday 3 December 2026, 16:30</dd>"));
  CHECK_FALSE(contains(ban, "your teacher"));
}

TEST_CASE("adult_wording swaps the child's phrases of the error and form pages, and nothing else") {
  CHECK(adult_wording("If you need it, tell your teacher or the ICT technician.") ==
        "If you need it, tell the ICT technician.");
  CHECK(adult_wording("Please try again in a minute, or ask your teacher.") ==
        "Please try again in a minute, or ask the ICT technician.");
  CHECK(adult_wording("Your request has been sent (number 4). A teacher will look at it.") ==
        "Your request has been sent (number 4). The headteacher will look at it.");
  CHECK(adult_wording("It may still arrive; if your teacher does not hear of it, ask again.") ==
        "It may still arrive; if you do not hear of it, ask again.");
  CHECK(adult_wording("Tell your teacher if you need it.") == "Tell the ICT technician if you need it.");
  CHECK(adult_wording("No teacher here; teachers.") == "No teacher here; teachers.");
  CHECK(adult_wording("") == "");
  const auto page = render_error_page(502, "Not trusted", "If you need it, tell your teacher or the ICT technician.",
                                      "School", true, {}, true);
  CHECK_FALSE(contains(page, "your teacher"));
  CHECK(contains(page, "tell the ICT technician what you were trying to open"));
}

TEST_CASE("a category's help is at the top of its block page, above the way to ask") {
  // A self-harm block offered only "ask for this page" (safeguarding audit, 2026-12-06, L5).
  auto info = sample();
  info.category = "self_harm";
  info.support = "Please talk to a teacher. You can also call Childline free on 0800 1111.";
  const auto page = render_block_page(info);
  check_document(page);
  const auto help = page.find("Need to talk to someone?");
  REQUIRE(help != std::string::npos);
  CHECK(contains(page, "call Childline free on 0800 1111."));
  CHECK(help < page.find("Need this page for your school work?"));
  CHECK_FALSE(contains(render_block_page(sample()), "Need to talk to someone?"));
}

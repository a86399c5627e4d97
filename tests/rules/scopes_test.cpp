// Narrowed exceptions and devices by name (issue 12): an exception for one user, a directory
// group or a device (by address, DHCP name or hardware address) opens the site for them only,
// through the one decision function; a ban by device name or hardware address follows the
// device to another address; and how an adult names a device (rules/device_ref.hpp).
#include <doctest/doctest.h>

#include "rules/decision.hpp"
#include "rules/device_ref.hpp"
#include "rules/explain.hpp"
#include "tests/rules/policy_fixture.hpp"

using namespace hallpass::rules;

namespace {

const std::string scope_policy = std::string(test::timetable_yaml) + R"(
roles:
  pupils:
    networks: [10.10.0.0/16]
    groups: [Pupils]
    default: allow
    rules:
      - {action: block, domains: [shut.example]}
bans:
  policy: {domains: [platform.example]}
)";

const std::string day = "2026-11-23 ";

// Who asks: the address, and what logins and the DHCP leases say about them.
struct asker {
  std::string client = "10.10.4.20";
  std::string user;
  std::vector<std::string> groups;
  std::string device;
  std::string mac;
};

verdict decide_for(const policy& p, const exception_index& idx, const asker& a,
                   const std::string& url = "http://shut.example/") {
  auto parts = split_url(url, nullptr);
  REQUIRE(parts);
  request_facts f;
  f.client = ip_address::parse(a.client);
  f.user = a.user;
  f.groups = a.groups;
  f.device = a.device;
  f.mac = a.mac;
  f.method = "GET";
  f.scheme = parts->scheme;
  f.host = parts->host;
  f.path = parts->path;
  f.time = p.zone.to_sys(*parse_local_time(day + "09:00"));
  return decide_request(p, &idx, f);
}

exception_entry shut_exception(const policy& p) {
  exception_entry e;
  e.id = 7;
  std::string err;
  e.target = *make_target("http://shut.example/", target_kind::domain, &err);
  e.from = p.zone.to_sys(*parse_local_time(day + "08:00"));
  e.until = p.zone.to_sys(*parse_local_time(day + "15:00"));
  return e;
}

ban_entry device_ban(const policy& p, const std::string& subject) {
  ban_entry b;
  b.id = 4;
  b.device = true;
  b.subject = subject;
  b.from = p.zone.to_sys(*parse_local_time(day + "08:00"));
  b.until = p.zone.to_sys(*parse_local_time(day + "15:00"));
  b.how = "command";
  return b;
}

bool opened(const verdict& v) {
  return v.act == action::allow && v.rule_id == "exception 7";
}
bool banned(const verdict& v) {
  return v.act == action::block && v.rule_id == "ban 4";
}

}  // namespace

TEST_CASE("an exception narrowed to a user opens the site for that signed-in user only") {
  auto p = test::load_yaml(scope_policy);
  auto e = shut_exception(*p);
  e.user = "ava.b";
  auto idx = exception_index::build({e}, {});
  CHECK(opened(decide_for(*p, *idx, {.user = "ava.b", .groups = {"Pupils"}})));
  CHECK(opened(decide_for(*p, *idx, {.client = "10.10.9.9", .user = "ava.b"})));  // any device
  CHECK(decide_for(*p, *idx, {.user = "ben.c", .groups = {"Pupils"}}).act == action::block);
  CHECK(opened(decide_for(*p, *idx, {.user = "AVA.b", .groups = {"Pupils"}})));  // the directory's case rule
  CHECK(decide_for(*p, *idx, {}).act == action::block);  // the same device, nobody signed in
}

TEST_CASE("an exception narrowed to a directory group opens it for its members, without case") {
  auto p = test::load_yaml(scope_policy);
  auto e = shut_exception(*p);
  e.group = "Year 6";
  auto idx = exception_index::build({e}, {});
  CHECK(opened(decide_for(*p, *idx, {.user = "ava.b", .groups = {"Pupils", "Year 6"}})));
  CHECK(opened(decide_for(*p, *idx, {.user = "cat.d", .groups = {"YEAR 6"}})));
  CHECK(decide_for(*p, *idx, {.user = "ben.c", .groups = {"Pupils", "Year 5"}}).act ==
        action::block);
  CHECK(decide_for(*p, *idx, {}).act == action::block);  // not signed in: no groups
}

TEST_CASE(
    "an exception narrowed to a device by name needs its address too, so a name never widens") {
  auto p = test::load_yaml(scope_policy);
  auto by_name = shut_exception(*p);
  by_name.device = parse_device("Pupil-Laptop-07");
  by_name.device->address = ip_address::parse("10.10.4.20");
  auto idx = exception_index::build({by_name}, {});
  CHECK(opened(decide_for(*p, *idx, {.device = "PUPIL-LAPTOP-07"})));
  // Another device taking the name elsewhere, and the device after its lease moved: closed.
  CHECK(decide_for(*p, *idx, {.client = "10.10.5.5", .device = "pupil-laptop-07"}).act ==
        action::block);
  CHECK(decide_for(*p, *idx, {.device = "pupil-laptop-08"}).act == action::block);
  CHECK(decide_for(*p, *idx, {}).act ==
        action::block);  // the address, with no lease: not the device

  auto by_address = shut_exception(*p);
  by_address.device = parse_device("10.10.4.20");
  idx = exception_index::build({by_address}, {});
  CHECK(opened(decide_for(*p, *idx, {})));
  CHECK(opened(decide_for(*p, *idx, {.device = "anything"})));
  CHECK(decide_for(*p, *idx, {.client = "10.10.4.21"}).act == action::block);
}

TEST_CASE("a ban by device name or hardware address follows the device to another address") {
  auto p = test::load_yaml(scope_policy);
  auto idx = exception_index::build({}, {}, {device_ban(*p, "pupil-laptop-07")});
  CHECK(banned(decide_for(*p, *idx, {.device = "Pupil-Laptop-07", .mac = "3c:22:fb:12:9a:01"},
                          "http://open.example/")));
  CHECK(banned(decide_for(*p, *idx, {.client = "10.10.7.7", .device = "pupil-laptop-07"},
                          "http://open.example/")));
  // The address it had, now another device's: not banned.
  CHECK(decide_for(*p, *idx, {.device = "pupil-laptop-08"}, "http://open.example/").act ==
        action::allow);
  CHECK(decide_for(*p, *idx, {}, "http://open.example/").act == action::allow);

  idx = exception_index::build({}, {}, {device_ban(*p, "3c:22:fb:12:9a:01")});
  CHECK(banned(decide_for(*p, *idx, {.client = "10.10.7.7", .mac = "3c:22:fb:12:9a:01"},
                          "http://open.example/")));
  CHECK(decide_for(*p, *idx, {.mac = "3c:22:fb:12:9a:02"}, "http://open.example/").act ==
        action::allow);
  // A ban by address stays on the address, whatever device holds it.
  idx = exception_index::build({}, {}, {device_ban(*p, "10.10.4.20")});
  CHECK(banned(decide_for(*p, *idx, {.device = "other"}, "http://open.example/")));
  CHECK(decide_for(*p, *idx, {.client = "10.10.4.21", .device = "pupil-laptop-07"},
                   "http://open.example/")
            .act == action::allow);
}

TEST_CASE("a device is named by its address, name or hardware address, in canonical form") {
  auto a = parse_device("10.10.4.20");
  REQUIRE(a);
  CHECK(a->by == device_key::address);
  CHECK(parse_device("FD00:0::20")->text == "fd00::20");
  // An IPv4-mapped address is the IPv4 device (the proxy sees its clients so), and a trailing
  // dot does not make another name (audit, 2026-12-05: both were stored and matched nothing).
  auto mapped = parse_device("::ffff:10.10.4.20");
  REQUIRE(mapped);
  CHECK(mapped->text == "10.10.4.20");
  CHECK(*mapped->address == *a->address);
  CHECK(parse_device("laptop-07.")->text == "laptop-07");
  auto n = parse_device("Pupil-Laptop_07.school");
  REQUIRE(n);
  CHECK(n->by == device_key::name);
  CHECK(n->text == "pupil-laptop_07.school");
  auto m = parse_device("3C-22-FB-12-9A-01");
  REQUIRE(m);
  CHECK(m->by == device_key::mac);
  CHECK(m->text == "3c:22:fb:12:9a:01");
  std::string why;
  CHECK_FALSE(parse_device("pupil laptop", &why));
  CHECK(why.find("not a device") != std::string::npos);
  CHECK_FALSE(parse_device("", &why));
  // A typo in an address is not a device name, and no device has the unspecified address.
  for (const char* typo : {"999.1.1.1", "10.0.0", "10.10.4.20.", "0.0.0.0", "::"}) {
    CAPTURE(typo);
    CHECK_FALSE(parse_device(typo, &why));
  }
  CHECK(why.find("unspecified") != std::string::npos);
  CHECK(parse_device("lab-3.2")->by == device_key::name);  // a name may hold digits and dots
  // inet_aton's hexadecimal forms are addresses hallpass does not read, not device names.
  for (const char* hex : {"0x7f.0.0.2", "0x7f000002", "0X7F.0x0.0.1"}) {
    CAPTURE(hex);
    CHECK_FALSE(parse_device(hex, &why));
    CHECK(why.find("hexadecimal") != std::string::npos);
  }
  CHECK(parse_device("0xbox")->by == device_key::name);
  CHECK(parse_device("0x1.lab")->by == device_key::name);
  CHECK_FALSE(parse_device(std::string_view("127.0.0.61\0x", 12), &why));  // not cut at the NUL
  CHECK_FALSE(parse_mac("3c:22:fb-12:9a:01"));  // one separator throughout
  CHECK_FALSE(parse_mac("3c:22:fb:12:9a:0g"));
}

TEST_CASE("explain says which device it was asked about, in text and JSON") {
  auto p = test::load_yaml(scope_policy);
  auto idx = exception_index::build({}, {}, {device_ban(*p, "3c:22:fb:12:9a:01")});
  auto parts = split_url("http://open.example/", nullptr);
  REQUIRE(parts);
  request_facts f;
  f.client = ip_address::parse("10.10.4.20");
  f.mac = "3c:22:fb:12:9a:01";
  f.method = "GET";
  f.scheme = parts->scheme;
  f.host = parts->host;
  f.path = parts->path;
  f.time = p->zone.to_sys(*parse_local_time(day + "09:00"));
  const auto e = explain_url(*p, f, idx.get(), false);
  CHECK(e.v.rule_id == "ban 4");
  const auto json = explanation_json(*p, f, e);
  CHECK(json.find(R"("device":null,"mac":"3c:22:fb:12:9a:01")") != std::string::npos);
  CHECK(explanation_text(*p, f, e).starts_with("Device:   (no name) (3c:22:fb:12:9a:01)\n"));
  // Asked about no device: neither says one.
  f.mac = {};
  CHECK(explanation_json(*p, f, explain_url(*p, f, idx.get(), false)).find("\"mac\"") == std::string::npos);
}

TEST_CASE("explain's text is safe for a terminal: a block's reason cannot drive it") {
  auto p = test::load_yaml(scope_policy);
  auto t = make_target("http://open.example/evil", target_kind::url, nullptr);
  REQUIRE(t);
  auto idx = exception_index::build({}, {local_entry{1, true, *t, "OSC\x1b]0;pwned\x07 CLS\x1b[2J \xe2\x80\xae" "bidi"}});
  auto parts = split_url("http://open.example/evil", nullptr);
  REQUIRE(parts);
  request_facts f;
  f.client = ip_address::parse("10.10.4.20");
  f.method = "GET";
  f.scheme = parts->scheme;
  f.host = parts->host;
  f.path = parts->path;
  f.time = p->zone.to_sys(*parse_local_time("2026-11-23 09:00"));
  const auto e = explain_url(*p, f, idx.get(), false);
  REQUIRE(e.v.act == action::block);
  const auto text = explanation_text(*p, f, e);
  CHECK(text.find('\x1b') == std::string::npos);
  CHECK(text.find('\x07') == std::string::npos);
  CHECK(text.find("\xe2\x80\xae") == std::string::npos);
  CHECK(text.find("\\x1b[2J") != std::string::npos);
  CHECK(text.find("\\u202e") != std::string::npos);
  // --json stays exact: JSON readers get the reason as it was written.
  CHECK(explanation_json(*p, f, e).find("\\u001b[2J") != std::string::npos);
}

TEST_CASE("an IPv4-compatible address names no device, nor an IPv4-compatible network a role's devices") {
  // outside-in audit of IPv6, 2026-12-07, F9: both were accepted and matched nothing.
  std::string error;
  CHECK_FALSE(hallpass::rules::parse_device("::127.0.0.8", &error));
  CHECK(error.find("write the IPv4 address 127.0.0.8") != std::string::npos);
  CHECK(hallpass::rules::parse_device("::ffff:10.1.2.3", &error)->text == "10.1.2.3");  // mapped: the IPv4 device
  CHECK(hallpass::rules::parse_device("::1", &error));
  // Parsed as a network (a destination list may name one), but no network of devices.
  const auto compatible = hallpass::rules::ip_network::parse("::10.0.0.0/104", &error);
  REQUIRE(compatible);
  CHECK(compatible->why_no_client().find("write the IPv4 network '10.0.0.0/8'") != std::string::npos);
  CHECK(hallpass::rules::ip_network::parse("10.0.0.0/8", &error)->why_no_client().empty());
  CHECK(hallpass::rules::ip_network::parse("::/0", &error));
  CHECK(hallpass::rules::ip_network::parse("::1/128", &error));
}

// Device names from the DHCP server's leases file: which device (host name and hardware
// address) holds which address, so that the access log and the block page can name it.
//
// Three parts:
// - Pure parsers, one per format (dnsmasq's dnsmasq.leases, ISC dhcpd's dhcpd.leases, Kea's
//   memfile CSV for DHCPv4 and DHCPv6). Functions of their text and of `now` (Unix seconds, to
//   leave out leases that have ended); no I/O; thread-safe. A malformed line (or block, or row)
//   is skipped and counted, never fatal: one bad line must not cost every other device its name.
// - device_table: the immutable address -> device map built from one parse. Shared by
//   shared_ptr; readers on any thread look up in it without locks.
// - lease_watcher: a thread of its own that re-reads the file when it changes (inode, size or
//   modification time, checked every second), bounded in size, and publishes a new table with
//   one atomic store. The event loops only load the pointer; they never touch the file.
//
// Formats, as the servers write them (deploy/README.md, "Device names"):
//   dnsmasq  EXPIRY MAC ADDRESS NAME CLIENT-ID per line ("*" for no name); after a
//            "duid SERVER-DUID" line, DHCPv6 leases: EXPIRY IAID ADDRESS NAME DUID (no MAC).
//            EXPIRY 0 means never.
//   isc      lease ADDRESS { ... } blocks appended as leases change: the last block of an
//            address wins; only "binding state active" with "ends" in the future (or "never")
//            counts. "hardware ethernet MAC;", "client-hostname "NAME";".
//   kea      CSV with a header row naming the columns (order read from it, so Kea versions
//            that add columns still parse): address, hwaddr, hostname, expire, valid_lifetime,
//            state (and, for DHCPv6, lease_type: prefix delegations are not devices). An
//            append-only log as well: the last row of an address wins; state 0 (default) with
//            expire in the future and a non-zero valid_lifetime counts. Kea's lease file
//            cleanup leaves older rows in FILE.2 and FILE.1: the watcher reads FILE.2, FILE.1,
//            then FILE, as Kea itself does at start.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "rules/host.hpp"

namespace hallpass {

enum class lease_format : std::uint8_t { dnsmasq, isc, kea };
std::optional<lease_format> parse_lease_format(std::string_view text);  // "dnsmasq", "isc", "kea"
std::string_view to_string(lease_format f);

// What the DHCP server knows of the device that holds an address. Either may be empty (a
// device that sent no host name; dnsmasq's DHCPv6 leases carry no hardware address).
struct device_identity {
  std::string name;              // the host name the device gave, "pupil-laptop-07"
  std::string hardware_address;  // lower case, colon-separated: "3c:22:fb:12:9a:01"
};

struct lease_parse_result {
  // In file order; a later entry for the same address replaces an earlier one, and an entry
  // with no identity (a lease that ended) removes it.
  struct entry {
    rules::ip_address address;
    std::optional<device_identity> device;  // nullopt: the address is no longer leased
  };
  std::vector<entry> entries;
  std::size_t skipped = 0;  // malformed lines, blocks or rows
  std::string first_error;  // "line 12: ...", for the journal; empty when none was skipped
};

lease_parse_result parse_dnsmasq_leases(std::string_view text, std::int64_t now);
lease_parse_result parse_isc_leases(std::string_view text, std::int64_t now);
lease_parse_result parse_kea_leases(std::string_view text, std::int64_t now);
lease_parse_result parse_leases(lease_format f, std::string_view text, std::int64_t now);

// The kernel's IPv4 neighbour table as /proc/net/arp prints it (a header line, then "ADDRESS
// HW-TYPE FLAGS HW-ADDRESS MASK DEVICE"): complete Ethernet entries as devices with a hardware
// address and no name. Devices on the gateway's own links only: one behind a router is not
// there (the router is, by its own address). IPv6's: ipv6_neighbours.hpp (no /proc file).
lease_parse_result parse_arp_table(std::string_view text);

// Where the device names come from: a DHCP server's leases file and its format.
struct lease_watcher_source {
  std::string path;  // "": no device names
  lease_format format = lease_format::dnsmasq;
};

// The address -> device map of one read of the leases file. Immutable; any thread.
class device_table {
 public:
  device_table() = default;
  // Applies the leases in order (later files and later entries win), then the gateway's
  // neighbours (the ARP table, IPv6 neighbours): who holds an address now. A neighbour fills an
  // address no lease names, and overrules a lease that names another hardware address there (a
  // device that took a stale lease's address, a static one, was known as the lease's device,
  // its ban missed: outside-in audit of identity, 2026-12-07, F1). Every address whose hardware
  // address a lease names takes that lease's device name.
  explicit device_table(const std::vector<lease_parse_result>& leases, const lease_parse_result& neighbours = {});

  // Null when the address holds no lease. IPv4-mapped IPv6 is not folded: the proxy gives
  // IPv4 clients as IPv4 already.
  const device_identity* find(const rules::ip_address& a) const;
  std::size_t size() const { return by_address_.size(); }
  // Whether some lease gives this name (compared without case) or hardware address (canonical,
  // lower case): for the admin's warning that a ban names no device the leases know. A scan:
  // not for the request path.
  bool names(std::string_view name_or_mac) const;
  // The addresses whose lease gives this name (without case) or hardware address: a scan, as
  // names().
  std::vector<rules::ip_address> addresses_of(std::string_view name_or_mac) const;

 private:
  struct address_hash {
    std::size_t operator()(const rules::ip_address& a) const;
  };
  std::unordered_map<rules::ip_address, device_identity, address_hash> by_address_;
};

// The device at `client` as the leases files of `s` give it now, read once (for `hallpass
// explain`, which decides as the proxy does: people-side audit, 2026-12-07, M2). nullopt with
// *error when a file cannot be read; a null identity when no lease names the address. The
// neighbour tables are not read (they give no name, and only the gateway's own links).
std::optional<std::optional<device_identity>> read_device_once(const lease_watcher_source& s,
                                                                const rules::ip_address& client, std::string* error);

// Watches the leases file that `settings()` names and keeps `target` current.
//
// Thread-safety: start() and stop() from one thread (the server's); `settings` is called on the
// watcher's thread and must be thread-safe (the server's reads the configuration in force, so
// a reload that changes dhcp_leases takes effect within a second); `target` may be loaded from
// any thread. Counters (may be null) are incremented on the watcher's thread.
class lease_watcher {
 public:
  using source = lease_watcher_source;
  struct counters {
    std::function<void(std::size_t)> skipped;  // malformed lines skipped in a read
    std::function<void()> read_failed;         // a file that could not be read (or too large)
    std::function<void(std::size_t)> devices;  // devices known after a successful read
  };
  // A leases file larger than this is not read (the previous table stays): a dnsmasq or ISC
  // file for a few thousand devices is well under 1 MiB.
  static constexpr std::uintmax_t max_file_bytes = 64ull << 20;
  // The files a source reads, in order (Kea's older ones first).
  static std::vector<std::string> files_of(const source& s);

  lease_watcher(std::function<source()> settings,
                std::atomic<std::shared_ptr<const device_table>>& target, counters c = {},
                std::chrono::milliseconds interval = std::chrono::seconds(1));
  ~lease_watcher();
  lease_watcher(const lease_watcher&) = delete;
  lease_watcher& operator=(const lease_watcher&) = delete;

  // Reads the file once on the caller's thread (so the first requests already have names),
  // then starts the thread.
  void start();
  void stop();

  // One check: re-reads and publishes when the source or a file changed. Returns true when it
  // published a new table. Public for tests; the thread calls it every `interval`.
  bool poll();

  // Tests: the neighbour table from another file ("" for none) instead of /proc/self/net/arp.
  void read_neighbours_from(std::string path) {
    neighbours_path_ = std::move(path);
    read_ipv6_neighbours_ = false;  // nor the machine's IPv6 table (ipv6_neighbours.hpp)
  }

 private:
  struct file_state {
    bool exists = false;
    std::uintmax_t size = 0;
    std::int64_t mtime_ns = 0;
    std::uint64_t inode = 0;
    friend bool operator==(const file_state&, const file_state&) = default;
  };
  static std::vector<file_state> stat_files(const std::vector<std::string>& files);
  void run();

  std::function<source()> settings_;
  std::atomic<std::shared_ptr<const device_table>>& target_;
  counters counters_;
  std::chrono::milliseconds interval_;
  // The neighbour table read with the leases (parse_arp_table).
  std::string neighbours_path_ = "/proc/self/net/arp";
  bool read_ipv6_neighbours_ = true;    // the IPv6 neighbour table too (ipv6_neighbours.hpp)
  bool ipv6_neighbours_failing_ = false;  // said once until it reads again
  static constexpr std::size_t max_neighbour_bytes = 8u << 20;
  std::string last_neighbours_;  // the ARP table's complete entries, sorted: "address hardware\n" each
  source last_source_;
  std::vector<file_state> last_files_;
  bool read_once_ = false;
  std::chrono::steady_clock::time_point last_read_{};
  bool failing_ = false;  // the last read failed: report the next success
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace hallpass

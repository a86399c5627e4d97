// Benchmarks of the policy engine (issue 2): load time, memory and per-request cost of
// hallpass::rules::decide() with millions of listed domains, and the whole decision with the
// shipped policy. See bench/README.md for how to run it and what each figure means.
//
//   bench_rules domains [options]      4.5 M domains: synthetic list + the real UT1 lists
//   bench_rules school [POLICY.yaml]   the shipped policy (rules/school.yaml), URL patterns too
//
// Timing: std::chrono::steady_clock around batches of calls (per-call figure = batch time /
// batch size; median and p99 over the batches), plus individually timed calls, which include
// one clock read (its cost is printed). Every input is built before the clock starts.
//
// Memory: the `domains` mode writes its lists, then runs the measurement in a fresh process
// (it re-executes itself with --measure-only), so that the resident-size delta across
// load_policy() is not hidden by memory the generator freed but the allocator kept.
#include <malloc.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "rules/engine.hpp"
#include "rules/explain.hpp"
#include "rules/policy_loader.hpp"

namespace fs = std::filesystem;
namespace hr = hallpass::rules;
using bench_clock = std::chrono::steady_clock;

namespace {

// Keeps results observable so the optimizer cannot drop the calls being timed.
volatile std::uint64_t g_sink = 0;

// ---- statistics --------------------------------------------------------------------------

struct summary {
  double median = 0, p99 = 0, mean = 0;
  std::size_t samples = 0;
};

summary summarize(std::vector<double> v) {
  summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
  };
  s.median = at(0.5);
  s.p99 = at(0.99);
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  s.samples = v.size();
  return s;
}

double ns_between(bench_clock::time_point a, bench_clock::time_point b) {
  return std::chrono::duration<double, std::nano>(b - a).count();
}

// Calls op(i) for i cycling over [0, n): one warm-up pass over up to n items, then `batches`
// timed batches of `batch` calls. Returns per-call nanoseconds (batch time / batch).
template <class Op>
summary time_batched(std::size_t n, std::size_t batch, std::size_t batches, Op&& op) {
  const std::size_t warm = std::min(n, batch * batches);
  for (std::size_t i = 0; i < warm; ++i) op(i);
  std::vector<double> per_call;
  per_call.reserve(batches);
  std::size_t i = 0;
  for (std::size_t b = 0; b < batches; ++b) {
    const auto t0 = bench_clock::now();
    for (std::size_t k = 0; k < batch; ++k) {
      op(i);
      if (++i == n) i = 0;
    }
    const auto t1 = bench_clock::now();
    per_call.push_back(ns_between(t0, t1) / static_cast<double>(batch));
  }
  auto s = summarize(std::move(per_call));
  s.samples = batches * batch;
  return s;
}

// Times `samples` calls one by one (each figure includes one steady_clock read).
template <class Op>
summary time_each(std::size_t n, std::size_t samples, Op&& op) {
  std::vector<double> each;
  each.reserve(samples);
  std::size_t i = 0;
  for (std::size_t k = 0; k < samples; ++k) {
    const auto t0 = bench_clock::now();
    op(i);
    const auto t1 = bench_clock::now();
    each.push_back(ns_between(t0, t1));
    if (++i == n) i = 0;
  }
  return summarize(std::move(each));
}

double clock_overhead_ns() {
  std::vector<double> d;
  d.reserve(100000);
  for (int k = 0; k < 100000; ++k) {
    const auto t0 = bench_clock::now();
    const auto t1 = bench_clock::now();
    d.push_back(ns_between(t0, t1));
  }
  return summarize(std::move(d)).median;
}

// ---- output ------------------------------------------------------------------------------

// 1000000 -> "1,000,000".
std::string grouped(std::size_t n) {
  std::string d = std::to_string(n), out;
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (i > 0 && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return out;
}

std::string fixed(double x, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
  return buf;
}

struct table_row {
  std::string what;
  summary s;
  std::string unit = "ns";
  std::string target;  // e.g. "<= 300 ns median"; empty when the issue sets none
  std::optional<bool> met;
};

void print_table(const std::vector<table_row>& rows) {
  std::cout << "| measurement | median | p99 | mean | calls | target | met |\n"
            << "|---|---:|---:|---:|---:|---|---|\n";
  for (const auto& r : rows) {
    std::cout << "| " << r.what << " | " << fixed(r.s.median, 1) << ' ' << r.unit << " | "
              << fixed(r.s.p99, 1) << ' ' << r.unit << " | " << fixed(r.s.mean, 1) << ' ' << r.unit
              << " | " << r.s.samples << " | " << r.target << " | "
              << (r.met ? (*r.met ? "yes" : "**NO**") : "") << " |\n";
  }
}

// One JSON object per line, for scripts: {"mode":...,"rows":{"name":{"median":..}}, ...}.
std::string json_stats(const summary& s) {
  return "{\"median\":" + fixed(s.median, 1) + ",\"p99\":" + fixed(s.p99, 1) +
         ",\"mean\":" + fixed(s.mean, 1) + ",\"calls\":" + std::to_string(s.samples) + "}";
}

std::string json_key(std::string_view what) {
  std::string k;
  for (char c : what) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      k += c;
    } else if (c >= 'A' && c <= 'Z') {
      k += static_cast<char>(c + 32);
    } else if (!k.empty() && k.back() != '_') {
      k += '_';
    }
  }
  while (!k.empty() && k.back() == '_') k.pop_back();
  return k;
}

std::string json_rows(const std::vector<table_row>& rows) {
  std::string j = "{";
  for (const auto& r : rows) {
    if (j.size() > 1) j += ',';
    j += '"' + json_key(r.what) + "\":" + json_stats(r.s);
  }
  return j + "}";
}

// ---- process facts -----------------------------------------------------------------------

// Reads "VmRSS:" / "VmHWM:" (kB) from /proc/self/status.
long status_kb(std::string_view key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(key)) {
      return std::strtol(line.c_str() + key.size(), nullptr, 10);
    }
  }
  return -1;
}

std::string first_line_of(const std::string& path, std::string_view prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(prefix)) {
      auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "?";
}

// The load average is printed because timings on a busy machine (a build running beside the
// benchmark) are not comparable; run it on a quiet one.
void print_machine() {
  std::string kernel = "?", load1 = "?";
  std::ifstream("/proc/sys/kernel/osrelease") >> kernel;
  std::ifstream("/proc/loadavg") >> load1;
  std::cout << "machine: " << sysconf(_SC_NPROCESSORS_ONLN) << " cores, kernel " << kernel << ", "
            << first_line_of("/proc/cpuinfo", "model name") << "; load average " << load1 << "\n";
}

// Nanoseconds per dependent read at random places in a buffer of `bytes` (a pointer chase):
// what one cache miss costs on this machine, the floor under a cold table probe.
// With `huge_pages`, the buffer is 2 MiB-aligned and advised MADV_HUGEPAGE (transparent huge
// pages in "madvise" mode), as the domain table's arrays are: fewer TLB misses per read.
double random_read_ns(std::size_t bytes, std::uint64_t seed, bool huge_pages = false) {
  // Sattolo's shuffle: a random permutation that is one cycle, so the chase visits every slot.
  const std::size_t n = std::max<std::size_t>(bytes / sizeof(std::size_t), 2);
  constexpr std::size_t huge = std::size_t{2} << 20;
  const std::size_t alloc = (n * sizeof(std::size_t) + huge - 1) / huge * huge;
  std::unique_ptr<std::size_t, void (*)(void*)> buffer(
      static_cast<std::size_t*>(std::aligned_alloc(huge, alloc)), std::free);
  if (!buffer) return 0;
  if (huge_pages) madvise(buffer.get(), alloc, MADV_HUGEPAGE);
  std::size_t* next = buffer.get();
  for (std::size_t i = 0; i < n; ++i) next[i] = i;
  std::mt19937_64 rng(seed);
  for (std::size_t i = n - 1; i > 0; --i) {
    std::swap(next[i], next[std::uniform_int_distribution<std::size_t>(0, i - 1)(rng)]);
  }
  constexpr std::size_t steps = 2'000'000;
  std::size_t at = 0;
  const auto t0 = bench_clock::now();
  for (std::size_t k = 0; k < steps; ++k) at = next[at];
  const auto t1 = bench_clock::now();
  g_sink = g_sink + at;
  return ns_between(t0, t1) / static_cast<double>(steps);
}

// ---- command line ------------------------------------------------------------------------

struct options {
  std::string mode;
  std::string policy = "rules/school.yaml";  // school mode
  fs::path workdir = "/tmp/hallpass-bench";
  fs::path ut1 = "/work/shared/ut1/blacklists";
  std::size_t total = 4'500'000;  // domains in the table: UT1 + synthetic
  std::uint64_t seed = 20261121;
  std::size_t pool = 1'000'000;  // distinct requests cycled through while timing (cold)
  std::vector<std::size_t> hot = {10'000, 100};  // smaller working sets, also timed
  std::size_t batches = 3000;
  std::size_t batch = 1000;
  std::size_t single = 300'000;  // individually timed calls
  int load_repeats = 3;
  bool reuse = false;         // keep the generated lists from a previous run
  bool measure_only = false;  // internal: the fresh process that measures
};

[[noreturn]] void usage(const std::string& why) {
  if (!why.empty()) std::cerr << "bench_rules: " << why << "\n";
  std::cerr <<
      R"(usage: bench_rules domains [--workdir DIR] [--ut1 DIR] [--total N] [--seed N]
                           [--pool N] [--hot N,N] [--batches N] [--batch N] [--single N]
                           [--load-repeats N] [--reuse] [--measure-only]
       bench_rules school [POLICY.yaml] [--batches N] [--batch N] [--single N]
)";
  std::exit(2);
}

std::size_t to_count(const std::string& s) {
  std::string digits;
  for (char c : s) {
    if (c != '_') digits += c;
  }
  std::size_t v = 0;
  auto r = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (r.ec != std::errc() || r.ptr != digits.data() + digits.size()) usage("not a number: " + s);
  return v;
}

// "10000,100" -> {10000, 100}.
std::vector<std::size_t> to_counts(const std::string& s) {
  std::vector<std::size_t> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const auto comma = s.find(',', start);
    const std::string part = s.substr(start, comma == std::string::npos ? comma : comma - start);
    if (!part.empty()) out.push_back(to_count(part));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

options parse_options(int argc, char** argv) {
  options o;
  if (argc < 2) usage("");
  o.mode = argv[1];
  if (o.mode != "domains" && o.mode != "school") usage("unknown mode " + o.mode);
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--workdir")
      o.workdir = value();
    else if (a == "--ut1")
      o.ut1 = value();
    else if (a == "--total")
      o.total = to_count(value());
    else if (a == "--seed")
      o.seed = to_count(value());
    else if (a == "--pool")
      o.pool = to_count(value());
    else if (a == "--hot")
      o.hot = to_counts(value());
    else if (a == "--batches")
      o.batches = to_count(value());
    else if (a == "--batch")
      o.batch = to_count(value());
    else if (a == "--single")
      o.single = to_count(value());
    else if (a == "--load-repeats")
      o.load_repeats = static_cast<int>(to_count(value()));
    else if (a == "--reuse")
      o.reuse = true;
    else if (a == "--measure-only")
      o.measure_only = true;
    else if (o.mode == "school" && !a.starts_with("--"))
      o.policy = a;
    else
      usage("unknown option " + a);
  }
  if (o.batch == 0 || o.batches == 0 || o.pool == 0) usage("counts must be positive");
  if (o.load_repeats < 1) o.load_repeats = 1;
  return o;
}

hr::load_result load_or_die(const std::string& path) {
  hr::load_options o;
  o.other_sections = hr::shipped_daemon_sections;  // the shipped file's `alerts`, the daemon's
  auto r = hr::load_policy(path, o);
  if (!r.ok()) {
    for (const auto& e : r.errors) std::cerr << e.to_string() << "\n";
    std::cerr << "bench_rules: " << path << " did not load\n";
    std::exit(1);
  }
  return r;
}

// ---- synthetic domains ---------------------------------------------------------------------

// Random names that look like real ones: pronounceable labels of 5-14 characters (now and
// then a digit or a hyphen), a TLD weighted roughly like real lists, some with a subdomain.
class name_maker {
 public:
  explicit name_maker(std::uint64_t seed) : rng_(seed) {}

  std::string label(int min_len, int max_len) {
    static constexpr std::string_view consonants = "bcdfghjklmnprstvwxyz";
    static constexpr std::string_view vowels = "aeiou";
    const int len = pick(min_len, max_len);
    std::string s;
    s.reserve(static_cast<std::size_t>(len));
    bool vowel = pick(0, 1) == 1;
    for (int i = 0; i < len; ++i) {
      const int r = pick(0, 99);
      if (i > 0 && i + 1 < len && r < 3 && s.back() != '-') {
        s += '-';
      } else if (r < 8) {
        s += static_cast<char>('0' + pick(0, 9));
      } else if (r < 20) {
        s += static_cast<char>('a' + pick(0, 25));
      } else {
        const auto& set = vowel ? vowels : consonants;
        s += set[static_cast<std::size_t>(pick(0, static_cast<int>(set.size()) - 1))];
        vowel = !vowel;
      }
    }
    return s;
  }

  std::string tld() {
    // Cumulative weights (per 100): com 48, net 10, org 8, fr 10, de 8, co.uk 7, io 5,
    // info 4.
    static constexpr std::pair<int, std::string_view> tlds[] = {
        {48, "com"}, {58, "net"},   {66, "org"}, {76, "fr"},
        {84, "de"},  {91, "co.uk"}, {96, "io"},  {100, "info"}};
    const int r = pick(0, 99);
    for (const auto& [upto, t] : tlds) {
      if (r < upto) return std::string(t);
    }
    return "com";
  }

  // A registrable name, and in one case in five a subdomain of one.
  std::string domain() {
    std::string d = label(5, 14) + "." + tld();
    if (pick(0, 4) == 0) d = label(2, 8) + "." + d;
    return d;
  }

  // What a client asks for when it visits a listed domain: the domain itself, "www." in
  // front, or a deeper name, so the suffix walk takes two to six probes.
  std::string visit(const std::string& domain) {
    const int r = pick(0, 9);
    if (r < 5) return domain;
    if (r < 8) return "www." + domain;
    return "cdn" + std::to_string(pick(1, 9)) + ".static." + domain;
  }

  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  std::size_t pick_index(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }
  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    std::cerr << "bench_rules: cannot read " << p << "\n";
    std::exit(1);
  }
  std::string s;
  in.seekg(0, std::ios::end);
  s.resize(static_cast<std::size_t>(in.tellg()));
  in.seekg(0);
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  return s;
}

// Calls f(entry) for each non-empty, non-comment line.
template <class F>
void for_each_entry(std::string_view text, F&& f) {
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (auto h = line.find('#'); h != std::string_view::npos) line = line.substr(0, h);
    line = trim(line);
    if (!line.empty()) f(line);
  }
}

// UT1 categories that are folders with a `domains` file (some names are plain files that
// alias another category; those are skipped).
std::vector<std::string> ut1_categories(const fs::path& ut1) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(ut1, ec)) {
    if (e.is_directory() && fs::is_regular_file(e.path() / "domains")) {
      out.push_back(e.path().filename().string());
    }
  }
  if (ec) {
    std::cerr << "bench_rules: cannot list " << ut1 << ": " << ec.message() << "\n";
    std::exit(1);
  }
  std::sort(out.begin(), out.end());
  return out;
}

const fs::path synthetic_file = "synthetic-domains.txt";
const fs::path policy_file = "policy.yaml";

// The category name a UT1 folder gets in the generated policy.
std::string category_of(const std::string& ut1_name) {
  std::string c = "ut1_" + ut1_name;
  std::replace(c.begin(), c.end(), '-', '_');
  return c;
}

// Writes the synthetic list and the policy into o.workdir. Returns the synthetic count.
std::size_t generate(const options& o) {
  const auto started = bench_clock::now();
  fs::create_directories(o.workdir);
  const auto cats = ut1_categories(o.ut1);
  if (cats.empty()) {
    std::cerr << "bench_rules: no UT1 categories with a domains file in " << o.ut1 << "\n";
    std::exit(1);
  }
  // Distinct UT1 entries (by 64-bit hash), so the synthetic names never repeat one and the
  // table ends up with `total` entries.
  std::unordered_set<std::uint64_t> seen;
  seen.reserve(o.total + o.total / 4);
  std::size_t ut1_lines = 0;
  for (const auto& c : cats) {
    const std::string text = read_all(o.ut1 / c / "domains");
    for_each_entry(text, [&](std::string_view d) {
      ++ut1_lines;
      if (d.starts_with("*.")) d.remove_prefix(2);
      seen.insert(hr::domain_table::hash(d));
    });
  }
  const std::size_t ut1_distinct = seen.size();
  const std::size_t synthetic = o.total > ut1_distinct ? o.total - ut1_distinct : 0;

  name_maker names(o.seed);
  std::string out;
  out.reserve(synthetic * 20);
  for (std::size_t n = 0; n < synthetic;) {
    const std::string d = names.domain();
    if (!seen.insert(hr::domain_table::hash(d)).second) continue;
    out += d;
    out += '\n';
    ++n;
  }
  {
    std::ofstream f(o.workdir / synthetic_file, std::ios::binary | std::ios::trunc);
    f.write(out.data(), static_cast<std::streamsize>(out.size()));
    if (!f) {
      std::cerr << "bench_rules: cannot write " << o.workdir / synthetic_file << "\n";
      std::exit(1);
    }
  }

  // The policy: every UT1 category with a domains list, the synthetic list as one big
  // category, and roles that block them the way a school would.
  std::ostringstream y;
  y << "# Generated by bench_rules domains; not a real school policy.\n"
       "school:\n"
       "  name: Benchmark School\n"
       "  timezone: Europe/London\n"
       "  timetable:\n"
       "    weekdays:\n"
       "      - {name: Lesson 1, kind: lesson, from: \"08:50\", to: \"10:30\"}\n"
       "      - {name: Break,    kind: break,  from: \"10:30\", to: \"10:45\"}\n"
       "      - {name: Lesson 2, kind: lesson, from: \"10:45\", to: \"12:00\"}\n"
       "      - {name: Lunch,    kind: lunch,  from: \"12:00\", to: \"13:00\"}\n"
       "      - {name: Lesson 3, kind: lesson, from: \"13:00\", to: \"15:15\"}\n"
    << "ut1_dir: " << fs::absolute(o.ut1).string() << "\n"
    << "categories:\n"
       "  synthetic_bulk:\n"
       "    description: Generated names standing in for a commercial feed.\n"
       "    domain_files: ["
    << synthetic_file.string() << "]\n";
  std::string all_ut1, bypass;
  for (const auto& c : cats) {
    y << "  " << category_of(c) << ": {ut1: [" << c << "]}\n";
    all_ut1 += (all_ut1.empty() ? "" : ", ") + category_of(c);
    if (c == "vpn" || c == "doh" || c == "redirector" || c == "strong_redirector") {
      bypass += (bypass.empty() ? "" : ", ") + category_of(c);
    }
  }
  if (bypass.empty()) bypass = category_of(cats.front());
  y << "everyone:\n"
       "  rules:\n"
       "    - {name: circumvention, action: block, categories: ["
    << bypass
    << "]}\n"
       "fallback_role: pupils\n"
       "roles:\n"
       "  pupils:\n"
       "    networks: [10.10.0.0/16]\n"
       "    default: allow\n"
       "    rules:\n"
       "      - {name: everything listed, action: block, categories: [synthetic_bulk, "
    << all_ut1
    << "]}\n"
       "  staff:\n"
       "    networks: [10.20.0.0/16]\n"
       "    default: allow\n"
       "    rules:\n"
       "      - {name: bulk, action: block, categories: [synthetic_bulk]}\n"
       "      - {name: lists in lessons, action: block, during: [lessons], categories: ["
    << all_ut1 << "]}\n";
  {
    std::ofstream f(o.workdir / policy_file, std::ios::trunc);
    f << y.str();
    if (!f) {
      std::cerr << "bench_rules: cannot write " << o.workdir / policy_file << "\n";
      std::exit(1);
    }
  }
  std::cout << "generated " << synthetic << " synthetic domains + " << ut1_distinct
            << " distinct UT1 domains (" << ut1_lines << " lines in " << cats.size()
            << " UT1 categories) in " << fixed(ns_between(started, bench_clock::now()) / 1e9, 1)
            << " s: " << (o.workdir / policy_file).string() << "\n";
  return synthetic;
}

// ---- domains mode: measurement ---------------------------------------------------------------

// A request as the proxy would build it; the strings live in the pool that owns this.
struct prepared_request {
  std::string host;
  std::string client;
  bool hit = false;
};

struct table_query {
  std::string_view host;
  bool walk_parents = true;  // false for an IP literal
};

int measure_domains(const options& o) {
  const std::string path = (o.workdir / policy_file).string();
  print_machine();

  // Memory and load time: the first load is the one whose memory is measured.
  const long rss_before = status_kb("VmRSS:");
  const auto t0 = bench_clock::now();
  auto first = load_or_die(path);
  const auto t1 = bench_clock::now();
  const long rss_after = status_kb("VmRSS:");
  const long hwm_after = status_kb("VmHWM:");
  malloc_trim(0);
  const long rss_trimmed = status_kb("VmRSS:");
  const hr::policy& p = *first.compiled;

  std::vector<double> load_s{ns_between(t0, t1) / 1e9};
  for (int k = 1; k < o.load_repeats; ++k) {
    const auto a = bench_clock::now();
    auto again = load_or_die(path);
    load_s.push_back(ns_between(a, bench_clock::now()) / 1e9);
  }
  const summary load = summarize(load_s);

  std::size_t url_hosts = p.url_prefixes.size(), url_entries = 0;
  for (const auto& [h, v] : p.url_prefixes) url_entries += v.size();
  const double rss_mb = static_cast<double>(rss_after - rss_before) / 1024.0;
  const double rss_trimmed_mb = static_cast<double>(rss_trimmed - rss_before) / 1024.0;
  const double peak_mb = static_cast<double>(hwm_after - rss_before) / 1024.0;
  const double table_mb = static_cast<double>(p.domains.memory_bytes()) / (1024.0 * 1024.0);

  // Requests: half listed (an entry drawn uniformly from all the lists, as visited), half not.
  name_maker names(o.seed ^ 0x5eed);
  std::vector<std::string> list_texts;
  list_texts.push_back(read_all(o.workdir / synthetic_file));
  for (const auto& c : ut1_categories(o.ut1)) list_texts.push_back(read_all(o.ut1 / c / "domains"));
  std::vector<std::string_view> listed;
  for (const auto& t : list_texts)
    for_each_entry(t, [&](std::string_view d) { listed.push_back(d); });

  // Whether the table lists the host as decide() will see it; nullopt for an invalid host
  // (an IP-address entry of a UT1 list with "www." in front, say).
  auto matches = [&](std::string_view raw) -> std::optional<bool> {
    auto h = hr::normalize_host(raw);
    if (!h) return std::nullopt;
    bool any = false;
    p.domains.for_each_match(h->text, h->kind == hr::host_kind::name,
                             [&](hr::set_id) { any = true; });
    return any;
  };
  std::size_t rejected = 0;
  // One request for a listed (hit) or an unlisted host, drawn with `g`; retries until the
  // table agrees that the host is (or is not) listed.
  auto draw_request = [&](name_maker& g, bool hit) {
    while (true) {
      prepared_request r;
      r.hit = hit;
      if (r.hit) {
        auto d = hr::normalize_host(listed[g.pick_index(listed.size())]);
        if (!d) continue;
        // An IP address is visited as itself; a name maybe with "www." or deeper in front.
        r.host = d->kind == hr::host_kind::name ? g.visit(d->text) : d->text;
      } else {
        r.host = g.visit(g.domain());
      }
      if (matches(r.host) != std::optional<bool>(r.hit)) {
        ++rejected;  // a generated "miss" that happens to be listed, or an odd list line
        continue;
      }
      // Pupils and staff in equal numbers, found by client address.
      r.client = (g.pick(0, 1) == 0 ? "10.10." : "10.20.") + std::to_string(g.pick(0, 255)) +
                 "." + std::to_string(g.pick(1, 254));
      return r;
    }
  };
  std::vector<prepared_request> pool;
  pool.reserve(o.pool);
  while (pool.size() < o.pool) pool.push_back(draw_request(names, pool.size() % 2 == 0));
  std::shuffle(pool.begin(), pool.end(), names.rng());
  const std::size_t pool_rejected = rejected;

  // The skewed workload: a stream of `batches * batch` requests whose hosts follow Zipf's law
  // (s = 1) over `total` distinct hosts, half of them listed: host k (k = 1, 2, ...) is asked
  // for with probability proportional to 1/k, so a few thousand hosts make most requests, as in
  // real browsing. Which hosts are popular is independent of whether they are listed. Only the
  // ranks the stream visits are given a host (drawn like the uniform pool's, from their own
  // random sequence, so the uniform rows are unchanged).
  const std::size_t zipf_n = o.total;
  const std::size_t zipf_len = o.batches * o.batch;
  std::vector<std::uint32_t> zipf_rank(zipf_len);
  {
    std::vector<double> cdf(zipf_n);
    double sum = 0;
    for (std::size_t k = 0; k < zipf_n; ++k) cdf[k] = sum += 1.0 / static_cast<double>(k + 1);
    std::mt19937_64 rng(o.seed ^ 0x21bf);
    std::uniform_real_distribution<double> u(0.0, sum);
    for (auto& r : zipf_rank) {
      const auto it = std::upper_bound(cdf.begin(), cdf.end(), u(rng));
      r = static_cast<std::uint32_t>(std::min<std::size_t>(it - cdf.begin(), zipf_n - 1));
    }
  }
  std::vector<std::uint32_t> zipf_ranks_used(zipf_rank);
  std::sort(zipf_ranks_used.begin(), zipf_ranks_used.end());
  zipf_ranks_used.erase(std::unique(zipf_ranks_used.begin(), zipf_ranks_used.end()),
                        zipf_ranks_used.end());
  std::vector<prepared_request> zipf_hosts;  // by position in zipf_ranks_used
  zipf_hosts.reserve(zipf_ranks_used.size());
  {
    name_maker zipf_names(o.seed ^ 0x21bf21bf);
    for (std::size_t k = 0; k < zipf_ranks_used.size(); ++k) {
      zipf_hosts.push_back(draw_request(zipf_names, zipf_names.pick(0, 1) == 0));
    }
  }
  // The ten most frequent hosts' share of the stream, and the top 1,000's, for the README.
  std::size_t zipf_top10 = 0, zipf_top1000 = 0;
  for (const std::uint32_t r : zipf_rank) {
    zipf_top10 += r < 10;
    zipf_top1000 += r < 1000;
  }
  list_texts.clear();
  listed.clear();

  // Host names back to back in request order, as a proxy has each one fresh in its read
  // buffer; scattered heap strings would add a cache miss per request that is not the engine's.
  std::string host_bytes;
  for (const auto& r : pool) host_bytes += r.host;
  // The table alone is asked about the host as decide() would ask: normalized (these already
  // are), and IP literals exactly, without the suffix walk.
  std::vector<std::string_view> mix_hosts;
  std::vector<table_query> mix_queries, hit_queries, miss_queries;
  for (std::size_t at = 0; const auto& r : pool) {
    const std::string_view h(host_bytes.data() + at, r.host.size());
    at += r.host.size();
    mix_hosts.push_back(h);
    const table_query q{h, !hr::ip_address::parse(h).has_value()};
    mix_queries.push_back(q);
    (r.hit ? hit_queries : miss_queries).push_back(q);
  }

  // A Monday, in Lesson 2, London time.
  const auto when =
      p.zone.to_sys(std::chrono::local_days{std::chrono::year{2026} / std::chrono::November / 23} +
                    std::chrono::hours{11});
  auto facts_for = [&](const prepared_request& r, std::string_view host) {
    hr::request_facts f;
    f.client = hr::ip_address::parse(r.client);
    f.method = "GET";
    f.scheme = "https";
    f.host = host;
    f.path = std::string_view("/index.html");
    f.time = when;
    return f;
  };
  std::vector<hr::request_facts> mix, hits, misses;
  for (std::size_t i = 0; i < pool.size(); ++i) {
    mix.push_back(facts_for(pool[i], mix_hosts[i]));
    (pool[i].hit ? hits : misses).push_back(mix.back());
  }
  // The Zipf stream, each request with its own copy of the host, back to back in stream order
  // like the pool's (a popular host is still in cache because it was looked up, not because
  // its text sits in one place).
  std::string zipf_bytes;
  std::vector<hr::request_facts> zipf;
  std::vector<table_query> zipf_queries;
  std::size_t zipf_hits = 0;
  {
    std::vector<std::size_t> host_of(zipf_rank.size());
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < zipf_rank.size(); ++i) {
      host_of[i] = static_cast<std::size_t>(
          std::lower_bound(zipf_ranks_used.begin(), zipf_ranks_used.end(), zipf_rank[i]) -
          zipf_ranks_used.begin());
      bytes += zipf_hosts[host_of[i]].host.size();
    }
    zipf_bytes.reserve(bytes);
    for (const std::size_t h : host_of) zipf_bytes += zipf_hosts[h].host;
    zipf.reserve(zipf_rank.size());
    zipf_queries.reserve(zipf_rank.size());
    for (std::size_t i = 0, at = 0; i < zipf_rank.size(); ++i) {
      const prepared_request& r = zipf_hosts[host_of[i]];
      const std::string_view h(zipf_bytes.data() + at, r.host.size());
      at += r.host.size();
      zipf.push_back(facts_for(r, h));
      zipf_queries.push_back(table_query{h, !hr::ip_address::parse(h).has_value()});
      zipf_hits += r.hit;
    }
  }
  std::size_t blocked = 0, ip_literals = 0, invalid = 0;
  for (const auto& f : mix) {
    const auto v = hr::decide(p, f);
    blocked += v.act == hr::action::block;
    ip_literals += v.host.kind != hr::host_kind::name;
    invalid += v.by == hr::decided_by::unchecked;
  }

  auto decide_op = [&](const std::vector<hr::request_facts>& v) {
    return [&v, &p](std::size_t i) {
      const hr::verdict r = hr::decide(p, v[i]);
      g_sink = g_sink + static_cast<std::uint64_t>(r.act) + r.rule_id.size();
    };
  };
  auto match_op = [&](const std::vector<table_query>& v) {
    return [&v, &p](std::size_t i) {
      std::uint64_t n = 0;
      p.domains.for_each_match(v[i].host, v[i].walk_parents, [&](hr::set_id s) { n += s + 1u; });
      g_sink = g_sink + n;
    };
  };

  const double overhead = clock_overhead_ns();
  const double read_l2 = random_read_ns(1 << 20, o.seed);
  const double read_table = random_read_ns(p.domains.memory_bytes(), o.seed);
  const double read_table_huge = random_read_ns(p.domains.memory_bytes(), o.seed, true);
  std::vector<table_row> rows;
  auto add = [&](std::string what, summary s, bool judged) {
    table_row r{std::move(what), s, "ns", judged ? "<= 300 ns median" : "", std::nullopt};
    if (judged) r.met = s.median <= 300.0;
    rows.push_back(std::move(r));
  };
  // The whole pool: every request a different host, so the table is read from memory.
  const std::string all = ", " + grouped(mix.size()) + " hosts";
  add("decide(), 50% listed / 50% not" + all,
      time_batched(mix.size(), o.batch, o.batches, decide_op(mix)), true);
  add("decide(), listed only" + all, time_batched(hits.size(), o.batch, o.batches, decide_op(hits)),
      true);
  add("decide(), unlisted only" + all,
      time_batched(misses.size(), o.batch, o.batches, decide_op(misses)), true);
  add("decide(), each call timed alone" + all, time_each(mix.size(), o.single, decide_op(mix)),
      false);
  add("for_each_match, 50% / 50%" + all,
      time_batched(mix_queries.size(), o.batch, o.batches, match_op(mix_queries)), true);
  add("for_each_match, listed only" + all,
      time_batched(hit_queries.size(), o.batch, o.batches, match_op(hit_queries)), true);
  add("for_each_match, unlisted only" + all,
      time_batched(miss_queries.size(), o.batch, o.batches, match_op(miss_queries)), true);
  // The skewed stream: what a school's traffic looks like (see above).
  const std::string zipf_what = ", Zipf s=1 over " + grouped(zipf_n) + " hosts";
  add("decide()" + zipf_what, time_batched(zipf.size(), o.batch, o.batches, decide_op(zipf)),
      true);
  add("decide(), each call timed alone" + zipf_what,
      time_each(zipf.size(), o.single, decide_op(zipf)), false);
  add("for_each_match" + zipf_what,
      time_batched(zipf_queries.size(), o.batch, o.batches, match_op(zipf_queries)), true);
  // Smaller working sets (the first n requests of the same shuffled mix), down to one that
  // stays in the core's own caches: the engine's cost without memory latency.
  for (const std::size_t n : o.hot) {
    if (n >= mix.size()) continue;
    const std::vector<hr::request_facts> f(mix.begin(),
                                           mix.begin() + static_cast<std::ptrdiff_t>(n));
    const std::vector<table_query> h(mix_queries.begin(),
                                     mix_queries.begin() + static_cast<std::ptrdiff_t>(n));
    const std::string tier = ", " + grouped(n) + " hosts";
    add("decide(), 50% / 50%" + tier, time_batched(f.size(), o.batch, o.batches, decide_op(f)),
        true);
    add("for_each_match, 50% / 50%" + tier, time_batched(h.size(), o.batch, o.batches, match_op(h)),
        true);
  }

  const bool load_met = load.median <= 3.0;
  const bool mem_met = rss_mb <= 300.0;
  std::cout << "\npolicy: " << path << "\n"
            << "domains in table: " << p.domains.size() << " (" << p.categories.size()
            << " categories); URL-prefix entries: " << url_entries << " on " << url_hosts
            << " hosts\n"
            << "requests: " << pool.size() << " distinct hosts (" << hits.size() << " listed, "
            << misses.size() << " not; " << blocked << " blocked; " << ip_literals
            << " IP literals; " << invalid << " invalid), " << pool_rejected
            << " candidates rejected while drawing them\n"
            << "Zipf stream: " << zipf.size() << " requests over " << zipf_ranks_used.size()
            << " distinct hosts of " << zipf_n << " (" << zipf_hits
            << " requests for listed hosts); the 10 most popular hosts make "
            << fixed(100.0 * static_cast<double>(zipf_top10) / static_cast<double>(zipf.size()), 1)
            << " % of the requests, the top 1,000 "
            << fixed(100.0 * static_cast<double>(zipf_top1000) / static_cast<double>(zipf.size()), 1)
            << " %\n"
            << "steady_clock::now() costs " << fixed(overhead, 1)
            << " ns (included in 'timed alone' only)\n"
            << "one random read (pointer chase): " << fixed(read_l2, 1) << " ns in 1 MB, "
            << fixed(read_table, 1) << " ns in " << fixed(table_mb, 0)
            << " MB (the table's size), " << fixed(read_table_huge, 1)
            << " ns in the same with 2 MiB pages\n\n";
  std::cout << "| load and memory | value | target | met |\n|---|---:|---|---|\n"
            << "| load_policy() wall time, median of " << load_s.size() << " (min "
            << fixed(*std::min_element(load_s.begin(), load_s.end()), 2) << ", max "
            << fixed(*std::max_element(load_s.begin(), load_s.end()), 2) << ") | "
            << fixed(load.median, 2) << " s | <= 3 s | " << (load_met ? "yes" : "**NO**") << " |\n"
            << "| resident memory added by the load (VmRSS after - before) | " << fixed(rss_mb, 1)
            << " MB | <= 300 MB | " << (mem_met ? "yes" : "**NO**") << " |\n"
            << "| same, after malloc_trim(0) | " << fixed(rss_trimmed_mb, 1) << " MB | | |\n"
            << "| peak during the load (VmHWM - VmRSS before) | " << fixed(peak_mb, 1)
            << " MB | | |\n"
            << "| domain_table::memory_bytes() | " << fixed(table_mb, 1) << " MB | | |\n\n";
  print_table(rows);

  std::string j = "{\"mode\":\"domains\",\"domains\":" + std::to_string(p.domains.size()) +
                  ",\"url_prefixes\":" + std::to_string(url_entries) +
                  ",\"load_s\":" + fixed(load.median, 3) + ",\"rss_mb\":" + fixed(rss_mb, 1) +
                  ",\"rss_trimmed_mb\":" + fixed(rss_trimmed_mb, 1) +
                  ",\"peak_mb\":" + fixed(peak_mb, 1) + ",\"table_mb\":" + fixed(table_mb, 1) +
                  ",\"clock_ns\":" + fixed(overhead, 1) + ",\"read_1mb_ns\":" + fixed(read_l2, 1) +
                  ",\"read_table_ns\":" + fixed(read_table, 1) +
                  ",\"read_table_huge_ns\":" + fixed(read_table_huge, 1) + ",\"ns\":" + json_rows(rows) + "}";
  std::cout << "\n" << j << "\n";
  return 0;
}

int run_domains(const options& o, const char* self) {
  if (o.measure_only) return measure_domains(o);
  if (!o.reuse || !fs::exists(o.workdir / policy_file)) generate(o);
  std::cout.flush();
  std::string hot_list;
  for (std::size_t n : o.hot) hot_list += (hot_list.empty() ? "" : ",") + std::to_string(n);
  // Measure in a fresh process: see the note at the top of the file.
  std::vector<std::string> args = {self,
                                   "domains",
                                   "--measure-only",
                                   "--workdir",
                                   o.workdir.string(),
                                   "--ut1",
                                   o.ut1.string(),
                                   "--seed",
                                   std::to_string(o.seed),
                                   "--pool",
                                   std::to_string(o.pool),
                                   "--hot",
                                   hot_list,
                                   "--batches",
                                   std::to_string(o.batches),
                                   "--batch",
                                   std::to_string(o.batch),
                                   "--single",
                                   std::to_string(o.single),
                                   "--load-repeats",
                                   std::to_string(o.load_repeats)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t child = fork();
  if (child < 0) {
    std::perror("bench_rules: fork");
    return 1;
  }
  if (child == 0) {
    execv("/proc/self/exe", argv.data());
    std::perror("bench_rules: exec");
    _exit(127);
  }
  int status = 0;
  if (waitpid(child, &status, 0) < 0) {
    std::perror("bench_rules: waitpid");
    return 1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

// ---- school mode ---------------------------------------------------------------------------

struct school_case {
  std::string what;
  std::string client;  // the role comes from the client address, as in the proxy
  std::string method;
  std::string url;  // "CONNECT host:port" cases have no path (a tunnel)
  int hour = 11, minute = 0;
  int day = 23;        // November 2026: 23 is a Monday, 28 a Saturday
  std::string expect;  // "allow" or "block"
};

int run_school(const options& o) {
  print_machine();
  const auto t0 = bench_clock::now();
  auto loaded = load_or_die(o.policy);
  const double load_ms = ns_between(t0, bench_clock::now()) / 1e6;
  const hr::policy& p = *loaded.compiled;

  const std::vector<school_case> cases = {
      {"pupil, facebook.com (blocked by rule)", "10.10.4.20", "GET", "https://www.facebook.com/",
       11, 0, 23, "block"},
      {"pupil, bbc.co.uk (allowed by default)", "10.10.4.20", "GET",
       "https://www.bbc.co.uk/news/education-12345678", 11, 0, 23, "allow"},
      {"pupil, 1.1.1.1 DoH (IP literal, everyone rule)", "10.10.4.20", "GET",
       "https://1.1.1.1/dns-query?dns=AAABAAABAAAAAAAAB2V4YW1wbGUDY29tAAABAAE", 11, 0, 23, "block"},
      {"staff, wikipedia ?action=edit (RE2 set matches)", "10.20.1.7", "GET",
       "https://en.wikipedia.org/w/index.php?title=Photosynthesis&action=edit", 11, 0, 23, "block"},
      {"staff, wikipedia article (RE2 set runs, no match)", "10.20.1.7", "GET",
       "https://en.wikipedia.org/wiki/Photosynthesis", 11, 0, 23, "allow"},
      {"staff, POST to wikipedia (method rule)", "10.20.1.7", "POST",
       "https://en.wikipedia.org/w/index.php?title=Photosynthesis&action=submit", 11, 0, 23,
       "block"},
      {"staff, instagram in a lesson (RE2 set runs first)", "10.20.1.7", "GET",
       "https://www.instagram.com/", 11, 0, 23, "block"},
      {"staff, instagram at lunch", "10.20.1.7", "GET", "https://www.instagram.com/", 12, 30, 23,
       "allow"},
      {"office, facebook (allow rule)", "10.30.0.5", "GET", "https://www.facebook.com/", 11, 0, 23,
       "allow"},
      {"unknown device, CONNECT www.tiktok.com:443 (fallback role)", "192.168.1.9", "CONNECT",
       "CONNECT www.tiktok.com:443", 11, 0, 23, "block"},
      {"guest, youtube on Saturday", "10.99.2.2", "GET", "https://www.youtube.com/watch?v=abc", 15,
       0, 28, "allow"},
  };

  std::vector<std::string> urls;
  urls.reserve(cases.size());
  for (const auto& c : cases) urls.push_back(c.url);
  std::vector<hr::request_facts> facts;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    hr::request_facts f;
    f.client = hr::ip_address::parse(c.client);
    f.method = c.method;
    const std::string_view u = urls[i];
    if (u.starts_with("CONNECT ")) {
      const std::string_view target = u.substr(8);
      const auto colon = target.rfind(':');
      f.scheme = "https";
      f.host = target.substr(0, colon);
      f.port = 443;
      f.path = std::nullopt;
    } else {
      std::string err;
      auto parts = hr::split_url(u, &err);
      if (!parts) {
        std::cerr << "bench_rules: bad URL " << c.url << ": " << err << "\n";
        return 1;
      }
      f.scheme = parts->scheme;
      f.host = parts->host;
      f.port = parts->port;
      f.path = parts->path;
    }
    f.time = p.zone.to_sys(std::chrono::local_days{std::chrono::year{2026} / std::chrono::November /
                                                   std::chrono::day{static_cast<unsigned>(c.day)}} +
                           std::chrono::hours{c.hour} + std::chrono::minutes{c.minute});
    const auto v = hr::decide(p, f);
    if (hr::to_string(v.act) != c.expect) {
      std::cerr << "bench_rules: " << c.what << ": expected " << c.expect << ", got "
                << hr::to_string(v.act) << " (" << v.rule_id << ")\n";
      return 1;
    }
    facts.push_back(f);
  }

  auto decide_op = [&p](const std::vector<hr::request_facts>& v) {
    return [&v, &p](std::size_t i) {
      const hr::verdict r = hr::decide(p, v[i]);
      g_sink = g_sink + static_cast<std::uint64_t>(r.act) + r.rule_id.size();
    };
  };
  const double overhead = clock_overhead_ns();
  std::vector<table_row> rows;
  auto add = [&](std::string what, summary s) {
    table_row r{std::move(what), s, "ns", "<= 1000 ns median", s.median <= 1000.0};
    rows.push_back(std::move(r));
  };
  // The mix: every case in turn, so branch predictors see a varied stream.
  add("decide(), all cases in turn",
      time_batched(facts.size(), o.batch, o.batches, decide_op(facts)));
  add("decide(), one call timed alone (all cases)",
      time_each(facts.size(), o.single, decide_op(facts)));
  rows.back().target.clear();
  rows.back().met.reset();
  const std::size_t per_case_batches = std::max<std::size_t>(1, o.batches / 4);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::vector<hr::request_facts> one{facts[i]};
    add(cases[i].what, time_batched(1, o.batch, per_case_batches, decide_op(one)));
  }

  bool all_met = true;
  for (const auto& r : rows) all_met = all_met && r.met.value_or(true);
  std::cout << "\npolicy: " << o.policy << " (loaded in " << fixed(load_ms, 1) << " ms, "
            << p.domains.size() << " domains, " << (p.patterns ? p.pattern_set.size() : 0)
            << " URL patterns)\n"
            << "steady_clock::now() costs " << fixed(overhead, 1)
            << " ns (included in 'timed alone' only)\n\n";
  print_table(rows);
  std::cout << "\n{\"mode\":\"school\",\"load_ms\":" << fixed(load_ms, 2)
            << ",\"clock_ns\":" << fixed(overhead, 1)
            << ",\"all_met\":" << (all_met ? "true" : "false") << ",\"ns\":" << json_rows(rows)
            << "}\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse_options(argc, argv);
  if (o.mode == "domains") return run_domains(o, argv[0]);
  return run_school(o);
}

// bench_certs: what HTTPS inspection's certificates cost (issue 10, section 2).
//
// - mint: leaf_minter::mint() alone, over 1,000 new hosts (p50, p99);
// - first visit: mint + an SSL from the one shared server context presenting the leaf
//   (leaf_minter::use_leaf), over 1,000 new hosts; for comparison the older design, mint + an
//   SSL_CTX of its own per host; and leaf_cache::get() (minting thread hand-off included);
// - cache hit: leaf_cache::find() and get() for warm hosts;
// - memory per cache entry: heap and resident memory added by filling a cache of N hosts.
// Prints a Markdown table, then one JSON line. Not a test: needs a Release build and a
// quiet machine (see certs/README.md for the figures and the command).
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "certs/leaf_cache.hpp"

using namespace hallpass::certs;
using steady = std::chrono::steady_clock;

namespace {

struct stats {
  double p50 = 0, p99 = 0, mean = 0;
};

stats summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  stats s;
  auto at = [&](double q) {
    return us[std::min(us.size() - 1, static_cast<std::size_t>(q * us.size()))];
  };
  s.p50 = at(0.50);
  s.p99 = at(0.99);
  double sum = 0;
  for (double v : us) sum += v;
  s.mean = sum / us.size();
  return s;
}

double since_us(steady::time_point t0) {
  return std::chrono::duration<double, std::micro>(steady::now() - t0).count();
}

long rss_kib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

std::string host(const char* prefix, int i) {
  return std::string(prefix) + std::to_string(i) + ".example.org";
}

std::string row(const char* what, const stats& s, std::size_t n) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "| %s | %.0f us | %.0f us | %.0f us | %zu |\n", what, s.p50, s.p99,
                s.mean, n);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  const int hosts = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int fill = argc > 2 ? std::atoi(argv[2]) : 10000;
  char tmpl[] = "/tmp/hallpass-bench-certs-XXXXXX";
  if (!::mkdtemp(tmpl)) return 1;
  const std::string dir = tmpl;
  auto ca = create_ca(dir + "/ca", "Bench School");
  if (!ca) {
    std::cerr << ca.error() << "\n";
    return 1;
  }
  const auto keygen_t0 = steady::now();
  auto minter_r = leaf_minter::create(*ca);
  const double keygen_us = since_us(keygen_t0);
  if (!minter_r) return 1;
  auto minter = *minter_r;

  std::vector<double> mint_us, ctx_us, own_ctx_us, cache_first_us, find_us, get_us;
  for (int i = 0; i < hosts; ++i) {
    auto t0 = steady::now();
    auto leaf = minter->mint(host("m", i));
    mint_us.push_back(since_us(t0));
    if (!leaf) return 1;
  }
  for (int i = 0; i < hosts; ++i) {
    auto t0 = steady::now();
    auto leaf = minter->mint(host("c", i));
    ssl_ptr ssl(SSL_new(minter->server_context().get()));
    const bool ok = leaf && ssl && minter->use_leaf(ssl.get(), leaf->get());
    ctx_us.push_back(since_us(t0));
    if (!ok) return 1;
  }
  for (int i = 0; i < hosts; ++i) {
    // The design before one shared context: an SSL_CTX per host, made when the host's leaf is.
    auto t0 = steady::now();
    auto leaf = minter->mint(host("o", i));
    ssl_ctx_ptr ctx(SSL_CTX_new(TLS_server_method()));
    const bool ok = leaf && ctx && SSL_CTX_use_certificate(ctx.get(), leaf->get()) == 1 &&
                    SSL_CTX_use_PrivateKey(ctx.get(), minter->leaf_key()) == 1;
    own_ctx_us.push_back(since_us(t0));
    if (!ok) return 1;
  }
  {
    leaf_cache cache(minter, {.capacity = static_cast<std::size_t>(hosts), .threads = 1});
    for (int i = 0; i < hosts; ++i) {
      auto t0 = steady::now();
      auto f = cache.get(host("f", i));
      f.wait();
      cache_first_us.push_back(since_us(t0));
      if (!f.get()) return 1;
    }
    for (int round = 0; round < 100; ++round) {
      for (int i = 0; i < hosts; i += 10) {
        const std::string h = host("f", i);
        auto t0 = steady::now();
        auto c = cache.find(h);
        find_us.push_back(since_us(t0));
        t0 = steady::now();
        auto f = cache.get(h);
        get_us.push_back(since_us(t0));
        if (!c || !f.get()) return 1;
      }
    }
  }

  // Memory: a cache filled with `fill` hosts, against the same process before.
  malloc_trim(0);
  const auto heap0 = mallinfo2().uordblks;
  const long rss0 = rss_kib();
  double fill_s = 0;
  std::size_t heap1 = 0;
  long rss1 = 0;
  {
    leaf_cache cache(minter, {.capacity = static_cast<std::size_t>(fill), .threads = 2});
    const auto t0 = steady::now();
    std::vector<std::shared_future<leaf_cache::lookup>> all;
    all.reserve(fill);
    for (int i = 0; i < fill; ++i) all.push_back(cache.get(host("x", i)));
    for (auto& f : all) f.wait();
    fill_s = since_us(t0) / 1e6;
    all.clear();
    heap1 = mallinfo2().uordblks;
    rss1 = rss_kib();
  }
  // For comparison, the older design: an SSL_CTX per host holding its leaf.
  malloc_trim(0);
  const auto ctx_heap0 = mallinfo2().uordblks;
  std::size_t ctx_heap1 = 0;
  {
    std::vector<ssl_ctx_ptr> contexts;
    for (int i = 0; i < fill; ++i) {
      auto leaf = minter->mint(host("l", i));
      ssl_ctx_ptr ctx(SSL_CTX_new(TLS_server_method()));
      if (!leaf || !ctx || SSL_CTX_use_certificate(ctx.get(), leaf->get()) != 1) return 1;
      contexts.push_back(std::move(ctx));
    }
    ctx_heap1 = mallinfo2().uordblks;
  }
  const double ctx_per_entry = static_cast<double>(ctx_heap1 - ctx_heap0) / fill;
  const double heap_per_entry = static_cast<double>(heap1 - heap0) / fill;
  const double rss_per_entry = static_cast<double>(rss1 - rss0) * 1024.0 / fill;

  const auto m = summarize(mint_us), c = summarize(ctx_us), oc = summarize(own_ctx_us),
             cf = summarize(cache_first_us), fh = summarize(find_us), gh = summarize(get_us);
  std::cout << "| measurement | p50 | p99 | mean | calls |\n|---|---|---|---|---|\n"
            << row("mint a leaf (new host)", m, mint_us.size())
            << row("mint + SSL from the shared context with the leaf (new host)", c, ctx_us.size())
            << row("mint + an SSL_CTX of its own (the older design, for comparison)", oc,
                   own_ctx_us.size())
            << row("first visit through leaf_cache::get (1 minting thread)", cf,
                   cache_first_us.size());
  char buf[600];
  std::snprintf(buf, sizeof buf, "| cache hit, find() | %.2f us | %.2f us | %.2f us | %zu |\n",
                fh.p50, fh.p99, fh.mean, find_us.size());
  std::cout << buf;
  std::snprintf(buf, sizeof buf, "| cache hit, get() | %.2f us | %.2f us | %.2f us | %zu |\n",
                gh.p50, gh.p99, gh.mean, get_us.size());
  std::cout << buf;
  std::snprintf(buf, sizeof buf,
                "\nleaf key generation (once per minter): %.0f us\n"
                "filling a cache of %d hosts with 2 minting threads: %.2f s (%.0f mints/s)\n"
                "memory per cache entry: %.0f bytes of heap, %.0f bytes resident (an SSL_CTX "
                "per host, the older design: %.0f bytes)\n",
                keygen_us, fill, fill_s, fill / fill_s, heap_per_entry, rss_per_entry,
                ctx_per_entry);
  std::cout << buf;
  std::snprintf(
      buf, sizeof buf,
      "{\"mint_p50_us\":%.1f,\"mint_p99_us\":%.1f,\"ctx_p50_us\":%.1f,\"ctx_p99_us\":%.1f,"
      "\"own_ctx_p50_us\":%.1f,"
      "\"first_visit_p50_us\":%.1f,\"first_visit_p99_us\":%.1f,\"hit_find_p50_us\":%.2f,"
      "\"hit_get_p50_us\":%.2f,\"heap_bytes_per_entry\":%.0f,\"rss_bytes_per_entry\":%.0f}\n",
      m.p50, m.p99, c.p50, c.p99, oc.p50, cf.p50, cf.p99, fh.p50, gh.p50, heap_per_entry,
      rss_per_entry);
  std::cout << buf;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}

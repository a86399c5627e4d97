#include "proxy/public_suffix.hpp"

#include <libpsl.h>

#include <string>

#include "rules/host.hpp"

namespace hallpass {

namespace {
// psl_latest: the newer of the distribution's file and libpsl's built-in copy; never freed
// (one context for the life of the process). Read at the first call.
const psl_ctx_t* suffix_list() {
  static const psl_ctx_t* const list = [] {
    const psl_ctx_t* l = psl_latest(nullptr);
    return l ? l : psl_builtin();
  }();
  return list;
}
}  // namespace

void load_public_suffixes() { (void)suffix_list(); }

std::string registrable_domain(std::string_view host) {
  if (host.empty() || rules::ip_address::parse(host)) return std::string(host);
  const psl_ctx_t* list = suffix_list();
  const std::string name(host);
  const char* d = list ? psl_registrable_domain(list, name.c_str()) : nullptr;
  return d ? std::string(d) : name;
}

bool is_public_suffix(std::string_view host, bool listed_only) {
  if (host.empty() || rules::ip_address::parse(host)) return false;
  const psl_ctx_t* list = suffix_list();
  const std::string name(host);
  if (!list) return !listed_only && name.find('.') == std::string::npos;  // no list at all: a TLD at least
  return psl_is_public_suffix2(list, name.c_str(), PSL_TYPE_ANY | (listed_only ? PSL_TYPE_NO_STAR_RULE : 0)) != 0;
}

bool is_registry_suffix(std::string_view host) {
  if (host.empty() || rules::ip_address::parse(host)) return false;
  const std::string name(host);
  if (name.find('.') == std::string::npos) return true;
  const psl_ctx_t* list = suffix_list();
  return list && psl_is_public_suffix2(list, name.c_str(), PSL_TYPE_ICANN) != 0;
}

}  // namespace hallpass

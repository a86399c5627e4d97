#include "proxy/message_head.hpp"

namespace hallpass {
namespace {

std::size_t fields_size(const http::fields& f) {
  std::size_t n = 2;
  for (const auto& field : f) n += field.name_string().size() + field.value().size() + 4;
  return n;
}

void append_version(std::string& out, unsigned version) {
  out += "HTTP/";
  out += static_cast<char>('0' + version / 10);
  out += '.';
  out += static_cast<char>('0' + version % 10);
}

void append_fields(std::string& out, const http::fields& f) {
  for (const auto& field : f) {
    out += field.name_string();
    out += ": ";
    out += field.value();
    out += "\r\n";
  }
  out += "\r\n";
}

}  // namespace

std::string serialize_request_head(const http::request_header<>& head) {
  std::string out;
  const auto method = head.method_string();
  const auto target = head.target();
  out.reserve(method.size() + target.size() + 12 + fields_size(head));
  out += method;
  out += ' ';
  out += target;
  out += ' ';
  append_version(out, head.version());
  out += "\r\n";
  append_fields(out, head);
  return out;
}

std::string serialize_response_head(const http::response_header<>& head) {
  std::string out;
  const auto reason = head.reason();
  out.reserve(reason.size() + 16 + fields_size(head));
  append_version(out, head.version());
  out += ' ';
  const unsigned code = head.result_int();
  out += static_cast<char>('0' + code / 100 % 10);
  out += static_cast<char>('0' + code / 10 % 10);
  out += static_cast<char>('0' + code % 10);
  out += ' ';
  out += reason;
  out += "\r\n";
  append_fields(out, head);
  return out;
}

}  // namespace hallpass

// RespWriter: RESP2 encoding straight into the reply buffer.
#include "kv/resp_writer.hpp"

#include <algorithm>
#include <charconv>

namespace netloop::demo::kv {

void RespWriter::header(char type, int64_t n) {
  char* p = out_.prepare(24);
  char* q = p;
  *q++ = type;
  q = std::to_chars(q, p + 22, n).ptr;
  *q++ = '\r';
  *q++ = '\n';
  out_.commit(size_t(q - p));
}

void RespWriter::simple(std::string_view s) {
  char* p = out_.prepare(s.size() + 3);
  p[0] = '+';
  s.copy(p + 1, s.size());
  p[s.size() + 1] = '\r';
  p[s.size() + 2] = '\n';
  out_.commit(s.size() + 3);
}

void RespWriter::error(std::string_view s) {
  error_begin();
  out_.append(s);
  error_end();
}

void RespWriter::error_piece(std::string_view s, size_t max) {
  s = s.substr(0, std::min(max, s.size()));
  char* p = out_.prepare(s.size());
  for (size_t i = 0; i < s.size(); ++i) p[i] = (s[i] == '\r' || s[i] == '\n') ? ' ' : s[i];
  out_.commit(s.size());
}

void RespWriter::integer(int64_t n) { header(':', n); }
void RespWriter::null() { out_.append("$-1\r\n", 5); }
void RespWriter::array(size_t n) { header('*', int64_t(n)); }

void RespWriter::bulk(std::string_view s) {
  header('$', int64_t(s.size()));
  if (s.size() >= kDirectBulk) {
    flush();
    conn_.send(s);
  } else {
    out_.append(s);
  }
  out_.append("\r\n", 2);
}

void RespWriter::flush() {
  if (!out_.empty()) conn_.send(out_.view());
  out_.clear();
}

}  // namespace netloop::demo::kv

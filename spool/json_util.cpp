#include "spool/json_util.h"

#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

namespace spoold {

std::string DumpJson(const Json& value, int indent) {
  return value.dump(indent, ' ', false, Json::error_handler_t::replace);
}

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is invalid.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  // Reject overlong forms, surrogates and code points past U+10FFFF.
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
      (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
    return 0;
  }
  return n;
}

}  // namespace

std::string SanitizeUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t n = Utf8SequenceLength(text, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

bool JsonDepthWithin(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

bool JsonValueDepthWithin(const Json& value, int max_depth) {
  std::vector<std::pair<const Json*, int>> stack = {{&value, 1}};
  while (!stack.empty()) {
    auto [v, depth] = stack.back();
    stack.pop_back();
    if (!v->is_structured()) continue;
    if (depth > max_depth) return false;
    for (const auto& child : *v) stack.emplace_back(&child, depth + 1);
  }
  return true;
}

std::optional<std::string> FindNonFinite(const Json& value) {
  std::vector<std::pair<const Json*, std::string>> stack;
  stack.emplace_back(&value, "");
  while (!stack.empty()) {
    auto [v, path] = std::move(stack.back());
    stack.pop_back();
    if (v->is_number_float() && !std::isfinite(v->get<double>())) return path;
    // Children are pushed last to first, so that the first is looked at first.
    if (v->is_array()) {
      for (size_t i = v->size(); i-- > 0;) stack.emplace_back(&(*v)[i], path + "[" + std::to_string(i) + "]");
    } else if (v->is_object()) {
      for (auto it = v->rbegin(); it != v->rend(); ++it) {
        stack.emplace_back(&it.value(), path.empty() ? it.key() : path + "." + it.key());
      }
    }
  }
  return std::nullopt;
}

std::string PrintableName(std::string_view text, size_t max_len) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    size_t n = Utf8SequenceLength(text, i);
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (n == 0 || (n == 1 && (c < 0x20 || c == 0x7F))) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string DescribeValue(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return v.get<bool>() ? "true" : "false";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return v.dump();
    case Json::value_t::number_float: {
      // dump() would print NaN and infinities (which TOML allows) as "null".
      const double d = v.get<double>();
      if (std::isnan(d)) return "nan";
      if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
      return v.dump();
    }
    case Json::value_t::string:
      return "a string";
    case Json::value_t::array:
      return v.empty() ? "an empty array" : "an array";
    case Json::value_t::object:
      return v.empty() ? "an empty table" : "a table";
    default:
      return "a value of another type";
  }
}

}  // namespace spoold

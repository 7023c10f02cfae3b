// The checks of one parsed file's fields (a job file, a definition, its
// hooks): each names the field, its line and column, and the rule, and never
// quotes a string's content. Pure: no state but the document.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/duration.h"
#include "config/result.h"
#include "spool/document.h"
#include "spool/json_util.h"

namespace spoold {

// Builds the errors of one document. `field` is what the error names (dotted,
// "command[1]"); `pos_key` is the raw key path used to find its position, which
// differs from `field` only where the field shows an untrusted key name through
// PrintableName.
class FieldChecker {
 public:
  explicit FieldChecker(const Document& doc) : doc_(doc) {}

  Error Fail(std::string code, const std::string& field, std::string message,
             const std::string* pos_key = nullptr) const {
    SourcePos pos = doc_.PositionOf(pos_key != nullptr ? *pos_key : field);
    return MakeError(std::move(code), std::move(message), field, pos.line, pos.column);
  }

  // "<field> must be <rule>, got <what the value is>".
  Error Invalid(const std::string& field, std::string_view rule, const Json& v) const {
    return Fail("invalid_field", field,
                field + " must be " + std::string(rule) + ", got " + DescribeValue(v));
  }

  // A string; `exec` for strings that reach exec() or the environment, where a
  // NUL byte would silently cut the value short.
  Result<std::string> String(const std::string& field, const Json& v, std::string_view rule,
                             bool exec) const {
    if (!v.is_string()) return Invalid(field, rule, v);
    const auto& s = v.get_ref<const std::string&>();
    if (exec && s.find('\0') != std::string::npos) {
      return Fail("invalid_field", field, field + " must not contain a NUL byte");
    }
    return s;
  }

  // An array of strings. `argv`: also non-empty with a non-empty first element
  // (the program), and free of NUL bytes. `rule`: what an error says it must
  // be, when not the default.
  Result<std::vector<std::string>> Strings(const std::string& field, const Json& v, bool argv,
                                           std::string_view rule = {}) const {
    if (rule.empty()) rule = argv ? "a non-empty array of strings" : "an array of strings";
    if (!v.is_array()) return Invalid(field, rule, v);
    if (argv && v.empty()) return Invalid(field, rule, v);
    std::vector<std::string> out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      std::string element = field + "[" + std::to_string(i) + "]";
      auto s = String(element, v[i], "a string", argv);
      if (!s) return s.error();
      if (argv && i == 0 && s->empty()) {
        return Fail("invalid_field", element, element + " (the program) must not be empty");
      }
      out.push_back(std::move(*s));
    }
    return out;
  }

  Result<int64_t> Integer(const std::string& field, const Json& v, int64_t lo, int64_t hi) const {
    std::string rule = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
    if (!v.is_number_integer()) return Invalid(field, rule, v);
    // JSON gives positive integers as unsigned; compare those unsigned so that a
    // value past INT64_MAX cannot wrap into range.
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      if (hi < 0 || u > static_cast<uint64_t>(hi) || (lo > 0 && u < static_cast<uint64_t>(lo))) {
        return Invalid(field, rule, v);
      }
      return static_cast<int64_t>(u);
    }
    int64_t i = v.get<int64_t>();
    if (i < lo || i > hi) return Invalid(field, rule, v);
    return i;
  }

  Result<double> Number(const std::string& field, const Json& v, double lo, double hi) const {
    std::string rule = "a number from " + Json(lo).dump() + " to " + Json(hi).dump();
    if (!v.is_number()) return Invalid(field, rule, v);
    double d = v.get<double>();
    // Written so that NaN fails too.
    if (!(d >= lo && d <= hi)) return Invalid(field, rule, v);
    return d;
  }

  Result<bool> Bool(const std::string& field, const Json& v) const {
    if (!v.is_boolean()) return Invalid(field, "a boolean", v);
    return v.get<bool>();
  }

  Result<Millis> Duration(const std::string& field, const Json& v) const {
    constexpr std::string_view kRule = "a duration (a string such as \"30s\" or a number of seconds)";
    Result<Millis> d = Millis(0);
    if (v.is_string()) {
      d = ParseDuration(v.get_ref<const std::string&>());
    } else if (v.is_number() && std::isfinite(v.get<double>())) {
      d = DurationFromSeconds(v.get<double>());
    } else {
      return Invalid(field, kRule, v);
    }
    if (!d) return Fail("invalid_field", field, field + " " + d.error().message);
    return d;
  }

  Result<Unit> Table(const std::string& field, const Json& v) const {
    if (!v.is_object()) return Invalid(field, "a table", v);
    return Unit{};
  }

 private:
  const Document& doc_;
};

}  // namespace spoold

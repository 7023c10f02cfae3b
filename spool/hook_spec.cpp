#include "spool/hook_spec.h"

#include <string>

namespace spoold {
namespace {

Error Fail(const Document& doc, std::string code, const std::string& field, std::string message) {
  SourcePos pos = doc.PositionOf(field);
  return MakeError(std::move(code), std::move(message), field, pos.line, pos.column);
}

Error Invalid(const Document& doc, const std::string& field, std::string_view rule, const Json& v) {
  return Fail(doc, "invalid_field", field,
              field + " must be " + std::string(rule) + ", got " + DescribeValue(v));
}

// `on`: one name or an array of them, each a known event or "*".
Result<std::vector<std::string>> ValidateOn(const Document& doc, const std::string& field, const Json& v) {
  constexpr std::string_view kRule = "an event name of events.jsonl, \"*\", or an array of them";
  std::vector<const Json*> names;
  std::vector<std::string> fields;
  if (v.is_string()) {
    names.push_back(&v);
    fields.push_back(field);
  } else if (v.is_array() && !v.empty()) {
    for (size_t i = 0; i < v.size(); ++i) {
      names.push_back(&v[i]);
      fields.push_back(field + "[" + std::to_string(i) + "]");
    }
  } else {
    return Invalid(doc, field, kRule, v);
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < names.size(); ++i) {
    const Json& name = *names[i];
    if (!name.is_string()) return Invalid(doc, fields[i], "an event name or \"*\"", name);
    const auto& text = name.get_ref<const std::string&>();
    if (text != "*" && !IsHookEvent(text)) {
      // hook_ok and hook_failed are events, but never delivered: say why.
      const bool own = text == "hook_ok" || text == "hook_failed";
      return Fail(doc, "invalid_field", fields[i],
                  fields[i] +
                      (own ? " names a hook's own outcome, which is never delivered to hooks"
                           : " is not an event of events.jsonl") +
                      "; known events: " + HookEventList() + ", or \"*\" for all");
    }
    out.push_back(text);
  }
  return out;
}

Result<std::vector<std::string>> ValidateCommand(const Document& doc, const std::string& field,
                                                 const Json& v) {
  constexpr std::string_view kRule = "a non-empty array of strings (argv; no shell)";
  if (!v.is_array() || v.empty()) return Invalid(doc, field, kRule, v);
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string element = field + "[" + std::to_string(i) + "]";
    if (!v[i].is_string()) return Invalid(doc, element, "a string", v[i]);
    const auto& s = v[i].get_ref<const std::string&>();
    if (s.find('\0') != std::string::npos) {
      return Fail(doc, "invalid_field", element, element + " must not contain a NUL byte");
    }
    if (i == 0 && s.empty())
      return Fail(doc, "invalid_field", element, element + " (the program) must not be empty");
    out.push_back(s);
  }
  return out;
}

Result<Millis> ValidateTimeout(const Document& doc, const std::string& field, const Json& v) {
  Result<Millis> d = Millis(0);
  if (v.is_string()) {
    d = ParseDuration(v.get_ref<const std::string&>());
  } else if (v.is_number() && std::isfinite(v.get<double>())) {
    d = DurationFromSeconds(v.get<double>());
  } else {
    return Invalid(doc, field, "a duration (a string such as \"30s\" or a number of seconds)", v);
  }
  if (!d) return Fail(doc, "invalid_field", field, field + " " + d.error().message);
  if (*d < kMinHookTimeout || *d > kMaxHookTimeout) {
    return Fail(doc, "invalid_field", field,
                field + " must be a duration from " + FormatDuration(kMinHookTimeout) + " to " +
                    FormatDuration(kMaxHookTimeout) + ", got " + FormatDuration(*d));
  }
  return d;
}

}  // namespace

Result<std::vector<HookSpec>> ValidateHooks(const Document& doc, const Json& value) {
  if (!value.is_array()) {
    return Invalid(doc, "hooks", "an array of tables (written [[hooks]] in TOML)", value);
  }
  if (value.size() > kMaxHooks) {
    return Fail(doc, "invalid_field", "hooks",
                "hooks has " + std::to_string(value.size()) + " hooks; at most " + std::to_string(kMaxHooks) +
                    " are allowed");
  }
  std::vector<HookSpec> out;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string element = "hooks[" + std::to_string(i) + "]";
    const Json& item = value[i];
    if (!item.is_object()) return Invalid(doc, element, "a table with on and command", item);
    HookSpec hook;
    for (const char* required : {"on", "command"}) {
      if (!item.contains(required)) {
        const std::string field = element + "." + required;
        SourcePos pos = doc.PositionOf(element);
        return MakeError("missing_field", field + " is missing: a hook needs on and command", field, pos.line,
                         pos.column);
      }
    }
    auto on = ValidateOn(doc, element + ".on", item["on"]);
    if (!on) return on.error();
    hook.on = std::move(*on);
    auto command = ValidateCommand(doc, element + ".command", item["command"]);
    if (!command) return command.error();
    hook.command = std::move(*command);
    if (auto it = item.find("timeout"); it != item.end()) {
      auto timeout = ValidateTimeout(doc, element + ".timeout", *it);
      if (!timeout) return timeout.error();
      hook.timeout = *timeout;
    }
    if (auto it = item.find("retries"); it != item.end()) {
      const std::string field = element + ".retries";
      const std::string rule = "an integer from 0 to " + std::to_string(kMaxHookRetries);
      if (!it->is_number_integer()) return Invalid(doc, field, rule, *it);
      if (it->is_number_unsigned() ? it->get<uint64_t>() > static_cast<uint64_t>(kMaxHookRetries)
                                   : (it->get<int64_t>() < 0 || it->get<int64_t>() > kMaxHookRetries)) {
        return Invalid(doc, field, rule, *it);
      }
      hook.retries = static_cast<int>(it->get<int64_t>());
    }
    out.push_back(std::move(hook));
  }
  return out;
}

}  // namespace spoold

#include "spool/hook_spec.h"

#include <string>

#include "spool/field_checker.h"

namespace spoold {
namespace {

// `on`: one name or an array of them, each a known event or "*".
Result<std::vector<std::string>> ValidateOn(const FieldChecker& check, const std::string& field,
                                            const Json& v) {
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
    return check.Invalid(field, kRule, v);
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < names.size(); ++i) {
    const Json& name = *names[i];
    if (!name.is_string()) return check.Invalid(fields[i], "an event name or \"*\"", name);
    const auto& text = name.get_ref<const std::string&>();
    if (text != "*" && !IsHookEvent(text)) {
      // hook_ok and hook_failed are events, but never delivered: say why.
      const bool own = text == "hook_ok" || text == "hook_failed";
      return check.Fail("invalid_field", fields[i],
                        fields[i] +
                            (own ? " names a hook's own outcome, which is never delivered to hooks"
                                 : " is not an event of events.jsonl") +
                            "; known events: " + HookEventList() + ", or \"*\" for all");
    }
    out.push_back(text);
  }
  return out;
}

Result<Millis> ValidateTimeout(const FieldChecker& check, const std::string& field, const Json& v) {
  auto d = check.Duration(field, v);
  if (!d) return d.error();
  if (*d < kMinHookTimeout || *d > kMaxHookTimeout) {
    return check.Fail("invalid_field", field,
                      field + " must be a duration from " + FormatDuration(kMinHookTimeout) + " to " +
                          FormatDuration(kMaxHookTimeout) + ", got " + FormatDuration(*d));
  }
  return d;
}

}  // namespace

Result<std::vector<HookSpec>> ValidateHooks(const Document& doc, const Json& value) {
  const FieldChecker check(doc);
  if (!value.is_array()) {
    return check.Invalid("hooks", "an array of tables (written [[hooks]] in TOML)", value);
  }
  if (value.size() > kMaxHooks) {
    return check.Fail("invalid_field", "hooks",
                      "hooks has " + std::to_string(value.size()) + " hooks; at most " +
                          std::to_string(kMaxHooks) + " are allowed");
  }
  std::vector<HookSpec> out;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string element = "hooks[" + std::to_string(i) + "]";
    const Json& item = value[i];
    if (!item.is_object()) return check.Invalid(element, "a table with on and command", item);
    HookSpec hook;
    for (const char* required : {"on", "command"}) {
      if (!item.contains(required)) {
        const std::string field = element + "." + required;
        SourcePos pos = doc.PositionOf(element);
        return MakeError("missing_field", field + " is missing: a hook needs on and command", field, pos.line,
                         pos.column);
      }
    }
    auto on = ValidateOn(check, element + ".on", item["on"]);
    if (!on) return on.error();
    hook.on = std::move(*on);
    auto command = check.Strings(element + ".command", item["command"], /*argv=*/true,
                                 "a non-empty array of strings (argv; no shell)");
    if (!command) return command.error();
    hook.command = std::move(*command);
    if (auto it = item.find("timeout"); it != item.end()) {
      auto timeout = ValidateTimeout(check, element + ".timeout", *it);
      if (!timeout) return timeout.error();
      hook.timeout = *timeout;
    }
    if (auto it = item.find("retries"); it != item.end()) {
      auto retries = check.Integer(element + ".retries", *it, 0, kMaxHookRetries);
      if (!retries) return retries.error();
      hook.retries = static_cast<int>(*retries);
    }
    out.push_back(std::move(hook));
  }
  return out;
}

}  // namespace spoold

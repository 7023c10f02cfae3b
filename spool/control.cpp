#include "spool/control.h"

#include "config/config.h"
#include "spool/job_spec.h"
#include "spool/json_util.h"

namespace spoold {
namespace {

constexpr struct {
  ControlAction action;
  const char* name;
  const char* target;  // the key naming what it acts on
} kActions[] = {{ControlAction::kCancel, "cancel", "job"},
                {ControlAction::kStart, "start", "job"},
                {ControlAction::kPause, "pause", "pool"},
                {ControlAction::kResume, "resume", "pool"}};

// `field` is what the error shows; the position is looked up by the raw key.
Error FieldError(const Document& doc, std::string code, const std::string& field, std::string message,
                 const std::string* raw_key = nullptr) {
  SourcePos pos = doc.PositionOf(raw_key ? *raw_key : field);
  return MakeError(std::move(code), std::move(message), field, pos.line, pos.column);
}

}  // namespace

const char* ControlActionName(ControlAction action) {
  for (const auto& a : kActions) {
    if (a.action == action) return a.name;
  }
  SPOOLD_CHECK(false);
}

Result<ControlRequest> ParseControlRequest(const Document& doc) {
  const Json& v = doc.value;
  auto action_it = v.find("action");
  if (action_it == v.end()) {
    return FieldError(doc, "missing_field", "action", "action is required: cancel, start, pause or resume");
  }
  if (!action_it->is_string()) {
    return FieldError(doc, "invalid_field", "action", "action must be a string: cancel, start, pause or resume");
  }
  const std::string action = action_it->get<std::string>();
  for (const auto& a : kActions) {
    if (action != a.name) continue;
    ControlRequest request;
    request.action = a.action;
    const std::string target = a.target;
    for (const auto& [key, value] : v.items()) {
      if (key != "action" && key != target) {
        return FieldError(doc, "unknown_field", PrintableName(key, 64),
                          "unknown key " + PrintableName(key, 64) + " in a " + action + " request; it takes action and " +
                              target,
                          &key);
      }
    }
    auto it = v.find(target);
    if (it == v.end()) {
      return FieldError(doc, "missing_field", target, "a " + action + " request needs " + target);
    }
    if (!it->is_string()) return FieldError(doc, "invalid_field", target, target + " must be a string");
    const std::string name = it->get<std::string>();
    const bool valid = target == "job" ? IsValidJobId(name) : IsValidPoolName(name);
    if (!valid) {
      return FieldError(doc, "bad_id", target,
                        target + " must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit");
    }
    (target == "job" ? request.job : request.pool) = name;
    return request;
  }
  return FieldError(doc, "invalid_field", "action", "action must be cancel, start, pause or resume");
}

}  // namespace spoold

#include "spool/control.h"

#include <algorithm>
#include <optional>
#include <span>
#include <string_view>

#include "config/closest_key.h"
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

// The first unknown key of a request, judged by the keys of its action when it
// names a known one, by the keys of any request otherwise.
std::optional<Error> UnknownKey(const Document& doc) {
  const Json& v = doc.value;
  auto action = v.find("action");
  const char* target = nullptr;
  for (const auto& a : kActions) {
    if (action != v.end() && *action == a.name) target = a.target;
  }
  const std::string_view any_request[] = {"action", "job", "pool"};
  const std::string_view this_request[] = {"action", target != nullptr ? target : ""};
  const auto known = target != nullptr ? std::span<const std::string_view>(this_request)
                                       : std::span<const std::string_view>(any_request);
  for (const auto& [key, value] : v.items()) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    const std::string shown = PrintableName(key, 64);
    const std::string request =
        target != nullptr ? "a " + action->get<std::string>() + " request" : "a request";
    const std::string takes = target != nullptr ? target : "job or pool";
    return FieldError(
        doc, "unknown_field", shown,
        DidYouMean(shown, key, "", known)
            .value_or("unknown key " + shown + " in " + request + "; it takes action and " + takes),
        &key);
  }
  return std::nullopt;
}

}  // namespace

const char* ControlActionName(ControlAction action) {
  for (const auto& a : kActions) {
    if (a.action == action) return a.name;
  }
  SPOOLD_CHECK(false);
}

Result<ControlRequest> ParseControlRequest(const Document& doc) {
  // Unknown keys first: a misspelt key is the mistake, not what follows from it.
  if (std::optional<Error> unknown = UnknownKey(doc)) return *unknown;
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

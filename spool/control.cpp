#include "spool/control.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "config/closest_key.h"
#include "config/config.h"
#include "spool/job_array.h"
#include "spool/job_spec.h"
#include "spool/json_util.h"

namespace spoold {
namespace {

constexpr struct {
  ControlAction action;
  const char* name;
  const char* target;  // the key naming what it acts on; nullptr: none (shutdown)
  const char* flag;    // an optional boolean key; nullptr: none
} kActions[] = {{ControlAction::kCancel, "cancel", "job", nullptr},
                {ControlAction::kStart, "start", "job", nullptr},
                {ControlAction::kPause, "pause", "pool", nullptr},
                {ControlAction::kResume, "resume", "pool", nullptr},
                {ControlAction::kShutdown, "shutdown", nullptr, "stop_jobs"}};

// "cancel, start, pause, resume or shutdown": the actions, for messages.
const std::string& ActionList() {
  static const std::string list = [] {
    std::string out;
    const size_t n = std::size(kActions);
    for (size_t i = 0; i < n; ++i) {
      out += (i == 0 ? "" : i + 1 == n ? " or " : ", ");
      out += kActions[i].name;
    }
    return out;
  }();
  return list;
}

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
  const auto* known_action = std::find_if(std::begin(kActions), std::end(kActions), [&](const auto& a) {
    return action != v.end() && *action == a.name;
  });
  const bool named = known_action != std::end(kActions);
  const std::string_view any_request[] = {"action", "job", "pool", "stop_jobs"};
  std::vector<std::string_view> this_request = {"action"};
  if (named && known_action->target != nullptr) this_request.push_back(known_action->target);
  if (named && known_action->flag != nullptr) this_request.push_back(known_action->flag);
  const auto known = named ? std::span<const std::string_view>(this_request)
                           : std::span<const std::string_view>(any_request);
  for (const auto& [key, value] : v.items()) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    const std::string shown = PrintableName(key, 64);
    const std::string request = named ? "a " + std::string(known_action->name) + " request" : "a request";
    std::string takes = "action and job, pool or stop_jobs";
    if (named) {
      takes = "action";
      for (size_t i = 1; i < this_request.size(); ++i) {
        takes += (i + 1 == this_request.size() ? " and " : ", ") + std::string(this_request[i]);
      }
    }
    return FieldError(doc, "unknown_field", shown,
                      DidYouMean(shown, key, "", known)
                          .value_or("unknown key " + shown + " in " + request + "; it takes " + takes),
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
    return FieldError(doc, "missing_field", "action", "action is required: " + ActionList());
  }
  if (!action_it->is_string()) {
    return FieldError(doc, "invalid_field", "action", "action must be a string: " + ActionList());
  }
  const std::string action = action_it->get<std::string>();
  for (const auto& a : kActions) {
    if (action != a.name) continue;
    ControlRequest request;
    request.action = a.action;
    if (a.flag != nullptr) {
      // Optional: absent is false, so that the plain request is the safe one.
      const std::string flag = a.flag;
      if (auto it = v.find(flag); it != v.end()) {
        if (!it->is_boolean()) return FieldError(doc, "invalid_field", flag, flag + " must be true or false");
        request.stop_jobs = it->get<bool>();
      }
    }
    if (a.target == nullptr) return request;
    const std::string target = a.target;
    auto it = v.find(target);
    if (it == v.end()) {
      return FieldError(doc, "missing_field", target, "a " + action + " request needs " + target);
    }
    if (!it->is_string()) return FieldError(doc, "invalid_field", target, target + " must be a string");
    const std::string name = it->get<std::string>();
    const bool valid = target == "job" ? IsValidJobRef(name) : IsValidPoolName(name);
    if (!valid) {
      return FieldError(doc, "bad_id", target,
                        target + " must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit");
    }
    (target == "job" ? request.job : request.pool) = name;
    return request;
  }
  return FieldError(doc, "invalid_field", "action", "action must be " + ActionList());
}

}  // namespace spoold

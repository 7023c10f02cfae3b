#include "spool/job_after.h"

#include <set>

#include "spool/job_array.h"
#include "spool/job_spec.h"

namespace spoold {
namespace {

Error Fail(const Document& doc, std::string code, const std::string& field, std::string message,
           const std::string* pos_key = nullptr) {
  SourcePos pos = doc.PositionOf(pos_key != nullptr ? *pos_key : field);
  return MakeError(std::move(code), std::move(message), field, pos.line, pos.column);
}

constexpr size_t kShownIds = 5;

}  // namespace

std::string FewOf(const std::vector<std::string>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size() && i < kShownIds; ++i) out += (i > 0 ? ", " : "") + ids[i];
  if (ids.size() > kShownIds) out += " and " + std::to_string(ids.size() - kShownIds) + " more";
  return out;
}

bool AfterHolds(AfterOn on, JobState state) {
  SPOOLD_CHECK(IsTerminal(state));
  switch (on) {
    case AfterOn::kSuccess:
      return state == JobState::kSucceeded;
    case AfterOn::kFailure:
      return state == JobState::kFailed;
    case AfterOn::kAny:
      return true;
  }
  return false;
}

Result<std::vector<Dependency>> ValidateAfter(const Document& doc, const Json& value, const std::string& id,
                                              int max_after) {
  constexpr std::string_view kRule = "an array of job ids or {job, on} tables";
  if (!value.is_array()) {
    return Fail(
        doc, "invalid_field", "after",
        "after must be " + std::string(kRule) + ", got " +
            (value.is_string() ? std::string("a string (write [\"...\"] for one job)") : value.type_name()));
  }
  // Checked before any element: a hostile list costs nothing more than its parse.
  if (value.size() > static_cast<size_t>(max_after)) {
    return Fail(doc, "invalid_field", "after",
                "after names " + std::to_string(value.size()) + " jobs; at most " +
                    std::to_string(max_after) + " are allowed (dependencies.max_after)");
  }
  std::vector<Dependency> out;
  out.reserve(value.size());
  std::set<std::string> seen;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string element = "after[" + std::to_string(i) + "]";
    const Json& item = value[i];
    Dependency dep;
    std::string job_field = element;
    const Json* job = &item;
    if (item.is_object()) {
      job_field = element + ".job";
      auto it = item.find("job");
      if (it == item.end()) {
        return Fail(doc, "missing_field", job_field, job_field + " is missing: the table names no job",
                    &element);
      }
      job = &*it;
      if (auto on = item.find("on"); on != item.end()) {
        const std::string on_field = element + ".on";
        std::optional<AfterOn> parsed = on->is_string() ? ParseAfterOn(on->get<std::string>()) : std::nullopt;
        if (parsed) {
          dep.on = *parsed;
        } else {
          return Fail(doc, "invalid_field", on_field,
                      on_field + " must be \"success\", \"failure\" or \"any\", got " +
                          (on->is_string() ? "another string" : on->type_name()));
        }
      }
    } else if (!item.is_string()) {
      return Fail(doc, "invalid_field", element,
                  element + " must be a job id or a {job, on} table, got " + item.type_name());
    }
    if (!job->is_string() || !IsValidJobRef(job->get_ref<const std::string&>())) {
      return Fail(doc, "invalid_field", job_field,
                  job_field +
                      " must be a job id ([A-Za-z0-9][A-Za-z0-9._-]{0,127}) or a task id (id:index), got " +
                      (job->is_string() ? "another string" : job->type_name()));
    }
    dep.job = job->get<std::string>();
    if (dep.job == id) {
      return Fail(doc, "dependency_cycle", job_field,
                  job_field + " names the job itself: it would wait forever");
    }
    if (!seen.insert(dep.job).second) {
      return Fail(doc, "invalid_field", job_field,
                  job_field + " names " + dep.job + " a second time: each parent may be named once");
    }
    out.push_back(std::move(dep));
  }
  return out;
}

}  // namespace spoold

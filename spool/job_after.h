// A job file's `after` (SPEC.md section 2): the jobs it waits for, each with the
// way the parent must end for this job to run. Validated here, decided by the
// scheduler (daemon/scheduler.h). Pure: no state, no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/result.h"
#include "spool/document.h"
#include "spool/status.h"

namespace spoold {

// The keys of an `after` table.
inline constexpr std::string_view kAfterKeys[] = {"job", "on"};

// "a, b, c": the first five of `ids`, then "and N more", for messages.
std::string FewOf(const std::vector<std::string>& ids);

// Whether a parent that ended in `state` satisfies `on`.
bool AfterHolds(AfterOn on, JobState state);

// Validates `value`, the `after` of job `id`'s file `doc`: an array of at most
// `max_after` job ids or {job, on} tables, each parent once. Errors name the
// element (after[2], after[0].on) with its line and column: invalid_field,
// missing_field, and dependency_cycle for a job that names itself. A table's
// unknown key is reported before (ValidateJobSpec: unknown keys come first).
Result<std::vector<Dependency>> ValidateAfter(const Document& doc, const Json& value, const std::string& id,
                                              int max_after);

}  // namespace spoold

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

// Whether a parent that ended in `state` satisfies `on`.
bool AfterHolds(AfterOn on, JobState state);

// Validates `value`, the `after` of job `id`'s file `doc`: an array of at most
// `max_after` job ids or {job, on} tables, each parent once. Errors name the
// element (after[2], after[0].on) with its line and column: invalid_field,
// unknown_field, missing_field, and dependency_cycle for a job that names itself.
Result<std::vector<Dependency>> ValidateAfter(const Document& doc, const Json& value, const std::string& id,
                                              int max_after);

}  // namespace spoold

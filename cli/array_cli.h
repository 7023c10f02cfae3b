// Job arrays in spoolctl (SPEC.md section 5, "Job arrays"): the --array,
// --parallel and --max-failed options that submit and run write into the job
// file's [array], the task counts that status, list and wait show, where a
// task without a folder stands, and the indexes `rerun --failed` runs again.
// Reads the spool's files through spool/ and writes none; the daemon alone
// decides what an array does.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli/args.h"
#include "cli/common.h"
#include "spool/job_array.h"
#include "spool/status.h"

namespace spoold::cli {

// --array, --parallel and --max-failed as given.
struct ArrayOptions {
  std::optional<std::string> indexes;
  std::optional<int64_t> parallel;
  std::optional<int64_t> max_failed;

  bool Any() const { return indexes || parallel || max_failed; }
};

// The options of `args`. Errors are usage errors naming the option: indexes
// that do not parse, a limit out of range, --parallel or --max-failed
// without --array.
Result<ArrayOptions> ParseArrayOptions(const Args& args);

// Writes `options` into `job`'s [array] (made when missing). What the file's
// table has besides (items, a limit not given) is kept, so --array on a file
// with items picks the items by position.
void ApplyArrayOptions(const ArrayOptions& options, Json& job);

// The [array] of validate --explain: indexes, task count, items, limits.
Json ArrayEffective(const ArraySpec& array);

// A `tasks` object of status.json or index.json (spool's TaskCountsFromJson);
// nullopt when `tasks` is none (a job that is no array) or is malformed.
std::optional<TaskCounts> TaskCountsOf(const Json& tasks);

// "12/100 tasks, 8 running, 2 failed": ended of all, then the running,
// failed and cancelled ones that there are.
std::string TaskCountsText(const TaskCounts& counts);

// The lines `status` adds for an array (tasks, progress, failed indexes) or a
// task (its array), as key and value; none for another job.
std::vector<std::pair<std::string, std::string>> ArrayStatusRows(const std::string& id, const Json& status);

// Where a task without a folder stands.
enum class TaskPlace {
  kNotStarted,    // its array is accepted, has not ended and has that index
  kArrayWaiting,  // its array waits in incoming/
  kNeverStarted,  // its array ended before it started
  kUnknown,       // no such array, no array, or no such index
};
struct TaskLookup {
  TaskPlace place = TaskPlace::kUnknown;
  std::string message;  // a sentence saying so, naming the task
};
// Looks up `task` from its array's status.json and job file; for a task whose
// folder exists the answer means nothing.
TaskLookup LookUpTask(const Context& ctx, const TaskRef& task);

// The failed indexes of array `id` for rerun --failed; an error saying why
// there are none: the job is a task or no array, it has not ended, or none of
// its tasks failed.
Result<std::string> FailedIndexesToRerun(const Context& ctx, const std::string& id);

}  // namespace spoold::cli

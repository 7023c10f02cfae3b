#include "cli/array_cli.h"

#include "spool/fileio.h"
#include "spool/job_store.h"

namespace spoold::cli {
namespace {

// A job file may be up to spool.max_job_file_size; an array's items make
// the large ones. The daemon refused anything larger at intake.
constexpr size_t kJobFileCap = size_t{64} << 20;

// "0-99", "1,3,5-9:2": the ranges as ParseIndexes reads them.
std::string RangesText(const std::vector<IndexRange>& ranges) {
  std::string out;
  for (const auto& r : ranges) {
    if (!out.empty()) out += ',';
    out += std::to_string(r.first);
    if (r.last != r.first) out += '-' + std::to_string(r.last);
    if (r.step != 1) out += ':' + std::to_string(r.step);
  }
  return out;
}

// The [array] of job `id`'s file; nullopt when the file cannot be read or
// has no valid one (then nothing can be said about its indexes).
std::optional<ArraySpec> ReadArraySpec(const Context& ctx, const std::string& id) {
  auto file = JobStore(ctx.Paths()).ReadJobFile(id, kJobFileCap);
  if (!file.ok()) return std::nullopt;
  auto doc = ParseDocument(file->second, file->first);
  if (!doc.ok() || !doc->value.is_object()) return std::nullopt;
  auto table = doc->value.find("array");
  if (table == doc->value.end()) return std::nullopt;
  auto spec = ValidateArray(*doc, *table);
  if (!spec.ok()) return std::nullopt;
  return std::move(spec.value());
}

// "running (in_queue)" or "succeeded".
std::string StateText(const Json& status) {
  std::string out = JsonString(status, "state", "?");
  if (std::string reason = JsonString(status, "reason"); !reason.empty()) out += " (" + reason + ")";
  return out;
}

}  // namespace

Result<ArrayOptions> ParseArrayOptions(const Args& args) {
  ArrayOptions out;
  if (auto text = args.Value("array")) {
    auto ranges = ParseIndexes(*text);
    if (!ranges.ok()) {
      // The message reads on from the name, as array.indexes' does.
      return MakeError("usage",
                       "--array " + ranges.error().message + "; give indexes such as 0-99 or 1,3,5-9:2");
    }
    out.indexes = *text;
  }
  for (const auto& [name, slot] : {std::pair{"parallel", &out.parallel}, {"max-failed", &out.max_failed}}) {
    auto text = args.Value(name);
    if (!text) continue;
    const std::string option = std::string("--") + name;
    // The limits belong to the [array] table: alone they would be written
    // into a job that is no array, which the daemon refuses.
    if (!out.indexes) return MakeError("usage", option + " is only valid with --array (the tasks it limits)");
    auto value = ParseIntArg(option, *text, 0, kMaxArrayLimit);
    if (!value.ok()) return value.error();
    *slot = *value;
  }
  return out;
}

void ApplyArrayOptions(const ArrayOptions& options, Json& job) {
  if (!options.Any()) return;
  // A non-table [array] stays as it is: validation names it.
  if (!job.contains("array")) job["array"] = Json::object();
  Json& table = job["array"];
  if (!table.is_object()) return;
  if (options.indexes) table["indexes"] = *options.indexes;
  if (options.parallel) table["parallel"] = *options.parallel;
  if (options.max_failed) table["max_failed"] = *options.max_failed;
}

Json ArrayEffective(const ArraySpec& array) {
  return Json{{"indexes", RangesText(array.ranges)},
              {"tasks", array.count},
              {"items", array.items.size()},
              {"parallel", array.parallel == 0 ? Json("the pool's workers") : Json(array.parallel)},
              {"max_failed", array.max_failed == 0 ? Json("no limit") : Json(array.max_failed)}};
}

std::optional<TaskCounts> TaskCountsOf(const Json& tasks) {
  auto counts = TaskCountsFromJson(tasks);
  if (!counts.ok()) return std::nullopt;
  return *counts;
}

std::string TaskCountsText(const TaskCounts& c) {
  std::string out = std::to_string(c.Ended()) + "/" + std::to_string(c.total) + " tasks";
  if (c.running > 0) out += ", " + std::to_string(c.running) + " running";
  if (c.failed > 0) out += ", " + std::to_string(c.failed) + " failed";
  if (c.cancelled > 0) out += ", " + std::to_string(c.cancelled) + " cancelled";
  return out;
}

std::vector<std::pair<std::string, std::string>> ArrayStatusRows(const std::string& id, const Json& status) {
  std::vector<std::pair<std::string, std::string>> rows;
  if (auto array = status.find("array"); array != status.end() && array->is_string()) {
    const Json& index = status.value("array_index", Json(nullptr));
    rows.emplace_back("task", "task " + JsonText(index) + " of array " + array->get<std::string>());
  }
  auto counts = TaskCountsOf(status.value("tasks", Json(nullptr)));
  if (!counts) return rows;
  const TaskCounts& c = *counts;
  rows.emplace_back("tasks", std::to_string(c.total) + ": " + std::to_string(c.queued) + " queued, " +
                                 std::to_string(c.running) + " running, " + std::to_string(c.succeeded) +
                                 " succeeded, " + std::to_string(c.failed) + " failed, " +
                                 std::to_string(c.cancelled) + " cancelled");
  const uint64_t percent = c.total == 0 ? 0 : c.Ended() * 100 / c.total;
  rows.emplace_back("progress", std::to_string(percent) + "% (" + std::to_string(c.Ended()) + " of " +
                                    std::to_string(c.total) + " tasks ended)");
  const std::string failed = JsonString(status, "failed_indexes");
  if (!failed.empty()) {
    std::string hint = "spoolctl status " + id + ":INDEX";
    if (IsTerminalStateName(JsonString(status, "state")))
      hint += "; again: spoolctl rerun " + id + " --failed";
    rows.emplace_back("failed", failed + "  (" + hint + ")");
  }
  return rows;
}

TaskLookup LookUpTask(const Context& ctx, const TaskRef& task) {
  const std::string id = TaskId(task.array, task.index);
  const std::string& array = task.array;
  if (!PathExists(ctx.Paths().JobDir(array))) {
    if (std::string file = IncomingFileOf(ctx, array); !file.empty()) {
      return {TaskPlace::kArrayWaiting,
              "task " + id + " has not started: its array is not accepted yet (incoming/" + file + " waits)"};
    }
    return {TaskPlace::kUnknown, "no task " + id + ": " + MissingJobMessage(ctx, array)};
  }
  auto status = ReadJsonFile(ctx.Paths().StatusFile(array), 64 << 20);
  if (!status.ok()) {
    return {TaskPlace::kUnknown, "task " + id + " has no folder, and its array's status cannot be read: " +
                                     status.error().message};
  }
  auto counts = TaskCountsOf(status->value("tasks", Json(nullptr)));
  if (!counts) return {TaskPlace::kUnknown, "no task " + id + ": job " + array + " is no array"};
  // An array that gave no tasks would not be accepted, so a file that cannot
  // be read here leaves the question open rather than closing it.
  if (auto spec = ReadArraySpec(ctx, array); spec && !spec->PositionOf(task.index)) {
    return {TaskPlace::kUnknown, "no task " + id + ": array " + array + " has the indexes " +
                                     RangesText(spec->ranges) + " (" + std::to_string(spec->count) +
                                     " tasks)"};
  }
  const std::string state = StateText(*status);
  // How the tasks not started ended, once the array said so (halted_by).
  const std::string halted = JsonString(*status, "halted_by");
  if (!halted.empty()) {
    const bool failed = halted == "deadline";
    return {TaskPlace::kNeverStarted, "task " + id + " never started: " + (failed ? "failed" : "cancelled") +
                                          " (" + halted + ") with array " + array + ", which is " + state};
  }
  if (IsTerminalStateName(JsonString(*status, "state"))) {
    return {TaskPlace::kNeverStarted, "task " + id + " never started: array " + array + " ended " + state};
  }
  return {TaskPlace::kNotStarted, "task " + id + " has not started yet (array " + array + " is " + state +
                                      ", " + TaskCountsText(*counts) + ")"};
}

Result<std::string> FailedIndexesToRerun(const Context& ctx, const std::string& id) {
  if (auto task = ParseTaskId(id)) {
    return MakeError("usage", id + " is a task: rerun its array's failed tasks with spoolctl rerun " +
                                  task->array + " --failed");
  }
  auto status = LoadStatusJson(ctx, id);
  if (!status.ok()) return status.error();
  auto counts = TaskCountsOf(status->value("tasks", Json(nullptr)));
  if (!counts)
    return MakeError("usage", "job " + id + " is no array: --failed reruns an array's failed tasks");
  const std::string state = JsonString(*status, "state");
  if (!IsTerminalStateName(state)) {
    return MakeError("invalid_state", "array " + id + " has not ended (it is " + StateText(*status) + ", " +
                                          TaskCountsText(*counts) +
                                          "): its failed tasks are known once it has; spoolctl wait " + id);
  }
  const std::string failed = JsonString(*status, "failed_indexes");
  if (failed.empty() || counts->failed == 0) {
    return MakeError("invalid_state", "array " + id + " has no failed tasks (it ended " + StateText(*status) +
                                          ", " + TaskCountsText(*counts) + ")");
  }
  return failed;
}

}  // namespace spoold::cli

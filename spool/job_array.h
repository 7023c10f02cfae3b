// A job file's `[array]` (SPEC.md section 5, "Job arrays"): the tasks one job
// fans out to, as index ranges and optional items, with the limits on how
// many run and fail. Also the task ids (`<array>:<index>`) and the compact
// range form that status.json's failed_indexes uses. Validated here, run by
// the scheduler (daemon/scheduler_array.cpp). Pure: no state, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/result.h"
#include "spool/document.h"

namespace spoold {

// The keys of the `[array]` table.
inline constexpr std::string_view kArrayKeys[] = {"indexes", "items", "parallel", "max_failed"};

inline constexpr int64_t kMaxArrayIndex = 999'999'999;
inline constexpr uint64_t kMaxArrayTasks = 1'000'000;
inline constexpr int64_t kMaxArrayLimit = 1'000'000;  // parallel, max_failed

// first, first + step, ... up to last (inclusive; last is on the step).
struct IndexRange {
  int64_t first = 0;
  int64_t last = 0;
  int64_t step = 1;
  uint64_t Count() const { return static_cast<uint64_t>((last - first) / step) + 1; }
  bool operator==(const IndexRange&) const = default;
};

struct ArraySpec {
  std::vector<IndexRange> ranges;  // ascending, disjoint; never empty
  std::vector<std::string> items;  // empty unless the file gives items
  int64_t parallel = 0;            // 0: the pool's workers
  int64_t max_failed = 0;          // 0: never halts
  uint64_t count = 0;              // tasks in all (Seal)
  std::vector<uint64_t> starts;    // the position of each range's first task (Seal)

  // Computes count and starts from ranges: once they are set.
  void Seal();

  // The index of the task at `position` (0 .. count-1), in start order;
  // O(log ranges), like PositionOf.
  int64_t IndexAt(uint64_t position) const;
  // The position of task `index`, if the array has it.
  std::optional<uint64_t> PositionOf(int64_t index) const;
  // The item of task `index` (items only).
  const std::string* ItemOf(int64_t index) const;
  bool operator==(const ArraySpec&) const = default;
};

// Parses "1,3,5-9:2" (SPEC.md): ascending, no repeats, each index
// 0..kMaxArrayIndex. The error message says what is wrong, without the field.
Result<std::vector<IndexRange>> ParseIndexes(std::string_view text);

// The ranges of ascending `indexes` in the form ParseIndexes reads: runs of
// consecutive numbers as a-b, the rest one by one ("3,7-9").
std::string FormatIndexes(const std::vector<int64_t>& indexes);

// Validates `value`, the `[array]` of a job file (errors name array.indexes,
// array.items, array.parallel or array.max_failed with their position).
Result<ArraySpec> ValidateArray(const Document& doc, const Json& value);

// "sweep:7" for task 7 of array sweep.
std::string TaskId(const std::string& array, int64_t index);
// A task id's array and index; nullopt for an id that is no task id (a job
// id never holds ':').
struct TaskRef {
  std::string array;
  int64_t index = 0;
};
std::optional<TaskRef> ParseTaskId(std::string_view id);

// A job id, or a task id whose array part is one (control requests, `after`).
bool IsValidJobRef(std::string_view id);

}  // namespace spoold

// A job's state as status.json holds it (SPEC.md section 4): the record, its
// states and reasons with one name table each, and the JSON form both ways.
// Also the shape of one events.jsonl line. Pure: no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/resources.h"
#include "config/result.h"
#include "spool/json_util.h"
#include "spool/time_util.h"

namespace spoold {

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled };

enum class Reason {
  kNone,
  kInQueue,
  kHeld,
  kPoolPaused,
  kRetryBackoff,
  kNonzeroExit,
  kTimeout,
  kSignal,
  kSpawnFailed,
  kDeadline,
  kInterrupted,
  kCancelledByUser,
  kDependency,         // queued: a parent named in `after` has not ended yet
  kDependencyMissing,  // cancelled: a parent was not submitted within dependencies.missing_grace
  kDependencyFailed,   // cancelled: a parent ended in a way its `after` condition excludes
  kTasksFailed,        // failed: an array with at least one failed task
  kArrayHalted,        // cancelled: a task its array's max_failed kept from starting
  kResources,          // queued: its pool's reserved job, waiting for CPUs, memory or GPUs
  kOutOfMemory,        // an attempt the kernel killed at its memory limit
};

const char* StateName(JobState state);
std::optional<JobState> ParseState(std::string_view name);
const char* ReasonName(Reason reason);  // nullptr for kNone (JSON null)
std::optional<Reason> ParseReason(std::string_view name);
bool IsTerminal(JobState state);

// Signal numbers as names ("KILL"), for status.json and messages.
std::string SignalName(int signal);

// How a parent named in `after` must end: `success` (succeeded), `failure`
// (failed, whatever the reason) or `any` (any terminal state, cancelled
// included). SPEC.md section 5.
enum class AfterOn { kSuccess, kFailure, kAny };

struct Dependency {
  std::string job;
  AfterOn on = AfterOn::kSuccess;
  bool operator==(const Dependency&) const = default;
};

const char* AfterOnName(AfterOn on);
std::optional<AfterOn> ParseAfterOn(std::string_view name);

struct AttemptRecord {
  int attempt = 0;
  TimePoint started{};
  std::optional<TimePoint> finished;
  std::optional<int> exit_code;
  std::optional<std::string> signal;
  Reason reason = Reason::kNone;  // why it ended badly; kNone when it succeeded
  double duration_s = 0;
  double cpu_user_s = 0;
  double cpu_sys_s = 0;
  int64_t max_rss_kb = 0;
  std::optional<int64_t> pid;
  // The process's start time in clock ticks since boot (/proc/PID/stat field
  // 22): with the pid, it tells a restarted daemon whether a recorded process is
  // still the same one.
  std::optional<uint64_t> pid_start;
  // For a slurm pool: the Slurm job id of this attempt; with it a restarted
  // daemon follows the attempt again instead of submitting it twice.
  std::optional<std::string> slurm_job_id;
  // A local attempt: the pid of its supervisor (spoold-exec, SPEC.md section
  // 5), and the boot it ran in (/proc/sys/kernel/random/boot_id). With them a
  // restarted daemon re-adopts the attempt, or knows that it cannot be alive.
  std::optional<int64_t> supervisor_pid;
  std::optional<std::string> boot_id;
  // What the attempt was given (SPEC.md section 5, "Resources"): CPU numbers,
  // GPU devices, its cgroup's memory limit, and the most memory the cgroup used.
  std::vector<int> cpus;
  std::vector<int> gpus;
  std::optional<int64_t> memory_limit;
  std::optional<int64_t> memory_peak;
  bool operator==(const AttemptRecord&) const = default;
};

// An array's tasks by state (SPEC.md section 5); queued counts those not
// started and those waiting to retry.
struct TaskCounts {
  uint64_t total = 0;
  uint64_t queued = 0;
  uint64_t running = 0;
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t cancelled = 0;
  uint64_t Ended() const { return succeeded + failed + cancelled; }
  bool operator==(const TaskCounts&) const = default;
};

struct JobStatus {
  uint64_t seq = 0;
  std::string id;
  std::string title;
  std::string pool;
  std::vector<std::string> tags;
  int64_t priority = 0;
  std::string owner;
  int64_t owner_uid = -1;  // the submitter's uid: jobs run as this user when spoold is root
  Json metadata = Json::object();
  JobState state = JobState::kQueued;
  Reason reason = Reason::kInQueue;
  std::string message;
  int attempt = 0;  // the number of the current or last attempt; 0 before the first
  int max_attempts = 1;
  std::optional<int> exit_code;
  std::optional<std::string> signal;
  std::optional<double> progress;  // 0..100, from the job's progress file
  std::optional<std::string> progress_message;
  std::optional<int64_t> pid;
  std::optional<TimePoint> next_attempt_at;
  TimePoint created{};
  std::optional<TimePoint> started;
  std::optional<TimePoint> finished;
  TimePoint updated{};
  int interruptions = 0;  // attempts stopped by daemon shutdowns or crashes
  // The parents of `after` whose end is still awaited (SPEC.md section 5), in
  // the order the job file names them; empty once every condition holds.
  std::vector<std::string> waiting_on;
  std::vector<Dependency> after;  // the job file's `after`, as accepted
  // An array: its tasks by state, and the failed ones as ranges ("3,7-9").
  std::optional<TaskCounts> tasks;
  std::optional<std::string> failed_indexes;
  // Why an array's tasks not started yet will not start (halted by
  // max_failed, cancelled, deadline, ...); kNone while they may.
  Reason halted_by = Reason::kNone;
  // A run of a definition (SPEC.md section 2): {"name", "revision",
  // "params"}, the params as resolved; null for any other job.
  Json definition = nullptr;
  // A task: the array it belongs to, and its index there.
  std::optional<std::string> array;
  std::optional<int64_t> array_index;
  // What the job asked for, its pool's defaults applied, when it was accepted.
  ResourceAmounts resources;
  std::vector<AttemptRecord> attempts;
  bool operator==(const JobStatus&) const = default;
};

Json StatusToJson(const JobStatus& status);
Json TaskCountsJson(const TaskCounts& counts);
// status.json's `resources`: {"cpus", "memory", "gpus"}.
Json ResourcesJson(const ResourceAmounts& resources);
// status.json's `tasks` object; an error names the member that is not a count.
Result<TaskCounts> TaskCountsFromJson(const Json& tasks);
Result<JobStatus> StatusFromJson(const Json& json);

// The summary of a job that index.json holds (SPEC.md section 7).
Json IndexEntry(const JobStatus& status);

enum class Level { kDebug, kInfo, kWarning, kError };
const char* LevelName(Level level);

struct Event {
  Level level = Level::kInfo;
  std::string event;  // accepted, started, exited, ... (SPEC.md section 4)
  int attempt = 0;
  std::string message;
  Json extra = Json::object();  // further fields, merged into the line
};

// One events.jsonl line (with its newline).
std::string EventLine(const Event& event, uint64_t seq, TimePoint time);

}  // namespace spoold

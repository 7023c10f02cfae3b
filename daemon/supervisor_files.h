// What the daemon learns of a local attempt's supervisor (spoold-exec,
// daemon/exec_protocol.h) from the kernel and from the attempt's folder: its
// outcome file, the lock it holds while it lives, and the boot it ran in. Used
// when an attempt ends and when a restarted daemon re-adopts the attempts that
// ran on without it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "config/result.h"
#include "daemon/scheduler.h"

namespace spoold {

struct KillRecord {
  int signal = 0;
  TimePoint at{};
  bool leftovers = false;  // sent to what the main process left behind
};

// The supervisor's outcome.json, in the daemon's terms.
struct Outcome {
  int protocol = 0;
  AttemptEnd end;                                  // exit code or signal, cause, CPU and memory
  std::optional<std::pair<int, int>> spawn_error;  // exec_protocol kStage*, errno
  std::vector<KillRecord> kills;
  bool survivors = false;  // something of the job survived SIGKILL
  TimePoint ended{};
};

// Parses an outcome file's text. An error (code "io_error") names what is
// wrong; a protocol this daemon does not know is one ("unknown_protocol").
Result<Outcome> ParseOutcome(const std::string& text);

// Reads `attempt_dir`/outcome.json; nullopt when there is none.
std::optional<Result<Outcome>> ReadOutcome(const std::string& attempt_dir);

// The pid of the process that holds the supervisor lock of `attempt_dir`, or
// nullopt when nobody holds it (or there is no lock file).
std::optional<pid_t> LockHolder(const std::string& attempt_dir);

// This boot's id (/proc/sys/kernel/random/boot_id), or "" if unknown.
std::string BootId();

// A pidfd for `pid`, which must be the holder of `attempt_dir`'s lock: checked
// again after the pidfd is open, so that a pid reused meanwhile is never
// taken for the supervisor. -1 if the supervisor is gone.
int OpenSupervisor(pid_t pid, const std::string& attempt_dir);

// Stops what is left of a job whose supervisor died without an outcome
// (SIGKILL): the job's main process died with it (PR_SET_PDEATHSIG), and
// whatever else of its session runs is killed. Never signals a process that
// is not the job's: the session's members are the job's only while the pid
// `job_pid` is either gone (a session id is not reused while a member lives)
// or still the same process (`job_start`, /proc/PID/stat field 22). Returns
// what it did, for the job's history.
std::string StopOrphanedJob(pid_t job_pid, std::optional<uint64_t> job_start);

}  // namespace spoold

// What runs an attempt: the interface between the daemon and its executors
// (the local one, daemon/supervised_executor.h, and Slurm's,
// daemon/slurm_executor.h). The loop and the scheduler know neither processes
// nor Slurm commands: an executor is handed an attempt (Start), lets it go once
// the daemon has made its start durable (Release), stops it when asked (Stop),
// and reports what happens to it through its ExecutorHost, on the loop's
// thread. ninja's CommandRunner is the model; tests/unit/attempts_test.cpp
// drives the daemon's side (daemon/attempts.h) with a fake.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/result.h"
#include "daemon/local_executor.h"
#include "daemon/scheduler.h"
#include "spool/json_util.h"
#include "spool/status.h"

namespace spoold {

// Everything the daemon computes for one attempt before it starts.
struct AttemptSpec {
  std::string id;
  int attempt = 0;
  // The command, its environment, working folder and user, and the attempt's
  // log files (open descriptors: the executor owns and closes them).
  LaunchSpec launch;
  KillPolicy kill;
  Millis timeout{0};                  // 0: none
  std::optional<TimePoint> deadline;  // the job's, if it has one
  SlurmPoolConfig slurm;              // the pool's (Slurm pools only)
  // What the scheduler gave the attempt (SPEC.md section 5, "Resources"): the
  // local executor binds it to its CPUs and, for a memory request, runs it in
  // a cgroup with that limit; the environment already names its CPUs and GPUs.
  ResourceGrant grant;
  // What the job asked for (status.json's `resources`, its pool's defaults
  // applied): a Slurm pool hands it to sbatch (--cpus-per-task, --mem,
  // --gres=gpu:N); the local executor goes by `grant`.
  ResourceAmounts request;
};

// What the daemon records in the attempt before it is released.
struct StartInfo {
  std::optional<int64_t> pid;  // the job's main process (local); none: not running yet (Slurm)
  std::optional<uint64_t> pid_start;
  std::optional<int64_t> supervisor_pid;
  std::optional<std::string> boot_id;
  // The memory limit its cgroup enforces; nullopt: none.
  std::optional<int64_t> memory_limit;
  // What of the grant this host cannot enforce ("memory: no cgroup can be
  // made here (...)"), for the job's resources_not_enforced warning; "": all.
  std::string not_enforced;
};

// How the daemon is doing, as far as its attempts are concerned.
enum class StopMode {
  kRunning,    // not stopping
  kLeaveJobs,  // stopping, leaving the jobs running (adopted at the next start)
  kStopJobs,   // stopping, and stopping the local jobs (recorded interrupted)
};

// What an executor reports, and the little it asks. Called on the loop's thread.
class ExecutorHost {
 public:
  virtual ~ExecutorHost() = default;
  // An event in the job's history (events.jsonl).
  virtual void AttemptEvent(const std::string& id, Level level, const std::string& event,
                            const std::string& message, Json extra = Json::object()) = 0;
  // A Slurm attempt was accepted by sbatch.
  virtual void AttemptSubmitted(const std::string& id, const std::string& slurm_id, TimePoint now) = 0;
  // The attempt ended: its `cause` says why if the daemon ended it.
  virtual void AttemptEnded(const std::string& id, const AttemptEnd& end, TimePoint now) = 0;
  // The attempt never ran its command: requeued without counting if the machine
  // (or Slurm) is short of something (codes transient, io_error), else spawn_failed.
  virtual void AttemptNeverRan(const std::string& id, const Error& error, TimePoint now) = 0;
  // Let go before it ran (a stop): back to the head of its queue, not counted.
  virtual void AttemptNotStarted(const std::string& id, const std::string& why, TimePoint now) = 0;
  // When the attempt must be stopped (its timeout or deadline), for executors
  // that enforce them (Slurm); the local supervisor enforces its own.
  virtual std::optional<std::pair<TimePoint, Reason>> AttemptLimit(const std::string& id) const = 0;
  // A problem of the machine or of Slurm, logged once until it is over.
  virtual void Trouble(const std::string& key, const std::string& message) = 0;
  virtual void TroubleOver(const std::string& key) = 0;
};

class Executor {
 public:
  virtual ~Executor() = default;

  // Hands the attempt over; it does not run yet. On success the attempt is the
  // executor's until it reports its end (AttemptEnded, AttemptNeverRan or
  // AttemptNotStarted); on an error nothing is left of it.
  virtual Result<StartInfo> Start(AttemptSpec spec, TimePoint now) = 0;
  // Whether an attempt's start must be durable before Release (a Slurm job
  // outlives a local power loss), or visible with its content durable is
  // enough (a machine crash takes a local job with it): SPEC.md section 9.
  virtual bool DurableStartFirst() const = 0;
  // The start is recorded (status.json says running: durable, or visible if
  // !DurableStartFirst()): let it run. A no-op for an attempt that was stopped
  // meanwhile.
  virtual void Release(const std::string& id) = 0;
  // Stops the attempt (cancel, vanished folder, stop with its jobs); its end is
  // reported as `cause`. Before release, it is let go without running.
  virtual void Stop(const std::string& id, Reason cause, TimePoint now) = 0;
  // At start: `job` was recorded running. Follows it again, or records how it
  // ended meanwhile. False if none of it is this executor's.
  virtual bool Adopt(SchedJob& job, TimePoint now) = 0;
  // Once a loop turn, before new starts: limits, ends to report.
  virtual void Tick(TimePoint now, StopMode mode) = 0;
  // After the turn's starts were released: `keep_ready` says whether attempts
  // may come (a pool uses this executor and the daemon is not stopping).
  // Returns when the loop must wake next for this executor, if ever.
  virtual std::optional<TimePoint> EndTurn(TimePoint now, bool keep_ready) = 0;
  // Whether a stop must wait for this executor (a command under way, an
  // attempt being started or recorded; with `stop_jobs`, a local job running).
  virtual bool Busy(bool stop_jobs) const = 0;
  // The jobs whose attempts it holds.
  virtual std::vector<std::string> Ids() const = 0;
  virtual bool Has(const std::string& id) const = 0;
  // Drops its loop handles so that uv_run can return; what runs runs on.
  virtual void Shutdown() = 0;
};

}  // namespace spoold

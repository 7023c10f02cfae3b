// The local executor: each attempt runs under its own supervisor, spoold-exec
// (daemon/exec_protocol.h), which outlives the daemon. Start hands the attempt
// to a helper (one kept spare ahead of time), Release lets its job run once
// the daemon recorded the start, and the end is the outcome the supervisor
// leaves in the attempt's folder. Supervisors we started are our children
// (reaped on SIGCHLD); ones a restarted daemon re-adopts are followed through
// a pidfd (Adopt). Before the release, the job's process is bound to the
// attempt's CPUs and, for a memory request, put in a cgroup of its own
// (daemon/cgroup.h), read and removed once the attempt has ended.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "daemon/cgroup.h"
#include "daemon/executor.h"
#include "daemon/local_executor.h"
#include "daemon/supervisor_files.h"
#include "daemon/uv_handles.h"
#include "spool/job_store.h"
#include "spool/paths.h"

namespace spoold {

class SupervisedExecutor : public Executor {
 public:
  SupervisedExecutor(uv_loop_t* loop, const SpoolPaths& paths, const JobStore& store, const Config& config,
                     ExecutorHost& host);
  ~SupervisedExecutor() override;
  // Finds spoold-exec, becomes the subreaper of the jobs' orphans, and
  // watches SIGCHLD. An error: no local attempt can run.
  Status Open();
  // Where attempts' cgroups are made (Cgroups::Detect, once at start, before
  // any attempt is started or adopted). Without it: none, memory requests are
  // not enforced.
  void SetCgroups(Cgroups cgroups) { cgroups_ = std::move(cgroups); }
  const Cgroups& cgroups() const { return cgroups_; }

  Result<StartInfo> Start(AttemptSpec spec, TimePoint now) override;
  bool DurableStartFirst() const override { return false; }
  void Release(const std::string& id) override;
  void Stop(const std::string& id, Reason cause, TimePoint now) override;
  // A job recorded running that is not a Slurm job's: re-adopts its attempt
  // if its supervisor lives, records it if it ended meanwhile, else marks it
  // interrupted (killing what is left of an attempt of a spoold before
  // supervisors). Always true.
  bool Adopt(SchedJob& job, TimePoint now) override;
  void Tick(TimePoint now, StopMode mode) override;
  std::optional<TimePoint> EndTurn(TimePoint now, bool keep_ready) override;
  bool Busy(bool stop_jobs) const override;
  std::vector<std::string> Ids() const override;
  bool Has(const std::string& id) const override { return running_.count(id) != 0; }
  void Shutdown() override;

 private:
  struct Attempt {
    std::string id;
    int attempt = 0;
    pid_t pid = -1;  // the job's main process
    std::optional<uint64_t> pid_start;
    KillPolicy kill;
    Millis timeout{0};
    Reason cause = Reason::kNone;  // why the daemon is stopping it, if it is
    bool signalled = false;        // the supervisor was told to stop it
    pid_t supervisor = -1;
    std::optional<PendingProcess> pending;  // until released
    bool abandoned = false;        // let go before release: the job never ran
    bool supervisor_done = false;  // it exited (reaped, or its pidfd said so)
    bool found_at_start = false;   // recorded running by an earlier daemon
    int pidfd = -1;                // adopted: not our child, watched by pidfd
    std::unique_ptr<FdWatch> pidfd_watch;
    std::string exe, cwd;  // for the message of a failed exec
    // Its cgroup's name ("": none), and the memory limit the cgroup enforces:
    // nullopt when it was not (the cgroup is then only removed, not read).
    std::string cgroup;
    std::optional<int64_t> memory_limit;
  };

  Result<PendingProcess> HandToHelper(const LaunchSpec& spec, const std::string& exe);
  void KeepSpareHelper(TimePoint now);
  void DismissSpareHelper();
  void Abandon(Attempt& attempt, Reason cause);
  void StopAttempt(Attempt& attempt, Reason cause);
  void SignalSupervisor(Attempt& attempt, int sig);
  void WatchSupervisor(Attempt& attempt);
  void ReapChildren();
  std::string BindResources(const AttemptSpec& spec, pid_t job_pid, Attempt& attempt, StartInfo& info);
  void TakeCgroupUsage(Attempt& attempt, AttemptEnd* end);
  void Finish(const std::string& id, TimePoint now);
  void RecordOutcome(Attempt& attempt, const Outcome& outcome, TimePoint now);
  void Interrupted(const std::string& id, const std::string& message, TimePoint now);

  uv_loop_t* loop_;
  const SpoolPaths& paths_;
  const JobStore& store_;
  const Config& config_;
  ExecutorHost& host_;
  std::string exec_helper_;  // spoold-exec (FindExecHelper)
  std::string boot_id_;      // recorded with each attempt
  Cgroups cgroups_;
  std::unique_ptr<SignalWatch> sigchld_;
  std::map<std::string, Attempt> running_;   // by job id
  std::map<pid_t, std::string> pid_to_job_;  // supervisors not yet reaped
  // A spoold-exec started ahead of the next attempt, so that a job's start
  // does not wait for a process to be created (daemon/exec_protocol.h).
  std::optional<IdleHelper> spare_helper_;
  TimePoint spare_helper_due_{};  // not before this (after a failed start: a second later)
};

}  // namespace spoold

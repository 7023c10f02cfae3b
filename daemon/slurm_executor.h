// The Slurm executor (SPEC.md section 8, executor = "slurm"): each attempt is a
// Slurm job. sbatch, squeue and scancel (daemon/slurm.h) run in libuv's thread
// pool, so that a controller that does not answer never stalls the loop. One
// squeue call polls every followed job; timeouts and deadlines are spoold's
// own, enforced with scancel. A Slurm job outlives the daemon: at start it is
// followed again (Adopt), never submitted twice.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/executor.h"
#include "daemon/slurm.h"
#include "daemon/uv_handles.h"
#include "spool/job_store.h"
#include "spool/paths.h"

namespace spoold {

class SlurmExecutor : public Executor {
 public:
  SlurmExecutor(uv_loop_t* loop, const SpoolPaths& paths, const JobStore& store, ExecutorHost& host);
  void Open();  // creates the poll timer

  Result<StartInfo> Start(AttemptSpec spec, TimePoint now) override;
  bool DurableStartFirst() const override { return true; }
  void Release(const std::string& id) override;
  void Stop(const std::string& id, Reason cause, TimePoint now) override;
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
    Reason cause = Reason::kNone;  // why the daemon is stopping it, if it is
    bool cancel_sent = false;      // scancel sent (or under way)
    std::optional<SlurmSubmit> submit;  // until it is handed to sbatch
    bool busy = false;                  // its sbatch or scancel runs in the thread pool
    std::string slurm_id;
    int missing_polls = 0;  // polls in a row that did not list it
    bool ended = false;
    AttemptEnd end;
  };

  void StopAttempt(Attempt& attempt, Reason cause);
  void Submitted(Attempt& attempt, const Result<std::string>& slurm_id, TimePoint now);
  void RunCommand(Attempt& attempt, std::function<Result<std::string>()> command,
                  std::function<void(Attempt&, const Result<std::string>&, TimePoint)> done);
  void StartPoll();
  void ApplyPoll(const Result<std::map<std::string, SlurmJobInfo>>& polled);
  void Finish(const std::string& id, TimePoint now);
  bool Following(const Attempt& attempt) const { return !attempt.slurm_id.empty() && !attempt.ended; }

  uv_loop_t* loop_;
  const SpoolPaths& paths_;
  const JobStore& store_;
  ExecutorHost& host_;
  std::map<std::string, Attempt> running_;  // by job id
  std::unique_ptr<Timer> poll_timer_;
  bool poll_in_flight_ = false;
};

}  // namespace spoold

#include "daemon/slurm_executor.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "spool/failpoint.h"
#include "spool/fileio.h"

namespace spoold {

constexpr uint64_t kSlurmPollMs = 2000;  // Slurm's scheduler ticks about once a second

SlurmExecutor::SlurmExecutor(uv_loop_t* loop, const SpoolPaths& paths, const JobStore& store, ExecutorHost& host)
    : loop_(loop), paths_(paths), store_(store), host_(host) {}

void SlurmExecutor::Open() {
  poll_timer_ = std::make_unique<Timer>(loop_);
  poll_timer_->SetCallback([this] { StartPoll(); });
}

// The attempt becomes a Slurm job: sbatch writes nothing of ours, the job's
// step writes the logs (as the job's user) and its exit code file. It is
// submitted once its start is durable (Release).
Result<StartInfo> SlurmExecutor::Start(AttemptSpec spec, TimePoint) {
  const std::string& id = spec.id;
  const int n = spec.attempt;
  ::close(spec.launch.stdout_fd);
  ::close(spec.launch.stderr_fd);
  if (spec.launch.run_as) {
    for (const std::string& path : {paths_.AttemptDir(id, n), paths_.StdoutLog(id, n), paths_.StderrLog(id, n)}) {
      if (::chown(store_.Here(id, path).c_str(), spec.launch.run_as->uid, spec.launch.run_as->gid) != 0) {
        return MakeError("spawn_failed", ErrnoMessage("chown", path, errno));
      }
    }
  }
  SlurmSubmit submit;
  submit.job_name = "spoold-" + id + "-" + std::to_string(n);
  submit.partition = spec.slurm.partition;
  submit.sbatch_args = spec.slurm.sbatch_args;
  submit.resources = spec.request;
  submit.chdir = spec.launch.cwd;
  submit.stdout_path = paths_.StdoutLog(id, n);
  submit.stderr_path = paths_.StderrLog(id, n);
  submit.exit_code_path = paths_.ExitCodeFile(id, n);
  submit.script_path = paths_.SlurmScript(id, n);
  submit.timeout = spec.timeout;
  submit.argv = spec.launch.argv;
  submit.env = spec.launch.env;
  submit.run_as = spec.launch.run_as;
  Attempt attempt;
  attempt.id = id;
  attempt.attempt = n;
  attempt.submit = std::move(submit);
  running_.emplace(id, std::move(attempt));
  return StartInfo{};
}

// sbatch runs in the thread pool: it may take up to 30 s, and the loop goes on
// meanwhile (intake, local jobs, signals, the watchdog).
void SlurmExecutor::Release(const std::string& id) {
  auto found = running_.find(id);
  if (found == running_.end() || !found->second.submit) return;
  Attempt& attempt = found->second;
  auto submit = std::make_shared<SlurmSubmit>(std::move(*attempt.submit));
  attempt.submit.reset();
  RunCommand(
      attempt, [submit] { return Submit(*submit, std::chrono::seconds(30)); },
      [this](Attempt& a, const Result<std::string>& slurm_id, TimePoint now) { Submitted(a, slurm_id, now); });
}

void SlurmExecutor::Submitted(Attempt& attempt, const Result<std::string>& slurm_id, TimePoint now) {
  if (!slurm_id.ok()) {
    if (slurm_id.error().code == "transient") {
      host_.Trouble("slurm", "cannot reach Slurm (" + slurm_id.error().message + ")");
    }
    if (attempt.cause != Reason::kNone) {
      // Cancelled (or past its deadline) while sbatch ran, and nothing was
      // submitted: the attempt ends as that.
      attempt.ended = true;
      return;
    }
    const std::string id = attempt.id;
    const Error error = slurm_id.error();
    running_.erase(id);
    return host_.AttemptNeverRan(id, error, now);
  }
  host_.TroubleOver("slurm");
  attempt.slurm_id = *slurm_id;
  host_.AttemptSubmitted(attempt.id, *slurm_id, now);
  host_.AttemptEvent(attempt.id, Level::kInfo, "submitted",
                     "attempt " + std::to_string(attempt.attempt) + " is Slurm job " + *slurm_id,
                     {{"slurm_job_id", *slurm_id}});
  // A cancel, timeout or deadline that came while sbatch ran: scancel now.
  if (attempt.cause != Reason::kNone) StopAttempt(attempt, attempt.cause);
  StartPoll();
}

// A Slurm command for `attempt` in libuv's thread pool: a controller that does
// not answer must not stall the loop. `done` runs on the loop when it returns;
// the attempt, marked busy until then, does not end before (Tick).
void SlurmExecutor::RunCommand(Attempt& attempt, std::function<Result<std::string>()> command,
                               std::function<void(Attempt&, const Result<std::string>&, TimePoint)> done) {
  auto result = std::make_shared<Result<std::string>>(MakeError("slurm_error", "not run"));
  attempt.busy = true;
  RunInThreadPool(
      loop_, [result, command = std::move(command)] { *result = command(); },
      [this, result, id = attempt.id, n = attempt.attempt, done = std::move(done)] {
        auto it = running_.find(id);
        if (it == running_.end() || it->second.attempt != n) return;  // not expected: see above
        it->second.busy = false;
        done(it->second, *result, Now());
      });
}

// One squeue call for all of our Slurm jobs, on the thread pool: a controller
// that does not answer must not stall the loop.
void SlurmExecutor::StartPoll() {
  if (poll_in_flight_) return;
  std::vector<std::string> ids;
  for (const auto& [id, attempt] : running_) {
    if (Following(attempt)) ids.push_back(attempt.slurm_id);
  }
  if (ids.empty()) return;
  auto result = std::make_shared<Result<std::map<std::string, SlurmJobInfo>>>(MakeError("transient", "not polled"));
  poll_in_flight_ = true;
  RunInThreadPool(
      loop_, [result, ids = std::move(ids)] { *result = Poll(ids, std::chrono::seconds(20)); },
      [this, result] {
        poll_in_flight_ = false;
        ApplyPoll(*result);
      });
}

void SlurmExecutor::ApplyPoll(const Result<std::map<std::string, SlurmJobInfo>>& polled) {
  if (!polled.ok()) {
    // Jobs keep their state; the poll goes on and the problem is logged once.
    host_.Trouble("slurm", "cannot reach Slurm (" + polled.error().message + ")");
    return;
  }
  host_.TroubleOver("slurm");
  for (auto& [id, attempt] : running_) {
    if (!Following(attempt)) continue;
    const std::string exit_path = paths_.ExitCodeFile(id, attempt.attempt);
    auto it = polled->find(attempt.slurm_id);
    if (it == polled->end()) {
      // Purged from Slurm's memory: twice in a row before it counts.
      if (++attempt.missing_polls < 2) continue;
      attempt.end = MapLost(attempt.slurm_id, ReadExitFile(exit_path));
    } else {
      attempt.missing_polls = 0;
      if (!it->second.terminal) continue;
      attempt.end = MapEnd(it->second, ReadExitFile(exit_path));
    }
    attempt.ended = true;
  }
}

void SlurmExecutor::Stop(const std::string& id, Reason cause, TimePoint) {
  if (auto it = running_.find(id); it != running_.end()) StopAttempt(it->second, cause);
}

void SlurmExecutor::StopAttempt(Attempt& attempt, Reason cause) {
  if (attempt.cause == Reason::kNone) attempt.cause = cause;
  if (attempt.cancel_sent) return;
  if (attempt.submit) {
    // Not handed to Slurm yet: it never will be, and the attempt ends.
    attempt.submit.reset();
    attempt.ended = true;
    return;
  }
  // While sbatch runs, its end sends the scancel (Submitted).
  if (attempt.slurm_id.empty() || attempt.busy) return;
  // Slurm runs its own sequence (TERM, then KILL after KillWait).
  attempt.cancel_sent = true;
  const std::string slurm_id = attempt.slurm_id;
  RunCommand(
      attempt,
      [slurm_id]() -> Result<std::string> {
        if (Status st = Cancel(slurm_id, std::chrono::seconds(20)); !st.ok()) return st.error();
        return slurm_id;
      },
      [this](Attempt& a, const Result<std::string>& cancelled, TimePoint) {
        if (!cancelled.ok()) {
          host_.Trouble("slurm", "cannot reach Slurm (" + cancelled.error().message + ")");
          a.cancel_sent = false;  // sent again at the next turn
          return;
        }
        host_.AttemptEvent(a.id, Level::kWarning, "kill_sent", "cancelled Slurm job " + *cancelled,
                           {{"slurm_job_id", *cancelled}});
      });
}

// A Slurm job outlives the daemon: it is followed again, never submitted
// twice. Its timeout is counted from the attempt's recorded start.
bool SlurmExecutor::Adopt(SchedJob& job, TimePoint) {
  if (job.status().attempts.empty() || !job.status().attempts.back().slurm_job_id) return false;
  const std::string& id = job.status().id;
  const std::string slurm_id = *job.status().attempts.back().slurm_job_id;
  Attempt attempt;
  attempt.id = id;
  attempt.attempt = job.status().attempt;
  attempt.slurm_id = slurm_id;
  running_.emplace(id, std::move(attempt));
  host_.AttemptEvent(id, Level::kInfo, "recovered",
                     "following Slurm job " + slurm_id + " again after a daemon restart",
                     {{"slurm_job_id", slurm_id}});
  spdlog::info("job {}: following Slurm job {} again", id, slurm_id);
  return true;
}

void SlurmExecutor::Tick(TimePoint now, StopMode mode) {
  std::vector<std::string> finished;
  for (auto& [id, attempt] : running_) {
    if (attempt.ended) {
      // Its scancel may still run: the attempt ends once that answered, so
      // that the history says what was sent before the attempt's end.
      if (!attempt.busy) finished.push_back(id);
      continue;
    }
    // A stop leaves Slurm jobs running: they are followed again at the next
    // start. Timeouts and deadlines are spoold's own, enforced with scancel.
    if (mode == StopMode::kRunning && attempt.cause == Reason::kNone && !attempt.slurm_id.empty()) {
      if (auto limit = host_.AttemptLimit(id); limit && now >= limit->first) {
        host_.AttemptEvent(id, Level::kWarning, limit->second == Reason::kTimeout ? "timeout" : "deadline",
                           "attempt " + std::to_string(attempt.attempt) +
                               " reached its limit; cancelling Slurm job " + attempt.slurm_id);
        StopAttempt(attempt, limit->second);
      }
    } else if (attempt.cause != Reason::kNone && !attempt.cancel_sent && !attempt.slurm_id.empty()) {
      // A scancel that failed (Slurm unreachable) is sent again.
      StopAttempt(attempt, attempt.cause);
    }
  }
  for (const auto& id : finished) Finish(id, now);
}

void SlurmExecutor::Finish(const std::string& id, TimePoint now) {
  Attempt attempt = std::move(running_.at(id));
  running_.erase(id);
  SPOOLD_FAILPOINT("attempt.before_finish");
  AttemptEnd end = attempt.end;
  if (attempt.cause != Reason::kNone) end.cause = attempt.cause;
  std::string how = end.exit_code ? "exited with code " + std::to_string(*end.exit_code)
                    : end.signal  ? "was killed by signal " + SignalName(*end.signal)
                                  : "ended";
  host_.AttemptEvent(id, end.exit_code == 0 ? Level::kInfo : Level::kWarning, "exited",
                     "attempt " + std::to_string(attempt.attempt) + " " + how,
                     {{"exit_code", end.exit_code ? Json(*end.exit_code) : Json(nullptr)},
                      {"signal", end.signal ? Json(SignalName(*end.signal)) : Json(nullptr)}});
  host_.AttemptEnded(id, end, now);
}

std::optional<TimePoint> SlurmExecutor::EndTurn(TimePoint, bool) {
  // Slurm is polled only while we follow Slurm jobs.
  const bool following =
      std::any_of(running_.begin(), running_.end(), [this](const auto& entry) { return Following(entry.second); });
  if (poll_timer_) {
    if (!following) {
      poll_timer_->Stop();
    } else if (!poll_timer_->Active()) {
      poll_timer_->Start(kSlurmPollMs, kSlurmPollMs);
    }
  }
  // The limits are ours to enforce.
  std::optional<TimePoint> next;
  for (const auto& [id, attempt] : running_) {
    if (attempt.ended || attempt.cause != Reason::kNone) continue;
    if (auto limit = host_.AttemptLimit(id); limit && (!next || limit->first < *next)) next = limit->first;
  }
  return next;
}

// A stop leaves Slurm jobs running, once no sbatch or scancel is under way (an
// attempt stays here until its command answered).
bool SlurmExecutor::Busy(bool) const {
  return std::any_of(running_.begin(), running_.end(), [](const auto& entry) { return entry.second.busy; });
}

std::vector<std::string> SlurmExecutor::Ids() const {
  std::vector<std::string> ids;
  for (const auto& entry : running_) ids.push_back(entry.first);
  return ids;
}

void SlurmExecutor::Shutdown() { poll_timer_.reset(); }

}  // namespace spoold

// The scheduler's control requests (SPEC.md section 6): cancel, start (release a
// held job), pause and resume a pool, and a running job's progress. Part of
// Scheduler (daemon/scheduler.h); pure like the rest of it.
#include "daemon/scheduler.h"

namespace spoold {
namespace {

std::string Count(int n, const std::string& what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

}  // namespace

// How far a queued job had come, for a message that ends its wait: "before it
// ran" when no attempt ever started, else where it waited and what had run, e.g.
// "while waiting to retry, after 1 attempt". Attempts are counted the way the
// other messages count them, interrupted ones apart.
std::string Scheduler::QueuedSoFar(const JobStatus& s) {
  if (s.attempt == 0) {
    return s.reason == Reason::kDependency ? "while waiting for its dependencies" : "before it ran";
  }
  const int counted = s.attempt - s.interruptions;
  std::string ran = counted > 0 ? Count(counted, "attempt") : "";
  if (s.interruptions > 0) {
    ran += (ran.empty() ? "" : " and ") + Count(s.interruptions, "interrupted attempt");
  }
  std::string where = s.reason == Reason::kRetryBackoff ? "while waiting to retry"
                      : s.reason == Reason::kHeld       ? "while held"
                      : s.reason == Reason::kPoolPaused ? "while pool " + s.pool + " was paused"
                                                        : "while waiting for a worker to run it again";
  return where + ", after " + ran;
}

Status Scheduler::Cancel(const std::string& id, TimePoint now, std::vector<std::string>* to_stop) {
  SchedJob* job = Find(id);
  if (job == nullptr) {
    // A task not started yet is no job here: it is made one, cancelled.
    if (ParseTaskId(id)) return CancelPendingTask(id, now);
    return MakeError("unknown_job", "no job " + id);
  }
  if (IsTerminal(job->state())) {
    return MakeError("invalid_field", "job " + id + " is already " + StateName(job->state()), "job");
  }
  auto run = arrays_.find(id);
  if (run != arrays_.end() && job->state() == JobState::kRunning) return CancelArray(*job, now, to_stop);
  if (job->state() == JobState::kRunning) {
    cancel_requested_.insert(id);
    to_stop->push_back(id);
    return OkStatus();
  }
  // A queued array has started no task: those it has end with it.
  if (run != arrays_.end())
    EndPending(*job, run->second, JobState::kCancelled, Reason::kCancelledByUser, now);
  --PoolOf(*job).queued;
  Finish(*job, JobState::kCancelled, Reason::kCancelledByUser,
         "cancelled by request " + QueuedSoFar(job->status()), now);
  return OkStatus();
}

Status Scheduler::Release(const std::string& id, TimePoint now) {
  SchedJob* job = Find(id);
  if (job == nullptr) return MakeError("unknown_job", "no job " + id);
  if (job->state() == JobState::kQueued && job->reason() == Reason::kDependency) {
    return MakeError(
        "invalid_field",
        "job " + id + " is waiting for its dependencies; a start request applies once they are met", "job");
  }
  if (job->state() != JobState::kQueued || job->reason() != Reason::kHeld) {
    return MakeError("invalid_field", "job " + id + " is not held; only held jobs can be started", "job");
  }
  job->kept.ReleaseHold();
  job->status().reason = Reason::kInQueue;
  SetState(*job, JobState::kQueued, Reason::kInQueue, "released by a start request", now);
  Enqueue(*job, now);
  return OkStatus();
}

Status Scheduler::Pause(const std::string& pool, TimePoint now) { return SetPaused(pool, true, now); }

Status Scheduler::Resume(const std::string& pool, TimePoint now) { return SetPaused(pool, false, now); }

Status Scheduler::SetPaused(const std::string& pool, bool paused, TimePoint now) {
  auto it = pools_.find(pool);
  if (it == pools_.end()) return MakeError("unknown_pool", "pool " + pool + " is not configured", "pool");
  it->second.paused = paused;
  // The pool's waiting jobs take the reason that now applies (Enqueue decides).
  const Reason affected = paused ? Reason::kInQueue : Reason::kPoolPaused;
  for (auto& [id, job] : jobs_) {
    if (job.state() == JobState::kQueued && job.pool() == pool &&
        (job.reason() == affected || (paused && job.reason() == Reason::kResources))) {
      Enqueue(job, now);
    }
  }
  return OkStatus();
}

void Scheduler::SetProgress(const std::string& id, std::optional<double> progress,
                            std::optional<std::string> message, TimePoint now) {
  SchedJob& job = jobs_.at(id);
  if (job.state() != JobState::kRunning) return;
  if (job.status().progress == progress && job.status().progress_message == message) return;
  job.status().progress = progress;
  job.status().progress_message = std::move(message);
  job.status().updated = now;
  changed_.insert(id);
}

}  // namespace spoold

#include "daemon/scheduler.h"

#include <algorithm>
#include <cmath>

#include "spool/time_util.h"

namespace spoold {
namespace {

double Seconds(Millis d) { return static_cast<double>(d.count()) / 1000.0; }

}  // namespace

Scheduler::Scheduler(const Config& config) { SetConfig(config, TimePoint{}); }

void Scheduler::SetConfig(const Config& config, TimePoint now) {
  config_ = config;
  ledger_.SetConfig(config);
  for (const auto& [name, pool] : config.pools) {
    auto [it, inserted] = pools_.try_emplace(name);
    // A reload keeps a pool's runtime pause (set by control requests) unless the
    // configured value itself changed, or the pool was an orphan (workers 0:
    // jobs of an unconfigured pool) that is now configured.
    const bool orphan = !inserted && it->second.config.workers == 0;
    if (inserted || orphan || it->second.config.paused != pool.paused) it->second.paused = pool.paused;
    it->second.config = pool;
  }
  // A pool the new configuration does not name keeps its jobs: the queued ones
  // wait, starting nothing, until it is configured again (SPEC.md section 8);
  // running ones end as they would. It becomes what recovery makes of such a
  // pool: no workers, paused.
  for (auto& [name, pool] : pools_) {
    if (config.pools.count(name) != 0) continue;
    pool.config.workers = 0;
    pool.paused = true;
  }
  // Every waiting job takes the reason that now applies (Enqueue decides): a
  // pool no longer paused takes its jobs back, a pool that is gone holds them.
  for (auto& [id, job] : jobs_) {
    if (job.state() == JobState::kQueued &&
        (job.reason() == Reason::kPoolPaused || job.reason() == Reason::kInQueue ||
         job.reason() == Reason::kResources)) {
      Enqueue(job, now);
    }
  }
}

PoolState& Scheduler::PoolOf(const SchedJob& job) {
  auto it = pools_.find(job.pool());
  if (it == pools_.end()) {
    // A pool removed from the configuration: its jobs finish, nothing new starts.
    PoolState orphan;
    orphan.config.name = job.pool();
    orphan.config.workers = 0;
    orphan.paused = true;
    it = pools_.emplace(job.pool(), orphan).first;
  }
  return it->second;
}

Result<Reason> Scheduler::Admit(const JobSpec& spec) const {
  auto it = pools_.find(spec.pool);
  if (it == pools_.end()) {
    return MakeError("unknown_pool", "pool " + spec.pool + " is not configured", "pool");
  }
  const PoolState& pool = it->second;
  if (pool.queued >= pool.config.queue_limit) {
    return MakeError("queue_full", "pool " + spec.pool + " has " + std::to_string(pool.queued) +
                                       " queued jobs, its queue_limit");
  }
  if (!spec.after.empty()) {
    if (auto cycle = CycleThrough(spec)) {
      return MakeError("dependency_cycle", "after would close a cycle: " + *cycle, "after");
    }
    return Reason::kDependency;
  }
  if (spec.hold) return Reason::kHeld;
  if (pool.paused && !pool.config.auto_resume) return Reason::kPoolPaused;
  return Reason::kInQueue;
}

void Scheduler::Add(JobSpec spec, JobStatus status, std::string text, std::optional<TimePoint> now) {
  SPOOLD_CHECK(!IsTerminal(status.state));
  const std::string id = status.id;
  const bool is_array = spec.array != nullptr;
  if (is_array) {
    arrays_[id];
    text.clear();  // an array stays parsed: each task's start reads it
  }
  if (status.array) {
    // A task taken back at recovery (ArrayRecovered completes its array).
    auto run = arrays_.find(*status.array);
    SPOOLD_CHECK(run != arrays_.end());
    auto position = status.array_index ? jobs_.at(run->first).spec().array->PositionOf(*status.array_index)
                                       : std::nullopt;
    if (position) run->second.early.insert(*position);
    run->second.active.insert(id);
  }
  auto [it, inserted] = jobs_.try_emplace(id, config_, std::move(status));
  SPOOLD_CHECK(inserted);
  SchedJob& job = it->second;
  job.id_ = &it->first;
  job.kept = KeptSpec(std::move(spec));
  job.arrival = next_arrival_++;
  job.persisted_state = job.status().state;
  job.persisted_reason = job.status().reason;
  if (auto deadline = DeadlineOf(job)) deadlines_.emplace(*deadline, id);
  if (job.status().state == JobState::kRunning) {
    // A running array holds no worker: its tasks do.
    if (!is_array) {
      ++PoolOf(job).running;
      const JobStatus& s = job.status();
      const ResourceGrant grant{s.attempts.empty() ? std::vector<int>{} : s.attempts.back().cpus,
                                s.attempts.empty() ? std::vector<int>{} : s.attempts.back().gpus,
                                s.resources.memory};
      ledger_.Hold(id, s.pool, s.resources, grant);
    }
    return;
  }
  {
    PoolState& pool = PoolOf(job);
    // A job dropped into a paused pool with auto_resume resumes it (the Bodo
    // "paused cluster resumes on submission" rule).
    // Its waiting jobs are queued again the way a resume request queues them.
    if (pool.paused && pool.config.auto_resume && job.status().reason != Reason::kRetryBackoff) {
      (void)SetPaused(job.status().pool, false, job.status().updated);
    }
    // Which job a pool reserves is decided again after a restart.
    if (job.status().reason == Reason::kResources) job.status().reason = Reason::kInQueue;
    if (!text.empty() && pool.queued >= kHotQueued) job.kept.Freeze(std::move(text));
    ++pool.queued;
    if (job.status().reason == Reason::kDependency) {
      AddWaiting(job, now.value_or(job.status().updated));
      return;
    }
    Enqueue(job, job.status().updated);
  }
}

void Scheduler::Settle(const std::string& id) {
  SchedJob* job = Find(id);
  if (job == nullptr || job->Settled() || !job->kept.Frozen() || job->state() != JobState::kQueued) return;
  // A queued job's pool is in pools_ (Add made sure), which never drops one.
  auto pool_it = pools_.find(job->pool());
  SPOOLD_CHECK(pool_it != pools_.end());
  const std::string& pool = pool_it->first;
  const std::string& owner = *owners_.insert(job->status().owner).first;
  (void)job->Settle(pool, owner);
}

void Scheduler::Forget(const std::string& id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  SPOOLD_CHECK(IsTerminal(it->second.state()));
  if (auto deadline = DeadlineOf(it->second)) deadlines_.erase({*deadline, id});
  jobs_.erase(it);
  changed_.erase(id);
  arrays_.erase(id);
  dirty_arrays_.erase(id);
}

SchedJob* Scheduler::Find(const std::string& id) {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

Reason Scheduler::WaitingReason(const SchedJob& job) const {
  // A held job whose parents are done is held (a start request is refused
  // while it waits for them).
  if (job.kept.hold() && (job.reason() == Reason::kHeld || job.reason() == Reason::kDependency)) {
    return Reason::kHeld;
  }
  auto it = pools_.find(job.pool());
  if (it == pools_.end() || it->second.paused) return Reason::kPoolPaused;
  return Reason::kInQueue;
}

void Scheduler::Enqueue(SchedJob& job, TimePoint now) {
  Dequeue(job);
  if (job.reason() == Reason::kDependency) return;  // released by its parents' ends
  if (job.reason() == Reason::kRetryBackoff && job.next_attempt_at() && *job.next_attempt_at() > now) {
    waiting_.emplace(*job.next_attempt_at(), job.id());
    return;
  }
  Reason reason = WaitingReason(job);
  // A pool's reserved job keeps its reason while it stays in the queue.
  if (reason != job.reason() && !(reason == Reason::kInQueue && job.reason() == Reason::kResources)) {
    std::string message = reason == Reason::kPoolPaused ? "waiting: pool " + job.pool() + " is paused"
                          : reason == Reason::kHeld     ? "held until a start request"
                                                        : "waiting for a worker";
    SetState(job, JobState::kQueued, reason, std::move(message), now);
  }
  if (reason == Reason::kInQueue) ready_[job.pool()].insert(KeyOf(job));
}

void Scheduler::Dequeue(SchedJob& job) {
  auto rit = ready_.find(job.pool());
  if (rit != ready_.end()) rit->second.erase(KeyOf(job));
  if (auto at = job.next_attempt_at()) waiting_.erase({*at, job.id()});
}

void Scheduler::SetState(SchedJob& job, JobState state, Reason reason, std::string message,
                         TimePoint now) {
  job.status().state = state;
  job.status().reason = reason;
  job.status().message = std::move(message);
  job.status().updated = now;
  changed_.insert(job.id());
  if (job.status().array) dirty_arrays_[*job.status().array] = now;
}

void Scheduler::CountStart(const SchedJob& job) {
  if (metrics_ == nullptr) return;
  const JobStatus& s = job.status();
  // The first attempt's wait: from acceptance (held and waiting for parents
  // included) to its start.
  const double wait = s.attempt == 1 ? Seconds(s.attempts.back().started - s.created) : -1;
  metrics_->AttemptStarted(s.pool, wait);
}

void Scheduler::AttemptStarted(const std::string& id, int64_t pid, std::optional<uint64_t> pid_start,
                               TimePoint now) {
  SchedJob& job = jobs_.at(id);
  SPOOLD_CHECK(job.state() == JobState::kRunning && !job.status().attempts.empty());
  CountStart(job);
  job.status().pid = pid;
  job.status().attempts.back().pid = pid;
  job.status().attempts.back().pid_start = pid_start;
  job.status().message = "attempt " + std::to_string(CountedAttempts(job)) + " of " +
                         std::to_string(job.status().max_attempts) + " running";
  job.status().updated = now;
  changed_.insert(id);
}

void Scheduler::AttemptSubmitted(const std::string& id, const std::string& slurm_id, TimePoint now) {
  SchedJob& job = jobs_.at(id);
  SPOOLD_CHECK(job.state() == JobState::kRunning && !job.status().attempts.empty());
  CountStart(job);
  job.status().attempts.back().slurm_job_id = slurm_id;
  job.status().message = "attempt " + std::to_string(CountedAttempts(job)) + " of " +
                         std::to_string(job.status().max_attempts) + " is Slurm job " + slurm_id;
  job.status().updated = now;
  changed_.insert(id);
}

void Scheduler::AttemptNotStarted(const std::string& id, const std::string& why, TimePoint now) {
  SchedJob& job = jobs_.at(id);
  SPOOLD_CHECK(job.state() == JobState::kRunning && !job.status().attempts.empty());
  PoolState& pool = PoolOf(job);
  --pool.running;
  ++pool.queued;
  ledger_.Release(id);
  job.status().attempts.pop_back();
  job.status().attempt -= 1;
  job.status().pid.reset();
  if (job.status().attempts.empty()) job.status().started.reset();
  job.status().reason = Reason::kInQueue;
  SetState(job, JobState::kQueued, Reason::kInQueue, "could not start yet (" + why + "); waiting", now);
  Enqueue(job, now);
}

std::optional<TimePoint> Scheduler::DeadlineOf(const SchedJob& job) const {
  const auto& deadline = job.kept.deadline();
  if (!deadline || deadline->count() == 0) return std::nullopt;
  return job.created() + *deadline;
}

void Scheduler::Finish(SchedJob& job, JobState state, Reason reason, std::string message, TimePoint now) {
  // An array that ends before all its tasks started (a parent's end, a
  // missing parent, a deadline, a cancel) ends those with it.
  if (auto run = arrays_.find(job.id()); run != arrays_.end() && Unstarted(job, run->second) > 0) {
    EndPending(job, run->second, state == JobState::kFailed ? JobState::kFailed : JobState::kCancelled,
               reason, now);
  }
  Dequeue(job);
  job.status().finished = now;
  job.status().next_attempt_at.reset();
  job.status().pid.reset();
  DropEdges(job);
  SetState(job, state, reason, std::move(message), now);
  cancel_requested_.erase(job.id());
  if (job.status().array) {
    TaskEnded(job, now);
  } else if (metrics_ != nullptr) {
    metrics_->JobFinished(job.status().pool, state);
  }
  // Its children learn of the end at once, theirs in turn (a worklist, not
  // recursion: a chain may be long).
  ended_.push_back(job.id());
  if (cascading_) return;
  cascading_ = true;
  while (!ended_.empty()) {
    std::string parent = std::move(ended_.back());
    ended_.pop_back();
    ParentEnded(parent, now);
  }
  cascading_ = false;
}

void Scheduler::AttemptEnded(const std::string& id, const AttemptEnd& end, TimePoint now) {
  SchedJob& job = jobs_.at(id);
  SPOOLD_CHECK(job.state() == JobState::kRunning && !job.status().attempts.empty());
  --PoolOf(job).running;
  ledger_.Release(id);

  // What ended the attempt, in order of authority: the daemon's own act first,
  // then how the process ended.
  Reason reason = end.cause;
  if (reason == Reason::kNone && end.signal) reason = Reason::kSignal;
  if (reason == Reason::kNone && end.exit_code && *end.exit_code != 0) reason = Reason::kNonzeroExit;
  if (cancel_requested_.count(id)) reason = Reason::kCancelledByUser;
  // The kernel killed a process of it at its cgroup's memory limit, and it
  // failed: that is why (SPEC.md section 5, "Resources").
  if (end.out_of_memory && (reason == Reason::kSignal || reason == Reason::kNonzeroExit)) {
    reason = Reason::kOutOfMemory;
  }

  AttemptRecord& record = job.status().attempts.back();
  record.finished = end.ended_at && *end.ended_at >= record.started && *end.ended_at <= now ? *end.ended_at : now;
  record.exit_code = end.exit_code;
  record.signal = end.signal ? std::optional<std::string>(SignalName(*end.signal)) : std::nullopt;
  record.reason = reason;
  record.duration_s = Seconds(*record.finished - record.started);
  record.cpu_user_s = end.cpu_user_s;
  record.cpu_sys_s = end.cpu_sys_s;
  record.max_rss_kb = end.max_rss_kb;
  record.memory_peak = end.memory_peak;
  job.status().exit_code = end.exit_code;
  job.status().signal = record.signal;
  job.status().pid.reset();
  // One that never ran (spawn_failed) was never counted as started either.
  if (metrics_ != nullptr && reason != Reason::kSpawnFailed) {
    metrics_->AttemptEnded(job.status().pool, record.duration_s, reason);
  }

  const std::string which =
      "attempt " + std::to_string(CountedAttempts(job)) + " of " + std::to_string(job.status().max_attempts);
  std::string what;
  switch (reason) {
    case Reason::kNone:
      Finish(job, JobState::kSucceeded, Reason::kNone, which + " succeeded", now);
      return;
    case Reason::kCancelledByUser:
      Finish(job, JobState::kCancelled, Reason::kCancelledByUser,
             which + " cancelled by request while running", now);
      return;
    case Reason::kInterrupted:
      // Shutdowns and crashes do not use up retry.attempts; the third one ends
      // the job so that a job that kills the daemon cannot loop forever.
      job.status().interruptions += 1;
      if (job.status().interruptions >= 3) {
        Finish(job, JobState::kFailed, Reason::kInterrupted,
               which + " interrupted by a daemon stop; the job's third interruption ends it", now);
        return;
      }
      ++PoolOf(job).queued;
      job.status().reason = Reason::kInQueue;
      SetState(job, JobState::kQueued, Reason::kInQueue, which + " was interrupted; it runs again", now);
      Enqueue(job, now);
      return;
    case Reason::kSpawnFailed:
      Finish(job, JobState::kFailed, Reason::kSpawnFailed, which + " could not start: " + end.detail, now);
      return;
    case Reason::kDeadline:
      Finish(job, JobState::kFailed, Reason::kDeadline, which + " stopped: the job's deadline passed", now);
      return;
    case Reason::kTimeout:
      what = which + " timed out";
      break;
    case Reason::kSignal:
      what = which + " was killed by signal " + SignalName(*end.signal);
      break;
    case Reason::kOutOfMemory:
      what =
          which + " ran out of memory: the kernel killed it" +
          (job.status().resources.memory > 0 ? " at its limit of " + FormatSize(job.status().resources.memory)
                                             : std::string(" at its memory limit"));
      break;
    case Reason::kNonzeroExit:
      what = which + " exited with code " + std::to_string(*end.exit_code);
      break;
    default:
      SPOOLD_CHECK(false);
  }

  // A failed attempt: retry if its reason qualifies and attempts and the deadline allow.
  const RetryPolicy& retry = job.spec().retry;
  bool qualifies = false;
  if (reason == Reason::kTimeout) {
    qualifies = retry.on_timeout;
  } else if (reason == Reason::kNonzeroExit) {
    qualifies = retry.exit_codes.empty() ||
                std::find(retry.exit_codes.begin(), retry.exit_codes.end(), *end.exit_code) !=
                    retry.exit_codes.end();
  } else if (reason == Reason::kSignal || reason == Reason::kOutOfMemory) {
    // A death by signal is a failure like any non-zero exit, unless the job named
    // the exit codes it wants retried.
    qualifies = retry.exit_codes.empty();
  }
  const int done = CountedAttempts(job);
  if (!qualifies || done >= job.status().max_attempts) {
    Finish(job, JobState::kFailed, reason, what, now);
    return;
  }
  TimePoint at = now + RetryDelay(retry, done);
  if (auto deadline = DeadlineOf(job); deadline && at >= *deadline) {
    Finish(job, JobState::kFailed, reason, what + "; no retry: the deadline comes first", now);
    return;
  }
  job.status().next_attempt_at = at;
  ++PoolOf(job).queued;
  if (metrics_ != nullptr) metrics_->RetryScheduled(job.status().pool);
  SetState(job, JobState::kQueued, Reason::kRetryBackoff,
           what + "; retrying at " + FormatMessageTime(at, now), now);
  Enqueue(job, now);
}

std::vector<std::string> Scheduler::Tick(TimePoint now) {
  std::vector<std::string> changed;
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    std::string id = waiting_.begin()->second;
    waiting_.erase(waiting_.begin());
    SchedJob& job = jobs_.at(id);
    job.status().reason = Reason::kInQueue;  // the wait is over
    job.status().next_attempt_at.reset();
    SetState(job, JobState::kQueued, Reason::kInQueue, "waiting for a worker for the retry", now);
    Enqueue(job, now);
    changed.push_back(id);
  }
  // Only jobs whose deadline has passed are looked at (those running are
  // stopped by the daemon, see AttemptLimit).
  for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now; ++it) {
    const std::string& id = it->second;
    SchedJob& job = jobs_.at(id);
    if (auto run = arrays_.find(id); run != arrays_.end() && !run->second.rest && !IsTerminal(job.state())) {
      // An array's tasks not started yet fail with it (SPEC.md section 5).
      EndPending(job, run->second, JobState::kFailed, Reason::kDeadline, now);
      if (job.state() == JobState::kRunning) {
        MaybeEndArray(job, run->second, now);
        changed.push_back(id);
        continue;
      }
    }
    if (job.state() != JobState::kQueued) continue;
    --PoolOf(job).queued;
    Finish(job, JobState::kFailed, Reason::kDeadline,
           "the job's deadline passed " + QueuedSoFar(job.status()), now);
    changed.push_back(id);
  }
  ExpireMissing(now, &changed);
  return changed;
}

std::optional<TimePoint> Scheduler::NextWakeup() const {
  std::optional<TimePoint> next;
  if (!waiting_.empty()) next = waiting_.begin()->first;
  if (!missing_.empty() && (!next || std::get<0>(*missing_.begin()) < *next))
    next = std::get<0>(*missing_.begin());
  // The earliest deadline of a queued job.
  for (const auto& [deadline, id] : deadlines_) {
    if (next && *next <= deadline) break;
    const SchedJob& job = jobs_.at(id);
    auto run = arrays_.find(id);
    if (job.state() == JobState::kQueued || (run != arrays_.end() && !run->second.rest)) {
      next = deadline;
      break;
    }
  }
  return next;
}

std::optional<std::pair<TimePoint, Reason>> Scheduler::AttemptLimit(const std::string& id) const {
  const SchedJob& job = jobs_.at(id);
  if (job.state() != JobState::kRunning || job.status().attempts.empty()) return std::nullopt;
  std::optional<std::pair<TimePoint, Reason>> limit;
  Millis timeout = job.spec().timeout.value_or(config_.TimeoutFor(job.status().pool));
  if (timeout.count() > 0)
    limit = std::make_pair(job.status().attempts.back().started + timeout, Reason::kTimeout);
  if (auto deadline = DeadlineOf(job); deadline && (!limit || *deadline <= limit->first)) {
    limit = std::make_pair(*deadline, Reason::kDeadline);
  }
  return limit;
}

Millis Scheduler::RetryDelay(const RetryPolicy& policy, int n) {
  double factor = std::pow(policy.backoff, std::max(0, n - 1));
  double ms = static_cast<double>(policy.delay.count()) * factor;
  // max_delay = 0 means no cap (SPEC: a zero duration is no limit); the wait is
  // still bounded by the longest duration there is.
  Millis limit = policy.max_delay.count() == 0 ? kMaxDuration : policy.max_delay;
  double cap = static_cast<double>(limit.count());
  if (!(ms < cap)) return limit;  // also catches overflow to inf
  return Millis(static_cast<int64_t>(ms));
}

std::vector<std::string> Scheduler::TakeChanged() {
  // An array's counts once per turn, however many of its tasks changed.
  for (const auto& [id, at] : dirty_arrays_) RefreshArray(id, at);
  dirty_arrays_.clear();
  std::vector<std::string> out(changed_.begin(), changed_.end());
  changed_.clear();
  return out;
}

}  // namespace spoold

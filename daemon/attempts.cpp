#include "daemon/attempts.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace spoold {

Attempts::Attempts(Scheduler& scheduler, AttemptHooks hooks) : scheduler_(scheduler), hooks_(std::move(hooks)) {}

void Attempts::AddExecutor(const std::string& name, Executor* executor) { executors_.emplace_back(name, executor); }

Executor* Attempts::ExecutorOf(const std::string& pool) const {
  SPOOLD_CHECK(!executors_.empty());
  auto it = scheduler_.Pools().find(pool);
  if (it != scheduler_.Pools().end()) {
    for (const auto& [name, executor] : executors_) {
      if (name == it->second.config.executor) return executor;
    }
  }
  return executors_.front().second;
}

void Attempts::Start(AttemptSpec spec, TimePoint now) {
  const std::string id = spec.id;
  SchedJob& job = *scheduler_.Find(id);
  auto started = ExecutorOf(job.status().pool)->Start(std::move(spec), now);
  if (!started.ok()) return AttemptNeverRan(id, started.error(), now);
  if (started->pid) {
    scheduler_.AttemptStarted(id, *started->pid, started->pid_start, now);
    AttemptRecord& record = job.status().attempts.back();
    if (started->supervisor_pid) record.supervisor_pid = started->supervisor_pid;
    if (started->boot_id) record.boot_id = started->boot_id;
    record.memory_limit = started->memory_limit;
  }
  if (!started->not_enforced.empty()) {
    // It runs, but not within every limit it asked for: never silently.
    hooks_.event(job, Level::kWarning, "resources_not_enforced", started->not_enforced, Json::object());
  }
  unreleased_.insert(id);
}

void Attempts::ReleaseRecorded(const std::function<bool(const std::string&)>& recorded, bool renames_durable) {
  // Runs in a flush: every attempt released here is visible as running, its
  // content durable (a local one with its pid and start time), and durable
  // altogether if its executor asks for that (a Slurm one, before sbatch).
  // One whose status could not be written or published yet (a full disk)
  // waits, unreleased, for a later turn.
  for (auto it = unreleased_.begin(); it != unreleased_.end();) {
    const std::string& id = *it;
    Executor* executor = Holder(id);
    if (executor == nullptr) {  // ended (or let go) before its release
      it = unreleased_.erase(it);
      continue;
    }
    if ((executor->DurableStartFirst() && !renames_durable) || !recorded(id)) {
      ++it;
      continue;
    }
    executor->Release(id);
    it = unreleased_.erase(it);
  }
}

Executor* Attempts::Holder(const std::string& id) const {
  for (const auto& entry : executors_) {
    if (entry.second->Has(id)) return entry.second;
  }
  return nullptr;
}

bool Attempts::Stop(const std::string& id, Reason cause, TimePoint now) {
  Executor* executor = Holder(id);
  if (executor == nullptr) return false;
  unreleased_.erase(id);
  executor->Stop(id, cause, now);
  return true;
}

bool Attempts::Adopt(SchedJob& job, TimePoint now) {
  for (auto it = executors_.rbegin(); it != executors_.rend(); ++it) {
    if (it->second->Adopt(job, now)) return true;
  }
  return false;
}

void Attempts::Tick(TimePoint now, StopMode mode) {
  for (const auto& entry : executors_) entry.second->Tick(now, mode);
}

std::optional<TimePoint> Attempts::EndTurn(TimePoint now, bool stopping) {
  std::optional<TimePoint> next;
  if (backoff_until_ > now) next = backoff_until_;
  for (const auto& [name, executor] : executors_) {
    const auto& pools = scheduler_.Pools();
    const bool used = std::any_of(pools.begin(), pools.end(),
                                  [&, e = executor](const auto& pool) { return ExecutorOf(pool.first) == e; });
    auto wake = executor->EndTurn(now, !stopping && used);
    if (wake && (!next || *wake < *next)) next = wake;
  }
  return next;
}

bool Attempts::Busy(bool stop_jobs) const {
  return std::any_of(executors_.begin(), executors_.end(),
                     [stop_jobs](const auto& entry) { return entry.second->Busy(stop_jobs); });
}

std::vector<std::string> Attempts::Ids() const {
  std::vector<std::string> ids;
  for (const auto& entry : executors_) {
    auto some = entry.second->Ids();
    ids.insert(ids.end(), some.begin(), some.end());
  }
  return ids;
}

size_t Attempts::Count(const std::string& executor) const {
  size_t n = 0;
  for (const auto& [name, e] : executors_) n += name == executor ? e->Ids().size() : 0;
  return n;
}

void Attempts::Shutdown() {
  for (const auto& entry : executors_) entry.second->Shutdown();
}

// ---- what executors report ----

void Attempts::AttemptEvent(const std::string& id, Level level, const std::string& event,
                            const std::string& message, Json extra) {
  if (SchedJob* job = scheduler_.Find(id)) hooks_.event(*job, level, event, message, std::move(extra));
}

void Attempts::AttemptSubmitted(const std::string& id, const std::string& slurm_id, TimePoint now) {
  scheduler_.AttemptSubmitted(id, slurm_id, now);
}

void Attempts::AttemptEnded(const std::string& id, const AttemptEnd& end, TimePoint now) {
  unreleased_.erase(id);
  scheduler_.AttemptEnded(id, end, now);
}

// Not the job's fault (the machine is short of descriptors, processes or
// memory, or Slurm cannot be reached): it waits at the head of its queue, no
// attempt counted, and no job starts for a second. Else it ends as spawn_failed.
void Attempts::AttemptNeverRan(const std::string& id, const Error& error, TimePoint now) {
  unreleased_.erase(id);
  if (error.code == "transient" || error.code == "io_error") {
    Trouble("spawn", "cannot start jobs now: " + error.message);
    backoff_until_ = now + std::chrono::seconds(1);
    return scheduler_.AttemptNotStarted(id, error.message, now);
  }
  AttemptEnd end;
  end.cause = Reason::kSpawnFailed;
  end.detail = error.message;
  spdlog::warn("job {}: attempt {} could not start: {}", id, scheduler_.Find(id)->status().attempt,
               error.message);
  scheduler_.AttemptEnded(id, end, now);
}

void Attempts::AttemptNotStarted(const std::string& id, const std::string& why, TimePoint now) {
  unreleased_.erase(id);
  scheduler_.AttemptNotStarted(id, why, now);
}

std::optional<std::pair<TimePoint, Reason>> Attempts::AttemptLimit(const std::string& id) const {
  return scheduler_.AttemptLimit(id);
}

void Attempts::Trouble(const std::string& key, const std::string& message) { hooks_.trouble(key, message); }

void Attempts::TroubleOver(const std::string& key) { hooks_.trouble_over(key); }

}  // namespace spoold

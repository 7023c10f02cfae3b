// The scheduler's job arrays (`[array]`, SPEC.md section 5): an array waits
// in its pool's queue like any job and, each time it is taken, starts its next
// task, at most `parallel` at a time. A task is a job of its own from its start;
// until then it is a position in the array's ranges. Part of Scheduler
// (daemon/scheduler.h); pure like the rest of it.
#include <algorithm>
#include <cmath>

#include "daemon/scheduler.h"

namespace spoold {
namespace {

// Calls fn(position, index) for every task from position `from` on, walking
// the ranges once (an index list may have a million ranges).
template <typename Fn>
void ForEachFrom(const ArraySpec& spec, uint64_t from, Fn fn) {
  uint64_t position = 0;
  for (const auto& r : spec.ranges) {
    const uint64_t n = r.Count();
    if (position + n <= from) {
      position += n;
      continue;
    }
    for (uint64_t k = from > position ? from - position : 0; k < n; ++k) {
      fn(position + k, r.first + static_cast<int64_t>(k) * r.step);
    }
    position += n;
  }
}

std::string Tasks(uint64_t n) { return std::to_string(n) + (n == 1 ? " task" : " tasks"); }

}  // namespace

JobSpec Scheduler::TaskSpec(const SchedJob& array, int64_t index) const {
  JobSpec spec = array.spec();  // the array part is shared, not copied
  spec.id = TaskId(array.id(), index);
  spec.array.reset();
  spec.after.clear();  // the array waited for them
  spec.hold = false;   // and was released
  return spec;
}

void Scheduler::BeginAttempt(SchedJob& job, TimePoint now) {
  ++PoolOf(job).running;
  job.status().attempt += 1;
  job.status().next_attempt_at.reset();
  job.status().pid.reset();
  job.status().exit_code.reset();
  job.status().signal.reset();
  if (!job.status().started) job.status().started = now;
  AttemptRecord record;
  record.attempt = job.status().attempt;
  record.started = now;
  const ResourceGrant grant = ledger_.Take(job.id(), job.pool(), job.status().resources);
  record.cpus = grant.cpus;
  record.gpus = grant.gpus;
  job.status().attempts.push_back(record);
  SetState(job, JobState::kRunning, Reason::kNone,
           "attempt " + std::to_string(CountedAttempts(job)) + " of " +
               std::to_string(job.status().max_attempts) + " starting",
           now);
}

uint64_t Scheduler::Unstarted(const SchedJob& array, const ArrayRun& run) const {
  if (run.rest) return 0;
  return array.spec().array->count - run.next - run.early.size();
}

bool Scheduler::MayStartTask(const SchedJob& array, const ArrayRun& run) const {
  if (run.cancelling || IsTerminal(array.state()) || Unstarted(array, run) == 0) return false;
  // parallel 0: the pool's workers. A task waiting to retry keeps its place.
  int64_t limit = array.spec().array->parallel;
  if (limit == 0) {
    auto pool = pools_.find(array.pool());
    limit = pool == pools_.end() ? 0 : pool->second.config.workers;
  }
  return run.active.size() < static_cast<uint64_t>(limit);
}

SchedJob& Scheduler::MakeTask(SchedJob& array, ArrayRun& run, uint64_t position, TimePoint now) {
  const ArraySpec& spec = *array.spec().array;
  const int64_t index = spec.IndexAt(position);
  const JobStatus& a = array.status();
  JobStatus s;
  s.id = TaskId(a.id, index);
  s.title = a.title;
  s.pool = a.pool;
  s.tags = a.tags;
  s.priority = a.priority;
  s.owner = a.owner;
  s.owner_uid = a.owner_uid;
  s.metadata = a.metadata;
  s.max_attempts = a.max_attempts;
  // Its deadline counts from the array's acceptance (SPEC.md section 5).
  s.created = a.created;
  s.updated = now;
  s.message = "task " + std::to_string(index) + " of array " + a.id;
  s.array = a.id;
  s.array_index = index;
  s.resources = a.resources;  // each task asks for what its array asked for
  const std::string id = s.id;
  auto [it, inserted] = jobs_.try_emplace(id, config_, std::move(s));
  SPOOLD_CHECK(inserted);
  SchedJob& task = it->second;
  task.id_ = &it->first;
  task.kept = KeptSpec(TaskSpec(array, index));
  // Its place in the queue (a retry, an interruption) is its array's.
  task.arrival = array.arrival;
  if (auto deadline = DeadlineOf(task)) deadlines_.emplace(*deadline, id);
  run.active.insert(id);
  new_tasks_.push_back(id);
  changed_.insert(id);
  dirty_arrays_[a.id] = now;
  return task;
}

void Scheduler::StartTask(SchedJob& array, TimePoint now, std::vector<std::string>* started) {
  ArrayRun& run = arrays_.at(array.id());
  if (!MayStartTask(array, run)) return;
  // Positions cancelled by hand before they started are passed over.
  while (!run.early.empty() && *run.early.begin() == run.next) {
    run.early.erase(run.early.begin());
    ++run.next;
  }
  if (array.state() == JobState::kQueued) {
    --PoolOf(array).queued;  // the array no longer holds a place: its tasks run
    array.status().started = now;
    SetState(array, JobState::kRunning, Reason::kNone, "starting its tasks", now);
  }
  SchedJob& task = MakeTask(array, run, run.next++, now);
  BeginAttempt(task, now);
  started->push_back(task.id());
  if (MayStartTask(array, run)) ready_[array.pool()].insert(KeyOf(array));
}

void Scheduler::TaskEnded(SchedJob& task, TimePoint now) {
  auto it = arrays_.find(*task.status().array);
  if (it == arrays_.end()) return;
  ArrayRun& run = it->second;
  SchedJob& array = jobs_.at(it->first);
  run.active.erase(task.id());
  const int64_t index = task.status().array_index.value_or(-1);
  switch (task.state()) {
    case JobState::kSucceeded:
      ++run.succeeded;
      break;
    case JobState::kFailed:
      run.failed.insert(index);
      break;
    default:
      run.cancelled.insert(index);
      break;
  }
  dirty_arrays_[array.id()] = now;
  const int64_t max_failed = array.spec().array->max_failed;
  if (max_failed > 0 && run.failed.size() >= static_cast<uint64_t>(max_failed)) {
    EndPending(array, run, JobState::kCancelled, Reason::kArrayHalted, now);
  }
  MaybeEndArray(array, run, now);
  if (!IsTerminal(array.state()) && array.reason() != Reason::kHeld &&
      array.reason() != Reason::kDependency && array.reason() != Reason::kPoolPaused &&
      MayStartTask(array, run)) {
    ready_[array.pool()].insert(KeyOf(array));
  }
}

void Scheduler::EndPending(SchedJob& array, ArrayRun& run, JobState state, Reason reason, TimePoint now) {
  if (run.rest) return;
  const ArraySpec& spec = *array.spec().array;
  uint64_t n = 0;
  ForEachFrom(spec, run.next,
              [&](uint64_t position, int64_t) { n += run.early.count(position) == 0 ? 1 : 0; });
  run.rest = std::make_pair(state, reason);
  // Said in the array's status, so that a restarted daemon starts none of them.
  array.status().halted_by = reason;
  changed_.insert(array.id());
  run.rest_count = n;
  run.rest_from = run.next;
  if (auto rit = ready_.find(array.pool()); rit != ready_.end()) rit->second.erase(KeyOf(array));
  dirty_arrays_[array.id()] = now;
  // Jobs waiting for one of these tasks learn of its end now.
  const std::string prefix = array.id() + ":";
  std::vector<std::string> parents;
  for (auto dit = dependents_.lower_bound(prefix);
       dit != dependents_.end() && dit->first.compare(0, prefix.size(), prefix) == 0; ++dit) {
    if (jobs_.count(dit->first) != 0) continue;  // started: decided by its own end
    if (auto known = TaskOutcome(dit->first); known && !known->active) parents.push_back(dit->first);
  }
  for (const auto& parent : parents) DecideChildren(parent, state, reason, now);
}

void Scheduler::MaybeEndArray(SchedJob& array, ArrayRun& run, TimePoint now) {
  if (IsTerminal(array.state()) || !run.active.empty() || Unstarted(array, run) > 0) return;
  const ArraySpec& spec = *array.spec().array;
  if (array.state() == JobState::kQueued) --PoolOf(array).queued;
  RefreshArray(array.id(), now, /*exact=*/true);
  const TaskCounts& c = *array.status().tasks;
  std::string halted;
  if (run.rest && run.rest->second == Reason::kArrayHalted && run.rest_count > 0) {
    halted = "; halted once " + Tasks(static_cast<uint64_t>(spec.max_failed)) +
             " had failed (array.max_failed), " + Tasks(run.rest_count) + " never started";
  }
  if (run.cancelling) {
    Finish(
        array, JobState::kCancelled, Reason::kCancelledByUser,
        "cancelled by request; " + std::to_string(c.succeeded) + " of " + Tasks(c.total) + " had succeeded",
        now);
  } else if (c.failed > 0) {
    Finish(array, JobState::kFailed, Reason::kTasksFailed,
           std::to_string(c.failed) + " of " + Tasks(c.total) + " failed (" +
               array.status().failed_indexes.value_or("") + ")" + halted,
           now);
  } else {
    Finish(array, JobState::kSucceeded, Reason::kNone,
           c.cancelled == 0 ? "all " + Tasks(c.total) + " succeeded"
                            : std::to_string(c.succeeded) + " of " + Tasks(c.total) + " succeeded, " +
                                  std::to_string(c.cancelled) + " cancelled by request",
           now);
  }
}

std::string Scheduler::FailedIndexes(const SchedJob& array, const ArrayRun& run) const {
  std::vector<int64_t> failed(run.failed.begin(), run.failed.end());
  // Tasks not started that a deadline failed come after every started one.
  if (run.rest && run.rest->first == JobState::kFailed) {
    ForEachFrom(*array.spec().array, run.rest_from, [&](uint64_t position, int64_t index) {
      if (run.early.count(position) == 0) failed.push_back(index);
    });
  }
  return FormatIndexes(failed);
}

void Scheduler::RefreshArray(const std::string& id, TimePoint now, bool exact) {
  auto it = arrays_.find(id);
  SchedJob* array = Find(id);
  if (it == arrays_.end() || array == nullptr) return;
  ArrayRun& run = it->second;
  TaskCounts c;
  c.total = array->spec().array->count;
  for (const auto& task : run.active) {
    if (jobs_.at(task).state() == JobState::kRunning) ++c.running;
  }
  c.succeeded = run.succeeded;
  c.failed = run.failed.size();
  c.cancelled = run.cancelled.size();
  if (run.rest) (run.rest->first == JobState::kFailed ? c.failed : c.cancelled) += run.rest_count;
  c.queued = c.total - std::min(c.total, c.running + c.Ended());
  JobStatus& s = array->status();
  // A long list of failed indexes costs its length at each write: while the
  // array runs it is rebuilt at most once a second.
  constexpr uint64_t kShortList = 1000;
  if (c.failed != run.failed_shown &&
      (exact || c.failed <= kShortList || now - run.failed_shown_at >= std::chrono::seconds(1))) {
    s.failed_indexes = FailedIndexes(*array, run);
    run.failed_shown = c.failed;
    run.failed_shown_at = now;
    changed_.insert(id);
  }
  if (s.tasks == c) return;
  s.tasks = c;
  s.progress = std::round(1000.0 * static_cast<double>(c.Ended()) / static_cast<double>(c.total)) / 10.0;
  if (s.state == JobState::kRunning) {
    s.message = run.cancelling
                    ? "cancel requested; " + Tasks(c.running) + " still stopping"
                    : std::to_string(c.Ended()) + " of " + Tasks(c.total) + " ended (" +
                          std::to_string(c.failed) + " failed), " + std::to_string(c.running) + " running";
  }
  s.updated = std::max(s.updated, now);
  changed_.insert(id);
}

std::vector<std::string> Scheduler::TakeNewTasks() {
  std::vector<std::string> out;
  out.swap(new_tasks_);
  return out;
}

std::optional<Scheduler::Ended> Scheduler::TaskOutcome(const std::string& id) const {
  auto ref = ParseTaskId(id);
  if (!ref) return std::nullopt;
  auto it = arrays_.find(ref->array);
  if (it == arrays_.end()) return std::nullopt;
  const ArrayRun& run = it->second;
  const ArraySpec& spec = *jobs_.at(it->first).spec().array;
  auto position = spec.PositionOf(ref->index);
  if (!position) return std::nullopt;
  if (auto job = jobs_.find(id); job != jobs_.end()) {
    return Ended{job->second.state(), job->second.reason(), !IsTerminal(job->second.state())};
  }
  const bool started = *position < run.next || run.early.count(*position) != 0;
  if (!started) {
    if (run.rest && *position >= run.rest_from) return Ended{run.rest->first, run.rest->second, false};
    return Ended{JobState::kQueued, Reason::kNone, true};
  }
  if (run.failed.count(ref->index) != 0) return Ended{JobState::kFailed, Reason::kNone, false};
  if (run.cancelled.count(ref->index) != 0)
    return Ended{JobState::kCancelled, Reason::kCancelledByUser, false};
  return Ended{JobState::kSucceeded, Reason::kNone, false};
}

Status Scheduler::CancelArray(SchedJob& array, TimePoint now, std::vector<std::string>* to_stop) {
  ArrayRun& run = arrays_.at(array.id());
  run.cancelling = true;
  EndPending(array, run, JobState::kCancelled, Reason::kCancelledByUser, now);
  const std::set<std::string> active = run.active;
  for (const auto& id : active) {
    SchedJob& task = jobs_.at(id);
    if (task.state() == JobState::kRunning) {
      cancel_requested_.insert(id);
      to_stop->push_back(id);
    } else if (!IsTerminal(task.state())) {
      --PoolOf(task).queued;
      Finish(task, JobState::kCancelled, Reason::kCancelledByUser,
             "cancelled with its array " + QueuedSoFar(task.status()), now);
    }
  }
  MaybeEndArray(array, run, now);
  return OkStatus();
}

Status Scheduler::CancelPendingTask(const std::string& id, TimePoint now) {
  auto ref = ParseTaskId(id);
  auto it = ref ? arrays_.find(ref->array) : arrays_.end();
  if (it == arrays_.end()) return MakeError("unknown_job", "no job " + id);
  SchedJob& array = jobs_.at(it->first);
  ArrayRun& run = it->second;
  auto position = array.spec().array->PositionOf(ref->index);
  if (!position) {
    return MakeError("unknown_job", "array " + it->first + " has no task " + std::to_string(ref->index));
  }
  auto known = TaskOutcome(id);
  if (known && !known->active) {
    return MakeError("invalid_field", "task " + id + " has already ended (" + StateName(known->state) + ")",
                     "job");
  }
  SchedJob& task = MakeTask(array, run, *position, now);
  if (*position == run.next) {
    ++run.next;
  } else {
    run.early.insert(*position);
  }
  Finish(task, JobState::kCancelled, Reason::kCancelledByUser, "cancelled by request before it started", now);
  return OkStatus();
}

void Scheduler::AddEndedTask(const std::string& array, int64_t index, JobState state) {
  auto it = arrays_.find(array);
  if (it == arrays_.end()) return;
  ArrayRun& run = it->second;
  auto position = jobs_.at(array).spec().array->PositionOf(index);
  if (!position) return;  // a folder the array has no task for: not counted
  run.early.insert(*position);
  if (state == JobState::kSucceeded) {
    ++run.succeeded;
  } else if (state == JobState::kFailed) {
    run.failed.insert(index);
  } else {
    run.cancelled.insert(index);
  }
}

std::vector<std::string> Scheduler::ArrayRecovered(const std::string& id, TimePoint now) {
  std::vector<std::string> to_stop;
  auto it = arrays_.find(id);
  if (it == arrays_.end()) return to_stop;
  ArrayRun& run = it->second;
  SchedJob& array = jobs_.at(id);
  // The started tasks are the positions with a folder: the first run of them
  // is where the array had come; the rest were cancelled by hand early.
  while (!run.early.empty() && *run.early.begin() == run.next) {
    run.early.erase(run.early.begin());
    ++run.next;
  }
  // Why no more tasks were to start, as its status said; else, a halt its
  // folders show (a crash before the status said so).
  const Reason halted = array.status().halted_by;
  const int64_t max_failed = array.spec().array->max_failed;
  if (halted != Reason::kNone) {
    run.cancelling = halted == Reason::kCancelledByUser;
    EndPending(array, run, halted == Reason::kDeadline ? JobState::kFailed : JobState::kCancelled, halted,
               now);
  } else if (max_failed > 0 && run.failed.size() >= static_cast<uint64_t>(max_failed)) {
    EndPending(array, run, JobState::kCancelled, Reason::kArrayHalted, now);
  }
  if (run.cancelling) {
    for (const auto& task_id : std::set<std::string>(run.active)) {
      SchedJob& task = jobs_.at(task_id);
      if (task.state() == JobState::kRunning) {
        cancel_requested_.insert(task_id);
        to_stop.push_back(task_id);
      } else if (!IsTerminal(task.state())) {
        --PoolOf(task).queued;
        Finish(task, JobState::kCancelled, Reason::kCancelledByUser,
               "cancelled with its array " + QueuedSoFar(task.status()), now);
      }
    }
  }
  dirty_arrays_[id] = now;
  MaybeEndArray(array, run, now);
  if (array.state() == JobState::kRunning && MayStartTask(array, run)) {
    ready_[array.pool()].insert(KeyOf(array));
  }
  return to_stop;
}

}  // namespace spoold

// The scheduler's dependencies (`after`, SPEC.md section 5): which jobs wait for
// which, and what a parent's end does to each job waiting for it. Part of
// Scheduler (daemon/scheduler.h); pure like the rest of it.
#include <algorithm>
#include <deque>

#include "daemon/scheduler.h"

namespace spoold {
namespace {

constexpr size_t kShownParents = 5;

std::string EndedAs(JobState state, Reason reason) {
  std::string out = StateName(state);
  if (const char* name = ReasonName(reason)) out += std::string(" (") + name + ")";
  return out;
}

// From the status, which holds the job file's `after`: a waiting job far back
// in a long queue keeps only the text of its file (kept_spec.h).
AfterOn ConditionOn(const JobStatus& status, const std::string& parent) {
  for (const auto& dep : status.after) {
    if (dep.job == parent) return dep.on;
  }
  return AfterOn::kSuccess;  // a status.json edited by hand: the default condition
}

// A task starts only after its array was released: waiting for it is
// waiting for the array, as far as cycles go.
std::string NodeOf(const std::string& id) {
  auto task = ParseTaskId(id);
  return task ? task->array : id;
}

}  // namespace

std::optional<std::string> Scheduler::CycleThrough(const JobSpec& spec) const {
  // A new job closes a cycle only through a job already waiting for it: with
  // none, the search (as long as the chain above the job) is not needed.
  // (A job waiting for a task of a new array waits for the array.)
  auto tasks = dependents_.lower_bound(spec.id + ":");
  const bool task_awaited =
      tasks != dependents_.end() && tasks->first.compare(0, spec.id.size() + 1, spec.id + ":") == 0;
  if (dependents_.count(spec.id) == 0 && !task_awaited &&
      std::none_of(spec.after.begin(), spec.after.end(),
                   [&spec](const Dependency& d) { return NodeOf(d.job) == spec.id; })) {
    return std::nullopt;
  }
  // Which job waits on each one reached, to name the cycle once found.
  std::map<std::string, std::string> waits_on_it;
  std::vector<std::string> stack;
  for (const auto& dep : spec.after) {
    if (waits_on_it.emplace(NodeOf(dep.job), spec.id).second) stack.push_back(NodeOf(dep.job));
  }
  while (!stack.empty()) {
    std::string node = std::move(stack.back());
    stack.pop_back();
    if (node == spec.id) {
      std::deque<std::string> path;
      for (std::string cur = waits_on_it.at(spec.id); cur != spec.id; cur = waits_on_it.at(cur)) {
        path.push_front(cur);
      }
      if (path.empty()) return "this job (" + spec.id + ") names itself";
      std::string out = "this job waits on " + path.front();
      for (size_t i = 1; i < path.size(); ++i) out += ", which waits on " + path[i];
      return out + ", which waits on this job (" + spec.id + ")";
    }
    auto it = jobs_.find(node);
    if (it == jobs_.end() || it->second.state() != JobState::kQueued ||
        it->second.reason() != Reason::kDependency) {
      continue;  // not waiting: no open edge leaves it
    }
    for (const auto& parent : it->second.status().waiting_on) {
      if (waits_on_it.emplace(NodeOf(parent), node).second) stack.push_back(NodeOf(parent));
    }
  }
  return std::nullopt;
}

std::string Scheduler::WaitMessage(const SchedJob& job) const {
  const auto& open = job.status().waiting_on;
  std::string out = "waiting for ";
  for (size_t i = 0; i < open.size() && i < kShownParents; ++i) {
    if (i > 0) out += ", ";
    auto it = jobs_.find(open[i]);
    std::string state = it != jobs_.end()      ? StateName(it->second.state())
                        : TaskOutcome(open[i]) ? "not started yet"
                                               : "not submitted yet";
    if (it == jobs_.end() && ended_lookup_) {
      if (auto known = ended_lookup_(open[i]); known && known->active) state = "not loaded";
    }
    out += open[i] + " (" + state + ")";
  }
  if (open.size() > kShownParents) out += " and " + std::to_string(open.size() - kShownParents) + " more";
  return out;
}

void Scheduler::DropEdges(SchedJob& job) {
  if (job.reason() != Reason::kDependency) return;
  for (const auto& parent : job.status().waiting_on) {
    auto it = dependents_.find(parent);
    if (it == dependents_.end()) continue;
    it->second.erase(job.id());
    if (it->second.empty()) dependents_.erase(it);
  }
  job.status().waiting_on.clear();
}

void Scheduler::AddWaiting(SchedJob& job, TimePoint now) {
  const std::vector<std::string> open = job.status().waiting_on;
  if (open.empty()) {
    // A status that waits on nothing (not one spoold wrote): nothing to wait for.
    SetState(job, JobState::kQueued, WaitingReason(job), "dependencies met", now);
    Enqueue(job, now);
    return;
  }
  bool missing = false;
  for (const auto& parent : open) {
    if (job.state() != JobState::kQueued || job.reason() != Reason::kDependency) return;  // decided
    if (auto it = jobs_.find(parent); it != jobs_.end()) {
      if (IsTerminal(it->second.state())) {
        (void)Decide(job, parent, it->second.state(), it->second.reason(), now);
      } else {
        dependents_[parent].insert(job.id());
      }
    } else if (auto task = TaskOutcome(parent)) {
      // A task of an array held here that has not started is waited for.
      if (task->active) {
        dependents_[parent].insert(job.id());
      } else {
        (void)Decide(job, parent, task->state, task->reason, now);
      }
    } else if (auto known = ended_lookup_ ? ended_lookup_(parent) : std::nullopt) {
      // A parent that has not ended but is not here is waited for like one
      // that is: it is no missing parent.
      if (known->active) {
        dependents_[parent].insert(job.id());
      } else {
        (void)Decide(job, parent, known->state, known->reason, now);
      }
    } else {
      dependents_[parent].insert(job.id());
      missing = true;
    }
  }
  if (job.state() != JobState::kQueued || job.reason() != Reason::kDependency) return;
  if (missing && config_.missing_grace.count() > 0) {
    missing_.emplace(job.created() + config_.missing_grace, job.id(), job.created());
  }
  if (std::string message = WaitMessage(job); message != job.status().message) {
    SetState(job, JobState::kQueued, Reason::kDependency, std::move(message), now);
  }
}

bool Scheduler::Decide(SchedJob& child, const std::string& parent, JobState state, Reason reason,
                       TimePoint now) {
  const AfterOn on = ConditionOn(child.status(), parent);
  auto& open = child.status().waiting_on;
  open.erase(std::remove(open.begin(), open.end(), parent), open.end());
  if (auto it = dependents_.find(parent); it != dependents_.end()) {
    it->second.erase(child.id());
    if (it->second.empty()) dependents_.erase(it);
  }
  if (!AfterHolds(on, state)) {
    --PoolOf(child).queued;
    Finish(child, JobState::kCancelled, Reason::kDependencyFailed,
           "parent " + parent + " ended " + EndedAs(state, reason) + "; after requires " + AfterOnName(on) +
               " (" + std::to_string(open.size()) + " other parent" + (open.size() == 1 ? "" : "s") +
               " still open)",
           now);
    return false;
  }
  if (!open.empty()) {
    SetState(child, JobState::kQueued, Reason::kDependency, WaitMessage(child), now);
    return true;
  }
  const Reason next = WaitingReason(child);  // the reason is still dependency here
  const std::string then = next == Reason::kHeld         ? "held until a start request"
                           : next == Reason::kPoolPaused ? "waiting: pool " + child.pool() + " is paused"
                                                         : "waiting for a worker";
  SetState(child, JobState::kQueued, next,
           "dependencies met (the last, " + parent + ", ended " + EndedAs(state, reason) + "); " + then, now);
  Enqueue(child, now);
  return false;
}

void Scheduler::ParentEnded(const std::string& parent, TimePoint now) {
  const SchedJob& ended = jobs_.at(parent);
  DecideChildren(parent, ended.state(), ended.reason(), now);
}

void Scheduler::DecideChildren(const std::string& parent, JobState state, Reason reason, TimePoint now) {
  auto it = dependents_.find(parent);
  if (it == dependents_.end()) return;
  const std::set<std::string> children = std::move(it->second);
  dependents_.erase(it);
  for (const auto& id : children) {
    SchedJob* child = Find(id);
    if (child == nullptr || child->state() != JobState::kQueued || child->reason() != Reason::kDependency)
      continue;
    (void)Decide(*child, parent, state, reason, now);
  }
}

void Scheduler::ResolveEnded(TimePoint now) {
  if (!ended_lookup_) return;
  std::vector<std::pair<std::string, Ended>> ended;
  for (const auto& [parent, children] : dependents_) {
    if (jobs_.count(parent) != 0) continue;
    if (auto e = ended_lookup_(parent); e && !e->active) ended.emplace_back(parent, *e);
  }
  for (const auto& [parent, e] : ended) DecideChildren(parent, e.state, e.reason, now);
}

void Scheduler::ExpireMissing(TimePoint now, std::vector<std::string>* changed) {
  while (!missing_.empty() && std::get<0>(*missing_.begin()) <= now) {
    const auto [at, id, created] = *missing_.begin();
    missing_.erase(missing_.begin());
    SchedJob* job = Find(id);
    if (job == nullptr || job->created() != created || job->state() != JobState::kQueued ||
        job->reason() != Reason::kDependency) {
      continue;  // decided, or an earlier job under the same id
    }
    // Absent: neither here nor known to the daemon. A parent that ended
    // outside the scheduler was decided when the daemon learnt of it
    // (ResolveEnded).
    std::vector<std::string> absent;
    for (const auto& parent : job->status().waiting_on) {
      if (jobs_.count(parent) == 0 && !TaskOutcome(parent) && !(ended_lookup_ && ended_lookup_(parent))) {
        absent.push_back(parent);
      }
    }
    if (absent.empty()) continue;  // every parent arrived in time
    const std::string names = FewOf(absent);
    --PoolOf(*job).queued;
    Finish(*job, JobState::kCancelled, Reason::kDependencyMissing,
           std::string(absent.size() == 1 ? "parent " : "parents ") + names +
               (absent.size() == 1 ? " was" : " were") +
               " not submitted within dependencies.missing_grace (" + FormatDuration(config_.missing_grace) +
               ")",
           now);
    changed->push_back(id);
  }
}

}  // namespace spoold

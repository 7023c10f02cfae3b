// What starts next, and with which resources (SPEC.md section 5,
// "Resources"): a job starts when its pool has a worker and its request fits
// in what its pool and the machine have free; the first job of a pool that
// does not fit is reserved, and a job behind it goes ahead only if it cannot
// delay it (EASY backfilling). Part of the Scheduler (daemon/scheduler.h).
#include <algorithm>

#include "daemon/scheduler.h"

namespace spoold {

std::optional<TimePoint> Scheduler::LimitIfStarted(const SchedJob& job, TimePoint now) const {
  std::optional<TimePoint> limit;
  const Millis timeout = job.kept.timeout().value_or(config_.TimeoutFor(job.pool()));
  if (timeout.count() > 0) limit = now + timeout;
  if (auto deadline = DeadlineOf(job); deadline && (!limit || *deadline < *limit)) limit = deadline;
  return limit;
}

Scheduler::Reservation Scheduler::Reserve(const std::string& pool, const SchedJob& job, TimePoint now) const {
  const ResourceAmounts& want = job.resources();
  // Every running attempt that holds resources, by when it ends at the
  // latest (its limit; none: never, as far as is known).
  struct Ending {
    std::optional<TimePoint> at;
    const ResourceLedger::Held* held;
  };
  std::vector<Ending> ends;
  for (const auto& [id, held] : ledger_.HeldAll()) {
    auto limit = jobs_.count(id) != 0 ? AttemptLimit(id) : std::nullopt;
    ends.push_back({limit ? std::optional<TimePoint>(std::max(limit->first, now)) : std::nullopt, &held});
  }
  std::sort(ends.begin(), ends.end(), [](const Ending& a, const Ending& b) {
    if (a.at.has_value() != b.at.has_value()) return a.at.has_value();
    return a.at && *a.at < *b.at;
  });
  Reservation r;
  r.pool = pool;
  r.job = job.id();
  FreeAmounts in_pool = ledger_.PoolFree(pool);
  FreeAmounts machine = ledger_.MachineFree();
  const PoolState& state = pools_.at(pool);
  int64_t workers = state.config.workers - state.running;
  // It may fit already, and wait only for others reserved before it.
  bool fits = in_pool.Covers(want) && machine.Covers(want);
  if (fits) r.at = now;
  for (const Ending& end : ends) {
    if (fits) break;
    in_pool.Give(ledger_.GivesBackTo(pool, *end.held));
    machine.Give(end.held->amounts);
    if (end.held->pool == pool) ++workers;
    if (in_pool.Covers(want) && machine.Covers(want)) {
      r.at = end.at;
      fits = true;
      break;
    }
  }
  if (!fits) r.at.reset();  // more than is free even once all ends: it waits for capacity
  in_pool.Take(want);
  machine.Take(want);
  r.extra_pool = in_pool;
  r.extra_machine = machine;
  r.extra_workers = workers - 1;
  return r;
}

bool Scheduler::MayGoAhead(const SchedJob& job, const std::string& pool, const ResourceAmounts& want,
                           TimePoint now) {
  if (reservations_.empty()) return true;
  const std::optional<TimePoint> ends = LimitIfStarted(job, now);
  const bool takes_machine = ledger_.Local(pool) && !want.Empty();
  std::vector<Reservation*> from_extras;
  for (Reservation& r : reservations_) {
    if (r.job == job.id()) continue;  // its own
    const bool same_pool = r.pool == pool;
    if (!same_pool && !takes_machine) continue;
    if (r.at && ends && *ends < *r.at) continue;  // gone before the reserved job needs it
    if (same_pool && (r.extra_workers < 1 || !r.extra_pool.Covers(want))) return false;
    if (takes_machine && !r.extra_machine.Covers(want)) return false;
    from_extras.push_back(&r);
  }
  for (Reservation* r : from_extras) {
    if (r->pool == pool) {
      r->extra_pool.Take(want);
      --r->extra_workers;
    }
    if (takes_machine) r->extra_machine.Take(want);
  }
  return true;
}

void Scheduler::MarkWaiting(SchedJob& job, Reason reason, std::string message, TimePoint now) {
  if (job.reason() == reason && (reason == Reason::kInQueue || job.status().message == message)) return;
  SetState(job, JobState::kQueued, reason, std::move(message), now);
}

bool Scheduler::StartQueued(SchedJob& job, TimePoint now, std::vector<std::string>* started) {
  if (arrays_.count(job.id()) != 0) {
    StartTask(job, now, started);
    return true;
  }
  --PoolOf(job).queued;
  const std::string& id = job.id();
  // The status first: a settled one is rebuilt from the kept text.
  (void)job.status();
  if (auto thawed = job.kept.Thaw(id, config_); !thawed.ok()) {
    // Not expected: the text validated when the job was accepted, and the
    // only part of the configuration it depends on is its pool, which a
    // revalidation does not require.
    Finish(job, JobState::kFailed, Reason::kSpawnFailed,
           "its job file no longer validates (" + thawed.error().message + ")", now);
    return false;
  }
  BeginAttempt(job, now);
  started->push_back(id);
  return true;
}

std::vector<std::string> Scheduler::TakeStartable(TimePoint now) {
  std::vector<std::string> started;
  // The reserved jobs of the last pass are protected from the pools visited
  // before their own in this one.
  reservations_.clear();
  for (const auto& [pool, id] : reserved_) {
    const SchedJob* job = Find(id);
    if (job == nullptr || job->state() != JobState::kQueued || job->reason() != Reason::kResources) continue;
    if (pools_.count(pool) != 0) reservations_.push_back(Reserve(pool, *job, now));
  }
  for (auto& [name, pool] : pools_) {
    auto rit = ready_.find(name);
    if (rit == ready_.end()) continue;
    auto& queue = rit->second;
    std::optional<std::string> reserved;  // this pass's
    bool whole = true;                    // whether the pass saw as far as it had to
    int passed = 0;                       // jobs it could not start
    int never_fit = 0;                    // jobs that ask for more than the pool has now
    for (auto it = queue.begin(); it != queue.end();) {
      if (pool.paused || pool.running >= pool.config.workers || passed >= kBackfillWindow) {
        whole = reserved.has_value();
        break;
      }
      const QueueKey key = *it;
      SchedJob& job = jobs_.at(*key.id);
      // A running array is in the queue too, for its next task: its state
      // is its tasks', never a waiting reason.
      const bool queued = job.state() == JobState::kQueued;
      const ResourceAmounts want = job.resources();
      if (auto never = ledger_.NeverFits(name, want)) {
        // Not counted against the window (they block nobody), but a pass
        // looks at no more than kScanLimit of them.
        if (queued) MarkWaiting(job, Reason::kResources, "waiting: it asks for " + *never, now);
        if (++never_fit >= kScanLimit) passed = kBackfillWindow;
        ++it;
        continue;
      }
      std::optional<std::string> lacking = ledger_.ShortOf(name, want);
      if (lacking && !reserved) {
        reserved = job.id();
        auto mine = std::find_if(reservations_.begin(), reservations_.end(),
                                 [&](const Reservation& r) { return r.pool == name; });
        if (mine != reservations_.end()) reservations_.erase(mine);
        reservations_.push_back(Reserve(name, job, now));
        if (queued)
          MarkWaiting(job, Reason::kResources, "waiting for resources: it asks for " + *lacking, now);
        ++passed;
        ++it;
        continue;
      }
      if (lacking || !MayGoAhead(job, name, want, now)) {
        // Only the reserved job waits with reason resources.
        if (queued && job.reason() == Reason::kResources) {
          MarkWaiting(job, Reason::kInQueue, "waiting for a worker", now);
        }
        ++passed;
        ++it;
        continue;
      }
      queue.erase(it);
      StartQueued(job, now, &started);
      // The next in line; an array that may start another task is back in
      // its place.
      it = queue.lower_bound(key);
    }
    // The job reserved before, if another is now (or none is), waits as
    // any other.
    auto was = reserved_.find(name);
    if (!whole) continue;
    if (!reserved) {
      // None of its jobs waits for resources now: its reservation of an
      // earlier pass must not hold back the pools after it.
      reservations_.erase(std::remove_if(reservations_.begin(), reservations_.end(),
                                         [&](const Reservation& r) { return r.pool == name; }),
                          reservations_.end());
    }
    if (was != reserved_.end() && (!reserved || was->second != *reserved)) {
      if (SchedJob* before = Find(was->second); before != nullptr && before->state() == JobState::kQueued &&
                                                before->reason() == Reason::kResources) {
        MarkWaiting(*before, Reason::kInQueue, "waiting for a worker", now);
      }
    }
    if (reserved) {
      reserved_[name] = *reserved;
    } else if (was != reserved_.end()) {
      reserved_.erase(was);
    }
  }
  return started;
}

}  // namespace spoold

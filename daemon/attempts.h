// The daemon's side of its executors (daemon/executor.h): picks each pool's
// executor, records starts in the scheduler before they are released, routes
// stops, and turns what executors report into scheduler calls and history
// events. No process and no Slurm command here: it is unit-tested with a fake
// executor (tests/unit/attempts_test.cpp).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/executor.h"
#include "daemon/scheduler.h"

namespace spoold {

// What Attempts needs of the daemon: the history and the trouble log.
struct AttemptHooks {
  std::function<void(SchedJob&, Level, const std::string&, const std::string&, Json)> event;
  std::function<void(const std::string&, const std::string&)> trouble;
  std::function<void(const std::string&)> trouble_over;
};

class Attempts : public ExecutorHost {
 public:
  Attempts(Scheduler& scheduler, AttemptHooks hooks);

  // `name` is a pool's `executor` setting ("local", "slurm"). The first one
  // added serves pools whose executor is not known (and pools that left the
  // configuration). Adopt asks them in reverse order of addition.
  void AddExecutor(const std::string& name, Executor* executor);

  // No new attempt before this (after a shortage of resources).
  bool MayStart(TimePoint now) const { return now >= backoff_until_; }
  // Hands the attempt to its pool's executor and records its start; it runs
  // once ReleaseRecorded finds its start recorded.
  void Start(AttemptSpec spec, TimePoint now);
  // Releases each attempt whose start is recorded (`recorded`: written and
  // published), in a flush: after its first sync and its renames
  // (`renames_durable` false: the attempts of executors that need no durable
  // start), or after its second sync (true: all of them).
  void ReleaseRecorded(const std::function<bool(const std::string&)>& recorded, bool renames_durable);
  // Stops the attempt of `id`, if one runs.
  bool Stop(const std::string& id, Reason cause, TimePoint now);
  bool Adopt(SchedJob& job, TimePoint now);
  void Tick(TimePoint now, StopMode mode);
  // After the turn: the next time the loop must wake for attempts, if any.
  std::optional<TimePoint> EndTurn(TimePoint now, bool stopping);
  bool Busy(bool stop_jobs) const;
  std::vector<std::string> Ids() const;
  size_t Count(const std::string& executor) const;
  bool Empty() const { return Ids().empty(); }
  void Shutdown();

  // ExecutorHost
  void AttemptEvent(const std::string& id, Level level, const std::string& event, const std::string& message,
                    Json extra) override;
  void AttemptSubmitted(const std::string& id, const std::string& slurm_id, TimePoint now) override;
  void AttemptEnded(const std::string& id, const AttemptEnd& end, TimePoint now) override;
  void AttemptNeverRan(const std::string& id, const Error& error, TimePoint now) override;
  void AttemptNotStarted(const std::string& id, const std::string& why, TimePoint now) override;
  std::optional<std::pair<TimePoint, Reason>> AttemptLimit(const std::string& id) const override;
  void Trouble(const std::string& key, const std::string& message) override;
  void TroubleOver(const std::string& key) override;

 private:
  Executor* ExecutorOf(const std::string& pool) const;
  Executor* Holder(const std::string& id) const;  // the executor whose attempt `id` is, if any

  Scheduler& scheduler_;
  AttemptHooks hooks_;
  std::vector<std::pair<std::string, Executor*>> executors_;
  std::set<std::string> unreleased_;  // started, their start not yet durable
  TimePoint backoff_until_{};
};

}  // namespace spoold

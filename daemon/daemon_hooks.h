// The daemon's side of hooks (SPEC-hooks): the HookHost of the delivery engine
// (daemon/hooks.h) over the spool's files and the hook processes
// (daemon/hook_process.h). It finds the jobs with hooks (a job's own, its
// pool's), keeps their marker in hooks-pending/ while they may have events to
// deliver, reads events.jsonl past each cursor, builds each run (stdin JSON,
// environment, user), records hook_ok and hook_failed, and writes cursors
// into the turn's batch. The Daemon calls it at fixed points of its loop turn
// (daemon.cpp Pump); it never blocks on a hook and never touches a job's state.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "config/config.h"
#include "daemon/hook_process.h"
#include "daemon/hooks.h"
#include "daemon/scheduler.h"
#include "spool/job_store.h"
#include "spool/paths.h"
#include "spool/sync_batch.h"

namespace spoold {

class DaemonHooks : public HookHost {
 public:
  // Appends an event to a job the scheduler holds (the Daemon's Event).
  using AppendActive =
      std::function<void(SchedJob&, Level, const std::string& event, const std::string& message, Json extra)>;
  DaemonHooks(uv_loop_t* loop, const Config& config, const SpoolPaths& paths, JobStore& store,
              SyncBatch& batch, Scheduler& scheduler, AppendActive append);

  // At start, after recovery: follows the jobs marked in hooks-pending/ and
  // every active job with hooks.
  void Open();
  // A job was accepted or written: followed if it has hooks (its marker made
  // first), told it ended if it did, poked otherwise.
  void Note(const SchedJob& job);
  // Events were appended to `id`.
  void Poke(const std::string& id) { hooks_.Poke(id); }
  // The loop turn: outcomes of ended runs, before the turn's writes...
  void Collect(TimePoint now);
  // ...and new runs, after the turn's flush (only events already written
  // are delivered).
  void Tick(TimePoint now) { hooks_.Tick(now); }
  std::optional<TimePoint> NextWakeup(TimePoint now) const;
  // Whether `id` (or a task of it) may have undelivered events.
  bool Pending(const std::string& id) const;
  // Retention removes `id` (and its tasks): no more deliveries, marker gone.
  void Forget(const std::string& id);
  void Reload() { hooks_.SetMaxRunning(config_.hooks.max_running); }
  // A stop: running hooks get TERM; their events are delivered again at the next start.
  void Stop() { processes_.StopAll(); }

  // HookHost
  std::optional<HookEvent> NextEvent(const std::string& job, uint64_t after, const HookSpec& spec) override;
  void Start(const HookRun& run) override;
  void Done(const HookRun& run, const HookOutcome& outcome) override;
  void CaughtUp(const std::string& job) override;
  // Jobs whose events.jsonl could not be read: never taken as caught up.
  std::set<std::string> unreadable_;

 private:
  // The hooks of a job of `pool` with `own` hooks, keyed job-<k>, pool-<k>.
  std::map<std::string, HookSpec> HooksOf(const std::vector<HookSpec>& own, const std::string& pool) const;
  void Follow(const std::string& id, const std::map<std::string, HookSpec>& hooks, bool ended);
  bool Mark(const std::string& id);
  uint64_t ReadCursor(const std::string& id, const std::string& key) const;
  void Append(const std::string& id, Level level, const std::string& event, const std::string& message,
              Json extra);
  void Fail(uint64_t token, const std::string& error);

  const Config& config_;
  const SpoolPaths& paths_;
  JobStore& store_;
  SyncBatch& batch_;
  Scheduler& scheduler_;
  AppendActive append_;
  Hooks hooks_;
  HookProcesses processes_;
  std::set<std::string> followed_;  // jobs with a marker (tasks as "array:index")
  struct Token {
    std::string job, key;
  };
  std::map<uint64_t, Token> tokens_;  // runs under way
  uint64_t next_token_ = 1;
  std::vector<std::pair<uint64_t, HookOutcome>> early_;  // runs that could not start
};

}  // namespace spoold

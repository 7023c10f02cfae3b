// Hook delivery (SPEC-hooks), the pure part: which hook of which job has what
// to deliver next, one event at a time per (job, hook) in seq order, retries
// with backoff, and the bound on hook processes at once. It owns the delivery
// state of every followed (job, hook): the cursor (the seq last delivered), the
// event loaded for delivery, the failures so far. It does no I/O: reading
// events.jsonl, starting a process, writing a cursor and recording an outcome
// are the HookHost's (daemon/daemon_hooks.cpp; a fake in
// tests/unit/hooks_test.cpp), and time is a parameter, like the scheduler's.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/hook_config.h"
#include "spool/time_util.h"

namespace spoold {

// One event of events.jsonl, as a hook gets it.
struct HookEvent {
  uint64_t seq = 0;
  std::string name;
  std::string line;  // the JSON object, as it stands in the file
};

// One run of a hook for one event.
struct HookRun {
  std::string job;
  std::string hook;  // its key: job-<k> or pool-<k>
  HookSpec spec;
  HookEvent event;
  int attempt = 1;  // 1-based: retries + 1 at most
};

// How a run ended.
struct HookOutcome {
  enum class End { kExited, kSignaled, kTimeout, kSpawnFailed };
  End end = End::kExited;
  int exit_code = 0;  // kExited
  int signal = 0;     // kSignaled, kTimeout (the signal that ended it, if known)
  std::string error;  // kSpawnFailed: what failed ("ENOENT: ...")
  bool ok() const { return end == End::kExited && exit_code == 0; }
};

// What the engine asks of its surroundings; called from Tick and Finished.
class HookHost {
 public:
  virtual ~HookHost() = default;
  // The first event of `job` past seq `after` that `spec` follows; nullopt when
  // there is none (yet).
  virtual std::optional<HookEvent> NextEvent(const std::string& job, uint64_t after,
                                             const HookSpec& spec) = 0;
  // Starts `run`; its end comes back through Hooks::Finished, never from
  // within this call.
  virtual void Start(const HookRun& run) = 0;
  // The run was delivered (outcome ok) or given up (`outcome` is its last
  // failure): the event (hook_ok, hook_failed) first, then the cursor.
  virtual void Done(const HookRun& run, const HookOutcome& outcome) = 0;
  // Every hook of `job`, which has ended, has delivered all it had: its
  // marker may go.
  virtual void CaughtUp(const std::string& job) = 0;
};

// The wait before retry `n` (1-based) of one event: 1 s, 2 s, 4 s, ... at most
// a minute.
Millis HookBackoff(int n);

class Hooks {
 public:
  Hooks(HookHost& host, int max_running) : host_(host), max_running_(max_running) {}

  void SetMaxRunning(int n) { max_running_ = n; }

  // Follows hook `key` of `job`, delivered up to seq `cursor`. Once per key.
  void Track(const std::string& job, const std::string& key, const HookSpec& spec, uint64_t cursor);
  bool Tracks(const std::string& job) const { return jobs_.count(job) != 0; }
  // New events may have been written for `job`.
  void Poke(const std::string& job);
  // `job` has ended: once its hooks caught up, the host hears CaughtUp.
  void JobEnded(const std::string& job);
  // Stops following `job` (retention removed it). A run of it still going
  // counts against the bound until it finishes; its outcome is then ignored.
  void Forget(const std::string& job);

  // A run started by the host ended.
  void Finished(const std::string& job, const std::string& key, const HookOutcome& outcome, TimePoint now);

  // Loads what the poked hooks have to deliver, and starts runs while fewer
  // than max_running run and the retry waits allow.
  void Tick(TimePoint now);

  // The earliest retry due, if any is waiting.
  std::optional<TimePoint> NextWakeup() const;
  int Running() const { return static_cast<int>(running_.size()); }
  // Runs waiting for a free place (ready, not waiting for a retry).
  size_t Waiting() const { return ready_.size(); }

 private:
  using Ref = std::pair<std::string, std::string>;  // job, key
  struct TrackState {
    HookSpec spec;
    uint64_t cursor = 0;
    std::optional<HookEvent> next;  // loaded, to deliver
    bool look = true;               // events may lie past `next`/cursor: ask the host
    bool running = false;
    bool queued = false;  // in ready_ or in retries_
    int failures = 0;     // of `next`
  };
  struct Job {
    std::map<std::string, TrackState> tracks;
    bool ended = false;
  };
  void Load(const Ref& ref, TrackState& track);
  void Advance(const Ref& ref, TrackState& track, const HookOutcome& outcome);
  void CheckCaughtUp(const std::string& job);

  HookHost& host_;
  int max_running_;
  std::map<std::string, Job> jobs_;
  std::set<Ref> to_look_;                  // tracks to ask the host about
  std::deque<Ref> ready_;                  // an event loaded, in the order they became ready
  std::multimap<TimePoint, Ref> retries_;  // an event loaded, waiting for its retry
  std::set<Ref> running_;                  // runs started and not finished (forgotten jobs' too)
  std::set<std::string> check_ended_;      // ended jobs that may have caught up
};

}  // namespace spoold

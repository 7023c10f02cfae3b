// One job as the scheduler keeps it in memory: its definition (spool/kept_spec.h)
// and its status.
//
// A queued job far from the head of its queue, whose status says nothing its
// job file does not (no attempt yet, nothing running), can be settled: it then
// keeps only the few fields of its status that are not in its job file (about
// 100 bytes where the whole status takes 450 and more). Reading or changing its
// status() rebuilds the whole from the kept text, the way a restarted daemon
// would, and it stays whole until it is settled again (the daemon settles a job
// once its status is written). The id, pool, state, reason and the other fields
// that the scheduler's queues and the control requests read are there without
// a rebuild. Pure: no I/O.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "config/config.h"
#include "spool/kept_spec.h"
#include "spool/status.h"

namespace spoold {

class SchedJob {
 public:
  // The definition: parsed, or only its text while the job waits far from the
  // head of its queue. A running job always has spec().
  KeptSpec kept;
  const JobSpec& spec() const { return kept.spec(); }
  uint64_t arrival = 0;  // order of admission, for FIFO among equal priorities
  // The state and reason last written to disk: the daemon records an event for
  // each transition it persists.
  JobState persisted_state = JobState::kQueued;
  Reason persisted_reason = Reason::kNone;

  // `config` is the scheduler's configuration, which outlives the job (a
  // rebuild validates against it). The scheduler points id() at the job's key
  // in its map once the job is there.
  SchedJob(const Config& config, JobStatus status);

  // The whole status; a settled one is rebuilt first and stays whole.
  const JobStatus& status() const;
  JobStatus& status();

  // Read without rebuilding.
  const std::string& id() const { return *id_; }
  JobState state() const { return status_ ? status_->state : JobState::kQueued; }
  Reason reason() const { return status_ ? status_->reason : settled_.reason; }
  const std::string& pool() const { return status_ ? status_->pool : *settled_.pool; }
  int64_t priority() const { return status_ ? status_->priority : settled_.priority; }
  TimePoint created() const { return status_ ? status_->created : settled_.created; }
  int64_t owner_uid() const { return status_ ? status_->owner_uid : settled_.owner_uid; }
  const ResourceAmounts& resources() const { return status_ ? status_->resources : settled_.resources; }
  std::optional<TimePoint> next_attempt_at() const {
    return status_ ? status_->next_attempt_at : std::nullopt;
  }

  // Keeps only the part of the status that the job file does not hold, if the
  // definition is kept as text and a rebuild gives the status back exactly
  // (it is parsed again to make sure). `pool` and `owner` are strings equal to
  // the status's that outlive the job: the scheduler's one copy of each name.
  // Returns whether the job is settled now.
  bool Settle(const std::string& pool, const std::string& owner);
  bool Settled() const { return status_ == nullptr; }

 private:
  // A queued job's status beyond its job file. Its state is queued; title,
  // tags, metadata, priority and max_attempts come from the file, attempts
  // and the rest of a run are empty.
  struct Part {
    uint64_t seq = 0;
    int64_t priority = 0;
    int64_t owner_uid = -1;
    TimePoint created{};
    TimePoint updated{};
    const std::string* pool = nullptr;
    const std::string* owner = nullptr;
    std::string message;
    Reason reason = Reason::kInQueue;
    Json definition = nullptr;  // a run's definition, name and params
    ResourceAmounts resources;  // as accepted: a reload may have changed the pool's defaults
  };
  // The whole status from the kept text and `part`; nullopt if the text no
  // longer validates (not expected: it did when the job was accepted).
  std::optional<JobStatus> Rebuild(const Part& part) const;

  friend class Scheduler;
  const std::string* id_ = nullptr;
  const Config* config_;
  mutable std::unique_ptr<JobStatus> status_;  // null while settled
  Part settled_;                               // while settled
};

}  // namespace spoold

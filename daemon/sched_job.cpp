#include "daemon/sched_job.h"

#include "spool/intake.h"

namespace spoold {

SchedJob::SchedJob(const Config& config, JobStatus status)
    : config_(&config), status_(std::make_unique<JobStatus>(std::move(status))) {}

std::optional<JobStatus> SchedJob::Rebuild(const Part& part) const {
  // A job whose pool a reload removed is parsed all the same (KeptSpec::Parse).
  Result<JobSpec> spec = kept.Parse(*id_, *config_);
  if (!spec.ok()) return std::nullopt;
  // What intake makes of a job file, with what changed since.
  JobStatus s = AcceptedStatus(*id_, *spec, *part.owner, part.owner_uid, part.reason, part.created);
  s.seq = part.seq;
  s.message = part.message;
  s.updated = part.updated;
  s.definition = part.definition;
  s.resources = part.resources;
  return s;
}

const JobStatus& SchedJob::status() const {
  if (!status_) {
    std::optional<JobStatus> whole = Rebuild(settled_);
    // Settle made sure that the text gives this status back, and nothing the
    // rebuild depends on changes (the text; of the configuration, only whether
    // the pool exists, which Rebuild provides). A status made up without its
    // file's fields would be written to disk: a broken invariant aborts.
    SPOOLD_CHECK(whole.has_value());
    status_ = std::make_unique<JobStatus>(std::move(*whole));
  }
  return *status_;
}

JobStatus& SchedJob::status() { return const_cast<JobStatus&>(static_cast<const SchedJob&>(*this).status()); }

bool SchedJob::Settle(const std::string& pool, const std::string& owner) {
  if (!status_) return true;
  const JobStatus& s = *status_;
  if (!kept.Frozen() || s.state != JobState::kQueued) return false;
  SPOOLD_CHECK(pool == s.pool && owner == s.owner);
  Part part{s.seq,  s.priority, s.owner_uid, s.created,    s.updated,  &pool,
            &owner, s.message,  s.reason,    s.definition, s.resources};
  std::optional<JobStatus> rebuilt = Rebuild(part);
  if (!rebuilt || !(*rebuilt == s)) return false;
  settled_ = std::move(part);
  status_.reset();
  return true;
}

}  // namespace spoold

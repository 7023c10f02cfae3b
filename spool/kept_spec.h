// A job's definition as the scheduler keeps it in memory. A queued job far from
// the head of its pool's queue needs only a few of its fields until it starts
// (hold, deadline); the rest (command, environment, retry and kill policies,
// metadata) takes about 700 bytes once parsed. Such a job keeps the text it was
// accepted from instead (usually far smaller), and is parsed and validated again
// when it starts (about 1.5 us for a small file), the way a restarted daemon
// reads its job file. The text is kept in memory, not read again from the job
// folder: the job runs exactly what was accepted. Pure: no I/O.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "config/config.h"
#include "config/result.h"
#include "spool/job_spec.h"

namespace spoold {

class KeptSpec {
 public:
  KeptSpec() = default;
  explicit KeptSpec(JobSpec spec);

  // Whether only the text is kept; spec() may then not be called.
  bool Frozen() const { return spec_ == nullptr; }
  const JobSpec& spec() const;

  // What the scheduler reads while the job waits, frozen or not.
  bool hold() const { return hold_; }
  void ReleaseHold();
  const std::optional<Millis>& deadline() const { return deadline_; }
  // The job's own timeout (unset: its pool's): a job behind a pool's
  // reserved one may start only if it cannot delay it (SPEC.md section 5).
  const std::optional<Millis>& timeout() const { return timeout_; }
  // Whether the job file has hooks of its own: the daemon asks at every write
  // of the job, and a frozen job must not be parsed for that.
  bool has_hooks() const { return has_hooks_; }

  // Keeps only `text`, the accepted file (in the spec's format) that the spec
  // was validated from, and drops the parsed spec.
  void Freeze(std::string text);

  // Parses and validates the kept text again, for job `id`, against `config`
  // (RevalidateJobSpec: a pool the configuration lost is taken as it is).
  // On success the spec is back (with hold as it was last set); on error the
  // job stays frozen and the error says what no longer validates.
  Status Thaw(const std::string& id, const Config& config);

  // The spec the kept text gives (parsed and validated as Thaw does, with the
  // hold as last set), without keeping it: for a frozen job only.
  Result<JobSpec> Parse(const std::string& id, const Config& config) const;

 private:
  std::unique_ptr<JobSpec> spec_;
  std::string text_;
  DocFormat format_ = DocFormat::kToml;
  bool hold_ = false;
  std::optional<Millis> deadline_;
  std::optional<Millis> timeout_;
  bool has_hooks_ = false;
};

}  // namespace spoold

// A job file's contents after validation (SPEC.md section 2): every key checked,
// defaults applied where the job's own value is the whole story, and pool-level
// defaults (timeout) left to Config so that the effective value can be computed
// when the job runs. Pure: no state, no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "spool/document.h"
#include "spool/hook_spec.h"
#include "spool/job_after.h"
#include "spool/job_array.h"

namespace spoold {

struct RetryPolicy {
  int attempts = 0;  // runs after the first one, 0..100
  Millis delay = std::chrono::minutes(1);
  double backoff = 1.0;
  Millis max_delay = std::chrono::hours(1);  // 0: no cap
  bool on_timeout = false;
  std::vector<int> exit_codes;  // empty: any non-zero code qualifies
};

struct KillPolicy {
  std::string signal_name = "TERM";  // normalised, without "SIG"
  int signal = 15;
  Millis grace = std::chrono::seconds(10);
};

struct JobSpec {
  std::string id;
  DocFormat format = DocFormat::kToml;

  std::vector<std::string> command;  // exactly one of command and script is set
  std::optional<std::string> script;
  std::vector<std::string> shell = {"/bin/sh", "-eu"};

  std::string title;  // defaults to the id
  std::string description;
  std::vector<std::string> tags;
  std::string pool = "default";
  int64_t priority = 0;
  std::string cwd;  // "" = the job's results/ folder
  std::map<std::string, std::string> env;
  std::optional<Millis> timeout;   // unset: the pool's, else defaults.timeout; 0ms: no limit
  std::optional<Millis> deadline;  // unset (also for 0 in the file): none; counted from acceptance
  RetryPolicy retry;
  KillPolicy kill;
  bool hold = false;
  std::vector<Dependency> after;  // the jobs this one waits for (SPEC.md section 2)
  // The job is an array of tasks (SPEC.md section 5); shared, since every
  // task's definition is a copy of its array's without it.
  std::shared_ptr<const ArraySpec> array;
  Json metadata = Json::object();
  std::vector<HookSpec> hooks;  // [[hooks]] (SPEC-hooks; spool/hook_spec.h)
  // [resources], the pool's defaults applied (spool/job_resources.h). The
  // job's status keeps what it was accepted with: that is what it gets.
  ResourceAmounts resources;
};

// ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$
bool IsValidJobId(std::string_view id);

// Whether `key` is a top-level key of a job file (SPEC.md section 2).
bool IsJobKey(std::string_view key);

// Validates a parsed job file. Errors carry code (invalid_field, unknown_field,
// missing_field, unknown_pool), field, line/column from the document, and a
// sentence that names the field and the rule without quoting string content.
// An unknown key comes before any other error, naming the close key if one is.
Result<JobSpec> ValidateJobSpec(const Document& doc, const std::string& id, const Config& config);

// As ValidateJobSpec, for a job accepted before: a pool the configuration no
// longer names is taken as it is (its jobs wait until it is configured again,
// SPEC.md section 8), and so is a list of parents longer than
// dependencies.max_after now allows. Recovery and the scheduler read a kept
// job file so.
Result<JobSpec> RevalidateJobSpec(const Document& doc, const std::string& id, const Config& config);

// The signal number for a name such as "TERM" or "SIGTERM"; nullopt if unknown.
std::optional<int> SignalFromName(std::string_view name);

}  // namespace spoold

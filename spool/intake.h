// Intake of job files dropped into incoming/ (SPEC.md sections 2 and 3): one
// entry at a time, opened safely (no links followed, nothing blocks, size and
// type checked before a byte is read), parsed, validated, admitted by the
// caller's check, and committed as a job folder, or moved to rejected/ with an
// error file. Nothing is ever deleted but a byte-identical re-drop. Owns no job
// state: the daemon decides admission and records what follows.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "config/config.h"
#include "spool/definition_store.h"
#include "spool/job_spec.h"
#include "spool/job_store.h"
#include "spool/status.h"
#include "spool/ttl_cache.h"

namespace spoold {

enum class IntakeKind {
  kIgnored,    // not a final name (".x", "x.tmp", "x.part"): never read
  kVanished,   // gone before it could be read (renamed away, or a race)
  kAccepted,   // committed as jobs/<id>/; spec and status are set
  kRejected,   // moved to rejected/ with an error file; error is set
  kDuplicate,  // byte-identical to existing job `id`; the caller records it and
               // calls RemoveIncoming with `file`
  kFailed,     // could not be handled now (e.g. disk full); left in place, error set
};

struct IntakeOutcome {
  IntakeKind kind = IntakeKind::kIgnored;
  std::string name;  // the file name in incoming/
  std::string id;
  std::optional<JobSpec> spec;
  std::optional<JobStatus> status;
  std::string text;  // for kAccepted: the accepted file, as the spec was validated from it
  Error error;
  std::string stored_as;  // for kRejected: the name under rejected/
  std::pair<dev_t, ino_t> file{};  // for kDuplicate: the file read
  // For kFailed: the file was to be refused with this error, but could not be
  // moved to rejected/ (`error` says why); it is still in incoming/.
  std::optional<Error> refusal;
};

// The status a job accepted from `spec` starts with: queued with `reason`,
// message "accepted", created and updated `now`.
JobStatus AcceptedStatus(const std::string& id, const JobSpec& spec, std::string owner, int64_t owner_uid,
                         Reason reason, TimePoint now);

// The daemon's word on a valid job: the reason it starts queued with (in_queue,
// held or pool_paused), or an error such as queue_full.
using AdmitFn = std::function<Result<Reason>(const JobSpec&)>;

// The error file of SPEC.md section 3 for `file`: code, field, line, column and
// message. It never quotes the file's content (messages are built that way) and
// names are made valid UTF-8. The daemon writes it; spoolctl prints the same.
Json RejectionDocument(const std::string& file, const Error& error, TimePoint now);

// The name a rejected file `name` is stored under at its n-th try (n = 1: its
// own name; then "~2", "~3", ... shortened with a hash to fit NAME_MAX), and
// the name of its error file. spoolctl finds rejections by the same rule.
std::string RejectedName(const std::string& name, int n);
std::string RejectionErrorFile(const std::string& stored);

// The revision a run of a definition names (the daemon's DefinitionRegistry).
using DefinitionLookup = std::function<Result<FoundDefinition>(const RunRef&)>;

class Intake {
 public:
  Intake(JobStore& store, const Config& config) : store_(store), config_(&config) {}
  void SetConfig(const Config& config) { config_ = &config; }
  // Without it, every run of a definition is refused as unknown_definition.
  void SetDefinitions(DefinitionLookup lookup) { definitions_ = std::move(lookup); }

  IntakeOutcome Process(const std::string& name, const AdmitFn& admit, TimePoint now);

  // Deletes incoming/<name> if it is still the file read (`file`: device and
  // inode). A file dropped under the same name since (say, the same job again
  // while the first one's removal waited for a round of syncs) stays, and is
  // taken in on its own.
  Status RemoveIncoming(const std::string& name, std::pair<dev_t, ino_t> file) const;

  // At start, after a crash in Quarantine: removes error files whose file is
  // not beside them (the file was never moved: it is refused again), and gives
  // every rejected file without an error file one (left by spoold before 1.1,
  // which moved the file first), with the error found again by checking the
  // file as intake would (or, where the reason cannot be found again, code
  // "unrecorded").
  struct Repaired {
    int written = 0;
    int orphans_removed = 0;
  };
  Repaired RepairRejected(TimePoint now) const;

  // Writes the error file into rejected/, then moves the file from `folder`
  // beside it. Used for job files and control requests alike. Returns the name
  // it was stored as. On an error the file is still in `folder` and no error
  // file is left behind; error code "vanished": the file was removed meanwhile.
  Result<std::string> Quarantine(const std::string& folder, const std::string& name,
                                 const Error& error, TimePoint now) const;

 private:
  IntakeOutcome Reject(const std::string& name, Error error, TimePoint now) const;

  // The submitter's name and primary group (the file's group if the user has
  // no passwd entry). An entry found is kept for kOwnerCacheTime: reading the
  // passwd database for every file was a dozen system calls a job.
  struct Owner {
    std::string name;
    gid_t gid;
  };
  Owner OwnerOf(uid_t uid, gid_t file_gid, TimePoint now);

  // A parsed job file checked as a job: an ordinary one validated, a run of a
  // definition (SPEC.md section 2) resolved against its revision first.
  struct Checked {
    JobSpec spec;
    std::optional<FoundDefinition> definition;
    std::optional<ResolvedRun> run;
  };
  Result<Checked> Check(const Document& doc, const std::string& id) const;
  DefinitionLookup definitions_;
  TtlCache<uid_t, Owner> owners_{std::chrono::seconds(5)};

  JobStore& store_;
  const Config* config_;
};

}  // namespace spoold

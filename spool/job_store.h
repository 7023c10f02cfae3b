// The job folders under jobs/ (SPEC.md section 4) and how they change on disk.
// New jobs are committed by rename (SPEC.md section 9, issue 2 item 4): assembled
// in jobs/.<id>.tmp/, every file fsynced, renamed to jobs/<id>/, jobs/ fsynced.
// Later status.json writes are atomic replacements; events.jsonl is appended.
// Every write takes the next number of the job's `seq` counter, shared by status
// writes and events, so both grow and never repeat. Owns no job state: the
// caller's JobStatus is the state, this class only persists it.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/result.h"
#include "spool/document.h"
#include "spool/paths.h"
#include "spool/status.h"
#include "spool/sync_batch.h"

namespace spoold {

struct NewJob {
  std::string id;
  DocFormat format = DocFormat::kToml;
  std::string bytes;                  // the accepted file, byte for byte
  std::optional<std::string> script;  // written to jobs/<id>/script when set
  // Further files of the folder, name -> content (mode 0644): a run of a
  // definition keeps its run file and the definition's revision (SPEC.md
  // section 4).
  std::vector<std::pair<std::string, std::string>> extra_files;
  // When spoold is root and the owner is not: the folder is root's with group
  // owner_gid and mode 0750 (the owner reads it, other users do not), results/
  // and the progress file are the owner's (the job writes them), and nothing
  // else is writable by the job.
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
  // An array's folder gets tasks/; a task's folder (jobs/<array>/tasks/<i>)
  // has no job file and no script, its array's are used (SPEC.md section 5).
  bool array = false;
  bool task = false;
  // When the `accepted` event happened, if not at the status's `created` (a
  // task's is its array's).
  std::optional<TimePoint> accepted_at;
};

struct AttemptLogs {
  int stdout_fd = -1;
  int stderr_fd = -1;
};

class JobStore {
 public:
  explicit JobStore(const SpoolPaths& paths) : paths_(paths) {}

  // With a batch (the daemon's loop), writes are staged and made durable by the
  // batch's flush (group commit); without one (tools, tests), each write is
  // durable when it returns.
  void SetBatch(SyncBatch* batch) { batch_ = batch; }

  // Commits a new job folder with its job file, status.json and events.jsonl
  // (holding `accepted`). Fails if jobs/<id> exists. `status.seq` is advanced.
  // With a batch, the folder appears at the flush and `published` runs after
  // it is durable; without one, `published` runs before Commit returns.
  Status Commit(const NewJob& job, JobStatus& status, const Event& accepted,
                std::function<void()> published = {});

  // Replaces status.json (seq advanced first).
  Status WriteStatus(JobStatus& status);

  // Appends one event (seq advanced first).
  Status AppendEvent(JobStatus& status, const Event& event);

  // Reads status.json; seq is raised to the last event's seq if that is larger
  // (an event may have been appended after the last status write).
  Result<JobStatus> Load(const std::string& id) const;

  // The job file's bytes and format (what runs, and what recovery reads).
  Result<std::pair<DocFormat, std::string>> ReadJobFile(const std::string& id,
                                                        size_t max_size) const;

  // The file the job was accepted from, byte for byte, for idempotent
  // re-drops: a run of a definition's run file, else the job file.
  Result<std::pair<DocFormat, std::string>> ReadDroppedFile(const std::string& id, size_t max_size) const;

  // Job ids with a folder (names starting with '.' are not jobs); `expect`
  // as for ListDir.
  Result<std::vector<std::string>> ListJobs(size_t expect = 0) const;

  // Removes half-assembled folders (jobs/.<id>.tmp) left by a crash; returns
  // how many.
  Result<int> CleanTemp() const;

  bool Exists(const std::string& id) const;
  Status Remove(const std::string& id) const;

  // Creates attempts/<n>/ with stdout.log and stderr.log and returns their
  // descriptors (close-on-exec; the caller closes them).
  Result<AttemptLogs> OpenAttemptLogs(const std::string& id, int attempt) const;

  Status WriteResults(const std::string& id, const Json& item) const;

  const SpoolPaths& Paths() const { return paths_; }

  // Where `path`, a path inside job `id`'s folder, is now: inside the folder
  // still being assembled (jobs/.<id>.tmp) until the batch's flush renames it
  // into place, so that a job can be written to, and started, in the turn that
  // accepted it. Nobody sees that folder: files in it are written in place.
  std::string Here(const std::string& id, const std::string& path) const;

  // Whether job `id`'s folder is still being assembled (not renamed into place).
  // A task's folder is, while its array's is.
  bool IsUnpublished(const std::string& id) const { return Unpublished(id) != unpublished_.end(); }

  // The indexes of an array's task folders, in no order.
  Result<std::vector<int64_t>> ListTasks(const std::string& array) const;

 private:
  // Replaces file `path` of job `id` (see Here).
  Status Replace(const std::string& id, const std::string& path, std::string_view text) const;

  // The entry of `id`'s folder, or of its array's for a task, in unpublished_.
  std::map<std::string, std::string>::const_iterator Unpublished(const std::string& id) const;

  SpoolPaths paths_;
  SyncBatch* batch_ = nullptr;
  std::map<std::string, std::string> unpublished_;  // id -> its folder until the rename
};

}  // namespace spoold

// Every path inside the spool root (SPEC.md sections 1 and 4). This is the only
// place that builds one: the rest of the code asks SpoolPaths. Holds the root and
// nothing else; does no I/O except EnsureLayout.
#pragma once

#include <string>

#include "config/result.h"
#include "spool/document.h"

namespace spoold {

class SpoolPaths {
 public:
  explicit SpoolPaths(std::string root);

  const std::string& Root() const { return root_; }
  std::string Tmp() const { return root_ + "/tmp"; }
  std::string Incoming() const { return root_ + "/incoming"; }
  std::string IncomingFile(const std::string& name) const { return Incoming() + "/" + name; }
  std::string Control() const { return root_ + "/control"; }
  std::string ControlFile(const std::string& name) const { return Control() + "/" + name; }
  std::string Rejected() const { return root_ + "/rejected"; }
  std::string RejectedFile(const std::string& name) const { return Rejected() + "/" + name; }
  std::string Jobs() const { return root_ + "/jobs"; }
  std::string Index() const { return root_ + "/index.json"; }
  // The head and the queued and running jobs only (SPEC.md section 7).
  std::string IndexActive() const { return root_ + "/index.active.json"; }
  // The entries of ended jobs, appended once (the daemon's cache; see job_index.h).
  std::string IndexSegment() const { return root_ + "/.index.ended"; }
  std::string Tombstones() const { return root_ + "/.tombstones"; }
  std::string Lock() const { return root_ + "/spoold.lock"; }
  // Job definitions (SPEC.md section 2, "Definitions"): the files people edit,
  // and the daemon's record of every revision and run of each.
  std::string Definitions() const { return root_ + "/definitions"; }
  std::string DefinitionFile(const std::string& name) const { return Definitions() + "/" + name; }
  std::string Revisions() const { return root_ + "/revisions"; }
  std::string RevisionsDir(const std::string& name) const { return Revisions() + "/" + name; }
  std::string RevisionFile(const std::string& name, int revision, DocFormat format) const;
  std::string RevisionHistory(const std::string& name) const { return RevisionsDir(name) + "/history.jsonl"; }
  std::string RevisionRuns(const std::string& name) const { return RevisionsDir(name) + "/runs.jsonl"; }
  // The daemon's Prometheus metrics (SPEC.md section 11).
  std::string RootMetrics() const { return root_ + "/metrics.prom"; }

  // A job's folder; for a task id (`sweep:7`, SPEC.md section 5) the task's
  // folder under its array's, jobs/sweep/tasks/7.
  std::string JobDir(const std::string& id) const;
  // Where a job folder is assembled before its commit rename (a task's in its
  // array's tasks/).
  std::string JobTmpDir(const std::string& id) const;
  // An array's task folders.
  std::string TasksDir(const std::string& array) const { return Jobs() + "/" + array + "/tasks"; }
  std::string JobFileName(DocFormat format) const;  // "job.toml" or "job.json"
  // A run of a definition's file as dropped, beside the job.json it resolved
  // to: "run.toml" or "run.json" (SPEC.md section 4).
  std::string RunFileName(DocFormat format) const;
  std::string StatusFile(const std::string& id) const { return JobDir(id) + "/status.json"; }
  std::string Events(const std::string& id) const { return JobDir(id) + "/events.jsonl"; }
  // A task runs its array's script.
  std::string Script(const std::string& id) const;
  std::string ResultsDir(const std::string& id) const { return JobDir(id) + "/results"; }
  std::string ResultsJson(const std::string& id) const { return JobDir(id) + "/results.json"; }
  std::string Progress(const std::string& id) const { return JobDir(id) + "/progress"; }
  std::string AttemptsDir(const std::string& id) const { return JobDir(id) + "/attempts"; }
  std::string AttemptDir(const std::string& id, int n) const {
    return AttemptsDir(id) + "/" + std::to_string(n);
  }
  std::string StdoutLog(const std::string& id, int n) const { return AttemptDir(id, n) + "/stdout.log"; }
  std::string StderrLog(const std::string& id, int n) const { return AttemptDir(id, n) + "/stderr.log"; }
  // Slurm pools: the attempt's batch script and the exit code its step writes.
  std::string SlurmScript(const std::string& id, int n) const { return AttemptDir(id, n) + "/slurm.sh"; }
  std::string ExitCodeFile(const std::string& id, int n) const { return AttemptDir(id, n) + "/exit_code"; }
  // Hooks (SPEC-hooks): per hook (`key`: job-<k>, pool-<k>) the seq last
  // delivered and the hook's capped output; and the markers of jobs whose
  // hooks may have events to deliver, read at start instead of every job.
  std::string HooksDir(const std::string& id) const { return JobDir(id) + "/hooks"; }
  std::string HookCursor(const std::string& id, const std::string& key) const {
    return HooksDir(id) + "/" + key + ".cursor";
  }
  std::string HookLog(const std::string& id, const std::string& key) const {
    return HooksDir(id) + "/" + key + ".log";
  }
  std::string HooksPending() const { return root_ + "/hooks-pending"; }
  std::string HooksPendingFile(const std::string& id) const { return HooksPending() + "/" + id; }

  // Creates the root and its folders where missing. When spoold runs as root
  // (jobs run as their submitters), the drop folders tmp/, incoming/ and
  // control/ are set to 1733 (anyone may drop, nobody may list or remove
  // another's file), rejected/ to 0711 (an error file is found by its name),
  // definitions/ to 1777 (anyone may add one and see all, nobody may change
  // another's) and jobs/, revisions/ and the root to 0755.
  Status EnsureLayout() const;

 private:
  std::string root_;
};

}  // namespace spoold

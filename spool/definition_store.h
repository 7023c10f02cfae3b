// The daemon's record of job definitions (SPEC.md section 4, "revisions/"):
// every accepted revision of a definition byte for byte, its history, and the
// runs made of it. The daemon writes; spoolctl reads the same files.
//
//   revisions/<name>/<n>.toml|json   revision n, as it was in definitions/
//   revisions/<name>/history.jsonl   one line a revision: {"revision", "time",
//                                    "file", "format", "sha256", "owner", "owner_uid"}
//   revisions/<name>/runs.jsonl      one line a run: {"run", "revision", "time"}
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "config/result.h"
#include "spool/definition.h"
#include "spool/document.h"
#include "spool/paths.h"
#include "spool/sync_batch.h"
#include "spool/time_util.h"

namespace spoold {

struct RevisionInfo {
  int revision = 0;
  std::string time;  // RFC 3339, when it was accepted
  std::string file;  // its name in definitions/
  DocFormat format = DocFormat::kToml;
  std::string sha256;
  std::string owner;
  int64_t owner_uid = -1;
};

struct RunRecord {
  std::string run;  // the job id
  int revision = 0;
  std::string time;
};

// A revision found for a run: the definition parsed, and its text as kept.
struct FoundDefinition {
  Definition def;
  RevisionInfo info;
  std::string text;
};

class DefinitionStore {
 public:
  explicit DefinitionStore(const SpoolPaths& paths) : paths_(paths) {}

  // Names with at least one revision, sorted.
  Result<std::vector<std::string>> Names() const;

  // Every revision of `name`, oldest first; empty if it has none.
  Result<std::vector<RevisionInfo>> History(const std::string& name) const;

  // Revision `revision` of `name`, or its latest when unset, with its text.
  // Error code unknown_definition when there is no such definition or revision.
  Result<std::pair<RevisionInfo, std::string>> Read(const std::string& name,
                                                    std::optional<int> revision) const;

  // Records `text` as the next revision of `name` (durable when it returns:
  // the file, then its history line). A crash between the two leaves a file
  // no history line names, which the next AddRevision overwrites.
  Result<RevisionInfo> Add(const std::string& name, const std::string& file, DocFormat format,
                           const std::string& text, const std::string& owner, int64_t owner_uid,
                           TimePoint now);

  // Appends a run's line to runs.jsonl, durable with `batch`'s flush (the
  // one that commits the run's folder) or at once without one.
  Status AddRun(const std::string& name, const std::string& run, int revision, TimePoint now,
                SyncBatch* batch = nullptr);

  // The runs of `name`, oldest first.
  Result<std::vector<RunRecord>> Runs(const std::string& name) const;

 private:
  const SpoolPaths& paths_;
};

}  // namespace spoold

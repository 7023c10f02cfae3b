// The daemon's view of job definitions (SPEC.md section 2, "Definitions"):
// what each file of definitions/ holds now, its latest good revision (parsed,
// for runs of "etl"), and its runs. A change of a file is read, checked and
// either recorded as the next revision (DefinitionStore) or reported in an
// error file beside it, leaving the last good revision in force. No loop, no
// timers: the daemon says which files changed and when.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "config/config.h"
#include "spool/definition.h"
#include "spool/definition_store.h"
#include "spool/paths.h"
#include "spool/sync_batch.h"
#include "spool/time_util.h"

namespace spoold {

class DefinitionRegistry {
 public:
  DefinitionRegistry(const SpoolPaths& paths, const Config& config)
      : paths_(paths), store_(paths), config_(&config) {}
  // A new configuration: every latest revision is checked again (a pool may
  // have come or gone), and every refused file is read again.
  void SetConfig(const Config& config);

  // Reads revisions/: every definition's latest revision and runs.
  void Load();

  // definitions/<file> changed, appeared or went. Returns false if `file` is
  // not a definition's file name (hidden, temporary, an error file).
  bool Process(const std::string& file, TimePoint now);

  // The files of definitions/ and those known that went (to Process), after
  // removing error files that no refusal of ours stands behind.
  std::vector<std::string> Scan();

  // The revision a run names (its latest when unpinned). Errors:
  // unknown_definition; io_error when the kept revision cannot be read.
  Result<FoundDefinition> Find(const RunRef& ref) const;

  // A run was accepted (its folder commits with `batch`).
  void RecordRun(const std::string& name, const std::string& run, int revision, TimePoint now,
                 SyncBatch* batch);

  // index.json's "definitions": per name its revision, file, runs, last run
  // and that run's state (from `state_of`, "removed" when it has none).
  Json IndexJson(const std::function<std::optional<std::string>(const std::string&)>& state_of) const;

  size_t size() const { return defs_.size(); }

 private:
  // A definition with at least one revision.
  struct State {
    RevisionInfo latest;
    std::string text;                  // the latest revision's, for the runs of it: read once
    std::optional<Definition> parsed;  // the latest revision, if it checks out with the configuration
    int64_t runs = 0;
    std::string last_run;
  };
  // A file of definitions/ as last read (inode, size, mtime: read again only
  // when one changed), and its pending error, if any.
  struct Stamp {
    ino_t ino = 0;
    off_t size = -1;
    int64_t mtime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };
  struct FileRecord {
    Stamp stamp;
    Json error = nullptr;  // the error file's content without its time
  };
  void Refuse(const std::string& file, const Error& error, TimePoint now);
  void ClearError(const std::string& file);
  // Whether the owner of a file may give definition `name` its next revision:
  // when spoold is root (users share it), only root or the owner of its
  // latest revision.
  bool MayRevise(const std::string& name, uid_t uid) const;
  std::string OwnerName(int64_t uid) const;

  const SpoolPaths& paths_;
  DefinitionStore store_;
  const Config* config_;
  std::map<std::string, State> defs_;
  std::map<std::string, FileRecord> files_;  // by file name
};

}  // namespace spoold

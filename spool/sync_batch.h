// Group commit: the durable writes of one loop turn share one round of syncs.
// Instead of fsyncing every file and folder as it is written (a dozen fsyncs per
// job, each a journal commit), writers stage their work here: file contents go
// to temporary names without fsync, appends are not synced, and the renames that
// publish them wait. Flush() then makes it all durable with syncfs(2), performs
// the renames, syncs again so the renames are durable too, and only then runs
// the actions that depend on it (deleting a dropped file, releasing a child).
// The order every reader relies on (SPEC.md section 9) is kept: nothing is
// published before its content is on disk, and nothing is reported before it is
// published. Owns the staged work of the current turn and a descriptor of the
// spool root.
#pragma once

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/result.h"

namespace spoold {

class SyncBatch {
 public:
  explicit SyncBatch(std::string root);
  ~SyncBatch();
  SyncBatch(const SyncBatch&) = delete;
  SyncBatch& operator=(const SyncBatch&) = delete;

  // Renames `from` to `to` at the next flush, after the content is durable;
  // `renamed` runs right after the rename, `after` once it is durable. A
  // rename that fails (a full disk, an I/O error) stays staged and is tried
  // again at every flush, its callbacks with it; one whose source is gone is
  // dropped. The same file staged twice in a turn is renamed once.
  void Rename(std::string from, std::string to, std::function<void()> after = {},
              std::function<void()> renamed = {});
  // Whether a rename to `to` is staged and not yet done.
  bool Staged(const std::string& to) const { return by_target_.count(to) != 0; }
  // Something was written that needs only the sync (an append).
  void MarkDirty() { dirty_ = true; }
  // Runs `action` once everything staged before the next flush is durable.
  void After(std::function<void()> action) { afters_.push_back(std::move(action)); }
  bool Empty() const { return !dirty_ && renames_.empty() && afters_.empty(); }

  // Syncs, renames, runs `visible` (if given), syncs, runs `first` (if
  // given), then the after-actions. `visible` is for what needs the renamed
  // files seen by any process, their content durable, but not the renames
  // themselves durable yet (a local job's start: SPEC.md section 9). `first`
  // is for what waits on the syncs alone and should not wait for the
  // after-actions too (which delete files: slow on some file systems). On a
  // sync error nothing more is renamed and nothing more runs: the work stays
  // staged for the next flush, and *synced (if given) is false.
  Status Flush(bool* synced = nullptr, const std::function<void()>& first = nullptr,
               const std::function<void()>& visible = nullptr);

 private:
  struct PendingRename {
    std::string from, to;
    std::function<void()> after, renamed;
  };
  Status Sync();
  Status RenameAll();  // moves the afters of the renames done to afters_

  std::string root_;
  int root_fd_ = -1;
  bool dirty_ = false;
  std::vector<PendingRename> renames_;
  std::unordered_map<std::string, size_t> by_target_;  // renames_ index by `to`
  std::vector<std::function<void()>> afters_;
};

}  // namespace spoold

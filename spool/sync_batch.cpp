#include "spool/sync_batch.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "spool/failpoint.h"
#include "spool/fileio.h"

namespace spoold {

SyncBatch::SyncBatch(std::string root) : root_(std::move(root)) {}

SyncBatch::~SyncBatch() {
  if (root_fd_ >= 0) ::close(root_fd_);
}

namespace {

std::function<void()> Chain(std::function<void()> first, std::function<void()> second) {
  if (!first) return second;
  if (!second) return first;
  return [first = std::move(first), second = std::move(second)] {
    first();
    second();
  };
}

}  // namespace

void SyncBatch::Rename(std::string from, std::string to, std::function<void()> after,
                       std::function<void()> renamed) {
  if (auto it = by_target_.find(to); it != by_target_.end() && renames_[it->second].from == from) {
    // Written again before the flush: the rename publishes the newest content.
    PendingRename& r = renames_[it->second];
    r.after = Chain(std::move(r.after), std::move(after));
    r.renamed = Chain(std::move(r.renamed), std::move(renamed));
    return;
  }
  by_target_[to] = renames_.size();
  renames_.push_back({std::move(from), std::move(to), std::move(after), std::move(renamed)});
}

Status SyncBatch::Sync() {
  if (root_fd_ < 0) {
    root_fd_ = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd_ < 0) return MakeError("io_error", ErrnoMessage("open", root_, errno));
  }
  // One journal commit for everything written this turn, on the spool's file
  // system only.
  if (::syncfs(root_fd_) != 0) return MakeError("io_error", ErrnoMessage("syncfs", root_, errno));
  return OkStatus();
}

Status SyncBatch::RenameAll() {
  std::vector<PendingRename> renames;
  renames.swap(renames_);
  by_target_.clear();
  Status result = OkStatus();
  SPOOLD_FAILPOINT("commit.before_rename");
  for (auto& r : renames) {
    const bool injected = SPOOLD_FAILPOINT_FAILS("commit.rename_fails");
    if (injected || ::rename(r.from.c_str(), r.to.c_str()) != 0) {
      const int err = injected ? EIO : errno;
      if (result.ok()) result = MakeError("io_error", ErrnoMessage("rename", r.from, err));
      // Its content is in place under the temporary name: tried again at the
      // next flush. If that name is gone, nothing is left to publish.
      struct stat st {};
      if (::lstat(r.from.c_str(), &st) == 0) {
        by_target_[r.to] = renames_.size();
        renames_.push_back(std::move(r));
      }
      continue;
    }
    dirty_ = true;  // the rename is durable only after the next sync
    if (r.renamed) r.renamed();
    if (r.after) afters_.push_back(std::move(r.after));
  }
  SPOOLD_FAILPOINT("commit.after_rename");
  return result;
}

Status SyncBatch::Flush(bool* synced, const std::function<void()>& first, const std::function<void()>& visible) {
  if (synced != nullptr) *synced = false;
  if (Empty()) {
    if (synced != nullptr) *synced = true;
    if (visible) visible();
    if (first) first();
    return OkStatus();
  }
  if (auto st = Sync(); !st.ok()) return st;
  dirty_ = false;
  Status result = RenameAll();
  if (visible) visible();
  if (dirty_) {
    // On a sync error the after-actions stay staged for the next flush.
    if (auto st = Sync(); !st.ok()) return st;
    dirty_ = false;
  }
  if (synced != nullptr) *synced = true;
  if (first) first();
  std::vector<std::function<void()>> afters;
  afters.swap(afters_);
  for (auto& after : afters) after();
  return result;
}

}  // namespace spoold

#include "spool/sync_batch.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "spool/failpoint.h"
#include "spool/fileio.h"

namespace spoold {

SyncBatch::SyncBatch(std::string root) : root_(std::move(root)) {}

SyncBatch::~SyncBatch() {
  if (root_fd_ >= 0) ::close(root_fd_);
}

void SyncBatch::Rename(std::string from, std::string to, std::function<void()> after,
                       std::function<void()> renamed) {
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
  Status result = OkStatus();
  SPOOLD_FAILPOINT("commit.before_rename");
  for (auto& r : renames) {
    if (::rename(r.from.c_str(), r.to.c_str()) != 0) {
      // The staged file stays under its temporary name: a folder is cleaned at
      // the next start, a file is replaced by the next write of it.
      if (result.ok()) result = MakeError("io_error", ErrnoMessage("rename", r.from, errno));
      continue;
    }
    dirty_ = true;  // the rename is durable only after the next sync
    if (r.renamed) r.renamed();
    if (r.after) afters_.push_back(std::move(r.after));
  }
  SPOOLD_FAILPOINT("commit.after_rename");
  return result;
}

Status SyncBatch::Flush() {
  if (Empty()) return OkStatus();
  if (auto st = Sync(); !st.ok()) return st;
  dirty_ = false;
  Status result = RenameAll();
  if (dirty_) {
    // On a sync error the after-actions stay staged for the next flush.
    if (auto st = Sync(); !st.ok()) return st;
    dirty_ = false;
  }
  std::vector<std::function<void()>> afters;
  afters.swap(afters_);
  for (auto& after : afters) after();
  return result;
}

}  // namespace spoold

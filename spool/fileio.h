// Durable file operations, the way SPEC.md section 9 requires them: whole files
// are written to a temporary name, fsynced, renamed into place, and their folder
// fsynced, so a reader never sees a torn file and a crash loses nothing that was
// reported written. Appends are fsynced before they return. Owns no state.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "config/result.h"

namespace spoold {

// "open /x/y: No such file or directory" style message with strerror(err).
std::string ErrnoMessage(const std::string& what, const std::string& path, int err);

// Writes all of `data` to `fd`, retrying short writes and EINTR.
bool WriteAll(int fd, std::string_view data);

class SyncBatch;

// Replaces `path` atomically with `content`: writes "<dir>/.<name>.tmp", fsyncs
// it, renames it over `path`, and fsyncs the folder. With a batch, the temp file
// is written without fsync and the rename is left to the batch's flush (which
// syncs first): readers see the new content only after the flush.
Status WriteFileAtomic(const std::string& path, std::string_view content, mode_t mode = 0644,
                       SyncBatch* batch = nullptr);

// Replaces `path` atomically as WriteFileAtomic does, without any fsync:
// for a report (metrics) whose readers want the latest, where a crash may
// leave the old content or none. The file gets `mode` whatever the umask.
Status ReplaceFileNoSync(const std::string& path, std::string_view content, mode_t mode = 0644);

// Writes `content` over `path` in place, without a temporary name: only for a
// file nobody can see yet (in a job folder not yet renamed into place). With a
// batch, its flush syncs it; without one, it is fsynced.
Status OverwriteUnpublished(const std::string& path, std::string_view content, SyncBatch* batch);

// Writes a new file (failing if it exists) and fsyncs it (not with a batch,
// whose flush syncs); the caller syncs the folder.
Status WriteNewFile(const std::string& path, std::string_view content, mode_t mode = 0644,
                    SyncBatch* batch = nullptr);

// Appends `data` with O_APPEND, then fdatasync (or marks the batch dirty).
Status AppendDurable(const std::string& path, std::string_view data, SyncBatch* batch = nullptr);

// fsync of a file or folder by path.
Status FsyncPath(const std::string& path);

// Reads a whole file of at most `max_size` bytes ("too_large" beyond).
Result<std::string> ReadSmallFile(const std::string& path, size_t max_size);
// Reads what the open descriptor `fd` holds, at most `max_size` bytes (else
// too_large), and closes it; `path` names it in errors.
Result<std::string> ReadOpenFile(int fd, const std::string& path, size_t max_size);

// Creates a folder if it is missing (one level).
Status EnsureDir(const std::string& path, mode_t mode = 0755);

// Removes a file or a folder tree without following symbolic links.
Status RemoveTree(const std::string& path);

// Names in a folder, without "." and ".."; sorted. `expect`, if the caller
// knows about how many there are, sizes the list once: grown by doubling, a
// list of 20,000 names took 1.5 MB at its peak instead of 0.6.
Result<std::vector<std::string>> ListDir(const std::string& path, size_t expect = 0);

bool PathExists(const std::string& path);  // lstat succeeds

// `name` if it is at most `max` bytes, else its first bytes and a hash of the
// whole, "~" between, `max` bytes in all: for names that must get a suffix and
// still fit NAME_MAX (255).
std::string FitName(const std::string& name, size_t max);

inline constexpr size_t kNameMax = 255;

}  // namespace spoold

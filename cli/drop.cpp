#include "cli/drop.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "spool/fileio.h"

namespace spoold::cli {

Status DropFile(const SpoolPaths& paths, const std::string& folder, const std::string& name,
                std::string_view bytes) {
  static std::atomic<int> counter{0};
  // A dot name in tmp/: never mistaken for anything, removed if the rename fails.
  const std::string tmp =
      paths.Tmp() + "/.spoolctl-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + ".part";
  // The daemon creates missing folders at start; a spool it never ran on may
  // lack them.
  for (const std::string& dir : {paths.Tmp(), folder}) {
    if (auto st = EnsureDir(dir); !st.ok()) return st;
  }
  if (auto st = WriteNewFile(tmp, bytes); !st.ok()) return st;
  const std::string dest = folder + "/" + name;
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    if (err == EEXIST) return MakeError("exists", dest + " exists");
    return MakeError("io_error", ErrnoMessage("rename into place", dest, err));
  }
  return FsyncPath(folder);
}

bool WaitUntil(const std::function<bool()>& done, Millis timeout, int poll_ms) {
  const Millis deadline = MonotonicNow() + timeout;
  for (;;) {
    if (done()) return true;
    if (MonotonicNow() >= deadline) return false;
    SleepMs(poll_ms);
  }
}

}  // namespace spoold::cli

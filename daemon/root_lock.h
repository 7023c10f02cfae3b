// One daemon per spool root (SPEC.md section 1). The exclusion is a flock() on
// the root folder itself: nothing done to the files under it (spoold.lock
// included) lets a second daemon in. spoold.lock keeps the pid and a POSIX
// record lock for readers (spoolctl, F_GETLK); if someone deletes or replaces
// it, Check() puts a new one in place. If the root folder itself is moved away
// or replaced, Check() says so and the daemon must stop acting on it at once.
// Owns the two descriptors; does no logging (the caller says what happened).
#pragma once

#include <string>

#include "config/result.h"

namespace spoold {

class RootLock {
 public:
  RootLock(std::string root, std::string lock_file);
  ~RootLock();
  RootLock(const RootLock&) = delete;
  RootLock& operator=(const RootLock&) = delete;

  // Takes the root's lock and writes our pid to the lock file. Error code
  // "locked" when another daemon holds it (the message names its pid).
  Status Acquire();

  enum class Outcome { kOk, kLockFileRestored, kLockFileNotRestored, kRootGone };
  struct CheckResult {
    Outcome outcome = Outcome::kOk;
    std::string message;  // what happened, for the log; empty when kOk
  };
  // Whether the root is still the folder we locked, and the lock file still
  // ours; puts a new lock file in place when it was removed or replaced.
  CheckResult Check();

 private:
  Status LockFile();  // opens, record-locks and fills lock_file_ (lock_fd_)
  std::string HolderPid() const;

  std::string root_, lock_file_;
  int root_fd_ = -1;
  int lock_fd_ = -1;
};

}  // namespace spoold

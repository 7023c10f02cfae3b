#include "daemon/root_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "spool/fileio.h"

namespace spoold {
namespace {

bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// How long Acquire waits for a lock that a dead daemon's child may still hold:
// a process that posix_spawn created keeps a copy of the daemon's descriptors
// (all close-on-exec) for the microseconds until its exec.
constexpr auto kAcquireWait = std::chrono::milliseconds(1000);

}  // namespace

RootLock::RootLock(std::string root, std::string lock_file)
    : root_(std::move(root)), lock_file_(std::move(lock_file)) {}

RootLock::~RootLock() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
  if (root_fd_ >= 0) ::close(root_fd_);
}

Status RootLock::Acquire() {
  root_fd_ = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd_ < 0) return MakeError("io_error", ErrnoMessage("open", root_, errno));
  // flock() and not a record lock: a folder cannot be opened for writing, which
  // a record lock that excludes others needs. Its one drawback, that a forked
  // child shares the lock until it closes the descriptor, does not apply: every
  // child execs at once (close-on-exec) or closes all descriptors first.
  const auto give_up = std::chrono::steady_clock::now() + kAcquireWait;
  while (::flock(root_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR)
      return MakeError("io_error", ErrnoMessage("flock", root_, errno));
    if (std::chrono::steady_clock::now() >= give_up) {
      return MakeError("locked", "another spoold (pid " + HolderPid() + ") is running on " + root_);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return LockFile();
}

std::string RootLock::HolderPid() const {
  char buf[32] = {};
  int fd = ::open(lock_file_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return "unknown";
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  ::close(fd);
  std::string pid;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) pid += buf[i];
  return pid.empty() ? "unknown" : pid;
}

Status RootLock::LockFile() {
  int fd = ::open(lock_file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
  if (fd < 0) return MakeError("io_error", ErrnoMessage("open", lock_file_, errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return MakeError("io_error", lock_file_ + " is not a regular file");
  }
  // The record lock readers ask for with F_GETLK. Under the root's flock only
  // a spoold from before that lock existed could hold it.
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  if (::fcntl(fd, F_SETLK, &lock) != 0) {
    const int err = errno;
    ::close(fd);
    if (err != EACCES && err != EAGAIN) return MakeError("io_error", ErrnoMessage("lock", lock_file_, err));
    return MakeError("locked", "another spoold (pid " + HolderPid() + ") holds " + lock_file_);
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    int err = errno;
    ::close(fd);
    return MakeError("io_error", ErrnoMessage("write", lock_file_, err));
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);
  lock_fd_ = fd;
  return OkStatus();
}

RootLock::CheckResult RootLock::Check() {
  if (root_fd_ < 0) return {};  // not acquired: nothing of ours to check
  struct stat held {};
  struct stat now {};
  if (::fstat(root_fd_, &held) != 0) return {};  // cannot tell now; the next turn asks again
  if (::stat(root_.c_str(), &now) != 0) {
    // Only a path that no longer leads to a folder says the root is gone; an
    // error such as ENOMEM says nothing, and the next turn asks again.
    if (errno != ENOENT && errno != ENOTDIR) return {};
    return {Outcome::kRootGone, "the spool root " + root_ + " was moved or deleted while spoold ran on it (" +
                                    std::strerror(errno) + ")"};
  }
  if (!SameFile(held, now) || held.st_nlink == 0) {
    return {Outcome::kRootGone,
            "the spool root " + root_ +
                " was replaced by another folder while spoold ran on it; its files are no "
                "longer the ones this daemon locked"};
  }
  struct stat file {};
  if (lock_fd_ >= 0 && ::fstat(lock_fd_, &held) == 0 && ::lstat(lock_file_.c_str(), &file) == 0 &&
      SameFile(held, file)) {
    return {};
  }
  if (auto st = LockFile(); !st.ok()) {
    return {Outcome::kLockFileNotRestored, lock_file_ +
                                               " was removed or replaced, and a new one could not be put in "
                                               "place: " +
                                               st.error().message + " (the root itself stays locked)"};
  }
  return {Outcome::kLockFileRestored,
          lock_file_ +
              " was removed or replaced; a new one holds this daemon's pid (the root itself stays locked)"};
}

}  // namespace spoold

#include "daemon/child_exec.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace spoold {
namespace {

constexpr unsigned kCloseRangeCloexec = 4;  // CLOSE_RANGE_CLOEXEC, Linux 5.11

// close_range(2) over [from, to] (to < 0: all), with `flags`; one call at a
// time where the kernel has none (before 5.9, or the flag before 5.11).
void RangeOfFds(int from, int to, unsigned flags, int max_fd) {
  if (to >= 0 && from > to) return;
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, static_cast<unsigned>(from), to < 0 ? ~0u : static_cast<unsigned>(to),
                flags) == 0) {
    return;
  }
#endif
  for (int fd = from; fd <= (to < 0 ? max_fd : to); ++fd) {
    if (flags == kCloseRangeCloexec) {
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    } else {
      ::close(fd);
    }
  }
}

}  // namespace

int MaxFd() {
  struct rlimit files {};
  return ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < (1u << 20)
             ? static_cast<int>(files.rlim_cur)
             : (1 << 20);
}

void CloseAllBut(int* keep, int n, int max_fd) {
  for (int i = 1; i < n; ++i) {
    for (int j = i; j > 0 && keep[j - 1] > keep[j]; --j) std::swap(keep[j - 1], keep[j]);
  }
  int next = 3;
  for (int i = 0; i < n; ++i) {
    if (keep[i] < next) continue;
    RangeOfFds(next, keep[i] - 1, 0, max_fd);
    next = keep[i] + 1;
  }
  RangeOfFds(next, -1, 0, max_fd);
}

void ExecInChild(const ChildExec& c) {
  auto fail = [&](int err) {
    (void)!::write(c.report_fd, &err, sizeof err);
    ::_exit(127);
  };
  // Signal handlers are the daemon's: a signal arriving before exec must not
  // run them here. Every signal is blocked (the parent blocked them); reset the
  // dispositions, then unblock.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
  if (::dup2(c.in_fd, 0) < 0 || ::dup2(c.out_fd, 1) < 0 || ::dup2(c.err_fd, 2) < 0) fail(errno);
  // Descriptors the daemon opened without O_CLOEXEC must not leak into the program.
  RangeOfFds(3, -1, kCloseRangeCloexec, c.max_fd);
  if (c.new_session) {
    if (::setsid() < 0) fail(errno);
  } else {
    ::setpgid(0, 0);
  }
  if (c.run_as != nullptr) {
    if (::syscall(SYS_setgroups, c.run_as->groups.size(), c.run_as->groups.data()) != 0) fail(errno);
    if (::syscall(SYS_setresgid, c.run_as->gid, c.run_as->gid, c.run_as->gid) != 0) fail(errno);
    if (::syscall(SYS_setresuid, c.run_as->uid, c.run_as->uid, c.run_as->uid) != 0) fail(errno);
  }
  if (c.cwd != nullptr && ::chdir(c.cwd) != 0) fail(errno);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(c.exe, c.argv, c.envp);
  fail(errno);
  ::_exit(127);  // (fail does not return)
}

}  // namespace spoold

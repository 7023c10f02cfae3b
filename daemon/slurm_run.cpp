// RunCommand (slurm.h): runs one command with an argv, its output captured,
// killed and reaped at the timeout, through a cloned supervisor process so that
// the daemon's wait4(-1) never reaps it (see RunCommand below).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "daemon/child_exec.h"
#include "daemon/slurm.h"
#include "spool/json_util.h"

extern char** environ;

namespace spoold {

namespace {

constexpr size_t kMaxOutput = 64u << 20;  // per stream; squeue of 100k jobs is ~5 MB

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// What the supervisor process tells RunCommand.
enum : int { kMsgPid = 1, kMsgStatus = 2, kMsgCloneFailed = 3 };
struct ChildMsg {
  int kind;
  int value;  // pid, wait status, or errno
};

int64_t MillisLeft(std::chrono::steady_clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
      .count();
}

}  // namespace

Result<CommandResult> RunCommand(const std::vector<std::string>& argv, Millis timeout,
                                 const std::optional<RunAs>& run_as) {
  SPOOLD_CHECK(!argv.empty());
  // The daemon's PATH, then the usual places (systemd gives a short PATH).
  const char* path_env = std::getenv("PATH");
  auto exe = ResolveCommand(argv[0], std::string(path_env ? path_env : "") + ":/usr/bin:/bin");
  if (!exe)
    return MakeError("slurm_error",
                     "cannot find " + PrintableName(argv[0]) + " (is Slurm's client installed?)");
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);

  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, report_pipe[2] = {-1, -1}, status_pipe[2] = {-1, -1};
  auto close_all = [&] {
    for (int* fd : {&out_pipe[0], &out_pipe[1], &err_pipe[0], &err_pipe[1], &report_pipe[0], &report_pipe[1],
                    &status_pipe[0], &status_pipe[1]}) {
      CloseFd(*fd);
    }
  };
  int in_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in_fd < 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(report_pipe, O_CLOEXEC) != 0 || ::pipe2(status_pipe, O_CLOEXEC) != 0) {
    int err = errno;
    CloseFd(in_fd);
    close_all();
    return MakeError("slurm_error", std::string("cannot create pipes: ") + std::strerror(err));
  }

  // Two processes, so that the daemon's wait4(-1, ...) can never reap the
  // command and take its status from us, whichever thread runs this:
  //  - a supervisor, cloned with exit signal 0 (a "clone" child, which wait4
  //    only reaps with __WCLONE or __WALL). It must not exec: exec resets the
  //    exit signal to SIGCHLD. It starts the command, reports its pid, reaps it
  //    and reports the wait status, then exits;
  //  - the command, the supervisor's ordinary child.
  // Both run only raw system calls (see daemon/child_exec.h). Signals stay blocked in the
  // supervisor.
  const int max_fd = MaxFd();
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  long super = ::syscall(SYS_clone, 0L /* flags; exit signal 0 */, nullptr, nullptr, nullptr, nullptr);
  if (super == 0) {
    int keep[] = {in_fd, out_pipe[1], err_pipe[1], report_pipe[1], status_pipe[1]};
    CloseAllBut(keep, 5, max_fd);
    ChildMsg msg{};
    long cmd = ::syscall(SYS_clone, static_cast<long>(SIGCHLD), nullptr, nullptr, nullptr, nullptr);
    if (cmd == 0) {
      ::close(status_pipe[1]);
      ChildExec child;
      child.exe = exe->c_str();
      child.argv = cargv.data();
      child.envp = environ;
      child.in_fd = in_fd;
      child.out_fd = out_pipe[1];
      child.err_fd = err_pipe[1];
      child.report_fd = report_pipe[1];
      child.run_as = run_as ? &*run_as : nullptr;
      child.max_fd = max_fd;
      ExecInChild(child);
    }
    msg = cmd < 0 ? ChildMsg{kMsgCloneFailed, errno} : ChildMsg{kMsgPid, static_cast<int>(cmd)};
    (void)!::write(status_pipe[1], &msg, sizeof msg);
    ::close(in_fd);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    ::close(report_pipe[1]);
    if (cmd > 0) {
      int status = 0;
      while (::syscall(SYS_wait4, cmd, &status, 0, nullptr) < 0 && errno == EINTR) {
      }
      msg = ChildMsg{kMsgStatus, status};
      (void)!::write(status_pipe[1], &msg, sizeof msg);
    }
    ::_exit(0);
  }
  int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  CloseFd(in_fd);
  CloseFd(out_pipe[1]);
  CloseFd(err_pipe[1]);
  CloseFd(report_pipe[1]);
  CloseFd(status_pipe[1]);
  if (super < 0) {
    close_all();
    return MakeError("slurm_error", std::string("cannot fork: ") + std::strerror(clone_errno));
  }
  auto reap_supervisor = [&] {
    int status;
    while (::waitpid(static_cast<pid_t>(super), &status, __WALL) < 0 && errno == EINTR) {
    }
  };
  auto read_msg = [&](ChildMsg& msg) {
    ssize_t n;
    do {
      n = ::read(status_pipe[0], &msg, sizeof msg);
    } while (n < 0 && errno == EINTR);
    return n == static_cast<ssize_t>(sizeof msg);
  };

  ChildMsg first{};
  if (!read_msg(first) || first.kind != kMsgPid) {
    close_all();
    reap_supervisor();
    return MakeError("slurm_error", std::string("cannot fork: ") + std::strerror(first.value));
  }
  const pid_t child = first.value;

  // The report pipe closes on exec, or carries the errno of what failed.
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(report_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    close_all();
    reap_supervisor();
    return MakeError("slurm_error", "cannot run " + PrintableName(*exe) + ": " + std::strerror(child_errno));
  }
  CloseFd(report_pipe[0]);

  // Read both streams until they close and the status arrives. A process the
  // command left behind may hold the pipes open: stop reading shortly after
  // the command ended.
  CommandResult result;
  std::optional<int> status;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::optional<std::chrono::steady_clock::time_point> drain_until;
  std::string* sinks[2] = {&result.out, &result.err};
  int* fds[3] = {&out_pipe[0], &err_pipe[0], &status_pipe[0]};
  char buf[65536];
  while (*fds[0] >= 0 || *fds[1] >= 0 || !status) {
    int64_t left = MillisLeft(drain_until ? std::min(*drain_until, deadline) : deadline);
    if (left <= 0) {
      result.timed_out = !status;
      break;
    }
    struct pollfd pfds[3];
    for (int i = 0; i < 3; ++i) pfds[i] = {*fds[i], POLLIN, 0};
    int r = ::poll(pfds, 3, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (r < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (*fds[i] < 0 || pfds[i].revents == 0) continue;
      ssize_t got = ::read(*fds[i], buf, sizeof buf);
      if (got > 0) {
        size_t room = kMaxOutput - std::min(kMaxOutput, sinks[i]->size());
        sinks[i]->append(buf, std::min(room, static_cast<size_t>(got)));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        CloseFd(*fds[i]);
      }
    }
    if (*fds[2] >= 0 && pfds[2].revents != 0) {
      ChildMsg msg{};
      if (read_msg(msg) && msg.kind == kMsgStatus) status = msg.value;
      CloseFd(*fds[2]);    // the supervisor has nothing more to say
      if (!status) break;  // it died without reporting: nothing to wait for
      drain_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    }
  }
  if (result.timed_out) {
    // The command is not reaped yet (its status did not arrive), so its pid
    // and process group are still its own.
    ::kill(-child, SIGKILL);
    ::kill(child, SIGKILL);
    ChildMsg msg{};
    if (*fds[2] >= 0 && read_msg(msg) && msg.kind == kMsgStatus) status = msg.value;
  }
  close_all();
  reap_supervisor();
  if (status && WIFEXITED(*status)) result.exit_code = WEXITSTATUS(*status);
  if (status && WIFSIGNALED(*status)) result.signal = WTERMSIG(*status);
  return result;
}

}  // namespace spoold

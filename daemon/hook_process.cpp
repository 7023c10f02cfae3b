#include "daemon/hook_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "daemon/child_exec.h"
#include "spool/fileio.h"

namespace spoold {
namespace {

// What the reaping process tells the daemon.
enum : int { kMsgPid = 1, kMsgStatus = 2, kMsgCloneFailed = 3 };
struct Msg {
  int kind;
  int value;  // pid, wait status, or errno
};

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

HookOutcome SpawnFailed(const std::string& what, int err) {
  HookOutcome out;
  out.end = HookOutcome::End::kSpawnFailed;
  out.error = what + ": " + std::strerror(err);
  return out;
}

}  // namespace

void HookProcesses::Start(uint64_t token, const HookLaunch& launch) {
  SPOOLD_CHECK(!launch.argv.empty());
  auto proc = std::make_unique<Proc>();
  Proc& p = *proc;
  p.token = token;
  auto fail = [&](const std::string& what, int err) {
    CloseFd(p.log_fd);
    ended_.emplace_back(token, SpawnFailed(what, err));
  };
  // The log first: a run whose output cannot be kept is not started.
  p.log_fd = ::open(launch.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (p.log_fd < 0) return fail("cannot open " + launch.log_path, errno);
  struct stat st {};
  if (::fstat(p.log_fd, &st) == 0) p.log_size = static_cast<uint64_t>(st.st_size);
  WriteLog(p, launch.log_header.data(), launch.log_header.size());

  // stdin from memory: the hook may read it or not, at any pace, and the
  // daemon never waits on a pipe for it.
  int in_fd = static_cast<int>(::syscall(SYS_memfd_create, "spoold-hook-stdin", MFD_CLOEXEC));
  if (in_fd < 0) return fail("memfd_create", errno);
  if (!WriteAll(in_fd, launch.stdin_data) || ::lseek(in_fd, 0, SEEK_SET) != 0) {
    int err = errno;
    ::close(in_fd);
    return fail("cannot write the hook's stdin", err);
  }
  int out_pipe[2] = {-1, -1}, report_pipe[2] = {-1, -1}, status_pipe[2] = {-1, -1};
  auto close_pipes = [&] {
    for (int* fd :
         {&out_pipe[0], &out_pipe[1], &report_pipe[0], &report_pipe[1], &status_pipe[0], &status_pipe[1]}) {
      CloseFd(*fd);
    }
  };
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(report_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(status_pipe, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(in_fd);
    close_pipes();
    return fail("cannot create pipes", err);
  }

  // Everything the clone reads is made before it.
  std::vector<char*> argv, envp;
  for (const auto& a : launch.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : launch.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int keep[] = {in_fd, out_pipe[1], report_pipe[1], status_pipe[1]};
  const int max_fd = MaxFd();
  ChildExec child;
  child.exe = launch.exe.c_str();
  child.argv = argv.data();
  child.envp = envp.data();
  child.in_fd = in_fd;
  child.out_fd = child.err_fd = out_pipe[1];  // one stream, in the order written
  child.report_fd = report_pipe[1];
  child.new_session = true;  // its own session and process group: the timeout ends all of it
  child.run_as = launch.run_as ? &*launch.run_as : nullptr;
  child.cwd = launch.cwd.c_str();
  child.max_fd = max_fd;

  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  long super = ::syscall(SYS_clone, 0L /* exit signal 0: wait4(-1) never reaps it */, nullptr, nullptr,
                         nullptr, nullptr);
  if (super == 0) {
    CloseAllBut(keep, 4, max_fd);
    long cmd = ::syscall(SYS_clone, static_cast<long>(SIGCHLD), nullptr, nullptr, nullptr, nullptr);
    if (cmd == 0) {
      ::close(status_pipe[1]);
      ExecInChild(child);
    }
    Msg msg = cmd < 0 ? Msg{kMsgCloneFailed, errno} : Msg{kMsgPid, static_cast<int>(cmd)};
    (void)!::write(status_pipe[1], &msg, sizeof msg);
    ::close(in_fd);
    ::close(out_pipe[1]);
    ::close(report_pipe[1]);
    if (cmd > 0) {
      int status = 0;
      while (::syscall(SYS_wait4, cmd, &status, 0, nullptr) < 0 && errno == EINTR) {
      }
      msg = Msg{kMsgStatus, status};
      (void)!::write(status_pipe[1], &msg, sizeof msg);
    }
    ::_exit(0);
  }
  const int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::close(in_fd);
  CloseFd(out_pipe[1]);
  CloseFd(report_pipe[1]);
  CloseFd(status_pipe[1]);
  if (super < 0) {
    close_pipes();
    return fail("cannot start a process", clone_errno);
  }
  p.super = static_cast<pid_t>(super);
  p.status_fd = status_pipe[0];
  p.out_fd = out_pipe[0];
  p.report_fd = report_pipe[0];
  for (int fd : {p.status_fd, p.out_fd, p.report_fd}) SetNonBlocking(fd);

  p.status_watch = std::make_unique<FdWatch>(loop_, p.status_fd);
  p.status_watch->SetCallback([this, token](int) {
    auto it = procs_.find(token);
    if (it != procs_.end()) ReadStatus(*it->second);
  });
  SPOOLD_CHECK(p.status_watch->Start(UV_READABLE) == 0);
  p.out_watch = std::make_unique<FdWatch>(loop_, p.out_fd);
  p.out_watch->SetCallback([this, token](int) {
    auto it = procs_.find(token);
    if (it != procs_.end()) ReadOutput(*it->second);
  });
  SPOOLD_CHECK(p.out_watch->Start(UV_READABLE) == 0);
  p.timer = std::make_unique<Timer>(loop_);
  p.timer->SetCallback([this, token] {
    auto it = procs_.find(token);
    if (it == procs_.end() || it->second->done) return;
    Proc& q = *it->second;
    if (!q.timed_out) {
      q.timed_out = true;
      Kill(q, SIGTERM);
      q.timer->Start(static_cast<uint64_t>(kHookKillGrace.count()));
    } else {
      Kill(q, SIGKILL);
    }
  });
  p.timer->Start(static_cast<uint64_t>(launch.timeout.count()));
  procs_.emplace(token, std::move(proc));
}

// The hook's process group, only while the hook is known not reaped: its
// status has not arrived, so its pid (and group id) is still its own.
void HookProcesses::Kill(Proc& p, int sig) {
  if (p.child <= 0 || p.wait_status || p.done) return;
  p.kill_signal = sig;
  ::kill(-p.child, sig);
  ::kill(p.child, sig);  // in case it had not reached setsid yet
}

void HookProcesses::ReadStatus(Proc& p) {
  char buf[64];
  for (;;) {
    ssize_t n = ::read(p.status_fd, buf, sizeof buf);
    if (n > 0) {
      p.status_buf.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    p.done = true;  // EOF (or an error): the reaping process has exited
    break;
  }
  while (p.status_buf.size() >= sizeof(Msg)) {
    Msg msg{};
    std::memcpy(&msg, p.status_buf.data(), sizeof msg);
    p.status_buf.erase(0, sizeof msg);
    if (msg.kind == kMsgPid) p.child = static_cast<pid_t>(msg.value);
    if (msg.kind == kMsgStatus) p.wait_status = msg.value;
    if (msg.kind == kMsgCloneFailed) p.done = true;
  }
  if (p.done || p.wait_status) {
    // Nothing more to wait for: Collect finishes it in the loop turn. The
    // watch goes now (a closed pipe stays readable); nothing runs after it
    // in this callback.
    p.done = true;
    any_done_ = true;
    p.status_watch.reset();
  }
}

void HookProcesses::WriteLog(Proc& p, const char* data, size_t n) {
  if (p.log_fd < 0 || n == 0) return;
  if (p.log_size >= kHookLogCap) return;  // cut before: said so then
  const size_t room = kHookLogCap - static_cast<size_t>(p.log_size);
  const size_t take = std::min(room, n);
  if (WriteAll(p.log_fd, std::string_view(data, take))) p.log_size += take;
  if (take < n) {
    const std::string cut = "\n[spoold: hook output cut here: this log keeps at most " +
                            std::to_string(kHookLogCap) + " bytes]\n";
    if (WriteAll(p.log_fd, cut)) p.log_size += cut.size();
  }
}

void HookProcesses::ReadOutput(Proc& p) {
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(p.out_fd, buf, sizeof buf);
    if (n > 0) {
      WriteLog(p, buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // EOF (the hook closed its output; it may still run): a closed pipe
    // stays readable, so the watch goes; nothing runs after it in this callback.
    if (n == 0) p.out_watch.reset();
    return;
  }
}

HookOutcome HookProcesses::Finish(Proc& p) {
  // What the hook wrote before it ended is in the pipe.
  ReadOutput(p);
  HookOutcome out;
  int exec_errno = 0;
  if (::read(p.report_fd, &exec_errno, sizeof exec_errno) == static_cast<ssize_t>(sizeof exec_errno)) {
    out = SpawnFailed("cannot run the hook's program", exec_errno);
  } else if (!p.wait_status) {
    out.end = HookOutcome::End::kSpawnFailed;
    out.error = p.child > 0 ? "the hook's reaping process ended without its status" : "cannot start the hook";
  } else if (p.timed_out) {
    out.end = HookOutcome::End::kTimeout;
    out.signal = WIFSIGNALED(*p.wait_status) ? WTERMSIG(*p.wait_status) : 0;
    out.exit_code = WIFEXITED(*p.wait_status) ? WEXITSTATUS(*p.wait_status) : 0;
  } else if (WIFSIGNALED(*p.wait_status)) {
    out.end = HookOutcome::End::kSignaled;
    out.signal = WTERMSIG(*p.wait_status);
  } else {
    out.end = HookOutcome::End::kExited;
    out.exit_code = WEXITSTATUS(*p.wait_status);
  }
  // It writes the status and exits: this waits for its last microseconds.
  int status = 0;
  while (::waitpid(p.super, &status, __WALL) < 0 && errno == EINTR) {
  }
  Close(p);
  return out;
}

void HookProcesses::Close(Proc& p) {
  // Handles before their descriptors (uv_handles.h: FdWatch).
  p.status_watch.reset();
  p.out_watch.reset();
  p.timer.reset();
  for (int* fd : {&p.status_fd, &p.out_fd, &p.report_fd, &p.log_fd}) CloseFd(*fd);
}

std::vector<std::pair<uint64_t, HookOutcome>> HookProcesses::Collect() {
  std::vector<std::pair<uint64_t, HookOutcome>> out;
  out.swap(ended_);
  if (!any_done_) return out;
  any_done_ = false;
  for (auto it = procs_.begin(); it != procs_.end();) {
    if (!it->second->done) {
      ++it;
      continue;
    }
    out.emplace_back(it->first, Finish(*it->second));
    it = procs_.erase(it);
  }
  return out;
}

void HookProcesses::StopAll() {
  for (auto& [token, p] : procs_) {
    Kill(*p, SIGTERM);
    Close(*p);
  }
  procs_.clear();
  ended_.clear();
  any_done_ = false;
}

}  // namespace spoold

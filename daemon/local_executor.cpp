#include "daemon/local_executor.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "spool/json_util.h"

namespace spoold {
namespace {

// What the child reports through the error pipe when it cannot exec.
struct ChildError {
  int stage;  // kStage* below
  int err;
};
constexpr int kStageChdir = 1;
constexpr int kStageDup = 2;
constexpr int kStageExec = 3;
constexpr int kStageSetsid = 4;
constexpr int kStageUser = 5;

[[noreturn]] void ChildFail(int pipe_fd, int stage) {
  ChildError e{stage, errno};
  ssize_t ignored = ::write(pipe_fd, &e, sizeof e);
  (void)ignored;
  ::_exit(127);
}

// Closes every descriptor from 3 up except `a` and `b` (both >= 3).
// close_range needs Linux 5.9; on older kernels a bounded loop does the same.
void CloseAllBut(int a, int b) {
  int lo = a < b ? a : b;
  int hi = a < b ? b : a;
  bool ok = true;
  if (lo > 3) ok = ::syscall(SYS_close_range, 3, lo - 1, 0) == 0;
  if (ok && hi > lo + 1) ok = ::syscall(SYS_close_range, lo + 1, hi - 1, 0) == 0;
  if (ok) ok = ::syscall(SYS_close_range, hi + 1, ~0U, 0) == 0;
  if (ok) return;
  for (int fd = 3; fd < 65536; ++fd) {
    if (fd != a && fd != b) ::close(fd);
  }
}

// A shortage of descriptors, processes or memory is the machine's state, not
// the job's fault: "transient", so the daemon queues the job again and backs
// off, instead of failing it.
Error SpawnError(const std::string& what, int err) {
  const bool transient = err == EMFILE || err == ENFILE || err == EAGAIN || err == ENOMEM;
  return MakeError(transient ? "transient" : "spawn_failed", what + ": " + std::strerror(err));
}

bool IsExecutableFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

}  // namespace

std::optional<std::string> ResolveCommand(const std::string& name, const std::string& path_var) {
  if (name.find('/') != std::string::npos) return name;
  size_t start = 0;
  while (start <= path_var.size()) {
    size_t end = path_var.find(':', start);
    if (end == std::string::npos) end = path_var.size();
    std::string dir = path_var.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    if (IsExecutableFile(candidate)) return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

Result<UserEntry> LookUpUser(uid_t uid) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return MakeError("spawn_failed", "the job's owner (uid " + std::to_string(uid) + ") has no passwd entry");
  }
  UserEntry entry;
  entry.ids.uid = pw.pw_uid;
  entry.ids.gid = pw.pw_gid;
  entry.name = pw.pw_name;
  entry.home = pw.pw_dir && *pw.pw_dir ? pw.pw_dir : "/";
  entry.shell = pw.pw_shell && *pw.pw_shell ? pw.pw_shell : "/bin/sh";
  int count = 64;
  std::vector<gid_t> groups(static_cast<size_t>(count));
  if (getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &count) < 0) {
    groups.resize(static_cast<size_t>(count));
    if (getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &count) < 0) {
      return MakeError("spawn_failed", "cannot list the groups of " + entry.name);
    }
  }
  groups.resize(static_cast<size_t>(count));
  entry.ids.groups = std::move(groups);
  return entry;
}

std::optional<uint64_t> ProcessStartTicks(pid_t pid) {
  // Read once per started attempt: plain read(2) and parsing, no streams.
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  ssize_t n;
  do {
    n = ::read(fd, buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  const std::string_view line(buf, static_cast<size_t>(n));
  // The command name (field 2) is in parentheses and may hold spaces and ')':
  // the fields after it start behind the last ')'.
  auto close = line.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  size_t pos = close + 1;
  std::string_view field;
  // Fields 3 (state) to 22 (start time), separated by single spaces.
  for (int i = 3; i <= 22; ++i) {
    if (pos >= line.size() || line[pos] != ' ') return std::nullopt;
    const size_t start = pos + 1;
    pos = line.find_first_of(" \n", start);
    if (pos == std::string_view::npos) pos = line.size();
    field = line.substr(start, pos - start);
  }
  if (field.empty()) return std::nullopt;
  uint64_t value = 0;
  for (char c : field) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

bool GroupHasLiveMembers(pid_t pgid) {
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return ::kill(-pgid, 0) == 0;
  bool alive = false;
  while (struct dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    std::ifstream in(std::string("/proc/") + entry->d_name + "/stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    // After the command name: state (field 3), ppid (4), pgrp (5).
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    long ppid = 0, pgrp = 0;
    if (!(rest >> state >> ppid >> pgrp)) continue;
    if (pgrp == pgid && state != 'Z' && state != 'X') {
      alive = true;
      break;
    }
  }
  ::closedir(proc);
  return alive;
}

Result<PendingProcess> ForkProcess(const LaunchSpec& spec) {
  SPOOLD_CHECK(!spec.argv.empty());
  std::string path_var;
  for (const auto& kv : spec.env) {
    if (kv.rfind("PATH=", 0) == 0) path_var = kv.substr(5);
  }
  auto exe = ResolveCommand(spec.argv[0], path_var);
  if (!exe) {
    return MakeError("spawn_failed", "command " + PrintableName(spec.argv[0]) + " not found in PATH");
  }

  // Everything the child needs is built here, before fork.
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const char* cwd = spec.cwd.c_str();
  const char* exe_path = exe->c_str();
  const RunAs* run_as = spec.run_as ? &*spec.run_as : nullptr;

  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) return SpawnError("open /dev/null", errno);
  int pipe_fds[2];
  int go_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(devnull);
    return SpawnError("pipe", err);
  }
  if (::pipe2(go_fds, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(devnull);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return SpawnError("pipe", err);
  }

  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    for (int fd : {devnull, pipe_fds[0], pipe_fds[1], go_fds[0], go_fds[1]}) ::close(fd);
    return SpawnError("fork", err);
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    // First get the two pipe ends we keep out of the way of 0..2 (a daemon
    // started with closed standard descriptors can have them there).
    // (Only then: at the descriptor limit there is no free number to dup to.)
    int report = pipe_fds[1] > 2 ? pipe_fds[1] : ::fcntl(pipe_fds[1], F_DUPFD_CLOEXEC, 3);
    if (report < 0) ::_exit(127);
    int go_in = go_fds[0] > 2 ? go_fds[0] : ::fcntl(go_fds[0], F_DUPFD_CLOEXEC, 3);
    if (go_in < 0) ChildFail(report, kStageDup);
    if (::setsid() < 0) ChildFail(report, kStageSetsid);
    if (::dup2(devnull, 0) < 0 || ::dup2(spec.stdout_fd, 1) < 0 || ::dup2(spec.stderr_fd, 2) < 0) {
      ChildFail(report, kStageDup);
    }
    // Close every other descriptor before waiting, not only at exec: a child
    // that waits must not hold the daemon's lock file, nor the go pipes of
    // other children (which would keep them from seeing the daemon die).
    CloseAllBut(report, go_in);
    // Wait for the daemon to record us. EOF means it died first: run nothing.
    char go = 0;
    ssize_t got;
    do {
      got = ::read(go_in, &go, 1);
    } while (got < 0 && errno == EINTR);
    if (got != 1) ::_exit(127);
    ::close(go_in);
    if (run_as != nullptr) {
      // Groups first, then the group id, then the user id: after setuid there
      // is no way back. Each step is checked, and so is the result.
      if (::setgroups(run_as->groups.size(), run_as->groups.data()) != 0 || ::setgid(run_as->gid) != 0 ||
          ::setuid(run_as->uid) != 0) {
        ChildFail(report, kStageUser);
      }
      if (::getuid() != run_as->uid || ::geteuid() != run_as->uid || ::getgid() != run_as->gid ||
          ::getegid() != run_as->gid || (run_as->uid != 0 && ::setuid(0) == 0)) {
        errno = EPERM;
        ChildFail(report, kStageUser);
      }
    }
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::chdir(cwd) != 0) ChildFail(report, kStageChdir);
    ::execve(exe_path, argv.data(), envp.data());
    ChildFail(report, kStageExec);
  }

  ::close(devnull);
  ::close(pipe_fds[1]);
  ::close(go_fds[0]);
  PendingProcess pending;
  pending.pid = pid;
  pending.start_ticks = ProcessStartTicks(pid);
  pending.go_fd = go_fds[1];
  pending.report_fd = pipe_fds[0];
  pending.exe = *exe;
  pending.cwd = spec.cwd;
  return pending;
}

void ReleaseProcess(PendingProcess& process, int* report_fd) {
  // The daemon ignores SIGPIPE, so a child that already died makes this write
  // fail with EPIPE instead of killing us; the report pipe then says why.
  char go = 1;
  ssize_t n;
  do {
    n = ::write(process.go_fd, &go, 1);
  } while (n < 0 && errno == EINTR);
  ::close(process.go_fd);
  process.go_fd = -1;
  *report_fd = process.report_fd;
  process.report_fd = -1;
}

std::optional<Error> ReadChildReport(int report_fd, const std::string& exe, const std::string& cwd) {
  // The child is gone, and the pipe's write end with it (it was close-on-exec
  // and the child forks nothing before exec): this read does not block.
  ChildError child_error{};
  ssize_t n;
  do {
    n = ::read(report_fd, &child_error, sizeof child_error);
  } while (n < 0 && errno == EINTR);
  ::close(report_fd);
  if (n == 0) return std::nullopt;  // the report pipe closed on exec
  if (n < 0 || static_cast<size_t>(n) < sizeof child_error) {
    return MakeError("spawn_failed", "the process ended before it could start");
  }
  const int err = child_error.err;
  if (err == EMFILE || err == ENFILE || err == EAGAIN || err == ENOMEM) {
    return SpawnError("setting up the job's process", err);
  }
  std::string what = child_error.stage == kStageChdir    ? "cannot enter the working folder " + PrintableName(cwd)
                     : child_error.stage == kStageExec   ? "cannot execute " + PrintableName(exe)
                     : child_error.stage == kStageSetsid ? "cannot start a new session"
                     : child_error.stage == kStageUser   ? "cannot switch to the job's user"
                                                         : "cannot set up standard descriptors";
  return MakeError("spawn_failed", what + ": " + std::strerror(child_error.err));
}

}  // namespace spoold

#include "daemon/local_executor.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/exec_protocol.h"
#include "spool/json_util.h"

namespace spoold {
namespace {

namespace ep = exec_protocol;

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
    std::string candidate = end > start ? path_var.substr(start, end - start) : std::string(".");
    candidate.append(1, '/').append(name);
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

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  // Read for every started attempt and every process of a scan: plain
  // read(2) and parsing, no streams.
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
  ProcStat st;
  // Fields 3 (state) to 22 (start time), separated by single spaces.
  for (int i = 3; i <= 22; ++i) {
    if (pos >= line.size() || line[pos] != ' ') return std::nullopt;
    const size_t start = pos + 1;
    pos = line.find_first_of(" \n", start);
    if (pos == std::string_view::npos) pos = line.size();
    const std::string_view field = line.substr(start, pos - start);
    if (field.empty()) return std::nullopt;
    if (i == 3) {
      st.state = field[0];
      continue;
    }
    if (i != 4 && i != 5 && i != 6 && i != 22) continue;
    uint64_t value = 0;
    for (char c : field) {
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    if (i == 4) st.ppid = static_cast<pid_t>(value);
    if (i == 5) st.pgrp = static_cast<pid_t>(value);
    if (i == 6) st.session = static_cast<pid_t>(value);
    if (i == 22) st.start_ticks = value;
  }
  return st;
}

std::optional<uint64_t> ProcessStartTicks(pid_t pid) {
  auto st = ReadProcStat(pid);
  if (!st) return std::nullopt;
  return st->start_ticks;
}

std::vector<pid_t> LiveProcesses(const std::function<bool(const ProcStat&)>& select) {
  std::vector<pid_t> found;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return found;
  while (struct dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
    const auto pid = static_cast<pid_t>(std::atoi(entry->d_name));
    auto st = ReadProcStat(pid);
    // A zombie has exited: it only waits for its parent to reap it.
    if (st && st->state != 'Z' && st->state != 'X' && select(*st)) found.push_back(pid);
  }
  ::closedir(proc);
  return found;
}

bool GroupHasLiveMembers(pid_t pgid) {
  if (::access("/proc/self/stat", R_OK) != 0) return ::kill(-pgid, 0) == 0;
  return !LiveProcesses([pgid](const ProcStat& st) { return st.pgrp == pgid; }).empty();
}

std::vector<std::string> ExecHelperCandidates() {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return {};  // no /proc: FindExecHelper says it found nothing
  std::string dir(self, static_cast<size_t>(n));
  dir.erase(dir.rfind('/') + 1);
  return {dir + "spoold-exec", dir + SPOOLD_EXEC_RELATIVE_DIR "/spoold-exec"};
}

Result<std::string> FindExecHelper(const std::vector<std::string>& candidates) {
  std::string looked;
  for (const std::string& path : candidates) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      looked += (looked.empty() ? "" : ", ") + path;
      continue;
    }
    if (!S_ISREG(st.st_mode) || ::access(path.c_str(), X_OK) != 0) {
      return MakeError("spawn_failed", "the exec helper " + path + " is not an executable file");
    }
    // As root, every job passes through it before switching user.
    if (::geteuid() == 0 && (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)) {
      return MakeError("spawn_failed",
                       "the exec helper " + path + " must be owned by root and writable by nobody else");
    }
    return path;
  }
  if (looked.empty()) looked = "candidate (is /proc mounted?)";
  return MakeError("spawn_failed", "cannot find the exec helper spoold-exec: no " + looked +
                                       " (make install puts it in " SPOOLD_EXEC_RELATIVE_DIR
                                       " from spoold's folder; a build tree has it beside spoold)");
}

namespace {

// The descriptor itself, or a close-on-exec copy of it numbered kFirstFreeFd or
// more, so that placing the helper's descriptors cannot overwrite a source.
// Copies are added to `copies`, the caller's to close.
Result<int> OutOfTheWay(int fd, std::vector<int>& copies) {
  if (fd >= ep::kFirstFreeFd) return fd;
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, ep::kFirstFreeFd);
  if (copy < 0) return SpawnError("duplicate a descriptor", errno);
  copies.push_back(copy);
  return copy;
}

std::string IdsArgument(const std::optional<RunAs>& run_as) {
  if (!run_as) return "-";
  std::string ids = std::to_string(run_as->uid) + ":" + std::to_string(run_as->gid) + ":";
  for (size_t i = 0; i < run_as->groups.size(); ++i) {
    if (i > 0) ids += ',';
    ids += std::to_string(run_as->groups[i]);
  }
  return ids;
}

struct SpawnResources {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  std::vector<int> fds;  // closed at the end, whatever happened
  SpawnResources() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnResources() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    for (int fd : fds) ::close(fd);
  }
  SpawnResources(const SpawnResources&) = delete;
  SpawnResources& operator=(const SpawnResources&) = delete;
};

}  // namespace

Result<std::string> FindProgram(const LaunchSpec& spec) {
  SPOOLD_CHECK(!spec.argv.empty());
  std::string path_var;
  for (const auto& kv : spec.env) {
    if (kv.rfind("PATH=", 0) == 0) path_var = kv.substr(5);
  }
  auto exe = ResolveCommand(spec.argv[0], path_var);
  if (!exe) {
    return MakeError("spawn_failed", "command " + PrintableName(spec.argv[0]) + " not found in PATH");
  }
  return *exe;
}

Result<IdleHelper> StartHelper(const std::string& helper, const std::string& label) {
  SPOOLD_CHECK(!helper.empty());
  SpawnResources r;
  int control[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, control) != 0)
    return SpawnError("socketpair", errno);
  r.fds.push_back(control[1]);
  auto close_ours = [&] { ::close(control[0]); };
  int source = control[1];
  {
    auto moved = OutOfTheWay(source, r.fds);
    if (!moved.ok()) {
      close_ours();
      return moved.error();
    }
    source = *moved;
  }
  // dup2 onto a new number clears close-on-exec there; everything from
  // kFirstFreeFd up is closed, so no descriptor of the daemon (its lock file,
  // other helpers' sockets) reaches the helper, even one opened without
  // O_CLOEXEC.
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  // Each of these fails only for lack of memory.
  int setup = posix_spawn_file_actions_addopen(&r.actions, 0, "/dev/null", O_RDWR, 0);
  if (setup == 0) setup = posix_spawn_file_actions_adddup2(&r.actions, 0, 1);
  if (setup == 0) setup = posix_spawn_file_actions_adddup2(&r.actions, 0, 2);
  if (setup == 0) setup = posix_spawn_file_actions_adddup2(&r.actions, source, ep::kControlFd);
  if (setup == 0) setup = posix_spawn_file_actions_addclosefrom_np(&r.actions, ep::kFirstFreeFd);
  if (setup == 0) setup = posix_spawnattr_setsigdefault(&r.attr, &all);
  if (setup == 0) setup = posix_spawnattr_setsigmask(&r.attr, &none);
  if (setup == 0) {
    setup = posix_spawnattr_setflags(&r.attr,
                                     POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  }
  if (setup != 0) {
    close_ours();
    return SpawnError("prepare posix_spawn", setup);
  }

  std::vector<char*> argv = {const_cast<char*>("spoold-exec"), const_cast<char*>(label.c_str()), nullptr};
  char* no_env[] = {nullptr};
  pid_t pid = -1;
  int err = ::posix_spawn(&pid, helper.c_str(), &r.actions, &r.attr, argv.data(), no_env);
  if (err != 0) {
    close_ours();
    if (err == ENOENT || err == EACCES || err == ENOEXEC) {
      return MakeError("spawn_failed", "cannot start the exec helper " + helper + ": " + std::strerror(err));
    }
    return SpawnError("posix_spawn", err);
  }
  // A stuck helper must not hold the loop: the request (a few kilobytes,
  // usually) goes into the socket's buffer, the reply comes within a fork,
  // and a send or a read that waits longer than this fails.
  struct timeval limit = {5, 0};
  ::setsockopt(control[0], SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  ::setsockopt(control[0], SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  IdleHelper idle;
  idle.pid = pid;
  idle.control_fd = control[0];
  return idle;
}

void DismissHelper(IdleHelper& helper) {
  // EOF on its socket: it exits 127 without running anything, and is reaped
  // like any child.
  if (helper.control_fd >= 0) ::close(helper.control_fd);
  helper.control_fd = -1;
}

namespace {

// Sends all of `data`, the descriptors `fds` with its first byte.
Status SendAll(int fd, std::string_view data, const int (&fds)[3]) {
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof fds)] = {};
  bool first = true;
  while (!data.empty()) {
    struct iovec iov = {const_cast<char*>(data.data()), data.size()};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (first) ep::AttachRights(msg, control, sizeof control, fds, 3);
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      // The helper died (killed by someone) or hangs: not the job's fault.
      const int err = errno == EWOULDBLOCK ? ETIMEDOUT : errno;
      return MakeError("transient", std::string("hand the job to the exec helper: ") + std::strerror(err));
    }
    first = false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return OkStatus();
}

}  // namespace

Result<PendingProcess> HandOver(IdleHelper& helper, const LaunchSpec& spec, const std::string& exe) {
  SPOOLD_CHECK(helper.control_fd >= 0 && !spec.argv.empty());
  std::string request(sizeof(ep::RequestHeader), '\0');
  auto add = [&request](const std::string& text) { request.append(text).push_back('\0'); };
  add(exe);
  add(spec.cwd);
  add(IdsArgument(spec.run_as));
  add(std::to_string(spec.timeout_ms));
  add(std::to_string(spec.deadline_unix_ms));
  add(std::to_string(spec.kill_signal));
  add(std::to_string(spec.kill_grace_ms));
  add(std::to_string(spec.argv.size()));
  for (const auto& a : spec.argv) add(a);
  for (const auto& e : spec.env) add(e);
  const size_t length = request.size() - sizeof(ep::RequestHeader);
  if (length > ep::kMaxRequest) {
    DismissHelper(helper);
    return MakeError("spawn_failed", "the job's arguments and environment exceed " +
                                         std::to_string(ep::kMaxRequest / (1024 * 1024)) + " MiB");
  }
  ep::RequestHeader header{ep::kRequestMagic, static_cast<uint32_t>(length)};
  std::memcpy(request.data(), &header, sizeof header);
  const int fds[3] = {spec.stdout_fd, spec.stderr_fd, spec.attempt_dir_fd};
  if (Status sent = SendAll(helper.control_fd, request, fds); !sent.ok()) {
    DismissHelper(helper);
    return sent.error();
  }
  // The reply: the job's process exists (and waits), or what failed.
  ep::Reply reply{};
  size_t got = 0;
  while (got < sizeof reply) {
    ssize_t n = ::read(helper.control_fd, reinterpret_cast<char*>(&reply) + got, sizeof reply - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n == 0 ? EPIPE : errno == EWOULDBLOCK ? ETIMEDOUT : errno;
      DismissHelper(helper);
      return MakeError("transient", std::string("the exec helper did not answer: ") + std::strerror(err));
    }
    got += static_cast<size_t>(n);
  }
  if (reply.magic != ep::kReplyMagic || reply.job_pid <= 0) {
    DismissHelper(helper);
    if (reply.magic != ep::kReplyMagic) {
      return MakeError("spawn_failed",
                       "the exec helper answered in a protocol this spoold does not know (a "
                       "spoold and spoold-exec of different versions?)");
    }
    if (reply.stage == ep::kStageLock) {
      // Held: the supervisor of an earlier daemon that died before it recorded
      // this attempt, on its way out (it runs nothing without that record).
      const bool held = reply.err == EAGAIN || reply.err == EACCES;
      return MakeError(held ? "transient" : "spawn_failed",
                       std::string("cannot lock the attempt's supervisor.lock: ") + std::strerror(reply.err));
    }
    return ChildSetupError(reply.stage, reply.err, exe, spec.cwd);
  }
  PendingProcess pending;
  pending.pid = helper.pid;
  pending.job_pid = reply.job_pid;
  pending.job_start_ticks = ProcessStartTicks(reply.job_pid);
  pending.go_fd = helper.control_fd;
  helper.control_fd = -1;
  helper.pid = -1;
  return pending;
}

void ReleaseProcess(PendingProcess& process) {
  // The daemon ignores SIGPIPE, so a supervisor that already died makes this
  // write fail with EPIPE instead of killing us; it then left no outcome.
  char go = 1;
  ssize_t n;
  do {
    n = ::write(process.go_fd, &go, 1);
  } while (n < 0 && errno == EINTR);
  ::close(process.go_fd);
  process.go_fd = -1;
}

Error ChildSetupError(int stage, int err, const std::string& exe, const std::string& cwd) {
  if (err == EMFILE || err == ENFILE || err == EAGAIN || err == ENOMEM) {
    return SpawnError("setting up the job's process", err);
  }
  std::string what = stage == ep::kStageChdir  ? "cannot enter the working folder " + PrintableName(cwd)
                     : stage == ep::kStageExec ? "cannot execute " + PrintableName(exe)
                     : stage == ep::kStageUser ? "cannot switch to the job's user"
                     : stage == ep::kStageFork ? "cannot start the job's process"
                                               : "the exec helper spoold-exec was given arguments it does "
                                                 "not understand (a spoold and spoold-exec of different "
                                                 "versions?)";
  return MakeError("spawn_failed", what + ": " + std::strerror(err));
}

}  // namespace spoold

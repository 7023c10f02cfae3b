// spoold-exec: the supervisor of one local attempt; the protocol is in
// daemon/exec_protocol.h. This file takes the daemon's request and starts the
// job's process; supervise.cpp watches it to its end. It uses the C library
// alone and is linked statically, so that it loads in a fraction of a
// millisecond: one runs for every job.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/exec/supervisor.h"
#include "daemon/exec_protocol.h"

namespace ep = spoold::exec_protocol;
using spoold::exec::ChildError;

namespace {

// The write end of the job's error pipe, in the job's process.
int g_error_fd = -1;

// Before the job's process exists: tell the daemon, and run nothing.
[[noreturn]] void Refuse(int stage, int err) {
  ep::Reply reply{ep::kReplyMagic, -1, stage, err};
  ssize_t ignored = send(ep::kControlFd, &reply, sizeof reply, MSG_NOSIGNAL);
  (void)ignored;
  _exit(127);
}

// In the job's process, before its exec: the supervisor reads it and puts it
// into the outcome.
[[noreturn]] void ChildFail(int stage, int err) {
  ChildError e{stage, err};
  ssize_t ignored = write(g_error_fd, &e, sizeof e);
  (void)ignored;
  _exit(127);
}

// A decimal number up to `end` (exclusive); advances `p` past it.
bool ParseNumber(const char*& p, char end, unsigned long long max, unsigned long long& out) {
  if (*p < '0' || *p > '9') return false;
  errno = 0;
  char* stop = nullptr;
  out = strtoull(p, &stop, 10);
  if (errno != 0 || stop == nullptr || *stop != end || out > max) return false;
  p = stop;
  return true;
}

bool ParseId(const char*& p, char end, unsigned long& out) {
  unsigned long long value = 0;
  if (!ParseNumber(p, end, 0xFFFFFFFEull, value)) return false;
  out = static_cast<unsigned long>(value);
  return true;
}

// "UID:GID:G1,G2,...": groups first, then the group id, then the user id (after
// setuid there is no way back). Each step is checked, and so is the result.
void SwitchUser(const char* ids) {
  const char* p = ids;
  unsigned long uid = 0, gid = 0;
  if (!ParseId(p, ':', uid) || !ParseId(++p, ':', gid)) ChildFail(ep::kStageArguments, EINVAL);
  ++p;
  size_t count = 0;
  for (const char* q = p; *q != '\0'; ++q) count += *q == ',' ? 1 : 0;
  if (*p != '\0') ++count;
  gid_t* groups = static_cast<gid_t*>(malloc((count > 0 ? count : 1) * sizeof(gid_t)));
  if (groups == nullptr) ChildFail(ep::kStageUser, ENOMEM);
  for (size_t i = 0; i < count; ++i) {
    unsigned long g = 0;
    if (!ParseId(p, i + 1 < count ? ',' : '\0', g)) ChildFail(ep::kStageArguments, EINVAL);
    groups[i] = static_cast<gid_t>(g);
    if (*p == ',') ++p;
  }
  if (setgroups(count, groups) != 0 || setgid(static_cast<gid_t>(gid)) != 0 ||
      setuid(static_cast<uid_t>(uid)) != 0) {
    ChildFail(ep::kStageUser, errno);
  }
  if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid ||
      (uid != 0 && setuid(0) == 0)) {
    ChildFail(ep::kStageUser, EPERM);
  }
  free(groups);
}

// Reads exactly `size` bytes from `fd`; false on EOF first (the other side is gone).
bool ReadFull(int fd, void* buf, size_t size) {
  char* p = static_cast<char*>(buf);
  while (size > 0) {
    ssize_t n = read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// The next NUL-terminated string of the request, or Refuse if there is none.
const char* Next(const char*& p, const char* end) {
  const char* s = p;
  const void* nul = p < end ? memchr(p, '\0', static_cast<size_t>(end - p)) : nullptr;
  if (nul == nullptr) Refuse(ep::kStageArguments, EINVAL);
  p = static_cast<const char*>(nul) + 1;
  return s;
}

long long NextNumber(const char*& p, const char* end, unsigned long long max) {
  const char* text = Next(p, end);
  unsigned long long value = 0;
  if (!ParseNumber(text, '\0', max, value)) Refuse(ep::kStageArguments, EINVAL);
  return static_cast<long long>(value);
}

struct Request {
  char* buffer;  // the request's bytes: the strings below point into it
  const char* exe;
  const char* cwd;
  const char* ids;
  char** args;
  char** env;
  int fds[3];  // stdout, stderr, the attempt's folder
};

// The job's process: a new session, its logs as 1 and 2, and nothing of ours.
// It waits for the supervisor's go (EOF: run nothing), then becomes the job.
[[noreturn]] void RunJob(const Request& r, const int (&go)[2], const int (&error)[2], pid_t supervisor) {
  g_error_fd = error[1];
  // The supervisor's ends: with them open here, EOF on the go pipe (the
  // supervisor gone) could never come.
  close(go[1]);
  close(error[0]);
  const int go_fd = go[0];
  if (setsid() < 0) ChildFail(ep::kStageFork, errno);
  if (dup2(r.fds[0], 1) != 1 || dup2(r.fds[1], 2) != 2) ChildFail(ep::kStageArguments, errno);
  close(ep::kControlFd);  // the only descriptor of ours without close-on-exec
  char byte = 0;
  if (!ReadFull(go_fd, &byte, 1)) _exit(127);
  if (strcmp(r.ids, "-") != 0) SwitchUser(r.ids);
  // After the switch (a change of credentials clears it): should the
  // supervisor die (SIGKILL), the job's main process dies with it, so that a
  // restarted daemon never meets a job it cannot account for.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildFail(ep::kStageFork, errno);
  if (getppid() != supervisor) _exit(127);
  if (chdir(r.cwd) != 0) ChildFail(ep::kStageChdir, errno);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execve(r.exe, r.args, r.env);
  ChildFail(ep::kStageExec, errno);
}

// Reads the request; EOF means the daemon died or let this helper go.
Request ReadRequest(spoold::exec::Job& job) {
  ep::RequestHeader header{};
  alignas(struct cmsghdr) char control[CMSG_SPACE(3 * sizeof(int))];
  struct iovec iov = {&header, sizeof header};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t got;
  do {
    got = recvmsg(ep::kControlFd, &msg, MSG_CMSG_CLOEXEC);
  } while (got < 0 && errno == EINTR);
  if (got == 0) _exit(127);
  if (got < 0) Refuse(ep::kStageArguments, errno);
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (cmsg == nullptr || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS ||
      cmsg->cmsg_len != CMSG_LEN(3 * sizeof(int)) || (msg.msg_flags & MSG_CTRUNC) != 0) {
    Refuse(ep::kStageArguments, EINVAL);
  }
  Request r{};
  memcpy(r.fds, CMSG_DATA(cmsg), sizeof r.fds);
  if (static_cast<size_t>(got) < sizeof header &&
      !ReadFull(ep::kControlFd, reinterpret_cast<char*>(&header) + got,
                sizeof header - static_cast<size_t>(got))) {
    _exit(127);
  }
  if (header.magic != ep::kRequestMagic || header.length == 0 || header.length > ep::kMaxRequest) {
    Refuse(ep::kStageArguments, EINVAL);
  }
  // One byte more, a NUL that bounds the count of environment strings below.
  char* request = static_cast<char*>(malloc(header.length + 1));
  if (request == nullptr) Refuse(ep::kStageArguments, ENOMEM);
  if (!ReadFull(ep::kControlFd, request, header.length)) _exit(127);
  request[header.length] = '\0';
  r.buffer = request;

  const char* p = request;
  const char* end = request + header.length;
  r.exe = Next(p, end);
  r.cwd = Next(p, end);
  r.ids = Next(p, end);
  constexpr unsigned long long kMaxMs = 1ull << 53;
  job.timeout_ms = NextNumber(p, end, kMaxMs);
  job.deadline_ms = NextNumber(p, end, kMaxMs);
  job.kill_signal = static_cast<int>(NextNumber(p, end, 64));
  job.grace_ms = NextNumber(p, end, kMaxMs);
  const auto argc = static_cast<unsigned long>(NextNumber(p, end, header.length));
  if (argc == 0 || job.kill_signal == 0) Refuse(ep::kStageArguments, EINVAL);
  r.args = static_cast<char**>(calloc(argc + 1, sizeof(char*)));
  if (r.args == nullptr) Refuse(ep::kStageArguments, ENOMEM);
  for (unsigned long i = 0; i < argc; ++i) r.args[i] = const_cast<char*>(Next(p, end));
  size_t envc = 0;
  for (const char* q = p; q < end; q += strlen(q) + 1) ++envc;
  r.env = static_cast<char**>(calloc(envc + 1, sizeof(char*)));
  if (r.env == nullptr) Refuse(ep::kStageArguments, ENOMEM);
  for (size_t i = 0; i < envc; ++i) r.env[i] = const_cast<char*>(Next(p, end));
  return r;
}

// The lock that tells a restarted daemon this attempt is alive. A record lock
// belongs to this process: the job's process, a fork, does not hold it, and
// it goes when this process ends, however it ends.
void TakeLock(int dir_fd) {
  int fd = openat(dir_fd, ep::kLockFile, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) Refuse(ep::kStageLock, errno);
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  if (fcntl(fd, F_SETLK, &lock) != 0) Refuse(ep::kStageLock, errno);
  // The descriptor stays open until we exit: closing it would drop the lock.
}

}  // namespace

int main() {
  struct stat control_st;
  if (fstat(ep::kControlFd, &control_st) != 0 || !S_ISSOCK(control_st.st_mode)) {
    fprintf(stderr, "spoold-exec: the supervisor spoold starts for each job; not for direct use\n");
    return 2;
  }
  spoold::exec::Job job;
  job.daemon = getppid();
  Request r = ReadRequest(job);
  job.dir_fd = r.fds[2];
  TakeLock(job.dir_fd);
  // Orphaned descendants of the job become our children, so that nothing it
  // started (a daemonizing child, `setsid cmd &`) outlives the attempt.
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) Refuse(ep::kStageFork, errno);
  // Signals are taken with sigtimedwait (supervise.cpp): blocked from here on,
  // so that none is lost between two waits; the job's process unblocks them.
  sigset_t set = spoold::exec::SupervisedSignals();
  // And SIGPIPE: the go byte written to a job's process that was killed
  // before it must not kill us (the outcome then says how it died).
  sigaddset(&set, SIGPIPE);
  sigprocmask(SIG_BLOCK, &set, nullptr);

  int go[2], error[2];
  if (pipe2(go, O_CLOEXEC) != 0 || pipe2(error, O_CLOEXEC) != 0) Refuse(ep::kStageFork, errno);
  const pid_t self = getpid();
  const pid_t pid = fork();
  if (pid < 0) Refuse(ep::kStageFork, errno);
  if (pid == 0) RunJob(r, go, error, self);
  close(go[0]);
  close(error[1]);
  close(r.fds[0]);
  close(r.fds[1]);
  job.pid = pid;
  job.error_fd = error[0];

  ep::Reply reply{ep::kReplyMagic, pid, 0, 0};
  ssize_t sent;
  do {
    sent = send(ep::kControlFd, &reply, sizeof reply, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  // Wait for the daemon to record the attempt. EOF means it died first: the
  // job's process sees its go pipe close and exits without running anything.
  char byte = 0;
  if (sent != static_cast<ssize_t>(sizeof reply) || !ReadFull(ep::kControlFd, &byte, 1)) {
    close(go[1]);
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    _exit(127);
  }
  close(ep::kControlFd);
  ssize_t n;
  do {
    n = write(go[1], &byte, 1);
  } while (n < 0 && errno == EINTR);
  close(go[1]);
  const int code = spoold::exec::Supervise(job);
  // Freed for the sanitizers' leak check at exit (a test build): nothing else
  // needs it.
  free(r.args);
  free(r.env);
  free(r.buffer);
  return code;
}

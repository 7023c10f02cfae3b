// spoold-exec: the supervisor of one local attempt; the protocol is in
// daemon/exec_protocol.h. This file takes the daemon's request and hands it
// to the job's process (job_process.cpp), created before the request came, so
// that the reply (the job's pid) costs the daemon's loop no process creation;
// supervise.cpp watches the job to its end. It uses the C library alone and
// is linked statically, so that it loads in a fraction of a millisecond: one
// runs for every job.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/exec/job_process.h"
#include "daemon/exec/supervisor.h"
#include "daemon/exec_protocol.h"

namespace ep = spoold::exec_protocol;
using spoold::exec::ChildError;

namespace {

// The job's process, created ahead and waiting.
spoold::exec::JobProcess g_job;
// The request's bytes, into which the launch points.
char* g_request = nullptr;

// Ends the job's process that waits for a request that will not come, and
// exits without running anything.
[[noreturn]] void Quit() {
  if (g_job.pid > 0) {
    kill(g_job.pid, SIGKILL);
    while (waitpid(g_job.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  _exit(127);
}

// Before the job runs: tell the daemon, and run nothing.
[[noreturn]] void Refuse(int stage, int err) {
  ep::Reply reply{ep::kReplyMagic, -1, stage, err};
  ssize_t ignored = send(ep::kControlFd, &reply, sizeof reply, MSG_NOSIGNAL);
  (void)ignored;
  Quit();
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

// "-" (stay) or "UID:GID:G1,G2,...", into the launch; false if malformed.
bool ParseIds(const char* ids, spoold::exec::Launch& l) {
  if (strcmp(ids, "-") == 0) return true;
  const char* p = ids;
  unsigned long uid = 0, gid = 0;
  if (!ParseId(p, ':', uid) || !ParseId(++p, ':', gid)) return false;
  ++p;
  size_t count = 0;
  for (const char* q = p; *q != '\0'; ++q) count += *q == ',' ? 1 : 0;
  if (*p != '\0') ++count;
  l.groups = static_cast<gid_t*>(calloc(count > 0 ? count : 1, sizeof(gid_t)));
  if (l.groups == nullptr) return false;
  for (size_t i = 0; i < count; ++i) {
    unsigned long g = 0;
    if (!ParseId(p, i + 1 < count ? ',' : '\0', g)) return false;
    l.groups[i] = static_cast<gid_t>(g);
    if (*p == ',') ++p;
  }
  l.switch_user = true;
  l.uid = static_cast<uid_t>(uid);
  l.gid = static_cast<gid_t>(gid);
  l.group_count = count;
  return true;
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

// The next NUL-terminated string of the request, or nullptr if there is none.
const char* Next(const char*& p, const char* end) {
  const char* s = p;
  const void* nul = p < end ? memchr(p, '\0', static_cast<size_t>(end - p)) : nullptr;
  if (nul == nullptr) return nullptr;
  p = static_cast<const char*>(nul) + 1;
  return s;
}

bool NextNumber(const char*& p, const char* end, unsigned long long max, long long& out) {
  const char* text = Next(p, end);
  unsigned long long value = 0;
  if (text == nullptr || !ParseNumber(text, '\0', max, value)) return false;
  out = static_cast<long long>(value);
  return true;
}

// Parses the request's `length` bytes at `buf` (one NUL beyond them bounds
// the count of environment strings) into the launch and the job's limits.
// False if they are malformed or memory ran out.
bool Parse(const char* buf, size_t length, spoold::exec::Launch& r, spoold::exec::Job& job) {
  const char* p = buf;
  const char* end = buf + length;
  r.exe = Next(p, end);
  r.cwd = Next(p, end);
  const char* ids = Next(p, end);
  if (r.exe == nullptr || r.cwd == nullptr || ids == nullptr) return false;
  // Reported by the job's process, as the step of its start that failed.
  r.ids_malformed = !ParseIds(ids, r);
  constexpr unsigned long long kMaxMs = 1ull << 53;
  long long signal = 0, argc = 0;
  if (!NextNumber(p, end, kMaxMs, job.timeout_ms) || !NextNumber(p, end, kMaxMs, job.deadline_ms) ||
      !NextNumber(p, end, 64, signal) || !NextNumber(p, end, kMaxMs, job.grace_ms) ||
      !NextNumber(p, end, length, argc) || argc == 0 || signal == 0) {
    return false;
  }
  job.kill_signal = static_cast<int>(signal);
  r.args = static_cast<char**>(calloc(static_cast<size_t>(argc) + 1, sizeof(char*)));
  if (r.args == nullptr) return false;
  for (long long i = 0; i < argc; ++i) {
    r.args[i] = const_cast<char*>(Next(p, end));
    if (r.args[i] == nullptr) return false;
  }
  size_t envc = 0;
  for (const char* q = p; q < end; q += strlen(q) + 1) ++envc;
  r.env = static_cast<char**>(calloc(envc + 1, sizeof(char*)));
  if (r.env == nullptr) return false;
  for (size_t i = 0; i < envc; ++i) {
    r.env[i] = const_cast<char*>(Next(p, end));
    if (r.env[i] == nullptr) return false;
  }
  return true;
}

// Reads and checks the request into the job's launch; EOF means the daemon
// died or let this helper go. The request's bytes are kept until we exit:
// the launch points into them.
void ReadRequest(spoold::exec::Job& job, int (&fds)[3]) {
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
  if (got == 0) Quit();
  if (got < 0) Refuse(ep::kStageArguments, errno);
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (cmsg == nullptr || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS ||
      cmsg->cmsg_len != CMSG_LEN(3 * sizeof(int)) || (msg.msg_flags & MSG_CTRUNC) != 0) {
    Refuse(ep::kStageArguments, EINVAL);
  }
  memcpy(fds, CMSG_DATA(cmsg), sizeof fds);
  if (static_cast<size_t>(got) < sizeof header &&
      !ReadFull(ep::kControlFd, reinterpret_cast<char*>(&header) + got,
                sizeof header - static_cast<size_t>(got))) {
    Quit();
  }
  if (header.magic != ep::kRequestMagic || header.length == 0 || header.length > ep::kMaxRequest) {
    Refuse(ep::kStageArguments, EINVAL);
  }
  // One byte more, a NUL that bounds the count of environment strings.
  g_request = static_cast<char*>(malloc(header.length + 1));
  if (g_request == nullptr) Refuse(ep::kStageArguments, ENOMEM);
  if (!ReadFull(ep::kControlFd, g_request, header.length)) Quit();
  g_request[header.length] = '\0';
  if (!Parse(g_request, header.length, spoold::exec::TheLaunch(), job)) Refuse(ep::kStageArguments, EINVAL);
}

// The lock that tells a restarted daemon this attempt is alive. A record lock
// belongs to this process: the job's process, a process of its own, does not hold it, and
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
  // Orphaned descendants of the job become our children, so that nothing it
  // started (a daemonizing child, `setsid cmd &`) outlives the attempt.
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) Refuse(ep::kStageFork, errno);
  // Signals are taken with sigtimedwait (supervise.cpp): blocked from here on,
  // so that none is lost between two waits; the job's process unblocks them.
  sigset_t set = spoold::exec::SupervisedSignals();
  // And SIGPIPE: a feed to a job's process that was killed meanwhile must
  // not kill us (the outcome then says how it died).
  sigaddset(&set, SIGPIPE);
  sigprocmask(SIG_BLOCK, &set, nullptr);

  // The job's process, ahead of any request.
  if (!spoold::exec::CreateJobProcess(g_job)) Refuse(ep::kStageFork, errno);

  int fds[3];  // the job's stdout and stderr, the attempt's folder
  ReadRequest(job, fds);
  job.dir_fd = fds[2];
  TakeLock(job.dir_fd);
  if (!spoold::exec::Hand(g_job, fds[0], fds[1])) Refuse(ep::kStageFork, errno);
  close(fds[0]);
  close(fds[1]);
  job.pid = g_job.pid;
  job.error_fd = g_job.error_fd;

  ep::Reply reply{ep::kReplyMagic, g_job.pid, 0, 0};
  ssize_t sent;
  do {
    sent = send(ep::kControlFd, &reply, sizeof reply, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent != static_cast<ssize_t>(sizeof reply)) Quit();
  // The go is the job's process's to read: EOF there (the daemon died first)
  // and it exits without running anything.
  close(ep::kControlFd);
  const int code = spoold::exec::Supervise(job);
  // The job's process has exec'd or ended: the launch is no longer read.
  // Freed for the sanitizers' leak check at exit (a test build).
  spoold::exec::Launch& launch = spoold::exec::TheLaunch();
  free(launch.args);
  free(launch.env);
  free(launch.groups);
  free(g_request);
  return code;
}

// spoold-exec: the helper each local attempt's process starts as; the
// protocol is in daemon/exec_protocol.h. It uses the C library alone and is
// linked statically, so that it loads in a fraction of a millisecond: one runs
// for every job.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/exec_protocol.h"

namespace ep = spoold::exec_protocol;

namespace {

[[noreturn]] void Fail(int stage, int err) {
  ep::ChildError e{stage, err};
  ssize_t ignored = write(ep::kReportFd, &e, sizeof e);
  (void)ignored;
  _exit(127);
}

// A decimal id up to `end` (exclusive); advances `p` past it.
bool ParseId(const char*& p, char end, unsigned long& out) {
  if (*p < '0' || *p > '9') return false;
  errno = 0;
  char* stop = nullptr;
  out = strtoul(p, &stop, 10);
  if (errno != 0 || stop == nullptr || *stop != end || out > 0xFFFFFFFEul) return false;
  p = stop;
  return true;
}

// "UID:GID:G1,G2,...": groups first, then the group id, then the user id (after
// setuid there is no way back). Each step is checked, and so is the result.
void SwitchUser(const char* ids) {
  const char* p = ids;
  unsigned long uid = 0, gid = 0;
  if (!ParseId(p, ':', uid) || !ParseId(++p, ':', gid)) Fail(ep::kStageArguments, EINVAL);
  ++p;
  size_t count = 0;
  for (const char* q = p; *q != '\0'; ++q) count += *q == ',' ? 1 : 0;
  if (*p != '\0') ++count;
  gid_t* groups = static_cast<gid_t*>(malloc((count > 0 ? count : 1) * sizeof(gid_t)));
  if (groups == nullptr) Fail(ep::kStageUser, ENOMEM);
  for (size_t i = 0; i < count; ++i) {
    unsigned long g = 0;
    if (!ParseId(p, i + 1 < count ? ',' : '\0', g)) Fail(ep::kStageArguments, EINVAL);
    groups[i] = static_cast<gid_t>(g);
    if (*p == ',') ++p;
  }
  if (setgroups(count, groups) != 0 || setgid(static_cast<gid_t>(gid)) != 0 ||
      setuid(static_cast<uid_t>(uid)) != 0) {
    Fail(ep::kStageUser, errno);
  }
  if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid ||
      (uid != 0 && setuid(0) == 0)) {
    Fail(ep::kStageUser, EPERM);
  }
  free(groups);
}

// Reads exactly `size` bytes; false on EOF first (the daemon is gone).
bool ReadFull(void* buf, size_t size) {
  char* p = static_cast<char*>(buf);
  while (size > 0) {
    ssize_t n = read(ep::kControlFd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Fail(ep::kStageArguments, errno);
    if (n == 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// The next NUL-terminated string of the request, or Fail if there is none.
const char* Next(const char*& p, const char* end) {
  const char* s = p;
  const void* nul = p < end ? memchr(p, '\0', static_cast<size_t>(end - p)) : nullptr;
  if (nul == nullptr) Fail(ep::kStageArguments, EINVAL);
  p = static_cast<const char*>(nul) + 1;
  return s;
}

}  // namespace

int main() {
  struct stat control_st, report_st;
  if (fstat(ep::kControlFd, &control_st) != 0 || !S_ISSOCK(control_st.st_mode) ||
      fstat(ep::kReportFd, &report_st) != 0 || !S_ISFIFO(report_st.st_mode)) {
    fprintf(stderr, "spoold-exec: a helper of spoold, which starts it for its jobs; not for direct use\n");
    return 2;
  }

  // The request: its header comes with the job's stdout and stderr. EOF
  // means the daemon died or let this helper go: run nothing.
  ep::RequestHeader header{};
  alignas(struct cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];
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
  if (got < 0) Fail(ep::kStageArguments, errno);
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (cmsg == nullptr || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS ||
      cmsg->cmsg_len != CMSG_LEN(2 * sizeof(int)) || (msg.msg_flags & MSG_CTRUNC) != 0) {
    Fail(ep::kStageArguments, EINVAL);
  }
  int fds[2];
  memcpy(fds, CMSG_DATA(cmsg), sizeof fds);
  if (static_cast<size_t>(got) < sizeof header &&
      !ReadFull(reinterpret_cast<char*>(&header) + got, sizeof header - static_cast<size_t>(got))) {
    _exit(127);
  }
  if (header.magic != ep::kRequestMagic || header.length == 0 || header.length > ep::kMaxRequest) {
    Fail(ep::kStageArguments, EINVAL);
  }
  // One byte more, a NUL that bounds the count of environment strings below.
  char* request = static_cast<char*>(malloc(header.length + 1));
  if (request == nullptr) Fail(ep::kStageArguments, ENOMEM);
  if (!ReadFull(request, header.length)) _exit(127);
  request[header.length] = '\0';

  const char* p = request;
  const char* end = request + header.length;
  const char* exe = Next(p, end);
  const char* cwd = Next(p, end);
  const char* ids = Next(p, end);
  const char* argc_text = Next(p, end);
  unsigned long argc = 0;
  if (!ParseId(argc_text, '\0', argc) || argc == 0 || argc > header.length) Fail(ep::kStageArguments, EINVAL);
  char** args = static_cast<char**>(calloc(argc + 1, sizeof(char*)));
  if (args == nullptr) Fail(ep::kStageArguments, ENOMEM);
  for (unsigned long i = 0; i < argc; ++i) args[i] = const_cast<char*>(Next(p, end));
  size_t envc = 0;
  for (const char* q = p; q < end; q += strlen(q) + 1) ++envc;
  char** env = static_cast<char**>(calloc(envc + 1, sizeof(char*)));
  if (env == nullptr) Fail(ep::kStageArguments, ENOMEM);
  for (size_t i = 0; i < envc; ++i) env[i] = const_cast<char*>(Next(p, end));

  if (dup2(fds[0], 1) != 1 || dup2(fds[1], 2) != 2) Fail(ep::kStageArguments, errno);
  close(fds[0]);
  close(fds[1]);

  // Wait for the daemon to record us. EOF means it died first: run nothing.
  char go = 0;
  if (!ReadFull(&go, 1)) _exit(127);
  close(ep::kControlFd);
  if (fcntl(ep::kReportFd, F_SETFD, FD_CLOEXEC) != 0) Fail(ep::kStageArguments, errno);

  if (strcmp(ids, "-") != 0) SwitchUser(ids);
  if (chdir(cwd) != 0) Fail(ep::kStageChdir, errno);
  execve(exe, args, env);
  Fail(ep::kStageExec, errno);
}

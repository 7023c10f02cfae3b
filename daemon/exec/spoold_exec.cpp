// spoold-exec: the helper the daemon starts for each local attempt; the
// protocol is in daemon/exec_protocol.h. It uses the C library alone and is
// linked statically, so that it loads in a fraction of a millisecond: it runs
// once for every job.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

}  // namespace

int main(int argc, char** argv) {
  struct stat go_st, report_st;
  if (fstat(ep::kGoFd, &go_st) != 0 || !S_ISFIFO(go_st.st_mode) || fstat(ep::kReportFd, &report_st) != 0 ||
      !S_ISFIFO(report_st.st_mode)) {
    fprintf(stderr, "spoold-exec: a helper of spoold, which starts it for each job; not for direct use\n");
    return 2;
  }
  if (argc < 5) Fail(ep::kStageArguments, EINVAL);
  const char* exe = argv[1];
  const char* cwd = argv[2];
  const char* ids = argv[3];

  // Wait for the daemon to record us. EOF means it died first: run nothing.
  char go = 0;
  ssize_t got;
  do {
    got = read(ep::kGoFd, &go, 1);
  } while (got < 0 && errno == EINTR);
  if (got != 1) _exit(127);
  close(ep::kGoFd);
  if (fcntl(ep::kReportFd, F_SETFD, FD_CLOEXEC) != 0) Fail(ep::kStageArguments, errno);

  if (strcmp(ids, "-") != 0) SwitchUser(ids);
  if (chdir(cwd) != 0) Fail(ep::kStageChdir, errno);
  execve(exe, argv + 4, environ);
  Fail(ep::kStageExec, errno);
}

// What the daemon and the supervisor of each local attempt, spoold-exec
// (daemon/exec/), agree on. SPEC.md section 5 says what it does for the user;
// this is how the two processes talk.
//
// The daemon starts spoold-exec with posix_spawn, not with fork: a forked copy
// of the daemon shares its pages copy-on-write, and every page the daemon
// writes meanwhile gets copied. Helpers are started ahead of time: the daemon
// keeps one idle, so that a job that arrives does not wait for a process to be
// created and a program loaded. The helper's arguments are `spoold-exec ROOT`
// (ROOT is the spool root: for ps, nothing else). It starts in its own session
// (POSIX_SPAWN_SETSID), with default signal handling, an empty signal mask, an
// empty environment and exactly these descriptors: 0, 1, 2 /dev/null;
// kControlFd, a Unix stream socket.
//
// 1. Request. It waits on kControlFd for one request: a RequestHeader followed
//    by `length` bytes, the first byte carrying (SCM_RIGHTS) exactly three
//    descriptors: the job's stdout and stderr, and the attempt's folder (a
//    descriptor, not a path: a job folder accepted in the same loop turn is
//    renamed into place after the hand-over). The bytes are NUL-terminated
//    strings: EXE, CWD, IDS, TIMEOUT_MS, DEADLINE_MS, KILL_SIGNAL,
//    KILL_GRACE_MS, ARGC (all decimal), ARGC arguments, then the job's
//    environment ("KEY=value") to the end. IDS is "-" (stay the daemon's user)
//    or "UID:GID:G1,G2,..." (switch to the submitter). TIMEOUT_MS is counted
//    from the job's start, 0 for none; DEADLINE_MS is an absolute time in
//    milliseconds since the Unix epoch, 0 for none.
//    The helper has already made itself a child subreaper and forked the
//    job's process, which waits: a request costs no fork.
// 2. Reply. It takes the lock (kLockFile in the attempt's folder, a POSIX
//    record lock: a forked job does not inherit it, and it is released when
//    the supervisor's process ends, however it ends), hands the request to
//    the job's process, writes a Reply and closes its own kControlFd: from
//    here on it depends on nobody.
// 3. Go. The job's process waits for one byte on kControlFd (its copy): the
//    daemon writes it once the attempt's start is recorded. Then the job runs
//    at once (switch user, enter CWD, exec EXE). EOF, before the request or
//    before that byte, means the daemon died or no longer needs it: the
//    helper exits 127 without running anything and writes no outcome. The
//    timeout counts from the exec (the job's error pipe closes).
// 4. Supervision. It stops the job at TIMEOUT_MS or DEADLINE_MS (KILL_SIGNAL
//    to the job's process group and every descendant, SIGKILL after
//    KILL_GRACE_MS), on kCancelSignal (reason cancelled) and on kStopSignal
//    or SIGINT or SIGHUP (reason interrupted). When the job's main process has
//    ended it stops whatever else of it is left (processes that left its
//    process group or session are still its descendants: the supervisor is
//    their subreaper).
// 5. Outcome. When nothing of the job is left it writes kOutcomeFile in the
//    attempt's folder (a temporary name, then rename) and exits 0. When its
//    daemon is no longer its parent (it died or stopped), it also fsyncs the
//    file and the folder; otherwise the daemon's next round of syncs makes
//    them durable (SPEC.md section 9).
//
// The outcome's "protocol" is kProtocol. A daemon reads every outcome of a
// protocol it knows (1 and 2 share the format: 1 had no outcome file) and
// records an unknown one's attempt as interrupted, naming the version.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <cstring>

namespace spoold::exec_protocol {

constexpr int kProtocol = 2;

constexpr int kControlFd = 3;
constexpr int kFirstFreeFd = 4;  // the helper has no descriptor from here up

struct RequestHeader {
  uint32_t magic;
  uint32_t length;  // of the strings that follow
};
constexpr uint32_t kRequestMagic = 0x73706532;       // "spe2"
constexpr uint32_t kMaxRequest = 64u * 1024 * 1024;  // more is a broken daemon

struct Reply {
  uint32_t magic;
  int32_t job_pid;  // > 0: the job's process, waiting for the go
  int32_t stage;    // else: the kStage* that failed
  int32_t err;      // and its errno
};
constexpr uint32_t kReplyMagic = 0x73707232;  // "spr2"

// Where a step failed: in a Reply, or the job's process before its exec (in
// the outcome's "spawn_error").
constexpr int kStageChdir = 1;
constexpr int kStageArguments = 2;  // the daemon and its helper disagree: a broken install
constexpr int kStageExec = 3;
constexpr int kStageLock = 4;
constexpr int kStageUser = 5;
constexpr int kStageFork = 6;
// Not a failure: the job's process saw EOF instead of the go (step 3). It
// never reaches an outcome.
constexpr int kStageNoGo = 7;

constexpr int kCancelSignal = 10;  // SIGUSR1
constexpr int kStopSignal = 15;    // SIGTERM

// Points `msg` at `control` (CMSG_SPACE(n * sizeof(int)) bytes, aligned for
// a cmsghdr), holding the `n` descriptors `fds`: they travel with the
// message's first byte.
inline void AttachRights(struct msghdr& msg, char* control, size_t size, const int* fds, size_t n) {
  msg.msg_control = control;
  msg.msg_controllen = size;
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(n * sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), fds, n * sizeof(int));
}

constexpr const char* kLockFile = "supervisor.lock";
constexpr const char* kOutcomeFile = "outcome.json";

}  // namespace spoold::exec_protocol

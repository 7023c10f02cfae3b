// What the daemon and its exec helper, spoold-exec (daemon/exec/), agree on.
//
// The daemon starts each local attempt as `spoold-exec` with posix_spawn, not
// with fork: a forked copy of the daemon shares its pages copy-on-write while it
// waits for its state to be durable, and every page the daemon writes meanwhile
// gets copied (a third of the daemon's CPU at a few hundred jobs a second).
// posix_spawn lends the daemon's memory to the child only until it execs the
// small helper.
//
// The helper starts in its own session (POSIX_SPAWN_SETSID), with default
// signal handling, an empty signal mask and exactly these descriptors:
//   0 /dev/null, 1 stdout.log, 2 stderr.log, kGoFd, kReportFd.
// Its arguments are: spoold-exec EXE CWD IDS ARGV0 [ARG...], where IDS is "-"
// (stay the daemon's user) or "UID:GID:G1,G2,..." (switch to the submitter;
// the group list may be empty), and its environment is the job's.
//
// It waits for one byte on kGoFd: the daemon writes it once the attempt's pid
// is durable. EOF means the daemon died first, and the helper exits 127
// without running anything. Then it switches user, enters CWD and execs EXE.
// kReportFd is close-on-exec: it closes silently when exec succeeds; a step
// that fails writes a ChildError to it, and the helper exits 127.
#pragma once

namespace spoold::exec_protocol {

constexpr int kGoFd = 3;
constexpr int kReportFd = 4;
constexpr int kFirstFreeFd = 5;  // the helper has no descriptor from here up

struct ChildError {
  int stage;  // kStage* below
  int err;    // errno
};
constexpr int kStageChdir = 1;
constexpr int kStageArguments = 2;  // the daemon and its helper disagree: a broken install
constexpr int kStageExec = 3;
constexpr int kStageUser = 5;

}  // namespace spoold::exec_protocol

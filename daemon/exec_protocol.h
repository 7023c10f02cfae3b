// What the daemon and its exec helper, spoold-exec (daemon/exec/), agree on.
//
// The daemon starts each local attempt's process as `spoold-exec` with
// posix_spawn, not with fork: a forked copy of the daemon shares its pages
// copy-on-write while it waits for its state to be durable, and every page the
// daemon writes meanwhile gets copied (a third of the daemon's CPU at a few
// hundred jobs a second). posix_spawn lends the daemon's memory to the child
// only until it execs the small helper.
//
// Helpers are started ahead of time: the daemon keeps one idle, so that a job
// that arrives does not wait for a process to be created and a program loaded
// (0.2 ms on a warm machine, 0.7 ms on an idle one). The helper's arguments are
// `spoold-exec ROOT` (ROOT is the spool root: for ps, nothing else). It starts
// in its own session (POSIX_SPAWN_SETSID), with default signal handling, an
// empty signal mask, an empty environment and exactly these descriptors:
//   0, 1, 2 /dev/null; kControlFd, a Unix stream socket; kReportFd, a pipe.
//
// It waits on kControlFd for one request: a RequestHeader followed by
// `length` bytes, the first byte carrying (SCM_RIGHTS) exactly two
// descriptors, the job's stdout and stderr, which become its 1 and 2. The
// bytes are NUL-terminated strings: EXE, CWD, IDS, ARGC (decimal), ARGC
// arguments, then the job's environment ("KEY=value") to the end. IDS is "-"
// (stay the daemon's user) or "UID:GID:G1,G2,..." (switch to the submitter; the
// group list may be empty).
//
// Then it waits for one byte on kControlFd: the daemon writes it once the
// attempt's pid is durable. EOF, before the request or before that byte,
// means the daemon died or no longer needs the helper: it exits 127 without
// running anything. Then it switches user, enters CWD and execs EXE, with
// kControlFd closed. kReportFd is close-on-exec: it closes silently when exec
// succeeds; a step that fails writes a ChildError to it, and the helper exits
// 127.
#pragma once

#include <cstdint>

namespace spoold::exec_protocol {

constexpr int kControlFd = 3;
constexpr int kReportFd = 4;
constexpr int kFirstFreeFd = 5;  // the helper has no descriptor from here up

struct RequestHeader {
  uint32_t magic;
  uint32_t length;  // of the strings that follow
};
constexpr uint32_t kRequestMagic = 0x73706531;       // "spe1"
constexpr uint32_t kMaxRequest = 64u * 1024 * 1024;  // more is a broken daemon

struct ChildError {
  int stage;  // kStage* below
  int err;    // errno
};
constexpr int kStageChdir = 1;
constexpr int kStageArguments = 2;  // the daemon and its helper disagree: a broken install
constexpr int kStageExec = 3;
constexpr int kStageUser = 5;

}  // namespace spoold::exec_protocol

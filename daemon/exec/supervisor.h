// The parts of spoold-exec (daemon/exec_protocol.h): spoold_exec.cpp takes the
// request and starts the job; supervise.cpp watches it to its end and writes
// the outcome. The C library only: the helper is linked statically.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>

namespace spoold::exec {

// What the job's process writes to its error pipe when a step before its
// exec fails (the pipe is close-on-exec: it closes silently on success).
struct ChildError {
  int stage;  // exec_protocol kStage*
  int err;    // errno
};

struct Job {
  pid_t pid = -1;             // also its process group and session
  int dir_fd = -1;            // the attempt's folder
  int error_fd = -1;          // read end: the job's process's ChildError, if it failed before exec
  pid_t daemon = -1;          // our parent at start
  long long timeout_ms = 0;   // from the start; 0: none
  long long deadline_ms = 0;  // since the epoch; 0: none
  int kill_signal = 15;
  long long grace_ms = 10000;
};

// The signals the supervisor takes with sigtimedwait: SIGCHLD, the cancel
// and stop requests (SIGUSR1; SIGTERM, SIGINT, SIGHUP). Blocked from before
// the job's process is created on, so that none is lost between two waits.
sigset_t SupervisedSignals();

// Supervises the job to its end, from before its go, writes the outcome and returns the
// helper's exit code.
int Supervise(const Job& job);

}  // namespace spoold::exec

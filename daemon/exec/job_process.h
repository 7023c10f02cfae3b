// The job's process of one attempt (daemon/exec_protocol.h, steps 1 to 3):
// created while the helper waits idle, before any request, so that a request
// costs no fork; it waits for its launch, then for the daemon's go, then
// becomes the job.
//
// It is created the way posix_spawn creates a process: sharing the
// supervisor's memory (CLONE_VM) until its exec, so that no page table is
// copied, no page is copied on write, and nothing is torn down at the exec.
// A fork did all three for every job, which on a virtual machine doubled the
// CPU a job costs the machine. Unlike posix_spawn's child it runs beside the
// supervisor, not instead of it, so it makes raw system calls only (no errno,
// no C library state is touched) and reads nothing but the Launch, which the
// supervisor fills in before it hands the launch over and never changes after.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace spoold::exec {

struct Launch {
  const char* exe = nullptr;
  const char* cwd = nullptr;
  char** args = nullptr;
  char** env = nullptr;
  bool ids_malformed = false;  // it fails after the go, as a step of its start
  bool switch_user = false;    // else it stays the daemon's user
  uid_t uid = 0;
  gid_t gid = 0;
  size_t group_count = 0;
  gid_t* groups = nullptr;
};

struct JobProcess {
  pid_t pid = -1;     // also its process group and session
  int feed_fd = -1;   // ours: the launch is handed over through it
  int error_fd = -1;  // read end: a ChildError if a step before the exec failed
};

// Creates the job's process; it waits for Hand. False (errno set) if it could
// not be created. Once only: the process runs on a stack of ours.
bool CreateJobProcess(JobProcess& job);

// The Launch the job's process reads once handed over.
Launch& TheLaunch();

// When the job's process got the daemon's go (CLOCK_MONOTONIC and
// CLOCK_REALTIME, milliseconds); false until it did. It execs the job
// microseconds later.
bool StartedAt(long long& mono_ms, long long& real_ms);

// Hands the launch over with the job's stdout and stderr. The job's process
// then waits for the daemon's go on its copy of the control socket. False
// (errno set) if it is gone.
bool Hand(JobProcess& job, int stdout_fd, int stderr_fd);

}  // namespace spoold::exec

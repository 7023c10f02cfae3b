// What runs in a process cloned from the daemon before it execs a program
// (the Slurm commands of slurm_run.cpp, the hooks of hook_process.cpp): the
// clone is a copy of a process whose other threads may hold locks, without
// glibc's fork bookkeeping, so only raw system calls run here, and glibc's
// set*id wrappers (which signal every thread) must not be used.
#pragma once

#include <sys/types.h>

#include <cstddef>

#include "daemon/local_executor.h"

namespace spoold {

// The descriptors from 3 up that a clone of the daemon must not keep
// (another command's pipes would not close while this one runs), all but
// the `n` in `keep` (sorted here). `max_fd`: the highest to close one by one
// where close_range(2) is missing. Call before the clone (MaxFd) and use in it.
void CloseAllBut(int* keep, int n, int max_fd);
int MaxFd();

struct ChildExec {
  const char* exe = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  int in_fd = -1;                 // becomes 0
  int out_fd = -1;                // becomes 1
  int err_fd = -1;                // becomes 2
  int report_fd = -1;             // a failure's errno is written here before _exit(127)
  bool new_session = false;       // setsid(); else a process group of its own
  const RunAs* run_as = nullptr;  // null: stay the daemon's user
  const char* cwd = nullptr;      // null: stay where the daemon is
  int max_fd = 1 << 20;           // as for CloseAllBut
};

// Resets the signal dispositions, sets up 0, 1 and 2, marks every other
// descriptor close-on-exec, leaves the daemon's session or process group,
// switches user, unblocks signals and execs. Never returns.
[[noreturn]] void ExecInChild(const ChildExec& c);

}  // namespace spoold

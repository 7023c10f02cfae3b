// Hook processes (SPEC-hooks): starts one hook's program with its stdin, its
// environment and its user, follows it in the daemon's loop without ever
// blocking on it, appends its output to the hook's log up to a cap, and ends
// it at its timeout (TERM to its process group, KILL a few seconds later).
//
// Like RunCommand (daemon/slurm_run.cpp), each hook runs under a small cloned
// process whose exit signal is 0, so that the local executor's wait4(-1) can
// never reap the hook and take its exit status: that process starts the
// hook, reports its pid, reaps it and reports the wait status through a pipe,
// then exits. Callbacks only note what happened; Collect() turns it into
// outcomes, in the loop turn. Owns the processes' pipes, timers and handles.
#pragma once

#include <uv.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/hooks.h"
#include "daemon/local_executor.h"
#include "daemon/uv_handles.h"

namespace spoold {

// Everything one hook run needs, computed by the daemon.
struct HookLaunch {
  std::string exe;  // the program, found in PATH already
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "KEY=value"
  std::string cwd = "/";
  std::string stdin_data;       // the JSON object the hook reads
  std::string log_path;         // output (stdout and stderr) appended here, capped
  std::string log_header;       // a line written to the log before the run's output
  std::optional<RunAs> run_as;  // unset: the daemon's own user
  Millis timeout{30'000};
};

// A hook's log stops growing at this size; one line says it was cut.
inline constexpr size_t kHookLogCap = 64 * 1024;
// Between TERM at the timeout (or a stop) and KILL.
inline constexpr Millis kHookKillGrace = std::chrono::seconds(5);

class HookProcesses {
 public:
  explicit HookProcesses(uv_loop_t* loop) : loop_(loop) {}
  ~HookProcesses() { StopAll(); }
  HookProcesses(const HookProcesses&) = delete;
  HookProcesses& operator=(const HookProcesses&) = delete;

  // Starts run `token`. A failure to start (no pipes, no process, a program
  // that cannot run) comes back from Collect as kSpawnFailed, like any end.
  void Start(uint64_t token, const HookLaunch& launch);

  // The runs that ended since the last call, with their outcomes.
  std::vector<std::pair<uint64_t, HookOutcome>> Collect();
  // Whether Collect has something.
  bool HasEnded() const { return !ended_.empty() || any_done_; }

  // A stop: TERM to every running hook's process group, then every handle
  // closed; their outcomes are never collected.
  void StopAll();
  size_t Running() const { return procs_.size(); }

 private:
  struct Proc {
    uint64_t token = 0;
    pid_t super = -1;  // the cloned process that reaps the hook
    pid_t child = -1;  // the hook: also its process group and session
    int status_fd = -1, out_fd = -1, report_fd = -1, log_fd = -1;
    std::unique_ptr<FdWatch> status_watch, out_watch;
    std::unique_ptr<Timer> timer;
    std::optional<int> wait_status;
    bool done = false;  // status arrived, or the status pipe closed
    bool timed_out = false;
    int kill_signal = 0;
    uint64_t log_size = 0;
    std::string status_buf;
  };
  void ReadStatus(Proc& p);
  void ReadOutput(Proc& p);
  void WriteLog(Proc& p, const char* data, size_t n);
  void Kill(Proc& p, int sig);
  HookOutcome Finish(Proc& p);
  void Close(Proc& p);

  uv_loop_t* loop_;
  std::map<uint64_t, std::unique_ptr<Proc>> procs_;
  std::vector<std::pair<uint64_t, HookOutcome>> ended_;
  bool any_done_ = false;
};

}  // namespace spoold

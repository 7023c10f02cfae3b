// Starting a job's process on this machine (SPEC.md section 5), through its
// supervisor, spoold-exec (protocol in daemon/exec_protocol.h). The daemon
// keeps an idle helper started ahead of time (StartHelper), hands it an
// attempt (HandOver: the helper locks the attempt, forks the job's process,
// which waits, and answers with its pid), records the start, then lets the job
// run (ReleaseProcess). From there the supervisor runs on its own: it stays the
// job's parent, enforces its limits, reaps it with wait4() for CPU time and
// peak memory, and leaves the outcome in the attempt's folder
// (daemon/supervisor_files.h reads it). If the daemon dies before the release,
// the helper's socket closes and nothing runs, so a restarted daemon never
// meets a live attempt it has no record of.
//
// Why a helper started with posix_spawn and not fork: a forked daemon shares
// the daemon's pages copy-on-write, and each page the daemon writes meanwhile
// is copied; and a helper can be started before there is a job for it, so
// that starting a job costs a message, not a process.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/result.h"

namespace spoold {

// The user a job runs as when the daemon (root) switches to its submitter.
struct RunAs {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups (initgroups' list)
};

struct LaunchSpec {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH from `env`
  std::vector<std::string> env;   // "KEY=value"
  std::string cwd;
  int stdout_fd = -1;
  int stderr_fd = -1;
  int attempt_dir_fd = -1;      // the supervisor's lock and outcome go here
  std::optional<RunAs> run_as;  // unset: run as the daemon's own user
  // Enforced by the supervisor, also while the daemon is down.
  int64_t timeout_ms = 0;        // from the job's start; 0: none
  int64_t deadline_unix_ms = 0;  // absolute; 0: none
  int kill_signal = 15;
  int64_t kill_grace_ms = 10'000;
};

// The passwd entry and groups of `uid`, for RunAs and the job's HOME, USER,
// LOGNAME and SHELL. An error (code "spawn_failed") if the user is gone.
struct UserEntry {
  RunAs ids;
  std::string name, home, shell;
};
Result<UserEntry> LookUpUser(uid_t uid);

// An attempt handed to its supervisor, whose job's process waits for the go.
struct PendingProcess {
  pid_t pid = -1;                       // the supervisor
  pid_t job_pid = -1;                   // also the job's process group and session id
  std::optional<uint64_t> job_start_ticks;
  int go_fd = -1;  // the supervisor's socket: one byte lets the job run
};

// Where spoold-exec may be, in order: beside the running spoold (a build tree),
// then the install's libexec folder, found relative to spoold's own folder
// ("../libexec/spoold" from sbin), so that any install prefix works.
std::vector<std::string> ExecHelperCandidates();

// The first of `candidates` that exists; it must be an executable file, and as
// root owned by root and writable by nobody else (every job passes through
// it). An error names where it looked, or what is wrong with what it found.
Result<std::string> FindExecHelper(const std::vector<std::string>& candidates);

// The executable that PATH lookup (from the job's environment) finds for
// argv[0]; an error (code "spawn_failed") says it was not found.
Result<std::string> FindProgram(const LaunchSpec& spec);

// A spoold-exec started ahead of time, waiting for a job (exec_protocol.h).
// It is a child of the daemon: it is reaped like any other.
struct IdleHelper {
  pid_t pid = -1;       // also its process group and session id
  int control_fd = -1;  // our end of its socket
};

// Starts `helper` (spoold-exec's path), labelled `label` in ps. An error
// says what failed: code "spawn_failed" (the helper is missing, ...) or
// "transient" (out of descriptors, processes or memory: try again later).
Result<IdleHelper> StartHelper(const std::string& helper, const std::string& label);

// Lets an idle helper go: it exits without running anything.
void DismissHelper(IdleHelper& helper);

// Hands the attempt `spec` (its program `exe`, from FindProgram) to `helper`,
// which takes the attempt's lock, forks the job's process and says its pid;
// the job then waits for ReleaseProcess. The helper is used up either way: on
// an error it is dismissed. Errors: code "spawn_failed" (a request too big,
// the attempt's lock held) or "transient" (the helper died or does not
// answer, the machine is out of processes).
Result<PendingProcess> HandOver(IdleHelper& helper, const LaunchSpec& spec, const std::string& exe);

// Lets the job run, without waiting for it; closes the supervisor's socket.
void ReleaseProcess(PendingProcess& process);

// The error of a job's process that failed before its program ran, as the
// supervisor reports it (exec_protocol kStage*, errno); `exe` and `cwd` are
// named in the message. Code "transient" for lack of descriptors, processes
// or memory, else "spawn_failed".
Error ChildSetupError(int stage, int err, const std::string& exe, const std::string& cwd);

// The executable that PATH lookup finds for `name` (as execvp would), or nullopt.
std::optional<std::string> ResolveCommand(const std::string& name, const std::string& path_var);

// What /proc/PID/stat says of a process (fields 3 to 6 and 22).
struct ProcStat {
  char state = 0;  // 'Z': a zombie
  pid_t ppid = 0, pgrp = 0, session = 0;
  uint64_t start_ticks = 0;  // clock ticks since boot
};
std::optional<ProcStat> ReadProcStat(pid_t pid);

// A process's start time in clock ticks since boot, or nullopt if it is gone.
std::optional<uint64_t> ProcessStartTicks(pid_t pid);

// The live processes (zombies left out) for which `select` is true. Scans /proc.
std::vector<pid_t> LiveProcesses(const std::function<bool(const ProcStat&)>& select);

// Whether any process of group `pgid` is alive, zombies not counted (a zombie
// of a process that is not our child waits for its own parent to reap it; it
// runs nothing). Scans /proc.
bool GroupHasLiveMembers(pid_t pgid);

}  // namespace spoold

// The Slurm executor's commands (SPEC.md section 8, executor = "slurm"): submit
// one attempt with sbatch, follow all of a pool's attempts with ONE squeue call
// per poll, cancel or signal with scancel, and map Slurm's end states onto
// SPEC's reasons. Synchronous and stateless: each call runs one short Slurm
// command with a timeout and returns. The daemon owns the attempts, the timers
// (its own timer enforces the exact timeout, then calls Cancel) and decides
// what to do with the results. This module never touches status.json.
//
// Commands are run by RunCommand: fork (as a "clone" child that raises no
// SIGCHLD, so the daemon's wait4(-1) never reaps it; see slurm_run.cpp) and exec
// with an argv (no shell), output captured, killed and reaped at the timeout.
// It is safe to call from a thread-pool thread. Where the binaries live: the
// environment variable SPOOLD_SLURM_BIN_DIR (tests point it at fake commands),
// else a PATH lookup (then /usr/bin, /bin). Slurm commands get the daemon's
// environment (they may need SLURM_CONF).
//
// The code: slurm_pure.cpp (the pure parts below), slurm_run.cpp (RunCommand)
// and slurm.cpp (the Slurm calls, SlurmBinary, ClassifyFailure).
//
// Errors (Error::code):
//   "transient"    the controller is unreachable or slow, or the command timed
//                  out: nothing is known; keep the attempt's state, log once,
//                  try again at the next poll. (A Submit that fails this way
//                  may still have created the job: see FindByName.)
//   "spawn_failed" Submit only: Slurm refused the job for good (bad partition,
//                  bad sbatch_args, time limit above the partition's, ...).
//                  The message quotes sbatch's error line.
//   "slurm_error"  anything else (binary missing, output not understood).
//
// How Slurm's end states map onto AttemptEnd (MapEnd). `file` is the exit-code
// file the batch script writes (ReadExitFile); it wins over Slurm's ExitCode
// because it is exactly the command's status and it outlives Slurm's job record
// (MinJobAge, 300 s by default on real clusters, after which squeue forgets it):
//
//   Slurm state      | AttemptEnd                       | scheduler reason
//   -----------------|----------------------------------|------------------------
//   COMPLETED        | exit_code from file, else Slurm  | none (succeeded)
//   FAILED           | file: exit code, or signal when  | nonzero_exit / signal
//                    |  the shell reported 128+N        |
//                    | no file: Slurm's ExitCode: exit  | nonzero_exit / signal
//                    |  or signal 1..31                 |
//                    | no file, reason JobLaunchFailure | spawn_failed (Slurm
//                    |  and no usable status (e.g. 0:53 |  could not start the
//                    |  = output folder missing)       |  batch script)
//   TIMEOUT          | cause kTimeout                   | timeout
//   CANCELLED        | cause kCancelledByUser, detail   | cancelled_by_user
//                    |  "cancelled outside spoold"      |  (someone ran scancel;
//                    |                                  |  it is not run again)
//   DEADLINE         | cause kDeadline                  | deadline
//   NODE_FAIL,       | cause kInterrupted               | interrupted: not the
//   BOOT_FAIL,       |                                  |  job's fault; queued
//   PREEMPTED,       |                                  |  again (the scheduler
//   REVOKED          |                                  |  fails it at the 3rd)
//   OUT_OF_MEMORY    | out_of_memory, signal KILL,      | out_of_memory
//                    |  detail "out of memory"; a file  |  (succeeded when the
//                    |  saying 0 keeps exit_code 0      |  command exited 0)
//   not listed       | file: as FAILED/COMPLETED above; | (the record was purged
//   (MapLost)        | no file: cause kInterrupted      |  after MinJobAge)
//
// When the daemon itself stopped the attempt (its timeout, the deadline, a
// cancel request, a shutdown), the daemon's cause overrides MapEnd's, exactly
// as for local attempts. A file holding "spawn_failed: ..." (the working folder
// or the command is missing) maps to cause kSpawnFailed whatever the state.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/duration.h"
#include "config/resources.h"
#include "config/result.h"
#include "daemon/local_executor.h"
#include "daemon/scheduler.h"

namespace spoold {

// One attempt to submit. Every path is absolute; the folders must exist and be
// writable by the user the job runs as (Slurm opens --output as that user, and
// a missing folder only fails later, as FAILED/JobLaunchFailure).
struct SlurmSubmit {
  std::string job_name;                  // --job-name; see FindByName
  std::string partition;                 // "" = the cluster's default partition
  std::vector<std::string> sbatch_args;  // the pool's slurm.sbatch_args; they come
                                         // after ours, so they may override them
  // The job's [resources] request (SPEC.md section 5, "Resources"), passed on
  // as --cpus-per-task, --mem and --gres=gpu:N; 0 asks for none of it.
  ResourceAmounts resources;
  std::string chdir;                     // the job's cwd (--chdir, and cd in the script)
  std::string stdout_path, stderr_path;  // attempts/<n>/stdout.log, stderr.log
  std::string exit_code_path;            // e.g. attempts/<n>/exit_code
  std::optional<Millis> timeout;         // nullopt or 0: no --time (partition default)
  std::vector<std::string> argv;         // the command; argv[0] looked up in env's PATH
  std::vector<std::string> env;          // "KEY=value": the job's whole environment
  std::string script_path;               // where the batch script goes, e.g. attempts/<n>/slurm.sh
  std::optional<RunAs> run_as;           // run sbatch as this user (the job's owner)
};

// What squeue says about one job.
struct SlurmJobInfo {
  std::string id;
  std::string state;             // PENDING RUNNING COMPLETING COMPLETED FAILED TIMEOUT ...
  std::string reason;            // Slurm's reason: None, Priority, NonZeroExitCode, ...
  std::optional<int> exit_code;  // from Slurm's exit status, when it exited
  std::optional<int> signal;     // from Slurm's exit status, when signalled
  bool terminal = false;         // the state is an end state (see IsTerminalState)
};

// The batch script's record of the command's end (the exit-code file).
struct SlurmExitFile {
  std::optional<int> exit_code;             // the command exited with this code
  std::optional<int> signal;                // the shell said 128+N: killed by signal N
  std::optional<std::string> spawn_failed;  // the command could not start: why
};

// ---- pure parts (unit-tested without a cluster) ----

// The batch script, a POSIX sh script: cd to chdir (a failure is recorded as
// spawn_failed), check that argv[0] exists in the job's PATH (likewise), then
// run argv with `env -i` and exactly `env` plus Slurm's own SLURM* variables
// (which srun inside the job needs); the inherited environment is dropped.
// Values are single-quoted, so every byte but NUL survives (commas, spaces,
// quotes, newlines, $, backticks). Then it writes the command's status to
// exit_code_path (to a .tmp name, then mv) and exits with it.
std::string BatchScript(const SlurmSubmit& submit);

// Single-quotes `text` for sh.
std::string ShellQuote(const std::string& text);

// --time in whole minutes, rounded up (61 s -> 2); nullopt for no limit.
std::optional<int64_t> TimeLimitMinutes(std::optional<Millis> timeout);

// The sbatch options that ask for `resources` (SPEC.md section 5): --cpus-per-task=N
// when cpus > 0, --mem=<MiB>M when memory > 0 (whole MiB, rounded up),
// --gres=gpu:N when gpus > 0; none for an empty request.
std::vector<std::string> ResourceArgs(const ResourceAmounts& resources);

// The sbatch argv (without the binary path resolved): sbatch --parsable
// --job-name=... [--partition=...] --chdir=... --output=... --error=...
// --no-requeue [--time=M] [ResourceArgs...] [sbatch_args...] script_path
std::vector<std::string> SbatchArgv(const SlurmSubmit& submit);

// "123", "123;cluster" (with a trailing newline) -> "123". Error slurm_error
// when it is not that.
Result<std::string> ParseSbatchOutput(const std::string& out);

// Parses squeue output in PollArgv's format ("id|state|reason|exitstatus|" a
// line; the exit status is the raw wait status). Lines it cannot read are skipped.
std::map<std::string, SlurmJobInfo> ParseSqueue(const std::string& out);

// Parses `scontrol show job -o` output (one job a line; JobId, JobState,
// Reason, ExitCode=exit:signal). For single look-ups and diagnostics.
std::map<std::string, SlurmJobInfo> ParseScontrol(const std::string& out);

// The squeue argv for a poll of `ids` (one call for all).
std::vector<std::string> PollArgv(const std::vector<std::string>& ids);

// Whether Slurm will not change this state any more.
bool IsTerminalState(const std::string& state);

// Reads the exit-code file: nullopt when it does not exist (yet) or is not
// complete. The file is written to a temporary name and renamed, so a present
// file is whole.
std::optional<SlurmExitFile> ParseExitFile(const std::string& text);
std::optional<SlurmExitFile> ReadExitFile(const std::string& path);

// The table above. `info` must be terminal.
AttemptEnd MapEnd(const SlurmJobInfo& info, const std::optional<SlurmExitFile>& file);

// A job squeue no longer lists (purged after MinJobAge, e.g. while the daemon
// was down): the file if there is one, else kInterrupted.
AttemptEnd MapLost(const std::string& id, const std::optional<SlurmExitFile>& file);

// ---- running commands ----

struct CommandResult {
  int exit_code = -1;  // -1 when signalled
  int signal = 0;
  bool timed_out = false;
  std::string out, err;  // each capped at 64 MiB
};

// Sorts a failed command into transient / spawn_failed (submit only) /
// slurm_error; `what` names the command in the message.
Error ClassifyFailure(const std::string& what, const CommandResult& result, bool submit);

// Runs argv (argv[0] with a '/' as given, else PATH lookup) with stdin from
// /dev/null, in its own process group, for at most `timeout`; then SIGKILL to
// the group, and the process is reaped before this returns. An Error
// (slurm_error) only when it cannot start; a non-zero exit is a CommandResult.
Result<CommandResult> RunCommand(const std::vector<std::string>& argv, Millis timeout,
                                 const std::optional<RunAs>& run_as = std::nullopt);

// The path to run for a Slurm command ("sbatch"): $SPOOLD_SLURM_BIN_DIR/name
// when set, else `name` (PATH lookup in RunCommand).
std::string SlurmBinary(const std::string& name);

// ---- the Slurm calls ----

// Writes the batch script (mode 0644, atomically) and runs sbatch; returns the
// Slurm job id. Refuses output paths with '%' or '\' (Slurm would expand them).
Result<std::string> Submit(const SlurmSubmit& submit, Millis command_timeout);

// ONE squeue call for all `ids`: the jobs squeue lists, by id. An id that is
// missing from the map is unknown to Slurm (purged, or never existed): see
// MapLost. Ids that are not Slurm job ids (digits) are left out; no valid
// ids: no command, empty map.
Result<std::map<std::string, SlurmJobInfo>> Poll(const std::vector<std::string>& ids, Millis command_timeout);

// The jobs named `job_name` (any state, any age that Slurm still keeps), e.g.
// after a Submit that failed with "transient", or after a crash between sbatch
// and recording the id: adopt the job instead of submitting again.
Result<std::map<std::string, SlurmJobInfo>> FindByName(const std::string& job_name, Millis command_timeout);

// scancel ID: Slurm sends SIGTERM to all of the job's processes, SIGKILL after
// its KillWait, and the job ends CANCELLED. Pending jobs are removed at once.
// Succeeds also for unknown or ended jobs (scancel cannot tell).
Status Cancel(const std::string& id, Millis command_timeout);

// scancel --full --signal=NAME ID: sends `signal_name` ("TERM", "INT", ...) to
// the batch script and all its processes without ending the job; for
// kill.signal before kill.grace runs out and Cancel follows. Only for RUNNING
// jobs (cancel pending ones).
Status Signal(const std::string& id, const std::string& signal_name, Millis command_timeout);

// `scontrol ping`: whether a controller answers (tests use it to skip).
bool ControllerReachable(Millis command_timeout);

}  // namespace spoold

// The Slurm executor's calls (slurm.h): Submit, Poll, FindByName, Cancel,
// Signal and ControllerReachable, each one Slurm command run by RunCommand
// (slurm_run.cpp) with its arguments and output handled by the pure parts
// (slurm_pure.cpp); and how a failed command is classified (ClassifyFailure).
// See slurm.h for the contract and the mapping table.
#include "daemon/slurm.h"

#include <cstdlib>

#include "daemon/slurm_util.h"
#include "spool/fileio.h"
#include "spool/json_util.h"

namespace spoold {

using namespace slurm_util;

Error ClassifyFailure(const std::string& what, const CommandResult& result, bool submit) {
  if (result.timed_out) {
    return MakeError("transient", what + " did not finish in time; the Slurm controller may be slow or down");
  }
  // The first line that says "error", else the first line.
  std::string line;
  for (auto l : Split(result.err, '\n')) {
    std::string t = Trim(l);
    if (t.empty()) continue;
    if (line.empty()) line = t;
    if (Contains(t, "error")) {
      line = t;
      break;
    }
  }
  if (line.empty()) line = Trim(result.out);
  const std::string said = line.empty() ? "" : ": " + PrintableName(line, 300);
  const std::string how = result.signal ? " was killed by signal " + std::to_string(result.signal)
                                        : " failed (exit " + std::to_string(result.exit_code) + ")";
  static const char* const kTransient[] = {"Unable to contact slurm controller",
                                           "Socket timed out",
                                           "Connection refused",
                                           "Connection timed out",
                                           "temporarily unavailable",
                                           "temporarily unable",
                                           "Zero Bytes were transmitted",
                                           "Communication connection failure",
                                           "Slurm backup controller in standby mode",
                                           "Unable to establish controller machine",
                                           "Transport endpoint is not connected",
                                           "Unexpected message received",
                                           "Insane message length"};
  for (const char* t : kTransient) {
    if (Contains(result.err, t)) return MakeError("transient", what + how + said);
  }
  return MakeError(submit && result.exit_code > 0 ? "spawn_failed" : "slurm_error", what + how + said);
}

// ---------------------------------------------------------------- commands

std::string SlurmBinary(const std::string& name) {
  const char* dir = std::getenv("SPOOLD_SLURM_BIN_DIR");
  if (dir && *dir) return std::string(dir) + "/" + name;
  return name;
}

Result<std::string> Submit(const SlurmSubmit& submit, Millis command_timeout) {
  for (const std::string* p : {&submit.stdout_path, &submit.stderr_path}) {
    if (p->find_first_of("%\\") != std::string::npos) {
      return MakeError("spawn_failed", "Slurm would expand '%' or '\\' in the log path " + PrintableName(*p));
    }
  }
  if (submit.argv.empty()) return MakeError("spawn_failed", "the job has no command");
  if (Status st = WriteFileAtomic(submit.script_path, BatchScript(submit), 0644); !st) {
    return MakeError("spawn_failed", "cannot write the batch script: " + st.error().message);
  }
  auto run = RunCommand(SbatchArgv(submit), command_timeout, submit.run_as);
  if (!run) return run.error();
  if (run->timed_out || run->exit_code != 0) return ClassifyFailure("sbatch", *run, true);
  return ParseSbatchOutput(run->out);
}

Result<std::map<std::string, SlurmJobInfo>> Poll(const std::vector<std::string>& ids,
                                                 Millis command_timeout) {
  std::map<std::string, SlurmJobInfo> none;
  // Only job ids Slurm could have given (digits): anything else is unknown,
  // and would make squeue fail for all the others.
  std::vector<std::string> valid;
  for (const auto& id : ids) {
    if (IsJobId(id)) valid.push_back(id);
  }
  if (valid.empty()) return none;
  auto run = RunCommand(PollArgv(valid), command_timeout);
  if (!run) return run.error();
  if (run->timed_out || run->exit_code != 0) {
    // squeue with exactly one unknown id fails ("Invalid job id specified");
    // with several it filters and prints what it knows. Both mean "unknown".
    if (!run->timed_out && Contains(run->err, "Invalid job id specified")) return none;
    return ClassifyFailure("squeue", *run, false);
  }
  auto jobs = ParseSqueue(run->out);
  // squeue lists only what was asked for; be strict anyway.
  std::map<std::string, SlurmJobInfo> wanted;
  for (const auto& id : valid) {
    if (auto it = jobs.find(id); it != jobs.end()) wanted[id] = it->second;
  }
  return wanted;
}

Result<std::map<std::string, SlurmJobInfo>> FindByName(const std::string& job_name, Millis command_timeout) {
  auto run = RunCommand({SlurmBinary("squeue"), "--noheader", "--states=all", "--name=" + job_name,
                         "--Format=JobID:|,State:|,Reason:|,exit_code:|"},
                        command_timeout);
  if (!run) return run.error();
  if (run->timed_out || run->exit_code != 0) return ClassifyFailure("squeue", *run, false);
  return ParseSqueue(run->out);
}

Status Cancel(const std::string& id, Millis command_timeout) {
  auto run = RunCommand({SlurmBinary("scancel"), id}, command_timeout);
  if (!run) return run.error();
  if (run->timed_out || run->exit_code != 0) return ClassifyFailure("scancel", *run, false);
  return OkStatus();
}

Status Signal(const std::string& id, const std::string& signal_name, Millis command_timeout) {
  auto run = RunCommand({SlurmBinary("scancel"), "--full", "--signal=" + signal_name, id}, command_timeout);
  if (!run) return run.error();
  if (run->timed_out || run->exit_code != 0) return ClassifyFailure("scancel", *run, false);
  return OkStatus();
}

bool ControllerReachable(Millis command_timeout) {
  auto run = RunCommand({SlurmBinary("scontrol"), "ping"}, command_timeout);
  return run && !run->timed_out && run->exit_code == 0 && Contains(run->out, "UP");
}

}  // namespace spoold

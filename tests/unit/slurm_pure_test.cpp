// The Slurm executor's pure parts (daemon/slurm_pure.cpp): the batch script,
// run here with /bin/sh while the child reports the environment and argv it
// sees; sbatch arguments; squeue/scontrol outputs (captured samples); the
// exit-code file; the mapping of end states. No cluster, no Slurm commands.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "daemon/slurm.h"
#include "slurm_test_helpers.h"
#include "test_files.h"

using namespace spoold;
using namespace slurmtest;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

extern char** environ;

namespace {

// The SLURM* variables of this process: the script passes them on.
std::set<std::string> SlurmVarsOfThisProcess() {
  std::set<std::string> vars;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("SLURM", 0) == 0) vars.insert(kv);
  }
  return vars;
}

// Writes the batch script and runs it with /bin/sh here, as slurmstepd would.
CommandResult RunScriptLocally(const SlurmSubmit& s) {
  std::ofstream(s.script_path, std::ios::binary) << BatchScript(s);
  auto run = RunCommand({"/bin/sh", s.script_path}, 20s);
  REQUIRE(run.ok());
  REQUIRE(!run->timed_out);
  return *run;
}

}  // namespace

// ---------------------------------------------------------------- the batch script

TEST_CASE("slurm: ShellQuote wraps in single quotes and escapes them") {
  CHECK(ShellQuote("") == "''");
  CHECK(ShellQuote("abc") == "'abc'");
  CHECK(ShellQuote("it's") == "'it'\\''s'");
}

TEST_CASE("slurm: the batch script gives the command exactly the job's environment") {
  TempDir dir;
  EnvGuard drop("SPOOLD_TEST_INHERITED", "must-not-reach-the-job");
  EnvGuard keep("SLURM_SPOOLD_TEST", "kept,for srun");
  // A name that only appears inside a value is not a variable: not passed on.
  EnvGuard inject("SPOOLD_TEST_INJECT", "x\nSLURM_FAKE_INJECTED=1");
  SlurmSubmit s = BaseSubmit(dir);
  std::set<std::string> expected(s.env.begin(), s.env.end());
  for (size_t i = 0; i < kNastyValues.size(); ++i) {
    s.env.push_back("NASTY_" + std::to_string(i) + "=" + kNastyValues[i]);
    expected.insert(s.env.back());
  }
  for (const auto& kv : SlurmVarsOfThisProcess()) expected.insert(kv);
  s.argv = {"/usr/bin/env", "-0"};
  CommandResult run = RunScriptLocally(s);
  INFO("stderr: " << run.err);
  CHECK(run.exit_code == 0);
  auto seen_list = SplitNul(run.out);
  std::set<std::string> seen(seen_list.begin(), seen_list.end());
  CHECK(seen == expected);
  CHECK(seen.count("SLURM_SPOOLD_TEST=kept,for srun") == 1);
  CHECK(testfiles::ReadFile(s.exit_code_path) == "0\n");
}

TEST_CASE("slurm: a job variable overrides an inherited SLURM* variable of the same name") {
  TempDir dir;
  EnvGuard keep("SLURM_SPOOLD_TEST", "inherited");
  SlurmSubmit s = BaseSubmit(dir);
  s.env.push_back("SLURM_SPOOLD_TEST=from the job");
  s.argv = {"/usr/bin/env", "-0"};
  auto seen = SplitNul(RunScriptLocally(s).out);
  CHECK(std::count(seen.begin(), seen.end(), "SLURM_SPOOLD_TEST=from the job") == 1);
  CHECK(std::count(seen.begin(), seen.end(), "SLURM_SPOOLD_TEST=inherited") == 0);
}

TEST_CASE("slurm: the batch script passes argv byte for byte with a PATH lookup") {
  TempDir dir;
  SlurmSubmit s = BaseSubmit(dir);
  s.argv = {"printf", "%s\\0"};
  s.argv.insert(s.argv.end(), kNastyValues.begin(), kNastyValues.end());
  CommandResult run = RunScriptLocally(s);
  INFO("stderr: " << run.err);
  CHECK(run.exit_code == 0);
  CHECK(SplitNul(run.out) == kNastyValues);
}

TEST_CASE("slurm: the batch script runs in chdir even one with quotes and spaces") {
  TempDir dir;
  std::string odd = dir / "it's a \"dir\" $x";
  fs::create_directory(odd);
  SlurmSubmit s = BaseSubmit(dir);
  s.chdir = odd;
  s.argv = {"/bin/pwd", "-P"};
  CHECK(RunScriptLocally(s).out == fs::canonical(odd).string() + "\n");
}

TEST_CASE("slurm: a command whose name holds '=' still runs") {
  TempDir dir;
  WriteExecutable(dir / "a=b", "#!/bin/sh\necho ran \"$@\"\n");
  SlurmSubmit s = BaseSubmit(dir);
  s.argv = {dir / "a=b", "x,y"};
  CommandResult run = RunScriptLocally(s);
  CHECK(run.out == "ran x,y\n");
}

TEST_CASE("slurm: the batch script records the exit status and exits with it") {
  TempDir dir;
  SlurmSubmit s = BaseSubmit(dir);
  s.argv = {"/bin/sh", "-c", "echo out; exit 3"};
  CommandResult run = RunScriptLocally(s);
  CHECK(run.exit_code == 3);
  CHECK(testfiles::ReadFile(s.exit_code_path) == "3\n");
  CHECK(!fs::exists(s.exit_code_path + ".tmp"));
  auto file = ReadExitFile(s.exit_code_path);
  REQUIRE(file);
  CHECK(file->exit_code == 3);
  CHECK(!file->signal);

  s.argv = {"/bin/sh", "-c", "kill -9 $$"};
  run = RunScriptLocally(s);
  CHECK(run.exit_code == 137);
  file = ReadExitFile(s.exit_code_path);
  REQUIRE(file);
  CHECK(file->signal == 9);
  CHECK(!file->exit_code);
}

TEST_CASE("slurm: a missing command or working folder is recorded as spawn_failed") {
  TempDir dir;
  SlurmSubmit s = BaseSubmit(dir);
  s.argv = {"no-such-command-spoold", "x"};
  CommandResult run = RunScriptLocally(s);
  CHECK(run.exit_code == 127);
  auto file = ReadExitFile(s.exit_code_path);
  REQUIRE(file);
  CHECK(file->spawn_failed == "command not found");

  s.argv = {dir / "missing"};
  RunScriptLocally(s);
  file = ReadExitFile(s.exit_code_path);
  REQUIRE(file);
  CHECK(file->spawn_failed == "command not found or not executable");

  s.argv = {"/bin/true"};
  s.chdir = dir / "gone";
  RunScriptLocally(s);
  file = ReadExitFile(s.exit_code_path);
  REQUIRE(file);
  CHECK(file->spawn_failed == "cannot enter the working folder");
  AttemptEnd end = MapLost("1", file);
  CHECK(end.cause == Reason::kSpawnFailed);
}

// ---------------------------------------------------------------- sbatch arguments

TEST_CASE("slurm: --time is the timeout rounded up to whole minutes") {
  CHECK(TimeLimitMinutes(61s) == 2);
  CHECK(TimeLimitMinutes(60s) == 1);
  CHECK(TimeLimitMinutes(1ms) == 1);
  CHECK(TimeLimitMinutes(59min + 1s) == 60);
  CHECK(TimeLimitMinutes(Millis(0)) == std::nullopt);
  CHECK(TimeLimitMinutes(std::nullopt) == std::nullopt);
}

TEST_CASE("slurm: the sbatch command line") {
  EnvGuard bin("SPOOLD_SLURM_BIN_DIR", nullptr);
  SlurmSubmit s;
  s.job_name = "spoold-nightly-1";
  s.partition = "debug";
  s.sbatch_args = {"--mem=4G", "--time=5"};
  s.chdir = "/spool/jobs/nightly/results";
  s.stdout_path = "/spool/jobs/nightly/attempts/1/stdout.log";
  s.stderr_path = "/spool/jobs/nightly/attempts/1/stderr.log";
  s.script_path = "/spool/jobs/nightly/attempts/1/slurm.sh";
  s.timeout = 61s;
  CHECK(SbatchArgv(s) == std::vector<std::string>{"sbatch", "--parsable", "--job-name=spoold-nightly-1",
                                                  "--partition=debug", "--chdir=/spool/jobs/nightly/results",
                                                  "--output=/spool/jobs/nightly/attempts/1/stdout.log",
                                                  "--error=/spool/jobs/nightly/attempts/1/stderr.log",
                                                  "--no-requeue", "--time=2", "--mem=4G", "--time=5",
                                                  "/spool/jobs/nightly/attempts/1/slurm.sh"});
  s.partition.clear();
  s.timeout.reset();
  s.sbatch_args.clear();
  auto argv = SbatchArgv(s);
  CHECK(std::none_of(argv.begin(), argv.end(), [](const std::string& a) {
    return a.rfind("--time", 0) == 0 || a.rfind("--partition", 0) == 0;
  }));
}

TEST_CASE("slurm: a job's resources go to sbatch before the pool's sbatch_args") {
  EnvGuard bin("SPOOLD_SLURM_BIN_DIR", nullptr);
  SlurmSubmit s;
  s.job_name = "spoold-big-1";
  s.chdir = "/c";
  s.stdout_path = "/o";
  s.stderr_path = "/e";
  s.script_path = "/s.sh";
  s.timeout = 60s;
  s.sbatch_args = {"--mem=8G", "--account=ops"};
  s.resources = ResourceAmounts{2, int64_t{4} << 30, 1};
  // The pool's own arguments come last, so an administrator's --mem wins.
  CHECK(SbatchArgv(s) == std::vector<std::string>{"sbatch", "--parsable", "--job-name=spoold-big-1",
                                                  "--chdir=/c", "--output=/o", "--error=/e", "--no-requeue",
                                                  "--time=1", "--cpus-per-task=2", "--mem=4096M",
                                                  "--gres=gpu:1", "--mem=8G", "--account=ops", "/s.sh"});
  // Nothing asked: no resource option at all.
  s.resources = ResourceAmounts{};
  auto argv = SbatchArgv(s);
  CHECK(std::none_of(argv.begin(), argv.end(), [](const std::string& a) {
    return a.rfind("--cpus-per-task", 0) == 0 || a.rfind("--gres", 0) == 0 || a == "--mem=4096M";
  }));
}

TEST_CASE("slurm: resource options ask for each part of the request alone, memory in whole MiB") {
  CHECK(ResourceArgs({}).empty());
  CHECK(ResourceArgs({1, 0, 0}) == std::vector<std::string>{"--cpus-per-task=1"});
  CHECK(ResourceArgs({0, 100 << 20, 0}) == std::vector<std::string>{"--mem=100M"});
  CHECK(ResourceArgs({0, 0, 3}) == std::vector<std::string>{"--gres=gpu:3"});
  // Rounded up: a byte over 1M asks for 2M, never less than the job asked for.
  CHECK(ResourceArgs({0, (1 << 20) + 1, 0}) == std::vector<std::string>{"--mem=2M"});
  CHECK(ResourceArgs({0, (int64_t{3} << 29), 0}) == std::vector<std::string>{"--mem=1536M"});
  CHECK(ResourceArgs({0, int64_t{1} << 50, 0}) == std::vector<std::string>{"--mem=1073741824M"});
  CHECK(ResourceArgs({4096, int64_t{1} << 30, 256}) ==
        std::vector<std::string>{"--cpus-per-task=4096", "--mem=1024M", "--gres=gpu:256"});
}

TEST_CASE("slurm: sbatch --parsable output") {
  CHECK(ParseSbatchOutput("123\n").value() == "123");
  CHECK(ParseSbatchOutput("4567;localci\n").value() == "4567");
  CHECK(ParseSbatchOutput("89").value() == "89");
  CHECK(!ParseSbatchOutput("").ok());
  CHECK(!ParseSbatchOutput("Submitted batch job 5\n").ok());
  CHECK(ParseSbatchOutput("x;y").error().code == "slurm_error");
}

// ---------------------------------------------------------------- squeue / scontrol

TEST_CASE("slurm: squeue output") {
  auto jobs = ParseSqueue(kSqueueSample);
  REQUIRE(jobs.size() == 7);
  CHECK(jobs["2"].state == "COMPLETED");
  CHECK(jobs["2"].terminal);
  CHECK(jobs["2"].exit_code == 0);
  CHECK(jobs["3"].exit_code == 3);
  CHECK(jobs["3"].reason == "NonZeroExitCode");
  CHECK(jobs["4"].signal == 15);
  CHECK(!jobs["4"].exit_code);
  CHECK(jobs["6"].signal == 9);
  CHECK(jobs["5"].state == "PENDING");
  CHECK(jobs["5"].reason == "BeginTime");
  CHECK(!jobs["5"].terminal);
  CHECK(!jobs["7"].terminal);
  CHECK(!jobs["8"].terminal);  // COMPLETING is not an end
}

TEST_CASE("slurm: scontrol show job -o output") {
  // Captured from scontrol 22.05.8 (shortened in the middle; JobName and the
  // paths hold spaces on purpose).
  const std::string out =
      "JobId=2 JobName=ok job UserId=root(0) JobState=COMPLETED Reason=None Dependency=(null) ExitCode=0:0 "
      "RunTime=00:00:00 Command=/x y/job.sh WorkDir=/x y StdOut=/x y/stdout.txt Power=\n"
      "JobId=3 JobName=fail JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 "
      "RunTime=00:00:01\n"
      "JobId=9 JobName=timeout JobState=TIMEOUT Reason=TimeLimit Dependency=(null) Requeue=0 ExitCode=0:15 "
      "RunTime=00:01:21 TimeLimit=00:01:00\n"
      "JobId=10 JobName=JobState=RUNNING JobState=CANCELLED Reason=None ExitCode=0:15\n"
      "JobId=5 JobName=badout JobState=FAILED Reason=JobLaunchFailure ExitCode=0:53\n";
  auto jobs = ParseScontrol(out);
  REQUIRE(jobs.size() == 5);
  CHECK(jobs["2"].state == "COMPLETED");
  CHECK(jobs["2"].exit_code == 0);
  CHECK(jobs["3"].exit_code == 3);
  CHECK(jobs["9"].state == "TIMEOUT");
  CHECK(jobs["9"].reason == "TimeLimit");
  CHECK(jobs["9"].signal == 15);
  CHECK(jobs["10"].state == "CANCELLED");  // a job name that looks like a field
  CHECK(jobs["5"].signal == 53);
  AttemptEnd end = MapEnd(jobs["9"], std::nullopt);
  CHECK(end.cause == Reason::kTimeout);
}

TEST_CASE("slurm: the exit-code file") {
  CHECK(ParseExitFile("0\n")->exit_code == 0);
  CHECK(ParseExitFile("3\n")->exit_code == 3);
  CHECK(ParseExitFile("128\n")->exit_code == 128);
  CHECK(ParseExitFile("137\n")->signal == 9);
  CHECK(ParseExitFile("143")->signal == 15);
  CHECK(ParseExitFile("255\n")->exit_code == 255);
  CHECK(ParseExitFile("spawn_failed: command not found\n")->spawn_failed == "command not found");
  CHECK(!ParseExitFile(""));
  CHECK(!ParseExitFile("x"));
  CHECK(!ParseExitFile("256"));
  CHECK(!ReadExitFile("/nonexistent/exit_code"));
}

// ---------------------------------------------------------------- the mapping table

TEST_CASE("slurm: end states map onto SPEC's reasons") {
  auto info = [](std::string state, std::string reason = "None", std::optional<int> code = std::nullopt,
                 std::optional<int> sig = std::nullopt) {
    SlurmJobInfo i;
    i.id = "42";
    i.state = std::move(state);
    i.reason = std::move(reason);
    i.exit_code = code;
    i.signal = sig;
    i.terminal = IsTerminalState(i.state);
    return i;
  };
  auto file = [](const char* text) { return ParseExitFile(text); };
  struct Case {
    const char* name;
    SlurmJobInfo info;
    std::optional<SlurmExitFile> file;
    std::optional<int> exit_code;
    std::optional<int> signal;
    Reason cause;
  };
  const Case cases[] = {
      {"completed, file", info("COMPLETED", "None", 0), file("0"), 0, {}, Reason::kNone},
      {"completed, no file", info("COMPLETED", "None", 0), {}, 0, {}, Reason::kNone},
      {"completed, no status", info("COMPLETED"), {}, 0, {}, Reason::kNone},
      {"failed, file", info("FAILED", "NonZeroExitCode", 3), file("3"), 3, {}, Reason::kNone},
      {"failed, file says signal", info("FAILED", "NonZeroExitCode", 137), file("137"), {}, 9, Reason::kNone},
      {"failed, no file, exit", info("FAILED", "NonZeroExitCode", 3), {}, 3, {}, Reason::kNone},
      {"failed, no file, script killed", info("FAILED", "JobLaunchFailure", {}, 9), {}, {}, 9, Reason::kNone},
      {"failed, output folder missing",
       info("FAILED", "JobLaunchFailure", {}, 53),
       {},
       {},
       {},
       Reason::kSpawnFailed},
      {"failed, file spawn_failed",
       info("FAILED", "NonZeroExitCode", 127),
       file("spawn_failed: command not found"),
       {},
       {},
       Reason::kSpawnFailed},
      {"timeout", info("TIMEOUT", "TimeLimit", {}, 15), {}, {}, 15, Reason::kTimeout},
      {"cancelled outside spoold", info("CANCELLED", "None", {}, 15), {}, {}, 15, Reason::kCancelledByUser},
      {"deadline", info("DEADLINE"), {}, {}, {}, Reason::kDeadline},
      {"node failure", info("NODE_FAIL", "None", 0), {}, 0, {}, Reason::kInterrupted},
      {"boot failure", info("BOOT_FAIL"), {}, {}, {}, Reason::kInterrupted},
      {"preempted", info("PREEMPTED"), {}, {}, {}, Reason::kInterrupted},
      {"out of memory", info("OUT_OF_MEMORY", "None", 0), file("1"), {}, SIGKILL, Reason::kNone},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    REQUIRE(c.info.terminal);
    AttemptEnd end = MapEnd(c.info, c.file);
    CHECK(end.exit_code == c.exit_code);
    CHECK(end.signal == c.signal);
    CHECK(end.cause == c.cause);
    CHECK(end.out_of_memory == (c.info.state == "OUT_OF_MEMORY"));
  }
  CHECK(MapEnd(info("OUT_OF_MEMORY"), std::nullopt).detail.find("out of memory") != std::string::npos);
  {
    // Out of memory: the scheduler's reason out_of_memory, with signal KILL,
    // whatever Slurm or the file say of the command...
    for (const auto& f : {std::optional<SlurmExitFile>(), file("137"), file("1")}) {
      AttemptEnd end = MapEnd(info("OUT_OF_MEMORY", "OutOfMemory", {}, 9), f);
      CHECK(end.out_of_memory);
      CHECK(end.signal == SIGKILL);
      CHECK(!end.exit_code);
      CHECK(end.cause == Reason::kNone);
    }
    // ...but for a command that exited 0 (a child of it was killed): it
    // succeeded, as a local attempt that exits 0 does.
    AttemptEnd end = MapEnd(info("OUT_OF_MEMORY", "OutOfMemory", 0), file("0"));
    CHECK(end.out_of_memory);
    CHECK(end.exit_code == 0);
    CHECK(!end.signal);
  }
  for (const char* state : {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL"}) {
    CAPTURE(state);
    CHECK(!MapEnd(info(state, "None", 0), file("137")).out_of_memory);
  }
  CHECK(MapEnd(info("CANCELLED"), std::nullopt).detail.find("outside spoold") != std::string::npos);
  // A record Slurm purged: the file tells, else it counts as an interruption.
  CHECK(MapLost("42", file("0")).exit_code == 0);
  CHECK(MapLost("42", std::nullopt).cause == Reason::kInterrupted);
  for (const char* s : {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUED"}) {
    CHECK(!IsTerminalState(s));
  }
}

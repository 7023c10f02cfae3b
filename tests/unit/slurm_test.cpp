// The Slurm executor's commands (daemon/slurm.h). Part one needs no cluster:
// the batch script is run with /bin/sh and the child reports the environment
// and argv it sees; squeue/scontrol/sbatch outputs are captured samples; the
// Slurm binaries are replaced by fakes through SPOOLD_SLURM_BIN_DIR. Part two
// ("slurm live: ...") runs against a real cluster (tests/slurm/start-cluster.sh,
// which `make test` runs as root); without one it fails as root and prints a
// visible SKIP otherwise.
#include "daemon/slurm.h"

#include <doctest/doctest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "spool/status.h"
#include "test_files.h"

using namespace spoold;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

extern char** environ;

namespace {

// Slurm jobs of other users must reach it.
struct TempDir : testfiles::TempDir {
  TempDir() : testfiles::TempDir(std::filesystem::temp_directory_path().string(), 0755) {}
};

// Sets (or unsets) an environment variable for one scope.
struct EnvGuard {
  std::string name;
  std::optional<std::string> old;
  EnvGuard(std::string n, const char* value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) old = v;
    if (value) {
      ::setenv(name.c_str(), value, 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }
  ~EnvGuard() {
    if (old) {
      ::setenv(name.c_str(), old->c_str(), 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }
};

template <class T>
std::string Why(const Result<T>& r) {
  return r.ok() ? std::string() : r.error().code + ": " + r.error().message;
}


void WriteExecutable(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  ::chmod(path.c_str(), 0755);
}

std::vector<std::string> SplitNul(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\0') {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

// The SLURM* variables of this process: the script passes them on.
std::set<std::string> SlurmVarsOfThisProcess() {
  std::set<std::string> vars;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("SLURM", 0) == 0) vars.insert(kv);
  }
  return vars;
}

// Values that break naive quoting: every one must reach the job byte for byte.
const std::vector<std::string> kNastyValues = {
    "a,b,c",
    "two words",
    "it's",
    "say \"hi\"",
    "line1\nline2\n",
    "$HOME and ${PATH} and $(id) and `id`",
    "back\\slash\\n",
    "'\\''",
    "",
    "-leading-dash",
    "x=y=z",
    "tab\there",
    "\xff\xfe not utf-8 \xc3\x28",
    "*?[glob]",
    "; rm -rf / #",
    "\nSLURM_FAKE_INJECTED=1",
};

SlurmSubmit BaseSubmit(const TempDir& dir) {
  SlurmSubmit s;
  s.job_name = "spoold-test";
  s.chdir = dir.path();
  s.stdout_path = dir / "stdout.log";
  s.stderr_path = dir / "stderr.log";
  s.exit_code_path = dir / "exit_code";
  s.script_path = dir / "slurm.sh";
  s.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/nonexistent", "LANG=C.UTF-8"};
  return s;
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

TEST_CASE("slurm: sbatch --parsable output") {
  CHECK(ParseSbatchOutput("123\n").value() == "123");
  CHECK(ParseSbatchOutput("4567;localci\n").value() == "4567");
  CHECK(ParseSbatchOutput("89").value() == "89");
  CHECK(!ParseSbatchOutput("").ok());
  CHECK(!ParseSbatchOutput("Submitted batch job 5\n").ok());
  CHECK(ParseSbatchOutput("x;y").error().code == "slurm_error");
}

// ---------------------------------------------------------------- squeue / scontrol

// Captured from squeue 22.05.8 on the local cluster (PollArgv's format).
const char* const kSqueueSample =
    "4|CANCELLED|None|15|\n"
    "2|COMPLETED|None|0|\n"
    "3|FAILED|NonZeroExitCode|768|\n"
    "6|FAILED|JobLaunchFailure|9|\n"
    "5|PENDING|BeginTime|0|\n"
    "7|RUNNING|None|0|\n"
    "8|COMPLETING|None|0|\n"
    "garbage line\n"
    "\n";

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
  }
  CHECK(MapEnd(info("OUT_OF_MEMORY"), std::nullopt).detail.find("out of memory") != std::string::npos);
  CHECK(MapEnd(info("CANCELLED"), std::nullopt).detail.find("outside spoold") != std::string::npos);
  // A record Slurm purged: the file tells, else it counts as an interruption.
  CHECK(MapLost("42", file("0")).exit_code == 0);
  CHECK(MapLost("42", std::nullopt).cause == Reason::kInterrupted);
  for (const char* s : {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUED"}) {
    CHECK(!IsTerminalState(s));
  }
}

// ---------------------------------------------------------------- running commands (fakes)

TEST_CASE("slurm: RunCommand captures output and status") {
  auto run = RunCommand({"/bin/sh", "-c", "echo out; echo err >&2; exit 4"}, 10s);
  REQUIRE(run.ok());
  CHECK(run->out == "out\n");
  CHECK(run->err == "err\n");
  CHECK(run->exit_code == 4);
  CHECK(!run->timed_out);
  auto killed = RunCommand({"/bin/sh", "-c", "kill -9 $$"}, 10s);
  REQUIRE(killed.ok());
  CHECK(killed->signal == 9);
  auto missing = RunCommand({"/nonexistent/sbatch"}, 10s);
  REQUIRE(!missing.ok());
  CHECK(missing.error().code == "slurm_error");
  CHECK(!RunCommand({"no-such-slurm-binary"}, 10s).ok());
}

TEST_CASE("slurm: RunCommand kills and reaps a command at its timeout") {
  const auto t0 = std::chrono::steady_clock::now();
  // The grandchild keeps the pipes open: the whole process group is killed.
  auto run = RunCommand({"/bin/sh", "-c", "sleep 30 & sleep 30"}, 300ms);
  REQUIRE(run.ok());
  CHECK(run->timed_out);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  // A command that closes its output but keeps running.
  auto quiet = RunCommand({"/bin/sh", "-c", "exec >/dev/null 2>&1; sleep 30"}, 300ms);
  REQUIRE(quiet.ok());
  CHECK(quiet->timed_out);
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
}

TEST_CASE("slurm: the daemon's wait4(-1) never reaps a Slurm command") {
  // The daemon reaps its jobs with wait4(-1, WNOHANG) on the loop thread while
  // a Slurm command may run on another one; the command's status must reach
  // RunCommand, never the daemon's loop.
  std::atomic<bool> done = false;
  std::atomic<int> stolen = 0;
  std::thread reaper([&] {
    while (!done) {
      int status;
      struct rusage usage {};
      if (::wait4(-1, &status, WNOHANG, &usage) > 0) ++stolen;
      std::this_thread::sleep_for(1ms);
    }
  });
  for (int i = 0; i < 5; ++i) {
    auto run = RunCommand({"/bin/sh", "-c", "sleep 0.05; exit 7"}, 10s);
    REQUIRE(run.ok());
    CHECK(run->exit_code == 7);
  }
  done = true;
  reaper.join();
  CHECK(stolen == 0);
}

namespace {

// A folder of fake Slurm commands, used through SPOOLD_SLURM_BIN_DIR. Each
// fake appends its arguments (one call a line) to calls.log.
struct FakeSlurm {
  TempDir dir;
  EnvGuard bin{"SPOOLD_SLURM_BIN_DIR", nullptr};
  FakeSlurm() { ::setenv("SPOOLD_SLURM_BIN_DIR", dir.path().c_str(), 1); }
  void Add(const std::string& name, const std::string& body) {
    WriteExecutable(dir / name,
                    "#!/bin/sh\necho \"" + name + " $*\" >> '" + (dir / "calls.log") + "'\n" + body + "\n");
  }
  std::vector<std::string> Calls() const {
    std::vector<std::string> lines;
    std::istringstream in(testfiles::ReadFile(dir / "calls.log"));
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
};

}  // namespace

TEST_CASE("slurm: Submit writes the script and returns sbatch's job id") {
  FakeSlurm fake;
  fake.Add("sbatch", "echo '77;localci'");
  TempDir dir;
  SlurmSubmit s = BaseSubmit(dir);
  s.argv = {"true"};
  s.timeout = 90s;
  auto id = Submit(s, 10s);
  REQUIRE_MESSAGE(id.ok(), Why(id));
  CHECK(*id == "77");
  CHECK(testfiles::ReadFile(s.script_path) == BatchScript(s));
  auto calls = fake.Calls();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].find("--time=2") != std::string::npos);
  CHECK(calls[0].find("--no-requeue") != std::string::npos);

  s.stdout_path = dir / "100%.log";
  CHECK(Submit(s, 10s).error().code == "spawn_failed");
}

TEST_CASE("slurm: sbatch failures are permanent or transient") {
  FakeSlurm fake;
  TempDir dir;
  SlurmSubmit s = BaseSubmit(dir);
  s.argv = {"true"};

  fake.Add("sbatch", "echo 'sbatch: error: invalid partition specified: nope' >&2; exit 1");
  auto bad = Submit(s, 10s);
  REQUIRE(!bad.ok());
  CHECK(bad.error().code == "spawn_failed");
  CHECK(bad.error().message.find("invalid partition specified") != std::string::npos);

  fake.Add("sbatch",
           "echo 'sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect "
           "failure)' >&2; exit 1");
  CHECK(Submit(s, 10s).error().code == "transient");

  fake.Add("sbatch", "exec sleep 30");
  const auto t0 = std::chrono::steady_clock::now();
  auto slow = Submit(s, 300ms);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  REQUIRE(!slow.ok());
  CHECK(slow.error().code == "transient");
}

TEST_CASE("slurm: Poll asks squeue once for all ids") {
  FakeSlurm fake;
  fake.Add("squeue", std::string("printf '%s' '") + kSqueueSample + "'");
  auto jobs = Poll({"2", "3", "7", "999", "not-an-id"}, 10s);
  REQUIRE_MESSAGE(jobs.ok(), Why(jobs));
  CHECK(jobs->size() == 3);  // 999 is unknown; ids not asked for are dropped
  CHECK(jobs->count("999") == 0);
  CHECK(jobs->at("3").exit_code == 3);
  auto calls = fake.Calls();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0] ==
        "squeue --noheader --states=all --jobs=2,3,7,999 --Format=JobID:|,State:|,Reason:|,exit_code:|");
  CHECK(Poll({}, 10s)->empty());
  CHECK(Poll({"", "x1"}, 10s)->empty());
  CHECK(fake.Calls().size() == 1);  // no (valid) ids, no command
}

TEST_CASE("slurm: Poll of one unknown id is an empty answer and a dead controller is transient") {
  FakeSlurm fake;
  fake.Add("squeue", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1");
  auto one = Poll({"999"}, 10s);
  REQUIRE(one.ok());
  CHECK(one->empty());

  fake.Add("squeue",
           "echo 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)' >&2; exit 1");
  auto down = Poll({"1"}, 10s);
  REQUIRE(!down.ok());
  CHECK(down.error().code == "transient");

  fake.Add("squeue", "exec sleep 30");
  auto slow = Poll({"1", "2"}, 300ms);
  REQUIRE(!slow.ok());
  CHECK(slow.error().code == "transient");

  fake.Add("squeue", "echo 'squeue: error: Invalid job format specification: exit_code' >&2; exit 1");
  CHECK(Poll({"1"}, 10s).error().code == "slurm_error");
}

TEST_CASE("slurm: Cancel and Signal run scancel") {
  FakeSlurm fake;
  fake.Add("scancel", "exit 0");
  CHECK(Cancel("12", 10s).ok());
  CHECK(Signal("12", "TERM", 10s).ok());
  CHECK(fake.Calls() == std::vector<std::string>{"scancel 12", "scancel --full --signal=TERM 12"});
  fake.Add("scancel", "echo 'scancel: error: Unable to contact slurm controller' >&2; exit 1");
  CHECK(Cancel("12", 10s).error().code == "transient");
}

// ---------------------------------------------------------------- the live cluster

namespace {

constexpr Millis kCmdTimeout = 20s;

// The end of what tests/slurm/live-cluster.sh said when `make test` tried to
// start the cluster.
std::string StartLogTail() {
  const char* env = std::getenv("SPOOLD_SLURM_START_LOG");
  const char* tmp = std::getenv("TMPDIR");
  std::string path = env ? env : std::string(tmp ? tmp : "/tmp") + "/spoold-slurm-start.log";
  std::ifstream in(path);
  if (!in) return "(no " + path + ": tests/slurm/live-cluster.sh start did not run; `make test` runs it)";
  std::deque<std::string> tail;
  for (std::string line; std::getline(in, line);) {
    tail.push_back(line);
    if (tail.size() > 15) tail.pop_front();
  }
  std::string text = "last lines of " + path + ":";
  for (const auto& line : tail) text += "\n" + line;
  return text;
}

// Whether the live cases can run. As root (how `make test` and CI run) a
// missing cluster fails them with the reason; otherwise they skip visibly.
bool LiveCluster() {
  static const bool reachable = [] {
    EnvGuard bin("SPOOLD_SLURM_BIN_DIR", nullptr);
    return ControllerReachable(10s);
  }();
  if (reachable) return true;
  if (::geteuid() == 0) {
    FAIL("CANNOT RUN, and every test must run as root: no Slurm cluster answers `scontrol ping` "
         "(make test starts one with tests/slurm/live-cluster.sh)\n"
         << StartLogTail());
  }
  MESSAGE("SKIP: no Slurm cluster (not root: start one with sudo tests/slurm/start-cluster.sh)");
  return false;
}

// Polls until every id is terminal (or 90 s pass); returns the last answer.
std::map<std::string, SlurmJobInfo> WaitTerminal(const std::vector<std::string>& ids) {
  std::map<std::string, SlurmJobInfo> jobs;
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto polled = Poll(ids, kCmdTimeout);
    REQUIRE_MESSAGE(polled.ok(), Why(polled));
    jobs = *polled;
    bool all = true;
    for (const auto& id : ids) all = all && jobs.count(id) && jobs[id].terminal;
    if (all) break;
    std::this_thread::sleep_for(200ms);
  }
  return jobs;
}

std::string WaitState(const std::string& id, const std::string& state) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  std::string seen;
  while (std::chrono::steady_clock::now() < deadline) {
    auto polled = Poll({id}, kCmdTimeout);
    REQUIRE(polled.ok());
    if (polled->count(id)) seen = polled->at(id).state;
    if (seen == state) break;
    std::this_thread::sleep_for(100ms);
  }
  return seen;
}

SlurmSubmit LiveSubmit(const TempDir& dir, const std::string& name, std::vector<std::string> argv) {
  fs::create_directories(dir / name);
  ::chmod((dir / name).c_str(), 0777);
  SlurmSubmit s;
  s.job_name = "spoold-test-" + name;
  s.partition = std::getenv("SLURM_LOCAL_PARTITION") ? std::getenv("SLURM_LOCAL_PARTITION") : "debug";
  s.chdir = dir / name;
  s.stdout_path = dir / (name + "/stdout.log");
  s.stderr_path = dir / (name + "/stderr.log");
  s.exit_code_path = dir / (name + "/exit_code");
  s.script_path = dir / (name + "/slurm.sh");
  s.timeout = 5min;
  s.argv = std::move(argv);
  s.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/nonexistent", "LANG=C.UTF-8", "SPOOLD_JOB_ID=" + name};
  return s;
}

AttemptEnd EndOf(const SlurmJobInfo& info, const SlurmSubmit& s) {
  return MapEnd(info, ReadExitFile(s.exit_code_path));
}

}  // namespace

TEST_CASE("slurm live: success and exit 3 and a nasty environment polled with one squeue call") {
  if (!LiveCluster()) return;
  TempDir dir;
  SlurmSubmit ok = LiveSubmit(dir, "ok", {"sh", "-c", "echo hello from $SPOOLD_JOB_ID; echo to-stderr >&2"});
  SlurmSubmit fail = LiveSubmit(dir, "fail", {"sh", "-c", "echo about to fail; exit 3"});
  SlurmSubmit env = LiveSubmit(dir, "env", {"/usr/bin/env", "-0"});
  for (size_t i = 0; i < kNastyValues.size(); ++i) {
    env.env.push_back("NASTY_" + std::to_string(i) + "=" + kNastyValues[i]);
  }
  SlurmSubmit args = LiveSubmit(dir, "args", {"printf", "%s\\0"});
  args.argv.insert(args.argv.end(), kNastyValues.begin(), kNastyValues.end());
  SlurmSubmit missing = LiveSubmit(dir, "missing", {"no-such-command-spoold"});

  std::vector<SlurmSubmit*> all = {&ok, &fail, &env, &args, &missing};
  std::vector<std::string> ids;
  for (auto* s : all) {
    auto id = Submit(*s, kCmdTimeout);
    REQUIRE_MESSAGE(id.ok(), Why(id));
    ids.push_back(*id);
  }
  ids.push_back("999999");  // unknown: simply not in the answer

  // Poll through wrappers that count the calls: one squeue per poll.
  TempDir wrap;
  std::string real_squeue = "squeue";
  for (std::string d : {"/usr/bin", "/usr/local/bin", "/bin"}) {
    if (::access((d + "/squeue").c_str(), X_OK) == 0) {
      real_squeue = d + "/squeue";
      break;
    }
  }
  WriteExecutable(wrap / "squeue", "#!/bin/sh\necho call >> '" + (wrap / "calls.log") + "'\nexec " +
                                       real_squeue + " \"$@\"\n");
  std::map<std::string, SlurmJobInfo> jobs;
  int polls = 0;
  {
    EnvGuard bin("SPOOLD_SLURM_BIN_DIR", wrap.path().c_str());
    const auto deadline = std::chrono::steady_clock::now() + 90s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto polled = Poll(ids, kCmdTimeout);
      REQUIRE_MESSAGE(polled.ok(), Why(polled));
      ++polls;
      jobs = *polled;
      bool done = true;
      for (size_t i = 0; i + 1 < ids.size(); ++i) done = done && jobs.count(ids[i]) && jobs[ids[i]].terminal;
      if (done) break;
      std::this_thread::sleep_for(200ms);
    }
  }
  CHECK(testfiles::ReadFile(wrap / "calls.log").size() == static_cast<size_t>(polls) * 5);  // "call\n" per poll
  CHECK(jobs.count("999999") == 0);

  const auto& ok_info = jobs[ids[0]];
  CHECK(ok_info.state == "COMPLETED");
  AttemptEnd end = EndOf(ok_info, ok);
  CHECK(end.exit_code == 0);
  CHECK(end.cause == Reason::kNone);
  CHECK(testfiles::ReadFile(ok.stdout_path) == "hello from ok\n");
  CHECK(testfiles::ReadFile(ok.stderr_path) == "to-stderr\n");

  CHECK(jobs[ids[1]].state == "FAILED");
  CHECK(jobs[ids[1]].exit_code == 3);
  end = EndOf(jobs[ids[1]], fail);
  CHECK(end.exit_code == 3);
  CHECK(testfiles::ReadFile(fail.exit_code_path) == "3\n");

  CHECK(jobs[ids[2]].state == "COMPLETED");
  auto seen_list = SplitNul(testfiles::ReadFile(env.stdout_path));
  std::set<std::string> seen, job_vars;
  for (const auto& kv : seen_list) (kv.rfind("SLURM", 0) == 0 ? job_vars : seen).insert(kv);
  CHECK(seen == std::set<std::string>(env.env.begin(), env.env.end()));
  CHECK(!job_vars.empty());  // SLURM_JOB_ID and friends, for srun
  CHECK(std::any_of(job_vars.begin(), job_vars.end(),
                    [&](const std::string& kv) { return kv == "SLURM_JOB_ID=" + ids[2]; }));

  CHECK(SplitNul(testfiles::ReadFile(args.stdout_path)) == kNastyValues);

  end = EndOf(jobs[ids[4]], missing);
  CHECK(end.cause == Reason::kSpawnFailed);
  CHECK(end.detail.find("command not found") != std::string::npos);
}

TEST_CASE("slurm live: cancel a running job and find a job by its name") {
  if (!LiveCluster()) return;
  TempDir dir;
  SlurmSubmit s = LiveSubmit(dir, "cancel", {"sh", "-c", "echo started; sleep 300"});
  s.job_name += "-" + std::to_string(::getpid());
  auto id = Submit(s, kCmdTimeout);
  REQUIRE_MESSAGE(id.ok(), Why(id));
  CHECK(WaitState(*id, "RUNNING") == "RUNNING");

  auto found = FindByName(s.job_name, kCmdTimeout);
  REQUIRE(found.ok());
  CHECK(found->size() == 1);
  CHECK(found->count(*id) == 1);

  REQUIRE(Cancel(*id, kCmdTimeout).ok());
  auto jobs = WaitTerminal({*id});
  REQUIRE(jobs.count(*id));
  CHECK(jobs[*id].state == "CANCELLED");
  AttemptEnd end = EndOf(jobs[*id], s);
  CHECK(end.cause == Reason::kCancelledByUser);  // the daemon overrides it when it cancelled
  // Slurm signals all of the job's processes; the script may see its command
  // die first and record it (killed by TERM), or die first itself.
  if (auto file = ReadExitFile(s.exit_code_path)) CHECK(file->signal == SIGTERM);
  // Gone from the queue: nothing of the job runs any more.
  auto running = RunCommand({"squeue", "--noheader", "--jobs=" + *id, "--format=%T"}, kCmdTimeout);
  REQUIRE(running.ok());
  CHECK(running->out == "");
}

TEST_CASE("slurm live: kill.signal with Signal then Cancel and a pending job is cancelled") {
  if (!LiveCluster()) return;
  TempDir dir;
  SlurmSubmit s = LiveSubmit(
      dir, "signal", {"sh", "-c", "trap 'echo got TERM; exit 5' TERM; echo started; sleep 300 & wait"});
  auto id = Submit(s, kCmdTimeout);
  REQUIRE_MESSAGE(id.ok(), Why(id));
  CHECK(WaitState(*id, "RUNNING") == "RUNNING");
  for (int i = 0; i < 100 && testfiles::ReadFile(s.stdout_path).find("started") == std::string::npos; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  REQUIRE(Signal(*id, "TERM", kCmdTimeout).ok());
  auto jobs = WaitTerminal({*id});
  REQUIRE(jobs.count(*id));
  INFO("state " << jobs[*id].state << ", stdout: " << testfiles::ReadFile(s.stdout_path));
  CHECK(testfiles::ReadFile(s.stdout_path).find("got TERM") != std::string::npos);
  CHECK(Cancel(*id, kCmdTimeout).ok());  // harmless after the end

  SlurmSubmit p = LiveSubmit(dir, "pending", {"true"});
  p.sbatch_args = {"--begin=now+3600"};
  auto pid = Submit(p, kCmdTimeout);
  REQUIRE(pid.ok());
  CHECK(WaitState(*pid, "PENDING") == "PENDING");
  REQUIRE(Cancel(*pid, kCmdTimeout).ok());
  jobs = WaitTerminal({*pid});
  CHECK(jobs[*pid].state == "CANCELLED");
}

TEST_CASE("slurm live: a job submitted for another user runs as that user") {
  if (!LiveCluster()) return;
  if (::geteuid() != 0) {
    MESSAGE("SKIP: run_as needs root");
    return;
  }
  struct passwd* nobody = ::getpwnam("nobody");
  if (!nobody) {
    FAIL("CANNOT RUN, and every test must run as root: no user nobody");
  }
  TempDir dir;
  SlurmSubmit s = LiveSubmit(dir, "nobody", {"id", "-un"});
  s.run_as = RunAs{nobody->pw_uid, nobody->pw_gid, {nobody->pw_gid}};
  auto id = Submit(s, kCmdTimeout);
  REQUIRE_MESSAGE(id.ok(), Why(id));
  auto jobs = WaitTerminal({*id});
  CHECK(jobs[*id].state == "COMPLETED");
  CHECK(testfiles::ReadFile(s.stdout_path) == "nobody\n");
  CHECK(EndOf(jobs[*id], s).exit_code == 0);
}

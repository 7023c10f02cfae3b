// Running the Slurm commands (daemon/slurm_run.cpp, daemon/slurm.cpp):
// RunCommand itself, then Submit, Poll, Cancel and Signal against fake Slurm
// binaries put in place through SPOOLD_SLURM_BIN_DIR.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon/slurm.h"
#include "slurm_test_helpers.h"
#include "test_files.h"

using namespace spoold;
using namespace slurmtest;
using namespace std::chrono_literals;

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

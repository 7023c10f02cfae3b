// The Slurm executor against a real cluster ("slurm live: ..."): one started
// by tests/slurm/start-cluster.sh, which `make test` runs as root. Without one
// each case fails as root and prints a visible SKIP otherwise.
#include <doctest/doctest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "daemon/slurm.h"
#include "slurm_test_helpers.h"
#include "test_files.h"

using namespace spoold;
using namespace slurmtest;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

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

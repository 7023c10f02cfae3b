// The daemon's side of its executors (daemon/attempts.h) driven with a fake
// executor: no process, no Slurm, no files (STYLE.md: ninja's CommandRunner
// tests). Starts are recorded before they are released, stops reach the
// executor, and what the executor reports becomes the scheduler's decisions.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <vector>

#include "daemon/attempts.h"

using namespace spoold;
using namespace std::chrono_literals;

namespace {

const TimePoint kT0 = TimePoint(std::chrono::milliseconds(1'800'000'000'000));

// Records what it is asked; the test reports ends through the host.
class FakeExecutor : public Executor {
 public:
  std::vector<std::string> started, released;
  std::vector<std::pair<std::string, Reason>> stopped;
  std::set<std::string> running;
  std::optional<Error> fail_start;
  int64_t next_pid = 100;
  bool durable_first = false;  // as the local executor; the Slurm one says true

  Result<StartInfo> Start(AttemptSpec spec, TimePoint) override {
    if (fail_start) return *fail_start;
    started.push_back(spec.id);
    running.insert(spec.id);
    StartInfo info;
    info.pid = next_pid++;
    info.supervisor_pid = 1;
    return info;
  }
  bool DurableStartFirst() const override { return durable_first; }
  void Release(const std::string& id) override { released.push_back(id); }
  void Stop(const std::string& id, Reason cause, TimePoint) override { stopped.emplace_back(id, cause); }
  bool Adopt(SchedJob&, TimePoint) override { return false; }
  void Tick(TimePoint, StopMode) override {}
  std::optional<TimePoint> EndTurn(TimePoint, bool) override { return std::nullopt; }
  bool Busy(bool) const override { return false; }
  std::vector<std::string> Ids() const override { return {running.begin(), running.end()}; }
  bool Has(const std::string& id) const override { return running.count(id) != 0; }
  void Shutdown() override {}
};

struct Fixture {
  Config config;
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<Attempts> attempts;
  FakeExecutor local, slurm;
  std::vector<std::string> events;

  Fixture() {
    PoolConfig pool;
    pool.name = "default";
    pool.workers = 2;
    config.pools["default"] = pool;
    pool.name = "cluster";
    pool.executor = "slurm";
    config.pools["cluster"] = pool;
    scheduler = std::make_unique<Scheduler>(config);
    AttemptHooks hooks{[this](SchedJob& job, Level, const std::string& event, const std::string&, Json) {
                         events.push_back(job.status().id + ":" + event);
                       },
                       [](const std::string&, const std::string&) {}, [](const std::string&) {}};
    attempts = std::make_unique<Attempts>(*scheduler, hooks);
    attempts->AddExecutor("local", &local);
    attempts->AddExecutor("slurm", &slurm);
  }

  void Submit(const std::string& id, int retries = 0, const std::string& pool = "default") {
    JobSpec spec;
    spec.id = id;
    spec.title = id;
    spec.pool = pool;
    spec.command = {"true"};
    spec.retry.attempts = retries;
    spec.retry.delay = 1s;
    spec.retry.max_delay = Millis(0);
    JobStatus s;
    s.id = id;
    s.title = id;
    s.pool = pool;
    s.state = JobState::kQueued;
    s.reason = *scheduler->Admit(spec);
    s.max_attempts = retries + 1;
    s.created = kT0;
    s.updated = kT0;
    scheduler->Add(spec, s);
  }

  // What the daemon's Launch does, minus the files.
  void StartAll(TimePoint now) {
    for (const auto& id : scheduler->TakeStartable(now)) {
      AttemptSpec spec;
      spec.id = id;
      spec.attempt = scheduler->Find(id)->status().attempt;
      attempts->Start(std::move(spec), now);
    }
  }

  const JobStatus& St(const std::string& id) { return scheduler->Find(id)->status(); }
};

AttemptEnd Exit(int code) {
  AttemptEnd end;
  end.exit_code = code;
  return end;
}

}  // namespace

TEST_CASE("attempts: a start is recorded before it is released, and released once durable") {
  Fixture f;
  f.Submit("a");
  f.scheduler->TakeChanged();
  f.StartAll(kT0);
  REQUIRE(f.local.started == std::vector<std::string>{"a"});
  // Recorded: running, with the executor's pid and supervisor, to be written.
  CHECK(f.St("a").state == JobState::kRunning);
  CHECK(f.St("a").attempts.back().pid == 100);
  CHECK(f.St("a").attempts.back().supervisor_pid == 1);
  CHECK(f.scheduler->TakeChanged() == std::vector<std::string>{"a"});
  CHECK(f.local.released.empty());
  // Its status could not be made durable yet (a full disk): not released.
  f.attempts->ReleaseRecorded([](const std::string&) { return false; }, true);
  CHECK(f.local.released.empty());
  f.attempts->ReleaseRecorded([](const std::string&) { return true; }, true);
  CHECK(f.local.released == std::vector<std::string>{"a"});
  // Released once only.
  f.attempts->ReleaseRecorded([](const std::string&) { return true; }, true);
  CHECK(f.local.released.size() == 1);
}

TEST_CASE("attempts: a local start runs once visible, a Slurm one waits until its start is durable") {
  Fixture f;
  f.slurm.durable_first = true;
  f.Submit("l");
  f.Submit("s", 0, "cluster");
  f.StartAll(kT0);
  auto all = [](const std::string&) { return true; };
  // After the flush's renames, before its second sync: the local one only.
  f.attempts->ReleaseRecorded(all, /*renames_durable=*/false);
  CHECK(f.local.released == std::vector<std::string>{"l"});
  CHECK(f.slurm.released.empty());
  // After the second sync: the Slurm one too (sbatch), and nothing twice.
  f.attempts->ReleaseRecorded(all, /*renames_durable=*/true);
  CHECK(f.slurm.released == std::vector<std::string>{"s"});
  CHECK(f.local.released.size() == 1);
}

TEST_CASE("attempts: each pool's executor is the one it names") {
  Fixture f;
  f.Submit("l");
  f.Submit("s", 0, "cluster");
  f.StartAll(kT0);
  CHECK(f.local.started == std::vector<std::string>{"l"});
  CHECK(f.slurm.started == std::vector<std::string>{"s"});
  CHECK(f.attempts->Count("slurm") == 1);
  CHECK(f.attempts->Ids().size() == 2);
}

TEST_CASE("attempts: a cancel reaches the executor's Stop, and its end is recorded as cancelled") {
  Fixture f;
  f.Submit("c");
  f.StartAll(kT0);
  f.attempts->ReleaseRecorded([](const std::string&) { return true; }, true);
  bool was_running = false;
  REQUIRE(f.scheduler->Cancel("c", kT0, &was_running).ok());
  REQUIRE(was_running);
  CHECK(f.attempts->Stop("c", Reason::kCancelledByUser, kT0));
  REQUIRE(f.local.stopped.size() == 1);
  CHECK(f.local.stopped[0] == std::pair<std::string, Reason>{"c", Reason::kCancelledByUser});
  CHECK_FALSE(f.attempts->Stop("nothing", Reason::kCancelledByUser, kT0));
  AttemptEnd end;
  end.cause = Reason::kCancelledByUser;
  f.local.running.erase("c");
  f.attempts->AttemptEnded("c", end, kT0 + 1s);
  CHECK(f.St("c").state == JobState::kCancelled);
}

TEST_CASE("attempts: a stop before the release means it is never released") {
  Fixture f;
  f.Submit("p");
  f.StartAll(kT0);
  f.attempts->Stop("p", Reason::kCancelledByUser, kT0);
  f.attempts->ReleaseRecorded([](const std::string&) { return true; }, true);
  CHECK(f.local.released.empty());
}

TEST_CASE("attempts: an end the executor reports makes the scheduler retry, then finish") {
  Fixture f;
  f.Submit("r", /*retries=*/1);
  f.StartAll(kT0);
  f.attempts->ReleaseRecorded([](const std::string&) { return true; }, true);
  f.local.running.erase("r");
  f.attempts->AttemptEnded("r", Exit(3), kT0 + 1s);
  CHECK(f.St("r").state == JobState::kQueued);
  CHECK(f.St("r").reason == Reason::kRetryBackoff);
  f.scheduler->Tick(kT0 + 3s);
  f.StartAll(kT0 + 3s);
  CHECK(f.local.started == std::vector<std::string>{"r", "r"});
  CHECK(f.St("r").attempt == 2);
  f.local.running.erase("r");
  f.attempts->AttemptEnded("r", Exit(0), kT0 + 4s);
  CHECK(f.St("r").state == JobState::kSucceeded);
}

TEST_CASE("attempts: an attempt that never ran is requeued on a shortage, failed otherwise") {
  Fixture f;
  f.Submit("short");
  f.local.fail_start = MakeError("transient", "out of processes");
  f.StartAll(kT0);
  CHECK(f.St("short").state == JobState::kQueued);
  CHECK_FALSE(f.attempts->MayStart(kT0 + 500ms));  // no start for a second
  CHECK(f.attempts->MayStart(kT0 + 1s));
  CHECK(f.attempts->EndTurn(kT0, false) == kT0 + 1s);
  f.local.fail_start = MakeError("spawn_failed", "no such program");
  f.StartAll(kT0 + 1s);
  CHECK(f.St("short").state == JobState::kFailed);
  CHECK(f.St("short").reason == Reason::kSpawnFailed);
}

TEST_CASE("attempts: executor events land in the job's history") {
  Fixture f;
  f.Submit("e", 0, "cluster");
  f.StartAll(kT0);
  f.attempts->AttemptSubmitted("e", "4242", kT0);
  f.attempts->AttemptEvent("e", Level::kInfo, "submitted", "attempt 1 is Slurm job 4242", Json::object());
  CHECK(f.St("e").attempts.back().slurm_job_id == "4242");
  CHECK(f.events == std::vector<std::string>{"e:submitted"});
}

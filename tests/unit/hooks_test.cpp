// Hook delivery (daemon/hooks.cpp) driven step by step with a fake host: no
// process, no file, time a parameter. In order per (job, hook), one at a time;
// retries with backoff, then given up; the bound on runs at once; the cursor
// only after a success (or a give-up); caught up once the job ended.
#include "daemon/hooks.h"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

using namespace spoold;
using namespace std::chrono_literals;

namespace {

class FakeHost : public HookHost {
 public:
  std::map<std::string, std::vector<HookEvent>> events;  // job -> its events, in seq order
  std::vector<HookRun> started;
  std::vector<std::pair<HookRun, HookOutcome>> done;
  std::map<std::pair<std::string, std::string>, uint64_t> cursors;
  std::vector<std::string> caught_up;

  void Add(const std::string& job, uint64_t seq, const std::string& name) {
    events[job].push_back({seq, name, "{\"seq\":" + std::to_string(seq) + "}"});
  }
  std::optional<HookEvent> NextEvent(const std::string& job, uint64_t after, const HookSpec& spec) override {
    for (const auto& e : events[job]) {
      if (e.seq > after && HookFollows(spec, e.name)) return e;
    }
    return std::nullopt;
  }
  void Start(const HookRun& run) override { started.push_back(run); }
  void Done(const HookRun& run, const HookOutcome& outcome) override {
    done.emplace_back(run, outcome);
    cursors[{run.job, run.hook}] = run.event.seq;
  }
  void CaughtUp(const std::string& job) override { caught_up.push_back(job); }
};

HookSpec Spec(std::vector<std::string> on, int retries = 3) {
  HookSpec spec;
  spec.on = std::move(on);
  spec.command = {"notify"};
  spec.retries = retries;
  return spec;
}

HookOutcome Exit(int code) {
  HookOutcome out;
  out.exit_code = code;
  return out;
}

const TimePoint t0{std::chrono::milliseconds(1'000'000)};

}  // namespace

TEST_CASE("hooks: events are delivered one at a time, in seq order, only those followed") {
  FakeHost host;
  Hooks hooks(host, 4);
  host.Add("a", 1, "accepted");
  host.Add("a", 2, "started");
  host.Add("a", 4, "hook_ok");  // never delivered
  host.Add("a", 5, "succeeded");
  hooks.Track("a", "job-0", Spec({"*"}), 0);
  hooks.Tick(t0);
  REQUIRE(host.started.size() == 1);
  CHECK(host.started[0].event.seq == 1);
  CHECK(host.started[0].attempt == 1);
  hooks.Tick(t0);  // the next waits for the first
  CHECK(host.started.size() == 1);
  CHECK(host.cursors.empty());
  hooks.Finished("a", "job-0", Exit(0), t0);
  CHECK(host.cursors[{"a", "job-0"}] == 1);
  hooks.Tick(t0);
  REQUIRE(host.started.size() == 2);
  CHECK(host.started[1].event.seq == 2);
  hooks.Finished("a", "job-0", Exit(0), t0);
  hooks.Tick(t0);
  REQUIRE(host.started.size() == 3);
  CHECK(host.started[2].event.seq == 5);
  hooks.Finished("a", "job-0", Exit(0), t0);
  hooks.Tick(t0);
  CHECK(host.started.size() == 3);
  CHECK(host.cursors[{"a", "job-0"}] == 5);

  // A hook that follows only `succeeded` starts past its cursor.
  Hooks only(host, 4);
  host.started.clear();
  only.Track("a", "pool-0", Spec({"succeeded"}), 0);
  only.Tick(t0);
  REQUIRE(host.started.size() == 1);
  CHECK(host.started[0].event.seq == 5);
  CHECK(host.started[0].hook == "pool-0");
}

TEST_CASE("hooks: the cursor moves only after a success, and a restart delivers from it") {
  FakeHost host;
  host.Add("a", 1, "accepted");
  host.Add("a", 3, "succeeded");
  {
    Hooks hooks(host, 4);
    hooks.Track("a", "job-0", Spec({"*"}), 0);
    hooks.Tick(t0);
    REQUIRE(host.started.size() == 1);
    // The daemon stops (or crashes) while the hook runs: no outcome.
  }
  CHECK(host.cursors.empty());
  Hooks restarted(host, 4);
  restarted.Track("a", "job-0", Spec({"*"}), 0);  // the cursor file holds nothing yet
  restarted.Tick(t0);
  REQUIRE(host.started.size() == 2);
  CHECK(host.started[1].event.seq == 1);  // the same event again: same event_id
  restarted.Finished("a", "job-0", Exit(0), t0);
  CHECK(host.cursors[{"a", "job-0"}] == 1);
  Hooks again(host, 4);
  again.Track("a", "job-0", Spec({"*"}), 1);
  again.Tick(t0);
  REQUIRE(host.started.size() == 3);
  CHECK(host.started[2].event.seq == 3);
}

TEST_CASE("hooks: a failing run is retried with backoff, then given up and passed") {
  FakeHost host;
  Hooks hooks(host, 4);
  host.Add("a", 1, "failed");
  host.Add("a", 2, "cancelled");
  hooks.Track("a", "job-0", Spec({"*"}, /*retries=*/2), 0);
  hooks.Tick(t0);
  REQUIRE(host.started.size() == 1);
  hooks.Finished("a", "job-0", Exit(3), t0);
  CHECK(host.done.empty());
  CHECK(hooks.NextWakeup() == t0 + 1s);
  hooks.Tick(t0 + 999ms);
  CHECK(host.started.size() == 1);
  hooks.Tick(t0 + 1s);
  REQUIRE(host.started.size() == 2);
  CHECK(host.started[1].event.seq == 1);
  CHECK(host.started[1].attempt == 2);
  HookOutcome timeout;
  timeout.end = HookOutcome::End::kTimeout;
  timeout.signal = 15;
  hooks.Finished("a", "job-0", timeout, t0 + 5s);
  CHECK(hooks.NextWakeup() == t0 + 7s);  // 2 s after the second failure
  hooks.Tick(t0 + 7s);
  REQUIRE(host.started.size() == 3);
  CHECK(host.started[2].attempt == 3);
  HookOutcome missing;
  missing.end = HookOutcome::End::kSpawnFailed;
  missing.error = "ENOENT";
  hooks.Finished("a", "job-0", missing, t0 + 8s);
  // Given up after retries + 1 attempts: recorded, the cursor passes it.
  REQUIRE(host.done.size() == 1);
  CHECK_FALSE(host.done[0].second.ok());
  CHECK(host.done[0].first.attempt == 3);
  CHECK(host.done[0].first.event.seq == 1);
  CHECK(host.cursors[{"a", "job-0"}] == 1);
  hooks.Tick(t0 + 8s);
  REQUIRE(host.started.size() == 4);
  CHECK(host.started[3].event.seq == 2);
  CHECK(host.started[3].attempt == 1);
}

TEST_CASE("hooks: the backoff doubles from 1 s up to a minute") {
  CHECK(HookBackoff(1) == 1s);
  CHECK(HookBackoff(2) == 2s);
  CHECK(HookBackoff(3) == 4s);
  CHECK(HookBackoff(6) == 32s);
  CHECK(HookBackoff(7) == 60s);
  CHECK(HookBackoff(100) == 60s);
}

TEST_CASE("hooks: never more runs at once than max_running, across jobs") {
  FakeHost host;
  Hooks hooks(host, 3);
  for (int i = 0; i < 10; ++i) {
    const std::string job = "j" + std::to_string(i);
    host.Add(job, 1, "succeeded");
    hooks.Track(job, "job-0", Spec({"succeeded"}), 0);
  }
  hooks.Tick(t0);
  CHECK(host.started.size() == 3);
  CHECK(hooks.Running() == 3);
  CHECK(hooks.Waiting() == 7);
  hooks.Tick(t0);
  CHECK(host.started.size() == 3);
  hooks.Finished(host.started[0].job, "job-0", Exit(0), t0);
  hooks.Tick(t0);
  CHECK(host.started.size() == 4);
  CHECK(hooks.Running() == 3);
  // Each job once, in the order they became ready.
  for (size_t i = 0; i < host.started.size(); ++i) CHECK(host.started[i].job == "j" + std::to_string(i));
  hooks.SetMaxRunning(5);
  hooks.Tick(t0);
  CHECK(hooks.Running() == 5);
}

TEST_CASE("hooks: a job that ended is caught up once every hook delivered all") {
  FakeHost host;
  Hooks hooks(host, 4);
  host.Add("a", 1, "started");
  hooks.Track("a", "job-0", Spec({"*"}), 0);
  hooks.Track("a", "pool-0", Spec({"succeeded"}), 0);
  hooks.Tick(t0);
  REQUIRE(host.started.size() == 1);
  hooks.Finished("a", "job-0", Exit(0), t0);
  hooks.Tick(t0);
  CHECK(host.caught_up.empty());  // not ended: more events may come
  host.Add("a", 3, "succeeded");
  hooks.Poke("a");
  hooks.JobEnded("a");
  hooks.Tick(t0);
  CHECK(host.started.size() == 3);  // both hooks follow succeeded
  CHECK(host.caught_up.empty());
  hooks.Finished("a", "job-0", Exit(0), t0);
  hooks.Tick(t0);
  CHECK(host.caught_up.empty());
  hooks.Finished("a", "pool-0", Exit(0), t0);
  hooks.Tick(t0);
  CHECK(host.caught_up == std::vector<std::string>{"a"});
  CHECK_FALSE(hooks.Tracks("a"));
}

TEST_CASE("hooks: a forgotten job's run still counts until it ends, its outcome ignored") {
  FakeHost host;
  Hooks hooks(host, 1);
  host.Add("a", 1, "succeeded");
  host.Add("b", 1, "succeeded");
  hooks.Track("a", "job-0", Spec({"*"}), 0);
  hooks.Track("b", "job-0", Spec({"*"}), 0);
  hooks.Tick(t0);
  REQUIRE(host.started.size() == 1);
  hooks.Forget("a");
  hooks.Tick(t0);
  CHECK(host.started.size() == 1);
  hooks.Finished("a", "job-0", Exit(0), t0);
  CHECK(host.done.empty());
  hooks.Tick(t0);
  REQUIRE(host.started.size() == 2);
  CHECK(host.started[1].job == "b");
}

// Dependencies in the scheduler (daemon/scheduler_deps.cpp), stepped through by
// hand with a fake clock: every parent end against every condition, retries,
// cascades through chains and diamonds, parents that arrive late or never,
// cycles, parents that ended before their child, and what waiting costs.
#include <doctest/doctest.h>

#include <map>

#include "daemon/scheduler.h"
#include "scheduler_test_helpers.h"
#include "spool/intake.h"

using namespace spoold;
using namespace std::chrono_literals;
using namespace schedtest;

namespace {

Config DepConfig(int workers = 1, int queue_limit = 100) {
  Config config = TestConfig(workers, queue_limit);
  config.missing_grace = 10min;
  return config;
}

JobSpec Job(const std::string& id, std::vector<Dependency> after = {}) { return PlainJob(id, std::move(after)); }

Result<Reason> Submit(Scheduler& s, const JobSpec& spec, TimePoint now) {
  auto reason = s.Admit(spec);
  if (reason.ok()) s.Add(spec, AcceptedStatus(spec.id, spec, "", -1, *reason, now));
  return reason;
}

// Starts `id` (it must be next) and ends its attempt with `end`.
void RunTo(Scheduler& s, const std::string& id, const AttemptEnd& end, TimePoint now) {
  auto started = s.TakeStartable(now);
  REQUIRE(started == std::vector<std::string>{id});
  s.AttemptStarted(id, 100, std::nullopt, now);
  s.AttemptEnded(id, end, now);
}

}  // namespace

TEST_CASE("after: every parent end against every condition") {
  struct End {
    const char* name;
    JobState state;
    Reason reason;
  };
  const End ends[] = {{"succeeded", JobState::kSucceeded, Reason::kNone},
                      {"failed", JobState::kFailed, Reason::kNonzeroExit},
                      {"timeout", JobState::kFailed, Reason::kTimeout},
                      {"cancelled", JobState::kCancelled, Reason::kCancelledByUser},
                      {"spawn_failed", JobState::kFailed, Reason::kSpawnFailed}};
  const AfterOn ons[] = {AfterOn::kSuccess, AfterOn::kFailure, AfterOn::kAny};
  for (const End& end : ends) {
    for (AfterOn on : ons) {
      CAPTURE(end.name);
      CAPTURE(AfterOnName(on));
      Scheduler s(DepConfig());
      TimePoint t = kT0;
      REQUIRE(Submit(s, Job("parent"), t).ok());
      auto reason = Submit(s, Job("child", {{"parent", on}}), t);
      REQUIRE(reason.ok());
      CHECK(*reason == Reason::kDependency);
      CHECK(St(s, "child").reason == Reason::kDependency);
      CHECK(St(s, "child").waiting_on == std::vector<std::string>{"parent"});
      CHECK(St(s, "child").message == "waiting for parent (queued)");

      t += 1s;
      if (end.state == JobState::kCancelled) {
        bool running = false;
        REQUIRE(s.Cancel("parent", t, &running).ok());
      } else if (end.reason == Reason::kNonzeroExit) {
        RunTo(s, "parent", Exit(3), t);
      } else if (end.reason == Reason::kNone) {
        RunTo(s, "parent", Exit(0), t);
      } else {
        RunTo(s, "parent", Cause(end.reason), t);
      }
      REQUIRE(St(s, "parent").state == end.state);
      REQUIRE(St(s, "parent").reason == end.reason);

      const bool holds = AfterHolds(on, end.state);
      CHECK(holds == (on == AfterOn::kAny || (on == AfterOn::kSuccess && end.state == JobState::kSucceeded) ||
                      (on == AfterOn::kFailure && end.state == JobState::kFailed)));
      const JobStatus& child = St(s, "child");
      CHECK(child.waiting_on.empty());
      if (holds) {
        CHECK(child.state == JobState::kQueued);
        CHECK(child.reason == Reason::kInQueue);
        CHECK(child.message.find("dependencies met") == 0);
        CHECK(s.TakeStartable(t) == std::vector<std::string>{"child"});
      } else {
        CHECK(child.state == JobState::kCancelled);
        CHECK(child.reason == Reason::kDependencyFailed);
        CHECK(child.message.find("parent parent ended " + std::string(StateName(end.state))) == 0);
        CHECK(child.message.find(std::string("after requires ") + AfterOnName(on)) != std::string::npos);
        CHECK(s.TakeStartable(t).empty());
        CHECK(s.Pools().at("default").queued == 0);
      }
    }
  }
}

TEST_CASE("after: a parent that fails once and succeeds on its retry releases its child only then") {
  Scheduler s(DepConfig());
  TimePoint t = kT0;
  JobSpec parent = Job("parent");
  parent.retry.attempts = 1;
  parent.retry.delay = 30s;
  REQUIRE(Submit(s, parent, t).ok());
  REQUIRE(Submit(s, Job("child", {{"parent", AfterOn::kSuccess}}), t).ok());
  RunTo(s, "parent", Exit(1), t);
  CHECK(St(s, "parent").reason == Reason::kRetryBackoff);
  CHECK(St(s, "child").reason == Reason::kDependency);  // not decided: the parent is not terminal
  t += 31s;
  s.Tick(t);
  RunTo(s, "parent", Exit(0), t);
  CHECK(St(s, "child").reason == Reason::kInQueue);
  CHECK(s.TakeStartable(t) == std::vector<std::string>{"child"});
}

TEST_CASE("after: a failure cascades down a chain at once, and only where a condition cannot hold") {
  Scheduler s(DepConfig());
  TimePoint t = kT0;
  REQUIRE(Submit(s, Job("a"), t).ok());
  REQUIRE(Submit(s, Job("b", {{"a", AfterOn::kSuccess}}), t).ok());
  REQUIRE(Submit(s, Job("c", {{"b", AfterOn::kSuccess}}), t).ok());
  REQUIRE(Submit(s, Job("d", {{"c", AfterOn::kSuccess}}), t).ok());
  REQUIRE(Submit(s, Job("cleanup", {{"c", AfterOn::kAny}}), t).ok());
  (void)s.TakeChanged();
  RunTo(s, "a", Exit(1), t);
  for (const char* id : {"b", "c", "d"}) {
    CAPTURE(id);
    CHECK(St(s, id).state == JobState::kCancelled);
    CHECK(St(s, id).reason == Reason::kDependencyFailed);
  }
  CHECK(St(s, "c").message.find("parent b ended cancelled (dependency_failed)") == 0);
  // c was cancelled: `any` holds, so the cleanup runs.
  CHECK(St(s, "cleanup").reason == Reason::kInQueue);
  auto changed = s.TakeChanged();
  for (const char* id : {"a", "b", "c", "d", "cleanup"})
    CHECK(std::count(changed.begin(), changed.end(), id) == 1);
  CHECK(s.TakeStartable(t) == std::vector<std::string>{"cleanup"});
}

TEST_CASE("after: a chain of 20,000 jobs cascades without deep recursion") {
  Scheduler s(DepConfig(1, 100000));
  TimePoint t = kT0;
  REQUIRE(Submit(s, Job("j0"), t).ok());
  for (int i = 1; i < 20000; ++i) {
    REQUIRE(
        Submit(s, Job("j" + std::to_string(i), {{"j" + std::to_string(i - 1), AfterOn::kSuccess}}), t).ok());
  }
  bool running = false;
  REQUIRE(s.Cancel("j0", t, &running).ok());
  CHECK(St(s, "j19999").reason == Reason::kDependencyFailed);
  CHECK(s.Pools().at("default").queued == 0);
}

TEST_CASE("after: a diamond waits for both sides and fails with either") {
  Scheduler s(DepConfig(2));
  TimePoint t = kT0;
  REQUIRE(Submit(s, Job("top"), t).ok());
  REQUIRE(Submit(s, Job("left", {{"top", AfterOn::kSuccess}}), t).ok());
  REQUIRE(Submit(s, Job("right", {{"top", AfterOn::kSuccess}}), t).ok());
  REQUIRE(Submit(s, Job("bottom", {{"left", AfterOn::kSuccess}, {"right", AfterOn::kSuccess}}), t).ok());
  RunTo(s, "top", Exit(0), t);
  CHECK(St(s, "bottom").waiting_on == std::vector<std::string>{"left", "right"});
  auto started = s.TakeStartable(t);
  CHECK(started == std::vector<std::string>{"left", "right"});
  s.AttemptEnded("left", Exit(0), t);
  CHECK(St(s, "bottom").waiting_on == std::vector<std::string>{"right"});
  CHECK(St(s, "bottom").message == "waiting for right (running)");
  s.AttemptEnded("right", Exit(2), t);
  CHECK(St(s, "bottom").reason == Reason::kDependencyFailed);
  CHECK(St(s, "bottom").message.find("parent right ended failed (nonzero_exit)") == 0);
}

TEST_CASE("after: a parent dropped after its child is waited for within the grace, not past it") {
  Scheduler s(DepConfig());
  TimePoint t = kT0;
  REQUIRE(Submit(s, Job("early", {{"late", AfterOn::kSuccess}}), t).ok());
  REQUIRE(Submit(s, Job("orphan", {{"never", AfterOn::kAny}, {"late", AfterOn::kSuccess}}), t).ok());
  CHECK(St(s, "early").message == "waiting for late (not submitted yet)");
  CHECK(s.NextWakeup() == kT0 + 10min);
  t += 9min;
  REQUIRE(Submit(s, Job("late"), t).ok());
  t = kT0 + 10min;
  s.Tick(t);
  CHECK(St(s, "early").reason == Reason::kDependency);  // its parent came in time
  CHECK(St(s, "orphan").state == JobState::kCancelled);
  CHECK(St(s, "orphan").reason == Reason::kDependencyMissing);
  CHECK(St(s, "orphan").message == "parent never was not submitted within dependencies.missing_grace (10m)");
  RunTo(s, "late", Exit(0), t);
  CHECK(s.TakeStartable(t) == std::vector<std::string>{"early"});
}

TEST_CASE("after: with missing_grace 0 a parent not submitted is waited for without a limit") {
  Config config = DepConfig();
  config.missing_grace = 0ms;
  Scheduler s(config);
  REQUIRE(Submit(s, Job("child", {{"later", AfterOn::kSuccess}}), kT0).ok());
  CHECK_FALSE(s.NextWakeup().has_value());
  s.Tick(kT0 + 24h * 365);
  CHECK(St(s, "child").reason == Reason::kDependency);
}

TEST_CASE("after: cycles of one, two and three jobs are refused at admission") {
  Scheduler s(DepConfig());
  // One: the file names itself (refused by validation, and by the scheduler too).
  auto self = s.Admit(Job("x", {{"x", AfterOn::kAny}}));
  REQUIRE_FALSE(self.ok());
  CHECK(self.error().code == "dependency_cycle");
  // Two: a waits for b, not submitted yet; b arrives waiting for a.
  REQUIRE(Submit(s, Job("a", {{"b", AfterOn::kSuccess}}), kT0).ok());
  auto two = s.Admit(Job("b", {{"a", AfterOn::kAny}}));
  REQUIRE_FALSE(two.ok());
  CHECK(two.error().code == "dependency_cycle");
  CHECK(two.error().field == "after");
  CHECK(two.error().message == "after would close a cycle: this job waits on a, which waits on this job (b)");
  // Three: p waits for q, q for r; r arrives waiting for p.
  REQUIRE(Submit(s, Job("p", {{"q", AfterOn::kSuccess}}), kT0).ok());
  REQUIRE(Submit(s, Job("q", {{"r", AfterOn::kSuccess}}), kT0).ok());
  auto three = s.Admit(Job("r", {{"p", AfterOn::kSuccess}}));
  REQUIRE_FALSE(three.ok());
  CHECK(three.error().message ==
        "after would close a cycle: this job waits on p, which waits on q, which waits on this job (r)");
  // No cycle: r waiting for a job outside the loop is fine.
  CHECK(s.Admit(Job("r", {{"a", AfterOn::kSuccess}})).ok());
}

TEST_CASE("after: a parent that ended before its child was accepted decides it at once") {
  Scheduler s(DepConfig());
  std::map<std::string, JobState> ended = {{"done", JobState::kSucceeded}, {"broke", JobState::kFailed}};
  s.SetEndedLookup([&ended](const std::string& id) -> std::optional<Scheduler::Ended> {
    auto it = ended.find(id);
    if (it == ended.end()) return std::nullopt;
    return Scheduler::Ended{it->second, Reason::kNone};
  });
  REQUIRE(Submit(s, Job("ok", {{"done", AfterOn::kSuccess}}), kT0).ok());
  CHECK(St(s, "ok").reason == Reason::kInQueue);
  REQUIRE(Submit(s, Job("alert", {{"broke", AfterOn::kFailure}}), kT0).ok());
  CHECK(St(s, "alert").reason == Reason::kInQueue);
  REQUIRE(Submit(s, Job("next", {{"done", AfterOn::kSuccess}, {"broke", AfterOn::kSuccess}}), kT0).ok());
  CHECK(St(s, "next").state == JobState::kCancelled);
  CHECK(St(s, "next").message.find("parent broke ended failed;") == 0);
}

TEST_CASE("after: recovery decides children whose parent's end was written but not theirs") {
  Scheduler s(DepConfig());
  // The child is recovered before its parent's entry is known (folder order).
  std::map<std::string, JobState> ended;
  s.SetEndedLookup([&ended](const std::string& id) -> std::optional<Scheduler::Ended> {
    auto it = ended.find(id);
    if (it == ended.end()) return std::nullopt;
    return Scheduler::Ended{it->second, Reason::kNone};
  });
  JobSpec child = Job("child", {{"parent", AfterOn::kSuccess}});
  JobStatus status = AcceptedStatus("child", child, "", -1, Reason::kDependency, kT0);
  s.Add(child, status);
  CHECK(St(s, "child").reason == Reason::kDependency);
  ended["parent"] = JobState::kSucceeded;
  s.ResolveEnded(kT0 + 1s);
  CHECK(St(s, "child").reason == Reason::kInQueue);
}

TEST_CASE("after: waiting jobs hold no worker but hold a place in the queue") {
  Scheduler s(DepConfig(/*workers=*/1, /*queue_limit=*/3));
  TimePoint t = kT0;
  REQUIRE(Submit(s, Job("w1", {{"missing", AfterOn::kSuccess}}), t).ok());
  REQUIRE(Submit(s, Job("w2", {{"missing", AfterOn::kSuccess}}), t).ok());
  REQUIRE(Submit(s, Job("free"), t).ok());
  CHECK(s.TakeStartable(t) == std::vector<std::string>{"free"});  // the waiting ones take no worker
  REQUIRE(Submit(s, Job("more"), t).ok());
  auto full = s.Admit(Job("too-many"));
  REQUIRE_FALSE(full.ok());
  CHECK(full.error().code == "queue_full");
}

TEST_CASE("after: cancel, start requests and holds of a waiting job") {
  Scheduler s(DepConfig());
  TimePoint t = kT0;
  REQUIRE(Submit(s, Job("parent"), t).ok());
  JobSpec held = Job("held", {{"parent", AfterOn::kSuccess}});
  held.hold = true;
  REQUIRE(Submit(s, held, t).ok());
  REQUIRE(Submit(s, Job("gone", {{"parent", AfterOn::kSuccess}}), t).ok());
  auto early = s.Release("held", t);
  REQUIRE_FALSE(early.ok());
  CHECK(early.error().message.find("waiting for its dependencies") != std::string::npos);
  bool running = false;
  REQUIRE(s.Cancel("gone", t, &running).ok());
  CHECK(St(s, "gone").reason == Reason::kCancelledByUser);
  CHECK(St(s, "gone").message == "cancelled by request while waiting for its dependencies");
  RunTo(s, "parent", Exit(0), t);
  CHECK(St(s, "held").reason == Reason::kHeld);  // its parents are done; the hold remains
  CHECK(s.TakeStartable(t).empty());
  REQUIRE(s.Release("held", t).ok());
  CHECK(s.TakeStartable(t) == std::vector<std::string>{"held"});
}

TEST_CASE("after: a dependent far back in a long queue is kept as text, settled, and decided all the same") {
  Scheduler s(DepConfig(/*workers=*/1, /*queue_limit=*/1000));
  for (int i = 0; i < Scheduler::kHotQueued + 5; ++i)
    REQUIRE(Submit(s, Job("f" + std::to_string(i)), kT0).ok());
  JobSpec child = Job("child", {{"parent", AfterOn::kFailure}});
  auto reason = s.Admit(child);
  REQUIRE(reason.ok());
  s.Add(child, AcceptedStatus("child", child, "", -1, *reason, kT0),
        "command = [\"true\"]\nafter = [{job = \"parent\", on = \"failure\"}]\n");
  CHECK(s.Find("child")->kept.Frozen());
  const JobStatus whole = St(s, "child");
  s.Settle("child");
  REQUIRE(s.Find("child")->Settled());
  CHECK(St(s, "child") == whole);  // rebuilt from the text, waiting_on and after included
  s.Settle("child");
  REQUIRE(Submit(s, Job("parent"), kT0).ok());
  bool running = false;
  REQUIRE(s.Cancel("parent", kT0, &running).ok());
  CHECK(St(s, "child").reason == Reason::kDependencyFailed);  // `failure` excludes a cancel
}

TEST_CASE("after: the grace of an earlier job under the same id does not end a later one") {
  Scheduler s(DepConfig());
  REQUIRE(Submit(s, Job("c", {{"p", AfterOn::kSuccess}}), kT0).ok());
  bool running = false;
  REQUIRE(s.Cancel("c", kT0 + 1s, &running).ok());
  s.Forget("c");  // removed (retention, or by hand)
  REQUIRE(Submit(s, Job("c", {{"p", AfterOn::kSuccess}}), kT0 + 5min).ok());
  s.Tick(kT0 + 10min);  // the first c's grace
  CHECK(St(s, "c").reason == Reason::kDependency);
  s.Tick(kT0 + 15min);
  CHECK(St(s, "c").reason == Reason::kDependencyMissing);
}

TEST_CASE("after: a parent known but not loaded is waited for, and decided once it reads as ended") {
  Scheduler s(DepConfig());
  std::map<std::string, Scheduler::Ended> known = {{"damaged", {JobState::kQueued, Reason::kNone, true}}};
  s.SetEndedLookup([&known](const std::string& id) -> std::optional<Scheduler::Ended> {
    auto it = known.find(id);
    if (it == known.end()) return std::nullopt;
    return it->second;
  });
  REQUIRE(Submit(s, Job("child", {{"damaged", AfterOn::kSuccess}}), kT0).ok());
  CHECK(St(s, "child").message == "waiting for damaged (not loaded)");
  CHECK_FALSE(s.NextWakeup().has_value());  // no grace: it was submitted
  s.Tick(kT0 + 1h);
  CHECK(St(s, "child").reason == Reason::kDependency);
  known["damaged"] = {JobState::kFailed, Reason::kTimeout, false};
  s.ResolveEnded(kT0 + 2h);
  CHECK(St(s, "child").reason == Reason::kDependencyFailed);
  CHECK(St(s, "child").message.find("parent damaged ended failed (timeout)") == 0);
  CHECK(St(s, "child").finished == kT0 + 2h);
}

TEST_CASE("after: a job recovered long after its acceptance is decided at the time of recovery") {
  Scheduler s(DepConfig());
  s.SetEndedLookup([](const std::string&) -> std::optional<Scheduler::Ended> {
    return Scheduler::Ended{JobState::kFailed, Reason::kNonzeroExit};
  });
  JobSpec child = Job("child", {{"parent", AfterOn::kSuccess}});
  s.Add(child, AcceptedStatus("child", child, "", -1, Reason::kDependency, kT0), {}, kT0 + 24h * 8);
  CHECK(St(s, "child").state == JobState::kCancelled);
  CHECK(St(s, "child").finished == kT0 + 24h * 8);
}

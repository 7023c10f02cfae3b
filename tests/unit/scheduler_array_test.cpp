// Job arrays in the scheduler (daemon/scheduler_array.cpp), stepped through by
// hand with a fake clock: tasks start in index order within `parallel` and the
// pool's workers, max_failed halts the rest, cancels of one task and of the
// whole array, the array's end and counts, deadlines, `after` on an array and
// on one task, and a recovery from task folders.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "daemon/scheduler.h"
#include "scheduler_test_helpers.h"
#include "spool/intake.h"

using namespace spoold;
using namespace std::chrono_literals;
using namespace schedtest;

namespace {

JobSpec ArrayJob(const std::string& id, const std::string& indexes, int64_t parallel = 0,
                 int64_t max_failed = 0) {
  JobSpec spec;
  spec.id = id;
  spec.title = id;
  spec.command = {"true"};
  auto ranges = ParseIndexes(indexes);
  REQUIRE(ranges.ok());
  auto array = std::make_shared<ArraySpec>();
  array->ranges = *ranges;
  array->Seal();
  array->parallel = parallel;
  array->max_failed = max_failed;
  spec.array = array;
  return spec;
}

JobSpec Plain(const std::string& id, std::vector<Dependency> after = {}) { return PlainJob(id, std::move(after)); }

void Submit(Scheduler& s, const JobSpec& spec, TimePoint now) {
  auto reason = s.Admit(spec);
  REQUIRE(reason.ok());
  s.Add(spec, AcceptedStatus(spec.id, spec, "", -1, *reason, now));
}

TaskCounts Counts(Scheduler& s, const std::string& id) {
  (void)s.TakeChanged();  // the counts are brought up to date once a turn
  REQUIRE(St(s, id).tasks.has_value());
  return *St(s, id).tasks;
}

// A task found running at recovery, after Add of its array.
void AddRunningTask(Scheduler& s, const JobSpec& spec, const std::string& array, int64_t index) {
  JobStatus task = AcceptedStatus(TaskId(array, index), spec, "", -1, Reason::kInQueue, kT0);
  task.array = array;
  task.array_index = index;
  task.state = JobState::kRunning;
  task.reason = Reason::kNone;
  task.attempt = 1;
  AttemptRecord record;
  record.attempt = 1;
  record.started = kT0;
  task.attempts.push_back(record);
  s.Add(s.TaskSpec(*s.Find(array), index), task);
}

void End(Scheduler& s, const std::string& id, int code, TimePoint now) {
  s.AttemptStarted(id, 100, std::nullopt, now);
  s.AttemptEnded(id, Exit(code), now);
}

}  // namespace

TEST_CASE("array: tasks start in index order, never more than parallel, and the array ends succeeded") {
  Scheduler s(TestConfig(/*workers=*/8));
  Submit(s, ArrayJob("sweep", "1,3,5-9:2,20-21", /*parallel=*/3), kT0);
  auto started = s.TakeStartable(kT0);
  CHECK(started == std::vector<std::string>{"sweep:1", "sweep:3", "sweep:5"});
  CHECK(St(s, "sweep").state == JobState::kRunning);
  CHECK(s.Pools().at("default").running == 3);  // the tasks, not the array
  CHECK(s.TakeNewTasks() == started);
  TaskCounts c = Counts(s, "sweep");
  CHECK(c.total == 7);
  CHECK(c.running == 3);
  CHECK(c.queued == 4);
  CHECK(s.TakeStartable(kT0).empty());  // parallel is reached
  const JobStatus& task = St(s, "sweep:3");
  CHECK(task.array == "sweep");
  CHECK(task.array_index == 3);
  CHECK(task.created == St(s, "sweep").created);
  std::vector<std::string> order;
  for (int turn = 0; turn < 10; ++turn) {
    for (const auto& id : s.TakeStartable(kT0 + 1s)) order.push_back(id);
    std::vector<std::string> running;
    for (const auto& [id, job] : s.Jobs()) {
      if (job.status().array && job.state() == JobState::kRunning) running.push_back(id);
    }
    CHECK(running.size() <= 3);
    if (running.empty()) break;
    End(s, running.front(), 0, kT0 + 1s);
  }
  CHECK(order == std::vector<std::string>{"sweep:7", "sweep:9", "sweep:20", "sweep:21"});
  CHECK(St(s, "sweep").state == JobState::kSucceeded);
  CHECK(St(s, "sweep").message == "all 7 tasks succeeded");
  c = Counts(s, "sweep");
  CHECK(c.succeeded == 7);
  CHECK(St(s, "sweep").progress == 100.0);
}

TEST_CASE("array: parallel 0 means the pool's workers, and other jobs keep their turn behind it") {
  Scheduler s(TestConfig(/*workers=*/2));
  Submit(s, ArrayJob("a", "0-4"), kT0);
  Submit(s, Plain("later"), kT0);
  CHECK(s.TakeStartable(kT0) == std::vector<std::string>{"a:0", "a:1"});
  End(s, "a:0", 0, kT0);
  CHECK(s.TakeStartable(kT0) == std::vector<std::string>{"a:2"});  // the array came first
  CHECK(s.Pools().at("default").queued == 1);  // "later" only: the array holds no place once started
}

TEST_CASE("array: max_failed halts the tasks not started, and running ones run to their end") {
  Scheduler s(TestConfig(/*workers=*/4));
  Submit(s, ArrayJob("m", "0-9", /*parallel=*/3, /*max_failed=*/2), kT0);
  REQUIRE(s.TakeStartable(kT0).size() == 3);  // m:0 m:1 m:2
  End(s, "m:0", 1, kT0 + 1s);
  CHECK(s.TakeStartable(kT0 + 1s) == std::vector<std::string>{"m:3"});
  End(s, "m:1", 2, kT0 + 2s);  // the second failure
  CHECK(s.TakeStartable(kT0 + 2s).empty());
  TaskCounts c = Counts(s, "m");
  CHECK(c.failed == 2);
  CHECK(c.cancelled == 6);  // m:4 .. m:9
  CHECK(c.running == 2);
  CHECK(St(s, "m").state == JobState::kRunning);
  End(s, "m:2", 0, kT0 + 3s);
  End(s, "m:3", 3, kT0 + 3s);
  CHECK(St(s, "m").state == JobState::kFailed);
  CHECK(St(s, "m").reason == Reason::kTasksFailed);
  CHECK(St(s, "m").failed_indexes == "0-1,3");
  CHECK(St(s, "m").message.find("halted once 2 tasks had failed (array.max_failed), 6 tasks never started") != std::string::npos);
  auto halted = s.TaskOutcome("m:7");
  REQUIRE(halted);
  CHECK(halted->state == JobState::kCancelled);
  CHECK(halted->reason == Reason::kArrayHalted);
}

TEST_CASE("array: cancelling one task does not fail the array, and cancelling the array stops the rest") {
  Scheduler s(TestConfig(/*workers=*/2));
  Submit(s, ArrayJob("c", "0-5", /*parallel=*/2), kT0);
  REQUIRE(s.TakeStartable(kT0).size() == 2);
  std::vector<std::string> stop;
  // A task not started yet is made a job, cancelled, and never starts.
  REQUIRE(s.Cancel("c:4", kT0, &stop).ok());
  CHECK(stop.empty());
  CHECK(St(s, "c:4").state == JobState::kCancelled);
  CHECK(s.TakeNewTasks().back() == "c:4");
  CHECK(s.Cancel("c:4", kT0, &stop).error().code == "invalid_field");
  CHECK(s.Cancel("c:99", kT0, &stop).error().code == "unknown_job");
  // A running task: the daemon stops it.
  REQUIRE(s.Cancel("c:1", kT0, &stop).ok());
  CHECK(stop == std::vector<std::string>{"c:1"});
  s.AttemptEnded("c:1", Cause(Reason::kCancelledByUser), kT0 + 1s);
  CHECK(s.TakeStartable(kT0 + 1s) == std::vector<std::string>{"c:2"});
  End(s, "c:0", 0, kT0 + 2s);
  CHECK(s.TakeStartable(kT0 + 2s) == std::vector<std::string>{"c:3"});  // c:4 is passed over
  End(s, "c:2", 0, kT0 + 3s);
  CHECK(s.TakeStartable(kT0 + 3s) == std::vector<std::string>{"c:5"});
  End(s, "c:3", 0, kT0 + 4s);
  End(s, "c:5", 0, kT0 + 4s);
  CHECK(St(s, "c").state == JobState::kSucceeded);
  CHECK(Counts(s, "c").cancelled == 2);

  Submit(s, ArrayJob("w", "0-9", /*parallel=*/2), kT0 + 5s);
  REQUIRE(s.TakeStartable(kT0 + 5s).size() == 2);
  stop.clear();
  REQUIRE(s.Cancel("w", kT0 + 6s, &stop).ok());
  CHECK(stop == std::vector<std::string>{"w:0", "w:1"});
  CHECK(St(s, "w").state == JobState::kRunning);  // until its running tasks have stopped
  CHECK(s.TakeStartable(kT0 + 6s).empty());
  s.AttemptEnded("w:0", Cause(Reason::kCancelledByUser), kT0 + 7s);
  s.AttemptEnded("w:1", Cause(Reason::kCancelledByUser), kT0 + 7s);
  CHECK(St(s, "w").state == JobState::kCancelled);
  CHECK(Counts(s, "w").cancelled == 10);
}

TEST_CASE("array: a queued array is cancelled whole, and a held one starts nothing until released") {
  Scheduler s(TestConfig(/*workers=*/1));
  JobSpec held = ArrayJob("h", "0-2");
  held.hold = true;
  Submit(s, held, kT0);
  CHECK(s.TakeStartable(kT0).empty());
  REQUIRE(s.Release("h", kT0).ok());
  CHECK(s.TakeStartable(kT0) == std::vector<std::string>{"h:0"});
  Submit(s, ArrayJob("q", "0-2"), kT0);
  bool running = true;
  REQUIRE(s.Cancel("q", kT0, &running).ok());
  CHECK(!running);
  CHECK(St(s, "q").state == JobState::kCancelled);
  CHECK(Counts(s, "q").cancelled == 3);
  CHECK(s.Pools().at("default").queued == 0);
}

TEST_CASE("array: retries of a task keep their place among the parallel") {
  Scheduler s(TestConfig(/*workers=*/4));
  JobSpec spec = ArrayJob("r", "0-3", /*parallel=*/1);
  spec.retry.attempts = 1;
  spec.retry.delay = 10s;
  Submit(s, spec, kT0);
  CHECK(s.TakeStartable(kT0) == std::vector<std::string>{"r:0"});
  End(s, "r:0", 1, kT0);
  CHECK(St(s, "r:0").reason == Reason::kRetryBackoff);
  CHECK(s.TakeStartable(kT0 + 1s).empty());  // r:1 waits: r:0 still holds the one place
  (void)s.Tick(kT0 + 10s);
  CHECK(s.TakeStartable(kT0 + 10s) == std::vector<std::string>{"r:0"});
  End(s, "r:0", 0, kT0 + 11s);
  CHECK(s.TakeStartable(kT0 + 11s) == std::vector<std::string>{"r:1"});
}

TEST_CASE("array: after waits for the whole array, or for one task") {
  Config config = TestConfig(/*workers=*/1);
  config.missing_grace = 10min;
  Scheduler s(config);
  Submit(s, ArrayJob("sweep", "0-2", /*parallel=*/1), kT0);
  Submit(s, Plain("all", {{"sweep", AfterOn::kSuccess}}), kT0);
  Submit(s, Plain("one", {{"sweep:1", AfterOn::kSuccess}}), kT0);
  Submit(s, Plain("two_fails", {{"sweep:2", AfterOn::kFailure}}), kT0);
  CHECK(St(s, "one").reason == Reason::kDependency);
  CHECK(St(s, "one").message.find("sweep:1 (not started yet)") != std::string::npos);
  (void)s.Tick(kT0 + 11min);  // a task not started is no missing parent
  CHECK(St(s, "one").reason == Reason::kDependency);
  REQUIRE(s.TakeStartable(kT0 + 11min) == std::vector<std::string>{"sweep:0"});
  End(s, "sweep:0", 0, kT0 + 11min);
  REQUIRE(s.TakeStartable(kT0 + 11min) == std::vector<std::string>{"sweep:1"});
  End(s, "sweep:1", 0, kT0 + 11min);
  CHECK(St(s, "one").reason == Reason::kInQueue);
  CHECK(St(s, "all").reason == Reason::kDependency);
  REQUIRE(s.TakeStartable(kT0 + 11min) == std::vector<std::string>{"sweep:2"});
  End(s, "sweep:2", 0, kT0 + 12min);
  CHECK(St(s, "sweep").state == JobState::kSucceeded);
  CHECK(St(s, "all").reason == Reason::kInQueue);
  CHECK(St(s, "two_fails").state == JobState::kCancelled);
  CHECK(St(s, "two_fails").reason == Reason::kDependencyFailed);
}

TEST_CASE("array: a halt decides the jobs waiting for tasks that will never start") {
  Scheduler s(TestConfig(/*workers=*/1));
  Submit(s, ArrayJob("h", "0-5", /*parallel=*/1, /*max_failed=*/1), kT0);
  Submit(s, Plain("w", {{"h:4", AfterOn::kSuccess}}), kT0);
  Submit(s, Plain("any", {{"h:5", AfterOn::kAny}}), kT0);
  REQUIRE(s.TakeStartable(kT0) == std::vector<std::string>{"h:0"});
  End(s, "h:0", 1, kT0 + 1s);
  CHECK(St(s, "w").state == JobState::kCancelled);
  CHECK(St(s, "w").message.find("h:4 ended cancelled (array_halted)") != std::string::npos);
  CHECK(St(s, "any").reason == Reason::kInQueue);
}

TEST_CASE("array: a cycle through a task of a new array is refused") {
  Scheduler s(TestConfig());
  Submit(s, Plain("x", {{"arr:3", AfterOn::kSuccess}}), kT0);
  JobSpec arr = ArrayJob("arr", "0-5");
  arr.after = {{"x", AfterOn::kSuccess}};
  auto admitted = s.Admit(arr);
  REQUIRE(!admitted.ok());
  CHECK(admitted.error().code == "dependency_cycle");
  JobSpec self = ArrayJob("self", "0-5");
  self.after = {{"self:1", AfterOn::kSuccess}};
  CHECK(s.Admit(self).error().code == "dependency_cycle");
}

TEST_CASE("array: a deadline that passes fails the tasks not started") {
  Scheduler s(TestConfig(/*workers=*/1));
  JobSpec spec = ArrayJob("d", "0-3");
  spec.deadline = 1min;
  Submit(s, spec, kT0);
  REQUIRE(s.TakeStartable(kT0) == std::vector<std::string>{"d:0"});
  (void)s.Tick(kT0 + 2min);
  CHECK(s.TakeStartable(kT0 + 2min).empty());
  s.AttemptEnded("d:0", Cause(Reason::kDeadline), kT0 + 2min);
  CHECK(St(s, "d").state == JobState::kFailed);
  CHECK(St(s, "d").failed_indexes == "0-3");
}

TEST_CASE("array: recovery rebuilds the counts from the task folders and goes on") {
  Scheduler s(TestConfig(/*workers=*/2));
  JobSpec spec = ArrayJob("rec", "0-5", /*parallel=*/2);
  JobStatus status = AcceptedStatus("rec", spec, "", -1, Reason::kInQueue, kT0);
  status.state = JobState::kRunning;
  status.reason = Reason::kNone;
  s.Add(spec, status);
  // Folders: 0 and 1 ended, 2 was running, 4 was cancelled before it started.
  s.AddEndedTask("rec", 0, JobState::kSucceeded);
  s.AddEndedTask("rec", 1, JobState::kFailed);
  s.AddEndedTask("rec", 4, JobState::kCancelled);
  AddRunningTask(s, spec, "rec", 2);
  s.ArrayRecovered("rec", kT0 + 1s);
  CHECK(s.TakeStartable(kT0 + 1s) == std::vector<std::string>{"rec:3"});
  TaskCounts c = Counts(s, "rec");
  CHECK(c.succeeded == 1);
  CHECK(c.failed == 1);
  CHECK(c.cancelled == 1);
  CHECK(c.running == 2);
  s.AttemptEnded("rec:2", Exit(0), kT0 + 2s);
  CHECK(s.TakeStartable(kT0 + 2s) == std::vector<std::string>{"rec:5"});  // 4 is passed over
  End(s, "rec:3", 0, kT0 + 3s);
  End(s, "rec:5", 0, kT0 + 3s);
  CHECK(St(s, "rec").state == JobState::kFailed);
  CHECK(St(s, "rec").failed_indexes == "1");
}

TEST_CASE("array: an array ended by its parent ends its tasks, and the jobs waiting for them") {
  Scheduler s(TestConfig(/*workers=*/1));
  Submit(s, Plain("parent"), kT0);
  JobSpec arr = ArrayJob("arr", "0-4");
  arr.after = {{"parent", AfterOn::kSuccess}};
  Submit(s, arr, kT0);
  Submit(s, Plain("on_task", {{"arr:2", AfterOn::kAny}}), kT0);
  REQUIRE(s.TakeStartable(kT0) == std::vector<std::string>{"parent"});
  End(s, "parent", 1, kT0 + 1s);
  CHECK(St(s, "arr").state == JobState::kCancelled);
  CHECK(St(s, "arr").reason == Reason::kDependencyFailed);
  CHECK(St(s, "arr").halted_by == Reason::kDependencyFailed);
  CHECK(Counts(s, "arr").cancelled == 5);
  // Its task ended with it: `any` holds, and nothing waits on.
  CHECK(St(s, "on_task").reason == Reason::kInQueue);
  std::vector<std::string> stop;
  CHECK(s.Cancel("arr:3", kT0 + 2s, &stop).error().code == "invalid_field");
}

TEST_CASE("array: parallel 0 is the pool's workers, tasks waiting to retry included") {
  Scheduler s(TestConfig(/*workers=*/2));
  JobSpec spec = ArrayJob("z", "0-9");
  spec.retry.attempts = 1;
  spec.retry.delay = 10s;
  Submit(s, spec, kT0);
  REQUIRE(s.TakeStartable(kT0) == std::vector<std::string>{"z:0", "z:1"});
  End(s, "z:0", 1, kT0);
  End(s, "z:1", 1, kT0);
  // Both wait to retry and hold the two places: no new task starts, however
  // many turns pass.
  CHECK(s.TakeStartable(kT0 + 1s).empty());
  CHECK(s.TakeStartable(kT0 + 2s).empty());
  (void)s.Tick(kT0 + 10s);
  CHECK(s.TakeStartable(kT0 + 10s) == std::vector<std::string>{"z:0", "z:1"});
}

TEST_CASE("array: a restart after a cancel starts none of the rest and stops what runs") {
  Scheduler s(TestConfig(/*workers=*/2));
  JobSpec spec = ArrayJob("gone", "0-5", /*parallel=*/2);
  JobStatus status = AcceptedStatus("gone", spec, "", -1, Reason::kInQueue, kT0);
  status.state = JobState::kRunning;
  status.reason = Reason::kNone;
  status.halted_by = Reason::kCancelledByUser;
  s.Add(spec, status);
  s.AddEndedTask("gone", 0, JobState::kCancelled);
  AddRunningTask(s, spec, "gone", 1);
  CHECK(s.ArrayRecovered("gone", kT0 + 1s) == std::vector<std::string>{"gone:1"});
  CHECK(s.TakeStartable(kT0 + 1s).empty());
  s.AttemptEnded("gone:1", Cause(Reason::kCancelledByUser), kT0 + 2s);
  CHECK(St(s, "gone").state == JobState::kCancelled);
  CHECK(Counts(s, "gone").cancelled == 6);
}

// The scheduler stepped through by hand: a fake clock, no processes, no files
// (STYLE.md: ninja's plan tests). Every rule of SPEC.md sections 2, 4 and 5
// that the scheduler decides is checked here one decision at a time.
#include "daemon/scheduler.h"

#include <doctest/doctest.h>

#include "scheduler_test_helpers.h"
#include "spool/intake.h"

using namespace spoold;
using namespace std::chrono_literals;
using namespace schedtest;

namespace {

JobSpec Spec(const std::string& id, int64_t priority = 0) {
  JobSpec spec;
  spec.id = id;
  spec.title = id;
  spec.command = {"true"};
  spec.priority = priority;
  return spec;
}

// A job that retries `attempts` times, `delay` apart (no cap on the wait).
JobSpec Retried(const std::string& id, int attempts, Millis delay) {
  JobSpec spec = Spec(id);
  spec.retry.attempts = attempts;
  spec.retry.delay = delay;
  spec.retry.max_delay = Millis(0);
  return spec;
}

JobStatus NewStatus(const JobSpec& spec, Reason reason, TimePoint now) {
  return AcceptedStatus(spec.id, spec, "", -1, reason, now);
}

// Admits and adds, as the daemon's intake does.
void Submit(Scheduler& s, const JobSpec& spec, TimePoint now) {
  auto reason = s.Admit(spec);
  REQUIRE(reason.ok());
  s.Add(spec, NewStatus(spec, *reason, now));
}

}  // namespace

TEST_CASE("scheduler: higher priority first, FIFO among equals, workers cap") {
  Scheduler s(TestConfig(/*workers=*/2));
  Submit(s, Spec("a"), kT0);
  Submit(s, Spec("b"), kT0);
  Submit(s, Spec("urgent", 5), kT0);
  Submit(s, Spec("c"), kT0);
  auto started = s.TakeStartable(kT0);
  CHECK(started == std::vector<std::string>{"urgent", "a"});
  CHECK(s.TakeStartable(kT0).empty());  // both workers busy
  CHECK(St(s, "urgent").state == JobState::kRunning);
  CHECK(St(s, "b").state == JobState::kQueued);
  CHECK(St(s, "b").reason == Reason::kInQueue);
  s.AttemptEnded("a", Exit(0), kT0 + 1s);
  CHECK(St(s, "a").state == JobState::kSucceeded);
  CHECK(s.TakeStartable(kT0 + 1s) == std::vector<std::string>{"b"});
  CHECK(s.Pools().at("default").running == 2);
  CHECK(s.Pools().at("default").queued == 1);
}

TEST_CASE("scheduler: queue_limit refuses with queue_full, retry waits hold a place") {
  Config config = TestConfig(1, /*queue_limit=*/2);
  Scheduler s(config);
  JobSpec retrying = Spec("r");
  retrying.retry.attempts = 1;
  Submit(s, retrying, kT0);
  Submit(s, Spec("q1"), kT0);
  auto full = s.Admit(Spec("q2"));
  REQUIRE_FALSE(full.ok());
  CHECK(full.error().code == "queue_full");
  CHECK(full.error().message.find("queue_limit") != std::string::npos);
  CHECK(s.TakeStartable(kT0) == std::vector<std::string>{"r"});
  CHECK(s.Admit(Spec("q2")).ok());  // r runs: it holds no queue place
  s.AttemptEnded("r", Exit(1), kT0 + 1s);
  CHECK(St(s, "r").reason == Reason::kRetryBackoff);
  CHECK_FALSE(s.Admit(Spec("q2")).ok());  // waiting for its retry, r holds a place again
  CHECK(s.Admit(Spec("x")).error().code == "queue_full");
  JobSpec elsewhere = Spec("e");
  elsewhere.pool = "nowhere";
  CHECK(s.Admit(elsewhere).error().code == "unknown_pool");
}

TEST_CASE("scheduler: held jobs wait for a start request") {
  Scheduler s(TestConfig());
  JobSpec held = Spec("h");
  held.hold = true;
  Submit(s, held, kT0);
  CHECK(St(s, "h").reason == Reason::kHeld);
  CHECK(s.TakeStartable(kT0).empty());
  CHECK(s.Release("h", kT0 + 1s).ok());
  CHECK(St(s, "h").reason == Reason::kInQueue);
  CHECK(s.TakeStartable(kT0 + 1s) == std::vector<std::string>{"h"});
  // Only a held job can be started.
  auto again = s.Release("h", kT0 + 2s);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().message.find("not held") != std::string::npos);
  CHECK(s.Release("nope", kT0).error().code == "unknown_job");
}

TEST_CASE("scheduler: paused pools start nothing, resume and auto_resume") {
  Config config = TestConfig();
  config.pools["default"].paused = true;
  Scheduler s(config);
  Submit(s, Spec("a"), kT0);
  CHECK(St(s, "a").reason == Reason::kPoolPaused);
  CHECK(s.TakeStartable(kT0).empty());
  CHECK(s.Resume("default", kT0 + 1s).ok());
  CHECK(St(s, "a").reason == Reason::kInQueue);
  CHECK(s.Pause("default", kT0 + 2s).ok());
  CHECK(St(s, "a").reason == Reason::kPoolPaused);
  CHECK(s.Pause("missing", kT0).error().code == "unknown_pool");

  Config auto_config = TestConfig(3);
  auto_config.pools["default"].paused = true;
  auto_config.pools["default"].auto_resume = true;
  Scheduler a(auto_config);
  CHECK(a.Pools().at("default").paused);
  Submit(a, Spec("wake"), kT0);
  CHECK_FALSE(a.Pools().at("default").paused);
  CHECK(a.TakeStartable(kT0) == std::vector<std::string>{"wake"});

  // Jobs that waited in the paused pool start too, before the one that woke it.
  Submit(a, Spec("waited"), kT0 + 1s);
  CHECK(a.Pause("default", kT0 + 2s).ok());
  CHECK(St(a, "waited").reason == Reason::kPoolPaused);
  Submit(a, Spec("waker"), kT0 + 3s);
  CHECK(St(a, "waited").reason == Reason::kInQueue);
  CHECK(a.TakeStartable(kT0 + 3s) == std::vector<std::string>{"waited", "waker"});
}

TEST_CASE("scheduler: retries back off as min(max_delay, delay * backoff^(n-1))") {
  RetryPolicy p;
  p.delay = 10s;
  p.backoff = 2.0;
  p.max_delay = 35s;
  CHECK(Scheduler::RetryDelay(p, 1) == 10s);
  CHECK(Scheduler::RetryDelay(p, 2) == 20s);
  CHECK(Scheduler::RetryDelay(p, 3) == 35s);
  p.backoff = 1e300;  // overflow must cap, not wrap
  CHECK(Scheduler::RetryDelay(p, 5) == 35s);
  p.backoff = 3.0;
  p.max_delay = 0ms;  // no cap
  CHECK(Scheduler::RetryDelay(p, 4) == 270s);

  Scheduler s(TestConfig());
  JobSpec spec = Spec("r");
  spec.retry.attempts = 2;
  spec.retry.delay = 10s;
  spec.retry.backoff = 2.0;
  Submit(s, spec, kT0);
  CHECK(St(s, "r").max_attempts == 3);
  s.TakeStartable(kT0);
  s.AttemptEnded("r", Exit(3), kT0 + 1s);
  const JobStatus& st = St(s, "r");
  CHECK(st.state == JobState::kQueued);
  CHECK(st.reason == Reason::kRetryBackoff);
  REQUIRE(st.next_attempt_at);
  CHECK(*st.next_attempt_at == kT0 + 11s);
  CHECK(st.message.find("attempt 1 of 3 exited with code 3") != std::string::npos);
  CHECK(st.attempts.at(0).reason == Reason::kNonzeroExit);
  CHECK(s.NextWakeup() == kT0 + 11s);
  CHECK(s.TakeStartable(kT0 + 5s).empty());
  CHECK(s.Tick(kT0 + 10s).empty());
  CHECK(s.Tick(kT0 + 11s) == std::vector<std::string>{"r"});
  CHECK(s.TakeStartable(kT0 + 11s) == std::vector<std::string>{"r"});
  CHECK(St(s, "r").attempt == 2);
  CHECK(St(s, "r").message.find("attempt 2 of 3") != std::string::npos);
  s.AttemptEnded("r", Exit(3), kT0 + 12s);
  CHECK(*St(s, "r").next_attempt_at == kT0 + 32s);  // 20 s: the second wait doubled
  s.Tick(kT0 + 32s);
  s.TakeStartable(kT0 + 32s);
  s.AttemptEnded("r", Exit(3), kT0 + 33s);
  CHECK(St(s, "r").state == JobState::kFailed);
  CHECK(St(s, "r").reason == Reason::kNonzeroExit);
  CHECK(St(s, "r").exit_code == 3);
  CHECK(St(s, "r").attempts.size() == 3);
  CHECK(s.Pools().at("default").queued == 0);
  CHECK(s.Pools().at("default").running == 0);
}

TEST_CASE("scheduler: exit_codes limit which failures are retried, signals too") {
  Scheduler s(TestConfig(2));
  JobSpec only75 = Spec("only75");
  only75.retry.attempts = 3;
  only75.retry.exit_codes = {75};
  Submit(s, only75, kT0);
  JobSpec any = Spec("any");
  any.retry.attempts = 1;
  Submit(s, any, kT0);
  s.TakeStartable(kT0);
  s.AttemptEnded("only75", Exit(1), kT0 + 1s);
  CHECK(St(s, "only75").state == JobState::kFailed);  // 1 is not in exit_codes
  AttemptEnd killed;
  killed.signal = 9;
  s.AttemptEnded("any", killed, kT0 + 1s);
  CHECK(St(s, "any").reason == Reason::kRetryBackoff);  // a signal is a failure like any other
  CHECK(St(s, "any").attempts.at(0).signal == "KILL");
  CHECK(St(s, "any").attempts.at(0).reason == Reason::kSignal);
}

TEST_CASE("scheduler: timeouts retry only with on_timeout, limits pick the earlier of timeout and deadline") {
  Config config = TestConfig(2);
  config.default_timeout = 1h;
  Scheduler s(config);
  JobSpec plain = Spec("plain");
  plain.retry.attempts = 2;
  plain.timeout = 30s;
  JobSpec retried = plain;
  retried.id = "retried";
  retried.retry.on_timeout = true;
  retried.deadline = 20s;
  Submit(s, plain, kT0);
  Submit(s, retried, kT0);
  s.TakeStartable(kT0);
  CHECK(s.AttemptLimit("plain") == std::make_pair(kT0 + 30s, Reason::kTimeout));
  CHECK(s.AttemptLimit("retried") == std::make_pair(kT0 + 20s, Reason::kDeadline));
  s.AttemptEnded("plain", Cause(Reason::kTimeout), kT0 + 30s);
  CHECK(St(s, "plain").state == JobState::kFailed);
  CHECK(St(s, "plain").reason == Reason::kTimeout);
  s.AttemptEnded("retried", Cause(Reason::kDeadline), kT0 + 20s);
  CHECK(St(s, "retried").state == JobState::kFailed);
  CHECK(St(s, "retried").reason == Reason::kDeadline);

  JobSpec on_timeout = Spec("ot");
  on_timeout.retry.attempts = 1;
  on_timeout.retry.on_timeout = true;
  on_timeout.timeout = 0ms;  // no limit of its own: the pool default applies
  Submit(s, on_timeout, kT0);
  s.TakeStartable(kT0);
  CHECK_FALSE(s.AttemptLimit("ot").has_value());  // timeout 0 means none
  s.AttemptEnded("ot", Cause(Reason::kTimeout), kT0 + 5s);
  CHECK(St(s, "ot").reason == Reason::kRetryBackoff);
}

TEST_CASE("scheduler: the deadline ends queued jobs and refuses retries past it") {
  Scheduler s(TestConfig(1));
  JobSpec blocker = Spec("blocker");
  Submit(s, blocker, kT0);
  JobSpec late = Spec("late");
  late.deadline = 10s;
  Submit(s, late, kT0);
  s.TakeStartable(kT0);
  CHECK(s.NextWakeup() == kT0 + 10s);
  CHECK(s.Tick(kT0 + 10s) == std::vector<std::string>{"late"});
  CHECK(St(s, "late").state == JobState::kFailed);
  CHECK(St(s, "late").reason == Reason::kDeadline);
  CHECK(St(s, "late").attempts.empty());

  JobSpec r = Spec("r");
  r.deadline = 30s;
  r.retry.attempts = 5;
  r.retry.delay = 1min;
  Submit(s, r, kT0);
  s.AttemptEnded("blocker", Exit(0), kT0 + 1s);
  s.TakeStartable(kT0 + 1s);
  s.AttemptEnded("r", Exit(2), kT0 + 2s);
  CHECK(St(s, "r").state == JobState::kFailed);
  CHECK(St(s, "r").reason == Reason::kNonzeroExit);
  CHECK(St(s, "r").message.find("deadline") != std::string::npos);
}

TEST_CASE("scheduler: interruptions re-queue without using retries, the third fails the job") {
  Scheduler s(TestConfig());
  Submit(s, Spec("i"), kT0);
  for (int n = 1; n <= 2; ++n) {
    CHECK(s.TakeStartable(kT0) == std::vector<std::string>{"i"});
    s.AttemptEnded("i", Cause(Reason::kInterrupted), kT0 + 1s);
    CHECK(St(s, "i").state == JobState::kQueued);
    CHECK(St(s, "i").reason == Reason::kInQueue);
    CHECK(St(s, "i").interruptions == n);
  }
  s.TakeStartable(kT0);
  CHECK(St(s, "i").attempt == 3);
  CHECK(St(s, "i").message.find("attempt 1 of 1") != std::string::npos);  // interruptions are not counted
  s.AttemptEnded("i", Cause(Reason::kInterrupted), kT0 + 2s);
  CHECK(St(s, "i").state == JobState::kFailed);
  CHECK(St(s, "i").reason == Reason::kInterrupted);
}

TEST_CASE("scheduler: a job recovered as running counts as running until its attempt is recorded") {
  Scheduler s(TestConfig(1));
  JobSpec spec = Spec("rec");
  JobStatus status = NewStatus(spec, Reason::kNone, kT0);
  status.state = JobState::kRunning;
  status.attempt = 1;
  AttemptRecord running;
  running.attempt = 1;
  running.started = kT0;
  running.pid = 42;
  running.pid_start = 7;
  status.attempts.push_back(running);
  s.Add(spec, status);
  CHECK(s.Pools().at("default").running == 1);
  s.AttemptEnded("rec", Cause(Reason::kInterrupted), kT0 + 5s);
  CHECK(St(s, "rec").state == JobState::kQueued);
  CHECK(St(s, "rec").attempts.at(0).reason == Reason::kInterrupted);
  CHECK(s.TakeStartable(kT0 + 5s) == std::vector<std::string>{"rec"});
  CHECK(St(s, "rec").attempt == 2);
}

TEST_CASE("scheduler: cancel ends queued jobs at once and running ones when they exit") {
  Scheduler s(TestConfig(1));
  Submit(s, Spec("run"), kT0);
  Submit(s, Spec("wait"), kT0);
  s.TakeStartable(kT0);
  bool was_running = true;
  CHECK(s.Cancel("wait", kT0 + 1s, &was_running).ok());
  CHECK_FALSE(was_running);
  CHECK(St(s, "wait").state == JobState::kCancelled);
  CHECK(St(s, "wait").reason == Reason::kCancelledByUser);
  CHECK(s.Cancel("run", kT0 + 1s, &was_running).ok());
  CHECK(was_running);
  CHECK(St(s, "run").state == JobState::kRunning);  // until the process is gone
  s.AttemptEnded("run", Exit(0), kT0 + 2s);       // even a clean exit after cancel
  CHECK(St(s, "run").state == JobState::kCancelled);
  CHECK(s.Pools().at("default").queued == 0);
  // Illegal: cancelling what has ended, or what does not exist.
  auto again = s.Cancel("run", kT0 + 3s, &was_running);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().message.find("already cancelled") != std::string::npos);
  CHECK(s.Cancel("ghost", kT0, &was_running).error().code == "unknown_job");
}

TEST_CASE("scheduler: a retry's message dates the retry when it is not today (UTC)") {
  // kT0 is 2027-01-15T08:00:00Z.
  Scheduler s(TestConfig(3));
  for (const JobSpec& spec :
       {Retried("later", 1, 1h), Retried("days", 1, 48h), Retried("midnight", 1, 2min)}) {
    Submit(s, spec, kT0);
  }
  s.TakeStartable(kT0);
  s.AttemptEnded("later", Exit(3), kT0 + 1s);
  CHECK(St(s, "later").message == "attempt 1 of 2 exited with code 3; retrying at 09:00:01 UTC");
  s.AttemptEnded("days", Exit(3), kT0 + 1s);
  CHECK(St(s, "days").message == "attempt 1 of 2 exited with code 3; retrying at 2027-01-17 08:00:01 UTC");
  // Two minutes before midnight UTC: the retry falls on the next day.
  s.AttemptEnded("midnight", Exit(3), kT0 + 16h - 1min);
  CHECK(St(s, "midnight").message ==
        "attempt 1 of 2 exited with code 3; retrying at 2027-01-16 00:01:00 UTC");
}

TEST_CASE("scheduler: a cancelled or expired queued job's message says what had run") {
  Scheduler s(TestConfig(1));
  Submit(s, Retried("retrying", 3, 1min), kT0);
  JobSpec held = Spec("held");
  held.hold = true;
  Submit(s, held, kT0);
  s.TakeStartable(kT0);
  s.AttemptEnded("retrying", Exit(3), kT0 + 1s);
  REQUIRE(St(s, "retrying").reason == Reason::kRetryBackoff);
  bool was_running = true;
  CHECK(s.Cancel("retrying", kT0 + 2s, &was_running).ok());
  CHECK(St(s, "retrying").message == "cancelled by request while waiting to retry, after 1 attempt");
  CHECK(s.Cancel("held", kT0 + 2s, &was_running).ok());
  CHECK(St(s, "held").message == "cancelled by request before it ran");

  // Queued again after an interruption, then cancelled: it did run.
  Submit(s, Spec("interrupted"), kT0 + 3s);
  s.TakeStartable(kT0 + 3s);
  s.AttemptEnded("interrupted", Cause(Reason::kInterrupted), kT0 + 4s);
  CHECK(s.Cancel("interrupted", kT0 + 5s, &was_running).ok());
  CHECK(St(s, "interrupted").message ==
        "cancelled by request while waiting for a worker to run it again, after 1 interrupted attempt");

  // A running attempt's cancel says it was running.
  Submit(s, Spec("running"), kT0 + 6s);
  s.TakeStartable(kT0 + 6s);
  CHECK(s.Cancel("running", kT0 + 7s, &was_running).ok());
  s.AttemptEnded("running", Cause(Reason::kCancelledByUser), kT0 + 8s);
  CHECK(St(s, "running").message == "attempt 1 of 1 cancelled by request while running");

  // The deadline of a job waiting for a worker after its first attempt.
  JobSpec late = Retried("late", 1, 1s);
  late.deadline = 1min;
  Submit(s, late, kT0 + 10s);
  s.TakeStartable(kT0 + 10s);
  s.AttemptEnded("late", Exit(3), kT0 + 11s);
  Submit(s, Spec("blocker"), kT0 + 11s);
  CHECK(s.TakeStartable(kT0 + 11s) == std::vector<std::string>{"blocker"});
  s.Tick(kT0 + 12s);
  CHECK(s.Tick(kT0 + 70s) == std::vector<std::string>{"late"});
  CHECK(St(s, "late").reason == Reason::kDeadline);
  CHECK(St(s, "late").message ==
        "the job's deadline passed while waiting for a worker to run it again, after 1 attempt");

  // Its retry due in a paused pool.
  s.AttemptEnded("blocker", Exit(0), kT0 + 71s);
  Submit(s, Retried("paused", 1, 1s), kT0 + 71s);
  s.TakeStartable(kT0 + 71s);
  s.AttemptEnded("paused", Exit(3), kT0 + 72s);
  CHECK(s.Pause("default", kT0 + 72s).ok());
  s.Tick(kT0 + 73s);
  REQUIRE(St(s, "paused").reason == Reason::kPoolPaused);
  CHECK(s.Cancel("paused", kT0 + 74s, &was_running).ok());
  CHECK(St(s, "paused").message == "cancelled by request while pool default was paused, after 1 attempt");
}

TEST_CASE("scheduler: the third interruption is the job's, not its attempt's") {
  Scheduler s(TestConfig());
  Submit(s, Retried("i", 1, 1s), kT0);
  s.TakeStartable(kT0);
  s.AttemptEnded("i", Cause(Reason::kInterrupted), kT0 + 1s);
  s.TakeStartable(kT0 + 1s);
  s.AttemptEnded("i", Exit(3), kT0 + 2s);
  s.Tick(kT0 + 3s);
  for (int n = 0; n < 2; ++n) {
    CHECK(s.TakeStartable(kT0 + 3s) == std::vector<std::string>{"i"});
    s.AttemptEnded("i", Cause(Reason::kInterrupted), kT0 + 4s);
  }
  CHECK(St(s, "i").state == JobState::kFailed);
  // Attempt 2 was interrupted twice; the job three times.
  CHECK(St(s, "i").message ==
        "attempt 2 of 2 interrupted by a daemon stop; the job's third interruption ends it");
}

TEST_CASE("scheduler: spawn failures fail the job without retry, success records the attempt") {
  Scheduler s(TestConfig(2));
  JobSpec broken = Spec("broken");
  broken.retry.attempts = 3;
  Submit(s, broken, kT0);
  Submit(s, Spec("fine"), kT0);
  s.TakeStartable(kT0);
  AttemptEnd spawn;
  spawn.cause = Reason::kSpawnFailed;
  spawn.detail = "command nope not found in PATH";
  s.AttemptEnded("broken", spawn, kT0);
  CHECK(St(s, "broken").state == JobState::kFailed);
  CHECK(St(s, "broken").reason == Reason::kSpawnFailed);
  CHECK(St(s, "broken").message.find("not found") != std::string::npos);
  s.AttemptStarted("fine", 1234, 99, kT0);
  CHECK(St(s, "fine").pid == 1234);
  AttemptEnd ok = Exit(0);
  ok.cpu_user_s = 0.5;
  ok.max_rss_kb = 2048;
  s.AttemptEnded("fine", ok, kT0 + 1500ms);
  const AttemptRecord& a = St(s, "fine").attempts.at(0);
  CHECK(a.duration_s == doctest::Approx(1.5));
  CHECK(a.cpu_user_s == doctest::Approx(0.5));
  CHECK(a.max_rss_kb == 2048);
  CHECK(a.pid == 1234);
  CHECK(a.pid_start == 99u);
  CHECK(St(s, "fine").pid == std::nullopt);
  CHECK(St(s, "fine").finished == kT0 + 1500ms);
  auto changed = s.TakeChanged();
  CHECK(std::find(changed.begin(), changed.end(), "fine") != changed.end());
  CHECK(s.TakeChanged().empty());
}

TEST_CASE("scheduler: a job that could not start for want of resources goes back as it was") {
  Scheduler s(TestConfig(1));
  Submit(s, Spec("first"), kT0);
  Submit(s, Spec("second"), kT0);
  CHECK(s.TakeStartable(kT0) == std::vector<std::string>{"first"});
  s.AttemptNotStarted("first", "fork: Resource temporarily unavailable", kT0);
  CHECK(St(s, "first").state == JobState::kQueued);
  CHECK(St(s, "first").attempt == 0);
  CHECK(St(s, "first").attempts.empty());
  CHECK_FALSE(St(s, "first").started.has_value());
  CHECK(s.Pools().at("default").running == 0);
  CHECK(s.Pools().at("default").queued == 2);
  // Still first in line, and its first real attempt is number 1.
  CHECK(s.TakeStartable(kT0 + 1s) == std::vector<std::string>{"first"});
  CHECK(St(s, "first").attempt == 1);
}

TEST_CASE("scheduler: a reload adds pools and keeps a pause set by request") {
  Scheduler s(TestConfig());
  CHECK(s.Pause("default", kT0).ok());
  Config bigger = TestConfig(4);
  PoolConfig gpu;
  gpu.name = "gpu";
  gpu.workers = 1;
  bigger.pools["gpu"] = gpu;
  s.SetConfig(bigger, kT0);
  CHECK(s.Pools().at("default").paused);
  CHECK(s.Pools().at("default").config.workers == 4);
  CHECK(s.Pools().count("gpu") == 1);
  JobSpec g = Spec("g");
  g.pool = "gpu";
  CHECK(s.Admit(g).ok());
}

// A queued job far back in a long queue keeps its status short once it is
// written (daemon/sched_job.h): these cases check that every status read or
// written from such a job is the one it would have had whole.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "daemon/scheduler.h"
#include "spool/document.h"
#include "spool/intake.h"

using namespace spoold;
using namespace std::chrono_literals;

namespace {

const TimePoint kT0 = TimePoint(std::chrono::milliseconds(1'800'000'000'000));

Config Pools() {
  auto config = ParseConfig("[pools.default]\nworkers = 1\nqueue_limit = 1000\n[pools.other]\nworkers = 1\n",
                            "test.toml");
  REQUIRE(config.ok());
  return *config;
}

// A job file with every field the status takes from it.
std::string JobText(int n, const std::string& pool = "default") {
  return "command = [\"echo\", \"job-" + std::to_string(n) + "\"]\ntitle = \"Job number " +
         std::to_string(n) + "\"\npool = \"" + pool + "\"\ntags = [\"t" + std::to_string(n) +
         "\", \"batch\"]\n[retry]\nattempts = " + std::to_string(n % 3) +
         "\n[metadata]\nn = " + std::to_string(n) + "\nname = \"input-" + std::to_string(n) + ".tif\"\n";
}

// Admits and adds as the daemon's intake does, and returns the status it had.
JobStatus Submit(Scheduler& s, const std::string& id, const std::string& text, const Config& config,
                 TimePoint now) {
  auto doc = ParseDocument(text, DocFormat::kToml);
  REQUIRE(doc.ok());
  auto spec = ValidateJobSpec(*doc, id, config);
  REQUIRE_MESSAGE(spec.ok(), spec.error().message);
  auto reason = s.Admit(*spec);
  REQUIRE(reason.ok());
  JobStatus status = AcceptedStatus(id, *spec, "alice", 1000, *reason, now);
  status.seq = 3;
  s.Add(std::move(spec.value()), status, text);
  return status;
}

std::string Id(int i) { return "j" + std::to_string(1000 + i); }

// Fills the queue past kHotQueued and settles every job, as the daemon does
// once it has written each one's status. Returns the statuses as accepted.
std::vector<JobStatus> FillAndSettle(Scheduler& s, const Config& config, int n,
                                     const std::string& pool = "default") {
  std::vector<JobStatus> accepted;
  for (int i = 0; i < n; ++i) {
    accepted.push_back(Submit(s, Id(i), JobText(i, pool), config, kT0 + std::chrono::milliseconds(i)));
    s.Settle(Id(i));
  }
  return accepted;
}

}  // namespace

TEST_CASE("settled job: only jobs kept as text settle, and each gives back exactly the status it had") {
  const Config config = Pools();
  Scheduler s(config);
  const int n = Scheduler::kHotQueued + 10;
  const auto accepted = FillAndSettle(s, config, n);
  for (int i = 0; i < n; ++i) {
    const SchedJob& job = *s.Find(Id(i));
    CHECK_MESSAGE(job.Settled() == (i >= Scheduler::kHotQueued), "job ", i);
    // What the queue and control requests read, without a rebuild.
    CHECK(job.id() == Id(i));
    CHECK(job.pool() == "default");
    CHECK(job.state() == JobState::kQueued);
    CHECK(job.reason() == Reason::kInQueue);
    CHECK(job.owner_uid() == 1000);
    CHECK(job.created() == kT0 + std::chrono::milliseconds(i));
    CHECK(job.Settled() == (i >= Scheduler::kHotQueued));  // still: those reads rebuilt nothing
    // The whole status, rebuilt from the text: title, tags, metadata, owner,
    // max_attempts, seq, times.
    CHECK_MESSAGE(job.status() == accepted[i], "job ", i);
    CHECK(!job.Settled());
  }
  CHECK(s.Find(Id(n - 1))->status().metadata ==
        Json{{"n", n - 1}, {"name", "input-" + std::to_string(n - 1) + ".tif"}});
}

TEST_CASE(
    "settled job: a pause changes a settled job's status as it would a whole one, and it settles again") {
  const Config config = Pools();
  Scheduler s(config);
  const int n = Scheduler::kHotQueued + 3;
  const auto accepted = FillAndSettle(s, config, n);
  const std::string last = Id(n - 1);
  REQUIRE(s.Find(last)->Settled());

  REQUIRE(s.Pause("default", kT0 + 5s).ok());
  SchedJob& job = *s.Find(last);
  CHECK(!job.Settled());  // changed: whole until written
  CHECK(job.reason() == Reason::kPoolPaused);
  CHECK(job.status().message == "waiting: pool default is paused");
  CHECK(job.status().updated == kT0 + 5s);
  CHECK(job.status().title == accepted[n - 1].title);
  CHECK(job.status().tags == accepted[n - 1].tags);
  const JobStatus paused = job.status();
  auto changed = s.TakeChanged();
  CHECK(std::count(changed.begin(), changed.end(), last) == 1);

  s.Settle(last);
  CHECK(job.Settled());
  CHECK(job.reason() == Reason::kPoolPaused);
  CHECK(job.status() == paused);

  // Settled again after that read; resumed, it starts in its turn with its
  // own definition.
  s.Settle(last);
  REQUIRE(job.Settled());
  REQUIRE(s.Resume("default", kT0 + 6s).ok());
  for (int i = 0; i < n; ++i) {
    auto started = s.TakeStartable(kT0 + 7s);
    REQUIRE(started == std::vector<std::string>{Id(i)});
    const SchedJob& run = *s.Find(Id(i));
    CHECK(run.spec().command == std::vector<std::string>{"echo", "job-" + std::to_string(i)});
    CHECK(run.status().state == JobState::kRunning);
    CHECK(run.status().attempt == 1);
    CHECK(run.status().title == accepted[i].title);
    CHECK(run.status().metadata == accepted[i].metadata);
    CHECK(run.status().max_attempts == accepted[i].max_attempts);
    AttemptEnd end;
    end.exit_code = 0;
    s.AttemptEnded(Id(i), end, kT0 + 7s);
  }
}

TEST_CASE("settled job: one whose pool a reload removed is rebuilt whole, and waits for its pool") {
  const Config config = Pools();
  Scheduler s(config);
  const int n = Scheduler::kHotQueued + 2;
  const auto accepted = FillAndSettle(s, config, n, "other");
  const std::string last = Id(n - 1);
  REQUIRE(s.Find(last)->Settled());

  auto without = ParseConfig("[pools.default]\nworkers = 1\n", "test.toml");
  REQUIRE(without.ok());
  s.SetConfig(*without, kT0 + 2s);
  SchedJob& job = *s.Find(last);
  CHECK(job.reason() == Reason::kPoolPaused);
  CHECK(job.status().title == accepted[n - 1].title);
  CHECK(job.status().metadata == accepted[n - 1].metadata);
  s.Settle(last);
  CHECK(job.Settled());
  CHECK(job.status().pool == "other");
  CHECK(job.status().tags == accepted[n - 1].tags);
  CHECK(s.TakeStartable(kT0 + 3s).empty());
}

TEST_CASE("settled job: a status the job file does not give back stays whole") {
  const Config config = Pools();
  Scheduler s(config);
  for (int i = 0; i < Scheduler::kHotQueued; ++i) Submit(s, Id(i), JobText(i), config, kT0);

  // Recovered after an interrupted attempt: its attempts are not in its file.
  {
    auto doc = ParseDocument(JobText(100), DocFormat::kToml);
    REQUIRE(doc.ok());
    auto spec = ValidateJobSpec(*doc, "ran", config);
    REQUIRE(spec.ok());
    JobStatus status = AcceptedStatus("ran", *spec, "alice", 1000, Reason::kInQueue, kT0);
    status.attempt = 1;
    status.interruptions = 1;
    status.started = kT0;
    AttemptRecord record;
    record.attempt = 1;
    record.started = kT0;
    record.finished = kT0 + 1s;
    record.reason = Reason::kInterrupted;
    status.attempts.push_back(record);
    s.Add(std::move(spec.value()), status, JobText(100));
    REQUIRE(s.Find("ran")->kept.Frozen());
    s.Settle("ran");
    CHECK(!s.Find("ran")->Settled());
    CHECK(s.Find("ran")->status() == status);
  }
  // Its status.json was edited by hand: the title is not the file's.
  {
    auto doc = ParseDocument(JobText(101), DocFormat::kToml);
    REQUIRE(doc.ok());
    auto spec = ValidateJobSpec(*doc, "edited", config);
    REQUIRE(spec.ok());
    JobStatus status = AcceptedStatus("edited", *spec, "alice", 1000, Reason::kInQueue, kT0);
    status.title = "renamed";
    s.Add(std::move(spec.value()), status, JobText(101));
    REQUIRE(s.Find("edited")->kept.Frozen());
    s.Settle("edited");
    CHECK(!s.Find("edited")->Settled());
    CHECK(s.Find("edited")->status().title == "renamed");
  }
}

TEST_CASE("settled job: cancel and a passed deadline end a settled job with its whole status") {
  const Config config = Pools();
  Scheduler s(config);
  const int n = Scheduler::kHotQueued;
  FillAndSettle(s, config, n);
  // Keys after [metadata] would belong to it: put the deadline first.
  const std::string late = "deadline = \"10s\"\n" + JobText(7);
  const JobStatus a = Submit(s, "late", late, config, kT0);
  s.Settle("late");
  const JobStatus b = Submit(s, "cancelled", JobText(8), config, kT0);
  s.Settle("cancelled");
  REQUIRE(s.Find("late")->Settled());
  REQUIRE(s.Find("cancelled")->Settled());

  bool was_running = true;
  REQUIRE(s.Cancel("cancelled", kT0 + 1s, &was_running).ok());
  CHECK(!was_running);
  const JobStatus& cancelled = s.Find("cancelled")->status();
  CHECK(cancelled.state == JobState::kCancelled);
  CHECK(cancelled.title == b.title);
  CHECK(cancelled.metadata == b.metadata);
  CHECK(cancelled.message == "cancelled by request before it ran");

  auto changed = s.Tick(kT0 + 11s);
  CHECK(changed == std::vector<std::string>{"late"});
  const JobStatus& ended = s.Find("late")->status();
  CHECK(ended.state == JobState::kFailed);
  CHECK(ended.reason == Reason::kDeadline);
  CHECK(ended.tags == a.tags);
  CHECK(ended.owner == "alice");
  CHECK(s.Pools().at("default").queued == n);
}

TEST_CASE(
    "settled job: settled jobs keep their priority order, leave the queue at their place, and a held one is "
    "released whole") {
  const Config config = Pools();
  Scheduler s(config);
  FillAndSettle(s, config, Scheduler::kHotQueued);
  const JobStatus low = Submit(s, "low", "priority = 0\n" + JobText(1), config, kT0 + 1s);
  const JobStatus high = Submit(s, "high", "priority = 5\n" + JobText(2), config, kT0 + 1s);
  const JobStatus mid = Submit(s, "mid", "priority = 1\n" + JobText(3), config, kT0 + 1s);
  const JobStatus held = Submit(s, "held", "hold = true\n" + JobText(4), config, kT0 + 1s);
  for (const char* id : {"low", "high", "mid", "held"}) {
    s.Settle(id);
    REQUIRE_MESSAGE(s.Find(id)->Settled(), id);
  }
  CHECK(s.Find("held")->reason() == Reason::kHeld);
  CHECK(s.Find("held")->status() == held);
  s.Settle("held");

  REQUIRE(s.Release("held", kT0 + 2s).ok());
  const JobStatus& released = s.Find("held")->status();
  CHECK(released.reason == Reason::kInQueue);
  CHECK(released.message == "released by a start request");
  CHECK(released.title == held.title);
  CHECK(released.metadata == held.metadata);
  s.Settle("held");
  CHECK(s.Find("held")->Settled());

  // A settled job leaves the queue at its place (its priority is part of it):
  // cancelled, it never starts.
  bool was_running = true;
  REQUIRE(s.Cancel("mid", kT0 + 2s, &was_running).ok());
  CHECK(s.Find("mid")->status().metadata == mid.metadata);

  // A reload queues every waiting job again, settled ones without a rebuild.
  s.SetConfig(config, kT0 + 2s);
  CHECK(s.Find("low")->Settled());

  // One worker: the higher priorities first, then arrival order, each once.
  std::vector<std::string> order;
  for (int i = 0; i < Scheduler::kHotQueued + 3; ++i) {
    auto started = s.TakeStartable(kT0 + 3s);
    REQUIRE(started.size() == 1);
    order.push_back(started[0]);
    AttemptEnd end;
    end.exit_code = 0;
    s.AttemptEnded(started[0], end, kT0 + 3s);
  }
  CHECK(order[0] == "high");
  CHECK(order[1] == Id(0));
  CHECK(order[Scheduler::kHotQueued] == Id(Scheduler::kHotQueued - 1));
  CHECK(order[Scheduler::kHotQueued + 1] == "low");
  CHECK(order[Scheduler::kHotQueued + 2] == "held");
  CHECK(s.TakeStartable(kT0 + 4s).empty());
  CHECK(s.Find("mid")->status().state == JobState::kCancelled);
  CHECK(s.Find("high")->status().title == high.title);
  CHECK(s.Find("low")->status().tags == low.tags);
  CHECK(s.Find("held")->spec().command == std::vector<std::string>{"echo", "job-4"});
}

// A queued job far from the head of its queue keeps only the text it was
// accepted from (spool/kept_spec.h): these cases check that each such job still
// starts with its own definition, and that what the scheduler reads while the
// job waits (hold, deadline) works the same frozen as parsed.
#include <doctest/doctest.h>

#include <string>

#include "daemon/scheduler.h"
#include "spool/document.h"

using namespace spoold;
using namespace std::chrono_literals;

namespace {

const TimePoint kT0 = TimePoint(std::chrono::milliseconds(1'800'000'000'000));

Config OnePool(int workers) {
  auto config = ParseConfig("[pools.default]\nworkers = " + std::to_string(workers) +
                                "\nqueue_limit = 1000\n[pools.other]\nworkers = 1\n",
                            "test.toml");
  REQUIRE(config.ok());
  return *config;
}

JobSpec Parse(const std::string& id, const std::string& text, const Config& config,
              DocFormat format = DocFormat::kToml) {
  auto doc = ParseDocument(text, format);
  REQUIRE(doc.ok());
  auto spec = ValidateJobSpec(*doc, id, config);
  REQUIRE_MESSAGE(spec.ok(), spec.error().message);
  spec->format = format;
  return *spec;
}

// Admits and adds with the accepted text, as the daemon's intake does.
void Submit(Scheduler& s, const std::string& id, const std::string& text, const Config& config, TimePoint now,
            DocFormat format = DocFormat::kToml) {
  JobSpec spec = Parse(id, text, config, format);
  auto reason = s.Admit(spec);
  REQUIRE(reason.ok());
  JobStatus status;
  status.id = id;
  status.title = spec.title;
  status.pool = spec.pool;
  status.priority = spec.priority;
  status.reason = *reason;
  status.max_attempts = spec.retry.attempts + 1;
  status.created = status.updated = now;
  s.Add(std::move(spec), std::move(status), text);
}

std::string JobText(int n) {
  return "command = [\"echo\", \"job-" + std::to_string(n) + "\"]\nenv = { N = \"" + std::to_string(n) +
         "\" }\ntimeout = \"" + std::to_string(n + 1) + "s\"\n[retry]\nattempts = " + std::to_string(n % 3) +
         "\n";
}

AttemptEnd Exit(int code) {
  AttemptEnd end;
  end.exit_code = code;
  return end;
}

}  // namespace

TEST_CASE(
    "kept spec: jobs beyond the first kHotQueued of a queue keep only their text, and start as defined") {
  const Config config = OnePool(1);
  Scheduler s(config);
  const int n = Scheduler::kHotQueued + 20;
  for (int i = 0; i < n; ++i) Submit(s, "j" + std::to_string(1000 + i), JobText(i), config, kT0);
  for (int i = 0; i < n; ++i) {
    const SchedJob& job = *s.Find("j" + std::to_string(1000 + i));
    CHECK_MESSAGE(job.kept.Frozen() == (i >= Scheduler::kHotQueued), "job ", i);
  }
  // One at a time, FIFO: each starts with its own command, environment, timeout
  // and retry policy, read back from its text.
  for (int i = 0; i < n; ++i) {
    auto started = s.TakeStartable(kT0 + 1s);
    REQUIRE(started.size() == 1);
    CHECK(started[0] == "j" + std::to_string(1000 + i));
    const SchedJob& job = *s.Find(started[0]);
    REQUIRE(!job.kept.Frozen());
    CHECK(job.spec().command == std::vector<std::string>{"echo", "job-" + std::to_string(i)});
    CHECK(job.spec().env.at("N") == std::to_string(i));
    CHECK(job.status().max_attempts == i % 3 + 1);
    auto limit = s.AttemptLimit(started[0]);
    REQUIRE(limit);
    CHECK(limit->first == kT0 + 1s + std::chrono::seconds(i + 1));
    s.AttemptEnded(started[0], Exit(0), kT0 + 2s);
    CHECK(s.Find(started[0])->status().state == JobState::kSucceeded);
  }
}

TEST_CASE("kept spec: a frozen job keeps its hold, its deadline and its format") {
  const Config config = OnePool(1);
  Scheduler s(config);
  for (int i = 0; i < Scheduler::kHotQueued; ++i) Submit(s, "a" + std::to_string(i), JobText(i), config, kT0);
  Submit(s, "held", "command = [\"held\"]\nhold = true\n", config, kT0);
  Submit(s, "late", "command = [\"late\"]\ndeadline = \"1h\"\n", config, kT0);
  Submit(s, "json", R"({"command": ["from-json"], "priority": 5})", config, kT0, DocFormat::kJson);
  for (const char* id : {"held", "late", "json"}) REQUIRE(s.Find(id)->kept.Frozen());

  SUBCASE("held: waits until released, then starts with hold cleared") {
    CHECK(s.Find("held")->status().reason == Reason::kHeld);
    // The higher priority JSON job and the first hot ones run; held never does.
    for (int i = 0; i < Scheduler::kHotQueued + 2; ++i) {
      auto started = s.TakeStartable(kT0 + 1s);
      REQUIRE(started.size() == 1);
      CHECK(started[0] != "held");
      s.AttemptEnded(started[0], Exit(0), kT0 + 1s);
    }
    CHECK(s.TakeStartable(kT0 + 2s).empty());
    REQUIRE(s.Release("held", kT0 + 3s).ok());
    auto started = s.TakeStartable(kT0 + 3s);
    REQUIRE(started == std::vector<std::string>{"held"});
    CHECK(s.Find("held")->spec().command == std::vector<std::string>{"held"});
    CHECK_FALSE(s.Find("held")->spec().hold);
  }
  SUBCASE("deadline: fails while frozen in the queue") {
    s.Tick(kT0 + 1h + 1s);
    CHECK(s.Find("late")->status().state == JobState::kFailed);
    CHECK(s.Find("late")->status().reason == Reason::kDeadline);
  }
  SUBCASE("json: jumps the queue by priority and is parsed as JSON") {
    auto started = s.TakeStartable(kT0 + 1s);
    REQUIRE(started == std::vector<std::string>{"json"});
    CHECK(s.Find("json")->spec().command == std::vector<std::string>{"from-json"});
    CHECK(s.Find("json")->spec().format == DocFormat::kJson);
  }
}

TEST_CASE("kept spec: a text that no longer validates fails its job with the reason, not the daemon") {
  const Config config = OnePool(1);
  Scheduler s(config);
  for (int i = 0; i < Scheduler::kHotQueued; ++i) Submit(s, "a" + std::to_string(i), JobText(i), config, kT0);
  // Added with a text that is not the one its spec came from (only memory
  // corruption could do this in the daemon).
  JobSpec spec = Parse("broken", "command = [\"x\"]\npriority = 9\n", config);
  JobStatus status;
  status.id = "broken";
  status.pool = "default";
  status.priority = 9;
  status.reason = Reason::kInQueue;
  status.created = status.updated = kT0;
  s.Add(std::move(spec), std::move(status), "command = [\"x\"]\npriority = 9\nnot_a_key = 1\n");
  REQUIRE(s.Find("broken")->kept.Frozen());
  auto started = s.TakeStartable(kT0 + 1s);
  // The broken job is failed; the next one in the queue takes its worker.
  CHECK(started == std::vector<std::string>{"a0"});
  const SchedJob& job = *s.Find("broken");
  CHECK(job.status().state == JobState::kFailed);
  CHECK(job.status().reason == Reason::kSpawnFailed);
  CHECK(job.status().message.find("not_a_key") != std::string::npos);
  CHECK(s.Pools().at("default").queued == Scheduler::kHotQueued - 1);
  CHECK(s.Pools().at("default").running == 1);
}

TEST_CASE(
    "kept spec: a reload that drops a pool leaves its queued jobs waiting, frozen or not, until it is back") {
  const Config config = OnePool(1);  // "default" and "other"
  Scheduler s(config);
  const int n = Scheduler::kHotQueued + 5;
  for (int i = 0; i < n; ++i) {
    Submit(s, "j" + std::to_string(1000 + i), "pool = \"other\"\n" + JobText(i), config, kT0);
  }
  const std::string last = "j" + std::to_string(1000 + n - 1);
  REQUIRE(s.Find(last)->kept.Frozen());
  auto first = s.TakeStartable(kT0 + 1s);
  REQUIRE(first == std::vector<std::string>{"j1000"});

  // Reloaded without "other": the running job goes on; nothing else starts.
  auto without = ParseConfig("[pools.default]\nworkers = 1\n", "test.toml");
  REQUIRE(without.ok());
  s.SetConfig(*without, kT0 + 2s);
  CHECK(s.Find("j1001")->status().reason == Reason::kPoolPaused);
  CHECK(s.Find(last)->status().reason == Reason::kPoolPaused);
  s.AttemptEnded("j1000", Exit(0), kT0 + 3s);
  CHECK(s.Find("j1000")->status().state == JobState::kSucceeded);
  CHECK(s.TakeStartable(kT0 + 3s).empty());
  // A resume request does not make an unconfigured pool start anything.
  REQUIRE(s.Resume("other", kT0 + 4s).ok());
  CHECK(s.TakeStartable(kT0 + 4s).empty());

  // Configured again: every job runs, the frozen ones as defined.
  s.SetConfig(config, kT0 + 5s);
  for (int i = 1; i < n; ++i) {
    auto started = s.TakeStartable(kT0 + 6s);
    REQUIRE(started.size() == 1);
    const SchedJob& job = *s.Find(started[0]);
    CHECK(job.spec().command == std::vector<std::string>{"echo", "job-" + std::to_string(i)});
    s.AttemptEnded(started[0], Exit(0), kT0 + 6s);
    CHECK(s.Find(started[0])->status().state == JobState::kSucceeded);
  }
}

// The Prometheus metrics (daemon/metrics.h, SPEC.md section 11): what the
// scheduler counts as jobs run, and the text it renders. The text is also
// checked by promtool and a real node exporter in tests/blackbox/test_metrics.py.
#include "daemon/metrics.h"

#include <doctest/doctest.h>

#include <sstream>

#include "daemon/scheduler.h"
#include "scheduler_test_helpers.h"
#include "spool/intake.h"
#include "spool/job_index.h"

using namespace spoold;
using namespace std::chrono_literals;
using namespace schedtest;

namespace {

// The value of the sample written exactly `series` (name and labels), or -1.
double Sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

Metrics::Snapshot OnePool(const std::string& name = "default") {
  Metrics::Snapshot snapshot;
  snapshot.pools.push_back({name, 2, 1, 3, false});
  snapshot.version = "9.9.9";
  snapshot.start_time_s = 1800000000.5;
  return snapshot;
}

void Submit(Scheduler& s, const JobSpec& spec, TimePoint now) {
  auto reason = s.Admit(spec);
  REQUIRE(reason.ok());
  s.Add(spec, AcceptedStatus(spec.id, spec, "", -1, *reason, now));
}

}  // namespace

TEST_CASE("metrics: the scheduler counts attempts, retries, timeouts, waits and ends by pool") {
  Metrics metrics;
  Scheduler s(TestConfig(/*workers=*/1));
  s.SetMetrics(&metrics);
  JobSpec flaky = PlainJob("flaky");
  flaky.retry.attempts = 2;
  flaky.retry.on_timeout = true;
  flaky.retry.delay = Millis(0);
  Submit(s, flaky, kT0);
  Submit(s, PlainJob("ok"), kT0);
  Submit(s, PlainJob("dropped"), kT0);

  REQUIRE(s.TakeStartable(kT0 + 2s) == std::vector<std::string>{"flaky"});
  s.AttemptStarted("flaky", 100, std::nullopt, kT0 + 2s);
  s.AttemptEnded("flaky", Cause(Reason::kTimeout), kT0 + 12s);  // retried at once
  s.Tick(kT0 + 12s);
  REQUIRE(s.TakeStartable(kT0 + 12s) == std::vector<std::string>{"flaky"});
  s.AttemptStarted("flaky", 101, std::nullopt, kT0 + 12s);
  s.AttemptEnded("flaky", Exit(1), kT0 + 14s);  // retried again
  s.Tick(kT0 + 14s);
  REQUIRE(s.TakeStartable(kT0 + 14s) == std::vector<std::string>{"flaky"});
  s.AttemptStarted("flaky", 102, std::nullopt, kT0 + 14s);
  s.AttemptEnded("flaky", Exit(0), kT0 + 15s);
  REQUIRE(s.TakeStartable(kT0 + 15s) == std::vector<std::string>{"ok"});
  s.AttemptStarted("ok", 103, std::nullopt, kT0 + 15s);
  s.AttemptEnded("ok", Exit(2), kT0 + 16s);  // no retry: fails
  bool found = false;
  REQUIRE(s.Cancel("dropped", kT0 + 16s, &found).ok());  // never started
  // An attempt that could not start counts neither as started nor as run.
  Submit(s, PlainJob("broken"), kT0 + 16s);
  REQUIRE(s.TakeStartable(kT0 + 16s) == std::vector<std::string>{"broken"});
  s.AttemptEnded("broken", Cause(Reason::kSpawnFailed), kT0 + 16s);

  const std::string text = metrics.Render(OnePool());
  CHECK(Sample(text, "spoold_attempts_started_total{pool=\"default\"}") == 4);
  CHECK(Sample(text, "spoold_retries_total{pool=\"default\"}") == 2);
  CHECK(Sample(text, "spoold_timeouts_total{pool=\"default\"}") == 1);
  CHECK(Sample(text, "spoold_jobs_finished_total{pool=\"default\",outcome=\"succeeded\"}") == 1);
  CHECK(Sample(text, "spoold_jobs_finished_total{pool=\"default\",outcome=\"failed\"}") == 2);
  CHECK(Sample(text, "spoold_jobs_finished_total{pool=\"default\",outcome=\"cancelled\"}") == 1);
  // Queue wait: the first attempts only, 2 s (flaky) and 15 s (ok) after acceptance.
  CHECK(Sample(text, "spoold_queue_wait_seconds_count{pool=\"default\"}") == 2);
  CHECK(Sample(text, "spoold_queue_wait_seconds_sum{pool=\"default\"}") == 17);
  CHECK(Sample(text, "spoold_queue_wait_seconds_bucket{pool=\"default\",le=\"1\"}") == 0);
  CHECK(Sample(text, "spoold_queue_wait_seconds_bucket{pool=\"default\",le=\"5\"}") == 1);
  CHECK(Sample(text, "spoold_queue_wait_seconds_bucket{pool=\"default\",le=\"30\"}") == 2);
  // Durations 10 s, 2 s, 1 s, 1 s: buckets are cumulative, +Inf holds all.
  CHECK(Sample(text, "spoold_attempt_duration_seconds_bucket{pool=\"default\",le=\"1\"}") == 2);
  CHECK(Sample(text, "spoold_attempt_duration_seconds_bucket{pool=\"default\",le=\"5\"}") == 3);
  CHECK(Sample(text, "spoold_attempt_duration_seconds_bucket{pool=\"default\",le=\"10\"}") == 4);
  CHECK(Sample(text, "spoold_attempt_duration_seconds_bucket{pool=\"default\",le=\"+Inf\"}") == 4);
  CHECK(Sample(text, "spoold_attempt_duration_seconds_sum{pool=\"default\"}") == 14);
}

TEST_CASE("metrics: every configured pool has its series at zero, gauges come from the snapshot") {
  Metrics metrics;
  metrics.Rejected("job", "unknown_field");
  metrics.Rejected("job", "unknown_field");
  metrics.Rejected("control", "unknown_job");
  Metrics::Snapshot snapshot = OnePool("gpu");
  snapshot.pools.push_back({"idle", 4, 0, 0, true});
  snapshot.jobs.push_back({"gpu", JobState::kSucceeded, 7});
  const std::string text = metrics.Render(snapshot);
  CHECK(Sample(text, "spoold_build_info{version=\"9.9.9\"}") == 1);
  CHECK(Sample(text, "spoold_start_time_seconds") == 1800000000.5);
  CHECK(Sample(text, "spoold_jobs{pool=\"gpu\",state=\"succeeded\"}") == 7);
  CHECK(Sample(text, "spoold_jobs{pool=\"idle\",state=\"running\"}") == 0);
  CHECK(Sample(text, "spoold_pool_workers{pool=\"gpu\"}") == 2);
  CHECK(Sample(text, "spoold_pool_queued{pool=\"gpu\"}") == 3);
  CHECK(Sample(text, "spoold_pool_paused{pool=\"idle\"}") == 1);
  CHECK(Sample(text, "spoold_jobs_finished_total{pool=\"idle\",outcome=\"failed\"}") == 0);
  CHECK(Sample(text, "spoold_attempt_duration_seconds_count{pool=\"idle\"}") == 0);
  CHECK(Sample(text, "spoold_rejections_total{kind=\"job\",code=\"unknown_field\"}") == 2);
  CHECK(Sample(text, "spoold_rejections_total{kind=\"control\",code=\"unknown_job\"}") == 1);
  // One HELP and one TYPE per family, each before its samples.
  CHECK(text.find("# TYPE spoold_attempt_duration_seconds histogram\n") != std::string::npos);
  CHECK(text.find("# TYPE spoold_jobs_finished_total counter\n") < text.find("spoold_jobs_finished_total{"));
}

TEST_CASE("metrics: label values are escaped as the text format requires") {
  Metrics metrics;
  metrics.Rejected("job", "a\"b\\c\nd");
  const std::string text = metrics.Render(OnePool());
  CHECK(text.find("code=\"a\\\"b\\\\c\\nd\"} 1\n") != std::string::npos);
}

TEST_CASE("metrics: the index counts its entries by pool and state as they change") {
  const std::string dir = "/tmp/spoold-metrics-test-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  JobIndex index(dir + "/segment");
  REQUIRE(index.Open().ok());
  auto status = [](const std::string& id, const std::string& pool, JobState state) {
    JobStatus s;
    s.id = id;
    s.pool = pool;
    s.state = state;
    s.created = s.updated = kT0;
    if (IsTerminal(state)) s.finished = kT0;
    return s;
  };
  auto count = [&index](const std::string& pool, JobState state) -> int64_t {
    for (const auto& c : index.Counts()) {
      if (c.pool == pool && c.state == state) return c.count;
    }
    return 0;
  };
  index.Set("a", status("a", "default", JobState::kQueued));
  index.Set("b", status("b", "default", JobState::kQueued));
  index.Set("c", status("c", "gpu", JobState::kRunning));
  CHECK(count("default", JobState::kQueued) == 2);
  index.Set("a", status("a", "default", JobState::kRunning));
  index.Set("a", status("a", "default", JobState::kSucceeded));
  index.Set("c", status("c", "gpu", JobState::kFailed));
  index.Set("c", status("c", "gpu", JobState::kCancelled));  // an ended entry replaced
  CHECK(count("default", JobState::kQueued) == 1);
  CHECK(count("default", JobState::kRunning) == 0);
  CHECK(count("default", JobState::kSucceeded) == 1);
  CHECK(count("gpu", JobState::kFailed) == 0);
  CHECK(count("gpu", JobState::kCancelled) == 1);
  CHECK(index.Erase("b"));
  CHECK(index.Erase("c"));
  CHECK(count("default", JobState::kQueued) == 0);
  CHECK(count("gpu", JobState::kCancelled) == 0);
  CHECK(index.Counts().size() == 1);
  std::filesystem::remove_all(dir);
}

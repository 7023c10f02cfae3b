// Resources in the scheduler (SPEC.md section 5, "Resources"): packing by
// CPUs, memory and GPUs within a pool's and the machine's capacity, the CPU
// numbers and devices each attempt gets, and the rule that keeps a large job
// from starving behind small ones. A fake clock; no processes.
#include <doctest/doctest.h>

#include <set>

#include "daemon/scheduler.h"
#include "scheduler_test_helpers.h"
#include "spool/intake.h"

using namespace spoold;
using namespace std::chrono_literals;
using namespace schedtest;

namespace {

constexpr int64_t kG = int64_t{1} << 30;

// One machine of `cpus` CPUs, 8G and GPUs 0..`gpus`-1; pools "default" and
// "other" with `workers` each and the whole machine as their capacity.
Config Machine(int cpus, int gpus = 0, int workers = 16) {
  Config config = TestConfig(workers);
  config.machine.cpus = cpus;
  config.machine.memory = 8 * kG;
  config.machine.cpu_ids.clear();
  for (int c = 0; c < cpus; ++c) config.machine.cpu_ids.push_back(c);
  for (int g = 0; g < gpus; ++g) config.machine.gpus.push_back(g);
  return config;
}

JobSpec Asks(const std::string& id, ResourceAmounts want, Millis timeout = 1h,
             const std::string& pool = "default") {
  JobSpec spec = PlainJob(id);
  spec.resources = want;
  spec.timeout = timeout;
  spec.pool = pool;
  return spec;
}

void Submit(Scheduler& s, const JobSpec& spec, TimePoint now) {
  auto reason = s.Admit(spec);
  REQUIRE(reason.ok());
  s.Add(spec, AcceptedStatus(spec.id, spec, "", -1, *reason, now));
}

const AttemptRecord& Last(Scheduler& s, const std::string& id) {
  REQUIRE_FALSE(St(s, id).attempts.empty());
  return St(s, id).attempts.back();
}

// Adds `spec` as a job found running (recovery, or a folder taken in), its
// attempt holding CPUs `cpus` and devices `gpus`.
void AddRunning(Scheduler& s, const JobSpec& spec, std::vector<int> cpus, std::vector<int> gpus) {
  JobStatus status = AcceptedStatus(spec.id, spec, "", -1, Reason::kInQueue, kT0);
  status.state = JobState::kRunning;
  status.reason = Reason::kNone;
  status.attempt = 1;
  AttemptRecord a;
  a.attempt = 1;
  a.started = kT0;
  a.cpus = std::move(cpus);
  a.gpus = std::move(gpus);
  status.attempts.push_back(a);
  s.Add(spec, status);
}

}  // namespace

TEST_CASE("resources: jobs are packed by CPUs and memory, never over capacity, the right one next") {
  Scheduler s(Machine(4));
  Submit(s, Asks("a", {2, 4 * kG, 0}), kT0);
  Submit(s, Asks("b", {1, 3 * kG, 0}), kT0);
  Submit(s, Asks("c", {3, 2 * kG, 0}), kT0);         // neither 3 CPUs nor 2G are left
  Submit(s, Asks("d", {1, 1 * kG, 0}, 2h), kT0);     // fits, but would delay c: it may run past a's end
  Submit(s, Asks("e", {0, 512 << 20, 0}, 2h), kT0);  // no CPU: only memory, and c leaves enough of it
  REQUIRE(s.TakeStartable(kT0) == std::vector<std::string>{"a", "b", "e"});
  CHECK(St(s, "c").reason == Reason::kResources);
  CHECK(St(s, "c").message.find("3 CPUs") != std::string::npos);
  CHECK(St(s, "d").reason == Reason::kInQueue);
  // Distinct CPUs, the lowest first.
  CHECK(Last(s, "a").cpus == std::vector<int>{0, 1});
  CHECK(Last(s, "b").cpus == std::vector<int>{2});
  CHECK(Last(s, "e").cpus.empty());
  CHECK(s.Ledger().MachineFree().cpus == 1);
  CHECK(s.Ledger().MachineFree().memory == 512 << 20);

  // a ends: c is next, with a's CPUs and the one left; d waits for it now.
  s.AttemptEnded("a", Exit(0), kT0 + 1s);
  CHECK(s.TakeStartable(kT0 + 1s) == std::vector<std::string>{"c"});
  CHECK(Last(s, "c").cpus == std::vector<int>{0, 1, 3});
  CHECK(St(s, "c").reason == Reason::kNone);
  CHECK(St(s, "d").reason == Reason::kResources);
  CHECK(s.Ledger().MachineFree().cpus == 0);
  s.AttemptEnded("b", Exit(0), kT0 + 2s);
  CHECK(s.TakeStartable(kT0 + 2s) == std::vector<std::string>{"d"});
  CHECK(Last(s, "d").cpus == std::vector<int>{2});
}

TEST_CASE("resources: a large job at the head is not starved by a stream of small ones") {
  Scheduler s(Machine(4));
  // Two small jobs run, each to at most 10 minutes.
  Submit(s, Asks("small-1", {1, 0, 0}, 10min), kT0);
  Submit(s, Asks("small-2", {1, 0, 0}, 10min), kT0);
  CHECK(s.TakeStartable(kT0).size() == 2);
  // The large one needs all 4 CPUs: reserved for when both have ended (10 min).
  Submit(s, Asks("large", {4, 0, 0}, 1h), kT0 + 1s);
  // A stream of small jobs behind it: one of an hour would delay it; one of
  // 5 minutes ends before it could start, and goes ahead.
  Submit(s, Asks("long-small", {1, 0, 0}, 1h), kT0 + 2s);
  Submit(s, Asks("short-small", {1, 0, 0}, 5min), kT0 + 3s);
  Submit(s, Asks("no-limit", {1, 0, 0}, 0ms), kT0 + 4s);  // no limit: never ahead of a reserved job
  CHECK(s.TakeStartable(kT0 + 5s) == std::vector<std::string>{"short-small"});
  CHECK(St(s, "large").reason == Reason::kResources);
  CHECK(St(s, "long-small").state == JobState::kQueued);
  CHECK(St(s, "no-limit").state == JobState::kQueued);
  // Many more passes, many more small jobs: still none of the long ones.
  for (int i = 0; i < 20; ++i) {
    Submit(s, Asks("more-" + std::to_string(i), {1, 0, 0}, 1h), kT0 + 6s);
    CHECK(s.TakeStartable(kT0 + 6s).empty());
  }
  s.AttemptEnded("small-1", Exit(0), kT0 + 5min);
  s.AttemptEnded("small-2", Exit(0), kT0 + 6min);
  s.AttemptEnded("short-small", Exit(0), kT0 + 7min);
  CHECK(s.TakeStartable(kT0 + 7min) == std::vector<std::string>{"large"});
  CHECK(Last(s, "large").cpus == std::vector<int>{0, 1, 2, 3});
  // The next job that does not fit is the reserved one now.
  CHECK(St(s, "long-small").reason == Reason::kResources);
  CHECK(St(s, "no-limit").reason == Reason::kInQueue);
}

TEST_CASE("resources: what is left over beyond the reserved job's need goes to others at once") {
  Scheduler s(Machine(4));
  Submit(s, Asks("running", {2, 0, 0}, 0ms), kT0);  // no limit: its end is not known
  CHECK(s.TakeStartable(kT0).size() == 1);
  Submit(s, Asks("large", {3, 0, 0}), kT0);
  Submit(s, Asks("fits-beside", {1, 0, 0}, 0ms), kT0);  // 4 - 3 leaves 1 CPU even once large runs
  Submit(s, Asks("too-much", {2, 0, 0}, 0ms), kT0);
  CHECK(s.TakeStartable(kT0 + 1s) == std::vector<std::string>{"fits-beside"});
  CHECK(St(s, "large").reason == Reason::kResources);
  CHECK(St(s, "too-much").state == JobState::kQueued);
}

TEST_CASE("resources: GPUs are distinct devices across running jobs") {
  Scheduler s(Machine(4, /*gpus=*/3));
  for (const char* id : {"g1", "g2", "g3", "g4"}) Submit(s, Asks(id, {0, 0, 1}), kT0);
  Submit(s, Asks("two", {0, 0, 2}), kT0);
  CHECK(s.TakeStartable(kT0) == std::vector<std::string>{"g1", "g2", "g3"});
  std::set<int> devices;
  for (const char* id : {"g1", "g2", "g3"}) {
    REQUIRE(Last(s, id).gpus.size() == 1);
    devices.insert(Last(s, id).gpus[0]);
  }
  CHECK(devices == std::set<int>{0, 1, 2});
  CHECK(St(s, "g4").reason == Reason::kResources);
  CHECK(St(s, "g4").message.find("GPU") != std::string::npos);
  s.AttemptEnded("g2", Exit(0), kT0 + 1s);
  CHECK(s.TakeStartable(kT0 + 1s) == std::vector<std::string>{"g4"});
  CHECK(Last(s, "g4").gpus == std::vector<int>{1});
}

TEST_CASE("resources: pools share the machine, and a pool's reserved job is protected from the others") {
  Config config = Machine(2);
  Scheduler s(config);
  Submit(s, Asks("running", {1, 0, 0}, 10min), kT0);
  CHECK(s.TakeStartable(kT0).size() == 1);
  Submit(s, Asks("big", {2, 0, 0}), kT0 + 1s);
  CHECK(s.TakeStartable(kT0 + 1s).empty());
  CHECK(St(s, "big").reason == Reason::kResources);
  // A job of the other pool, visited after "default", of an hour: it would
  // take the CPU the reserved job needs.
  Submit(s, Asks("elsewhere", {1, 0, 0}, 1h, "other"), kT0 + 2s);
  CHECK(s.TakeStartable(kT0 + 2s).empty());
  // One that ends before the reserved job can start goes.
  Submit(s, Asks("quick", {1, 0, 0}, 1min, "other"), kT0 + 3s);
  CHECK(s.TakeStartable(kT0 + 3s) == std::vector<std::string>{"quick"});
  CHECK(s.Ledger().MachineFree().cpus == 0);
}

TEST_CASE("resources: jobs without a request take only a worker, as before") {
  Scheduler s(Machine(1, 0, /*workers=*/3));
  Submit(s, Asks("cpu", {1, 0, 0}), kT0);
  Submit(s, Asks("plain-1", {0, 0, 0}), kT0);
  Submit(s, Asks("plain-2", {0, 0, 0}), kT0);
  CHECK(s.TakeStartable(kT0).size() == 3);
  CHECK(Last(s, "plain-1").cpus.empty());
}

TEST_CASE("resources: a request more than the pool has after a reload waits, naming it, and blocks nobody") {
  Scheduler s(Machine(4));
  Submit(s, Asks("wide", {4, 0, 0}), kT0);
  Submit(s, Asks("narrow", {1, 0, 0}), kT0);
  Config smaller = Machine(4);
  smaller.pools["default"].cpus = 2;
  s.SetConfig(smaller, kT0);
  CHECK(s.TakeStartable(kT0) == std::vector<std::string>{"narrow"});
  CHECK(St(s, "wide").reason == Reason::kResources);
  CHECK(St(s, "wide").message.find("more than pool") != std::string::npos);
}

TEST_CASE("resources: an attempt killed at its memory limit ends out_of_memory and frees its share") {
  Scheduler s(Machine(2));
  JobSpec spec = Asks("hungry", {1, 1 * kG, 0});
  Submit(s, spec, kT0);
  Submit(s, Asks("next", {2, 0, 0}), kT0);
  CHECK(s.TakeStartable(kT0) == std::vector<std::string>{"hungry"});
  AttemptEnd end;
  end.signal = 9;
  end.out_of_memory = true;
  end.memory_peak = 1 * kG;
  s.AttemptEnded("hungry", end, kT0 + 1s);
  CHECK(St(s, "hungry").state == JobState::kFailed);
  CHECK(St(s, "hungry").reason == Reason::kOutOfMemory);
  CHECK(Last(s, "hungry").memory_peak == 1 * kG);
  CHECK(St(s, "hungry").message.find("out of memory") != std::string::npos);
  CHECK(s.TakeStartable(kT0 + 1s) == std::vector<std::string>{"next"});

  // A succeeded attempt whose child was killed so is no failure.
  Scheduler t(Machine(2));
  Submit(t, Asks("ok", {1, 1 * kG, 0}), kT0);
  CHECK(t.TakeStartable(kT0).size() == 1);
  AttemptEnd fine = Exit(0);
  fine.out_of_memory = true;
  t.AttemptEnded("ok", fine, kT0 + 1s);
  CHECK(St(t, "ok").state == JobState::kSucceeded);
}

TEST_CASE("resources: a running job found at recovery keeps its CPUs and devices") {
  Scheduler s(Machine(4, 2));
  AddRunning(s, Asks("old", {2, 0, 1}), {1, 2}, {1});
  Submit(s, Asks("new", {2, 0, 1}), kT0);
  CHECK(s.TakeStartable(kT0) == std::vector<std::string>{"new"});
  CHECK(Last(s, "new").cpus == std::vector<int>{0, 3});
  CHECK(Last(s, "new").gpus == std::vector<int>{0});
}

TEST_CASE("resources: an array whose next task does not fit stays running, and a cancel stops its tasks") {
  Scheduler s(Machine(4));
  JobSpec array = Asks("sweep", {2, 0, 0});
  auto ranges = ParseIndexes("0-3");
  REQUIRE(ranges.ok());
  auto spec = std::make_shared<ArraySpec>();
  spec->ranges = *ranges;
  spec->Seal();
  array.array = spec;
  Submit(s, array, kT0);
  const auto started = s.TakeStartable(kT0);
  CHECK(started.size() == 2);  // two tasks of 2 CPUs each
  CHECK(s.TakeStartable(kT0 + 1s).empty());
  CHECK(St(s, "sweep").state == JobState::kRunning);
  CHECK(s.Pools().at("default").queued >= 0);
  std::vector<std::string> to_stop;
  REQUIRE(s.Cancel("sweep", kT0 + 2s, &to_stop).ok());
  CHECK(to_stop.size() == 2);
}

TEST_CASE("resources: a job taken in with CPUs another job holds does not free them when it ends") {
  Scheduler s(Machine(2));
  Submit(s, Asks("live", {1, 0, 0}), kT0);
  REQUIRE(s.TakeStartable(kT0).size() == 1);
  REQUIRE(Last(s, "live").cpus == std::vector<int>{0});
  // A folder found running, naming CPU 0 too (imported, say).
  AddRunning(s, Asks("found", {1, 0, 0}), {0}, {});
  s.AttemptEnded("found", Exit(0), kT0 + 1s);
  // CPU 0 is still live's: the next job gets CPU 1.
  Submit(s, Asks("next", {1, 0, 0}), kT0 + 1s);
  CHECK(s.TakeStartable(kT0 + 1s) == std::vector<std::string>{"next"});
  CHECK(Last(s, "next").cpus == std::vector<int>{1});
}

TEST_CASE("resources: two pools' reserved jobs for the same CPUs do not hold each other back") {
  Scheduler s(Machine(4));
  Submit(s, Asks("holder", {4, 0, 0}, 10min), kT0);
  REQUIRE(s.TakeStartable(kT0).size() == 1);
  Submit(s, Asks("wide", {4, 0, 0}), kT0 + 1s);
  Submit(s, Asks("narrow", {2, 0, 0}, 1h, "other"), kT0 + 1s);
  CHECK(s.TakeStartable(kT0 + 1s).empty());
  CHECK(St(s, "wide").reason == Reason::kResources);
  CHECK(St(s, "narrow").reason == Reason::kResources);
  s.AttemptEnded("holder", Exit(0), kT0 + 2s);
  // One of them starts at once: never neither.
  const auto started = s.TakeStartable(kT0 + 2s);
  CHECK(started.size() == 1);
}

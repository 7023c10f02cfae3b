// The daemon's Prometheus metrics (SPEC.md section 11): counters and
// histograms fed by the scheduler and the intake as things happen, and the
// text exposition format (version 0.0.4) rendered from them plus a snapshot
// of the gauges (pools, jobs by state). Pure: no clock, no I/O; the daemon
// writes the text (daemon_metrics.cpp). Counters start at zero with the
// process, as every Prometheus client's do; spoold_start_time_seconds tells
// a reset, which rate() and increase() take in their stride.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "spool/status.h"

namespace spoold {

class Metrics {
 public:
  // Upper bounds (seconds) of the histograms' buckets; +Inf is implied.
  static constexpr std::array<double, 14> kWaitBuckets = {0.01, 0.05, 0.1, 0.5, 1,    5,    10,
                                                          30,   60,   300, 900, 1800, 3600, 14400};
  static constexpr std::array<double, 14> kDurationBuckets = {0.1, 0.5, 1,    5,    10,    30,    60,
                                                              300, 900, 1800, 3600, 14400, 43200, 86400};

  // An attempt began to run (a local process started, a Slurm job submitted);
  // `queue_wait_s`: for a job's first attempt, the seconds since it was
  // accepted, else negative.
  void AttemptStarted(const std::string& pool, double queue_wait_s);
  // An attempt ended after `duration_s`, for `reason` (kTimeout counts a timeout).
  void AttemptEnded(const std::string& pool, double duration_s, Reason reason);
  void RetryScheduled(const std::string& pool);
  // A job (not a task of an array) ended.
  void JobFinished(const std::string& pool, JobState state);
  void JobAccepted(const std::string& pool);
  // A job file (kind "job") or control request (kind "control") was refused with `code`.
  void Rejected(std::string_view kind, std::string_view code);

  // Whether anything changed since the last MarkWritten.
  bool changed() const { return changed_; }
  void MarkChanged() { changed_ = true; }
  void MarkWritten() { changed_ = false; }

  // What is read at render time rather than counted.
  struct Pool {
    std::string name;
    int workers = 0;
    int running = 0;
    int queued = 0;
    bool paused = false;
  };
  struct JobCount {
    std::string pool;
    JobState state = JobState::kQueued;
    int64_t count = 0;
  };
  struct Snapshot {
    std::vector<Pool> pools;
    std::vector<JobCount> jobs;
    double start_time_s = 0;  // Unix time the daemon started
    std::string version;
  };
  std::string Render(const Snapshot& snapshot) const;

 private:
  template <size_t N>
  struct Histogram {
    std::array<uint64_t, N + 1> counts{};  // per bucket, not cumulative; the last is +Inf
    double sum = 0;
    uint64_t count = 0;
    void Observe(const std::array<double, N>& bounds, double value);
  };
  struct PoolCounters {
    uint64_t accepted = 0;
    uint64_t attempts = 0;
    uint64_t retries = 0;
    uint64_t timeouts = 0;
    std::array<uint64_t, 3> finished{};  // succeeded, failed, cancelled
    Histogram<kWaitBuckets.size()> wait;
    Histogram<kDurationBuckets.size()> duration;
  };
  PoolCounters& Of(const std::string& pool);

  std::map<std::string, PoolCounters> pools_;
  std::map<std::pair<std::string, std::string>, uint64_t> rejections_;  // (kind, code)
  bool changed_ = true;
};

}  // namespace spoold

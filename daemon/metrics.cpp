#include "daemon/metrics.h"

#include <charconv>
#include <set>

namespace spoold {
namespace {

constexpr JobState kEnded[] = {JobState::kSucceeded, JobState::kFailed, JobState::kCancelled};
constexpr JobState kAllStates[] = {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                                   JobState::kFailed, JobState::kCancelled};

int EndedSlot(JobState state) {
  switch (state) {
    case JobState::kSucceeded:
      return 0;
    case JobState::kFailed:
      return 1;
    default:
      return 2;
  }
}

// A number as Prometheus reads it: the shortest text that reads back the same.
std::string Number(double value) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

// A label value in double quotes, with \, " and newline escaped (the text
// format's rules). Pool names and codes never hold them; escaped anyway.
std::string Quoted(std::string_view value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

class Writer {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  }
  // name{labels} value; `labels` is "a=\"x\",b=\"y\"" or empty.
  void Sample(std::string_view name, const std::string& labels, const std::string& value) {
    out_.append(name);
    if (!labels.empty()) out_.append("{").append(labels).append("}");
    out_.append(" ").append(value).append("\n");
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string PoolLabel(const std::string& pool) { return "pool=" + Quoted(pool); }

template <size_t N, typename H>
void HistogramSamples(Writer& w, std::string_view name, const std::string& pool,
                      const std::array<double, N>& bounds, const H& h) {
  const std::string bucket = std::string(name) + "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < N; ++i) {
    cumulative += h.counts[i];
    w.Sample(bucket, PoolLabel(pool) + ",le=" + Quoted(Number(bounds[i])), std::to_string(cumulative));
  }
  cumulative += h.counts[N];
  w.Sample(bucket, PoolLabel(pool) + ",le=\"+Inf\"", std::to_string(cumulative));
  w.Sample(std::string(name) + "_sum", PoolLabel(pool), Number(h.sum));
  w.Sample(std::string(name) + "_count", PoolLabel(pool), std::to_string(h.count));
}

}  // namespace

template <size_t N>
void Metrics::Histogram<N>::Observe(const std::array<double, N>& bounds, double value) {
  if (!(value >= 0)) value = 0;  // a clock step backwards, or NaN
  size_t i = 0;
  while (i < N && value > bounds[i]) ++i;
  ++counts[i];
  sum += value;
  ++count;
}

Metrics::PoolCounters& Metrics::Of(const std::string& pool) {
  changed_ = true;
  return pools_[pool];
}

void Metrics::AttemptStarted(const std::string& pool, double queue_wait_s) {
  PoolCounters& p = Of(pool);
  ++p.attempts;
  if (queue_wait_s >= 0) p.wait.Observe(kWaitBuckets, queue_wait_s);
}

void Metrics::AttemptEnded(const std::string& pool, double duration_s, Reason reason) {
  PoolCounters& p = Of(pool);
  p.duration.Observe(kDurationBuckets, duration_s);
  if (reason == Reason::kTimeout) ++p.timeouts;
}

void Metrics::RetryScheduled(const std::string& pool) { ++Of(pool).retries; }

void Metrics::JobFinished(const std::string& pool, JobState state) {
  if (IsTerminal(state)) ++Of(pool).finished[EndedSlot(state)];
}

void Metrics::JobAccepted(const std::string& pool) { ++Of(pool).accepted; }

void Metrics::Rejected(std::string_view kind, std::string_view code) {
  changed_ = true;
  ++rejections_[{std::string(kind), std::string(code)}];
}

std::string Metrics::Render(const Snapshot& snapshot) const {
  // Every pool configured or counted, so that a pool's series exist (at zero)
  // before its first job: rate() needs a sample before the first increase.
  std::set<std::string> names;
  for (const auto& pool : snapshot.pools) names.insert(pool.name);
  for (const auto& [name, counters] : pools_) names.insert(name);
  static const PoolCounters kNone{};
  auto counters = [this](const std::string& pool) -> const PoolCounters& {
    auto it = pools_.find(pool);
    return it == pools_.end() ? kNone : it->second;
  };
  Writer w;

  w.Family("spoold_build_info", "gauge", "The running spoold's version (always 1).");
  w.Sample("spoold_build_info", "version=" + Quoted(snapshot.version), "1");
  w.Family("spoold_start_time_seconds", "gauge",
           "When the daemon started, in seconds since the Unix epoch; its counters start at zero then.");
  w.Sample("spoold_start_time_seconds", "", Number(snapshot.start_time_s));

  w.Family("spoold_jobs", "gauge",
           "Jobs in the spool (index.json) by pool and state; an array counts as one job.");
  std::map<std::pair<std::string, JobState>, int64_t> jobs;
  for (const auto& name : names) {
    for (JobState state : kAllStates) jobs[{name, state}] = 0;
  }
  for (const auto& c : snapshot.jobs) jobs[{c.pool, c.state}] += c.count;
  for (const auto& [key, count] : jobs) {
    w.Sample("spoold_jobs", PoolLabel(key.first) + ",state=" + Quoted(StateName(key.second)),
             std::to_string(count));
  }

  struct PoolGauge {
    const char* name;
    const char* help;
    double (*get)(const Pool&);
  };
  const PoolGauge gauges[] = {
      {"spoold_pool_workers", "Jobs the pool runs at once.", [](const Pool& p) { return double(p.workers); }},
      {"spoold_pool_running", "The pool's jobs running now.",
       [](const Pool& p) { return double(p.running); }},
      {"spoold_pool_queued", "The pool's jobs queued (waiting for a worker, a retry, a parent or a start).",
       [](const Pool& p) { return double(p.queued); }},
      {"spoold_pool_paused", "1 while the pool is paused (starts nothing), else 0.",
       [](const Pool& p) { return p.paused ? 1.0 : 0.0; }},
  };
  for (const auto& gauge : gauges) {
    w.Family(gauge.name, "gauge", gauge.help);
    for (const auto& pool : snapshot.pools)
      w.Sample(gauge.name, PoolLabel(pool.name), Number(gauge.get(pool)));
  }

  w.Family("spoold_jobs_accepted_total", "counter", "Job files accepted into the pool.");
  for (const auto& name : names)
    w.Sample("spoold_jobs_accepted_total", PoolLabel(name), std::to_string(counters(name).accepted));
  w.Family("spoold_jobs_finished_total", "counter",
           "Jobs that ended, by pool and outcome (the final state); an array counts as one job.");
  for (const auto& name : names) {
    for (JobState state : kEnded) {
      w.Sample("spoold_jobs_finished_total", PoolLabel(name) + ",outcome=" + Quoted(StateName(state)),
               std::to_string(counters(name).finished[EndedSlot(state)]));
    }
  }
  w.Family("spoold_attempts_started_total", "counter",
           "Attempts started (a process spawned or a Slurm job submitted), array tasks' included.");
  for (const auto& name : names)
    w.Sample("spoold_attempts_started_total", PoolLabel(name), std::to_string(counters(name).attempts));
  w.Family("spoold_retries_total", "counter", "Failed attempts followed by a retry.");
  for (const auto& name : names)
    w.Sample("spoold_retries_total", PoolLabel(name), std::to_string(counters(name).retries));
  w.Family("spoold_timeouts_total", "counter", "Attempts stopped because they ran past their timeout.");
  for (const auto& name : names)
    w.Sample("spoold_timeouts_total", PoolLabel(name), std::to_string(counters(name).timeouts));
  w.Family("spoold_rejections_total", "counter",
           "Job files (kind=\"job\") and control requests (kind=\"control\") refused, by error code.");
  for (const auto& [key, count] : rejections_) {
    w.Sample("spoold_rejections_total", "kind=" + Quoted(key.first) + ",code=" + Quoted(key.second),
             std::to_string(count));
  }

  w.Family("spoold_queue_wait_seconds", "histogram",
           "Seconds from a job's acceptance to the start of its first attempt (held and waiting for parents "
           "included).");
  for (const auto& name : names)
    HistogramSamples(w, "spoold_queue_wait_seconds", name, kWaitBuckets, counters(name).wait);
  w.Family("spoold_attempt_duration_seconds", "histogram",
           "Seconds each attempt ran, from its start to its end.");
  for (const auto& name : names) {
    HistogramSamples(w, "spoold_attempt_duration_seconds", name, kDurationBuckets, counters(name).duration);
  }
  return w.Take();
}

}  // namespace spoold

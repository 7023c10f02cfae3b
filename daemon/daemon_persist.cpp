// Daemon (daemon.h): persistence (status, events, results) and the index.
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include "daemon/daemon.h"
#include "daemon/daemon_hooks.h"
#include "daemon/version.h"
#include "spool/failpoint.h"
#include "spool/fileio.h"
#include "spool/results.h"

namespace spoold {
namespace {

constexpr uint64_t kIndexDelayMs = 250;       // coalesces bursts; keeps the index < 1 s behind
constexpr uint64_t kIndexMaxDelayMs = 800;    // + the write itself: still < 1 s behind
constexpr uint64_t kIndexDelayPerWriteMs = 40;  // delay per ms the last write took

// The event recorded for a transition into (state, reason).
const char* TransitionEvent(JobState from, Reason from_reason, JobState state, Reason reason) {
  switch (state) {
    case JobState::kRunning:
      return "started";
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
    case JobState::kQueued:
      break;
  }
  if (from == JobState::kQueued && from_reason == Reason::kDependency) return "dependencies_met";
  switch (reason) {
    case Reason::kRetryBackoff:
      return "retry_scheduled";
    case Reason::kHeld:
      return "held";
    case Reason::kPoolPaused:
      return "pool_paused";
    case Reason::kResources:
      return "waiting_resources";
    default:
      return from == JobState::kRunning ? "requeued" : "queued";
  }
}

}  // namespace

// ---- persistence ----

void Daemon::Event(SchedJob& job, Level level, const std::string& event, const std::string& message,
                   Json extra) {
  if (Gone(job.id())) return;  // its folder is gone
  hooks_->Poke(job.id());
  if (auto st =
          store_.AppendEvent(job.status(), {level, event, job.status().attempt, message, std::move(extra)});
      !st.ok()) {
    Trouble("events", "cannot append to events.jsonl (" + st.error().message + ")");
  }
}

void Daemon::RecordTransition(SchedJob& job) {
  const JobStatus& s = job.status();
  if (s.state == job.persisted_state && s.reason == job.persisted_reason) return;
  if (job.persisted_state == JobState::kQueued && job.persisted_reason == Reason::kDependency &&
      s.state == JobState::kRunning) {
    // Released and started in the same turn: the release gets its own event.
    std::vector<std::string> parents;
    for (const auto& dep : s.after) parents.push_back(dep.job);
    Event(job, Level::kInfo, "dependencies_met",
          "dependencies met (" + FewOf(parents) + "); waiting for a worker",
          {{"state", "queued"}, {"from", "queued"}, {"reason", "in_queue"}});
    job.persisted_reason = Reason::kInQueue;
  }
  const char* name = TransitionEvent(job.persisted_state, job.persisted_reason, s.state, s.reason);
  Level level = s.state == JobState::kFailed             ? Level::kError
                : s.reason == Reason::kRetryBackoff      ? Level::kWarning
                                                         : Level::kInfo;
  Json extra = {{"state", StateName(s.state)}, {"from", StateName(job.persisted_state)}};
  extra["reason"] = ReasonName(s.reason) ? Json(ReasonName(s.reason)) : Json(nullptr);
  if (s.state == JobState::kRunning && s.pid) extra["pid"] = *s.pid;
  if (s.next_attempt_at) extra["next_attempt_at"] = FormatTime(*s.next_attempt_at);
  Event(job, level, name, s.message, std::move(extra));
  spdlog::info("job {}: {} -> {}{}", s.id, StateName(job.persisted_state), StateName(s.state),
               ReasonName(s.reason) ? std::string(" (") + ReasonName(s.reason) + ")" : "");
  job.persisted_state = s.state;
  job.persisted_reason = s.reason;
}

void Daemon::WriteResults(const SchedJob& job) {
  const JobStatus& s = job.status();
  ResultsInfo info{s.id, s.title, StateName(s.state), s.pool, s.created, s.finished.value_or(s.updated)};
  auto item = BuildResultsItem(store_.Here(s.id, paths_.JobDir(s.id)), info);
  if (!item.ok()) {
    spdlog::error("job {}: cannot list results: {}", s.id, item.error().message);
    return;
  }
  if (s.tasks) AddTaskResults(s.id, &*item);
  if (auto st = store_.WriteResults(s.id, *item); !st.ok()) {
    Trouble("results", "cannot write results.json (" + st.error().message + ")");
  }
  if (s.array) task_results_[s.id] = std::move(*item);
}

void Daemon::Persist() {
  CommitNewTasks(Now());
  std::set<std::string> ids;
  for (auto& id : scheduler_.TakeChanged()) ids.insert(std::move(id));
  ids.insert(unwritten_.begin(), unwritten_.end());
  // Tasks before arrays: an array that ended lists its tasks' results, the
  // last of which may have ended in this turn.
  std::vector<std::string> order;
  order.reserve(ids.size());
  for (int tasks_first = 1; tasks_first >= 0; --tasks_first) {
    for (const auto& id : ids) {
      if ((id.find(':') != std::string::npos) == (tasks_first == 1)) order.push_back(id);
    }
  }
  for (const auto& id : order) {
    SchedJob* job = scheduler_.Find(id);
    if (job == nullptr) continue;
    if (Gone(id)) {
      // Its folder is gone: nothing is written; forgotten once it has ended.
      job->persisted_state = job->state();
      job->persisted_reason = job->reason();
      if (IsTerminal(job->state())) {
        scheduler_.Forget(id);
        if (vanished_.erase(id) == 0) continue;  // a task of a vanished array
        jobs_mtime_ = {};  // a folder under its id since then is taken in at the next scan
      }
      continue;
    }
    if (uncommitted_.count(id) != 0) {
      unwritten_.insert(id);  // its folder first (CommitNewTasks)
      continue;
    }
    RecordTransition(*job);
    const bool terminal = IsTerminal(job->state());
    // results.json comes before the terminal status, so whoever sees the job
    // ended finds its results listed.
    if (terminal) WriteResults(*job);
    if (auto st = store_.WriteStatus(job->status()); !st.ok()) {
      // Kept and tried again; until it is on disk, a terminal job stays known
      // here, so its state is never lost nor reported without being written.
      Trouble("status", "cannot write job status (" + st.error().message + "); retrying every second");
      unwritten_.insert(id);
      continue;
    }
    if (unwritten_.erase(id) != 0 && unwritten_.empty()) TroubleOver("status");
    if (!job->status().array) SetIndexEntry(id, job->status());  // an array's tasks are not listed
    MarkIndexDirty();
    // Before the job is forgotten: a job with hooks is followed (its marker
    // made in this turn's writes), an ended one told so.
    hooks_->Note(*job);
    if (terminal) {
      scheduler_.Forget(id);
    } else {
      scheduler_.Settle(id);
    }
  }
  task_results_.clear();
}

void Daemon::FlushBatch(const std::function<void()>& once_synced, const std::function<void()>& once_visible) {
  // Jobs accepted this turn: one with hooks is marked before its folder is
  // published by this flush.
  for (const auto& id : ids_in_batch_) {
    if (const SchedJob* job = scheduler_.Find(id)) hooks_->Note(*job);
  }
  ids_in_batch_.clear();
  flushed_ = false;
  if (auto st = batch_.Flush(nullptr, once_synced, once_visible); !st.ok()) {
    Trouble("sync", "cannot make this turn's writes durable (" + st.error().message + "); retrying");
    return;
  }
  flushed_ = true;
  TroubleOver("sync");
}

// ---- index ----

void Daemon::MarkIndexDirty() {
  MetricsChanged();  // the jobs by state, the pools' counts
  index_dirty_ = true;
  if (index_timer_ && !index_timer_->Active()) index_timer_->Start(index_delay_ms_);
}

void Daemon::FlushIndex(bool whole) {
  CheckRoot();  // its timer runs outside Pump
  index_dirty_ = false;
  Json pools = Json::object();
  for (const auto& [name, pool] : scheduler_.Pools()) {
    pools[name] = {{"workers", pool.config.workers},       {"queue_limit", pool.config.queue_limit},
                   {"paused", pool.paused},                {"auto_resume", pool.config.auto_resume},
                   {"executor", pool.config.executor},     {"running", pool.running},
                   {"queued", pool.queued}};
    pools[name].update(scheduler_.Ledger().PoolJson(name));
  }
  Json doc = {{"schema", "spoold/index/v1"},
              {"updated", FormatTime(Now())},
              {"daemon",
               {{"pid", ::getpid()},
                {"version", Version()},
                {"started", FormatTime(started_at_)},
                {"state", stopping_ ? (attempts_.Empty() ? "stopped" : "stopping") : "running"}}},
              {"pools", std::move(pools)},
              {"machine", scheduler_.Ledger().MachineJson()}};
  Json damaged = Json::object();
  for (const auto& [id, d] : damaged_) {
    damaged[SanitizeUtf8(id)] = {{"problem", SanitizeUtf8(d.problem)}, {"since", FormatTime(d.since)}};
  }
  doc["damaged"] = std::move(damaged);
  doc["definitions"] = definitions_.IndexJson([this](const std::string& id) -> std::optional<std::string> {
    if (auto state = index_jobs_.StateOf(id)) return std::string(StateName(*state));
    return std::nullopt;
  });
  // index.json, every job, is written at once while the spool is small; above
  // spool.large_index_jobs at most every spool.large_index_lag (at 100,000
  // jobs it is 30 MB: written every 0.8 s, it cost a tenth of the throughput
  // on disk). index.active.json, the same head with the active jobs only, is
  // written every time.
  const auto t0 = std::chrono::steady_clock::now();
  const auto lag = std::chrono::duration_cast<std::chrono::steady_clock::duration>(config_.large_index_lag);
  whole = whole || index_jobs_.size() <= static_cast<uint64_t>(config_.large_index_jobs) ||
          t0 - whole_index_written_ >= lag;
  // Each job's entry is kept serialised (an ended job's in a file): the
  // documents are assembled as text, never as one tree of every job. "jobs"
  // goes last, after the small header.
  SPOOLD_FAILPOINT("index.before_write");
  // Caches: replaced atomically but not synced (rebuilt at every start).
  std::string replaced;
  Status st = OkStatus();
  if (whole) st = index_jobs_.Write(paths_.Index(), DumpJson(doc), &replaced);
  if (st.ok()) {
    doc["schema"] = "spoold/index.active/v1";
    st = index_jobs_.WriteActive(paths_.IndexActive(), DumpJson(doc));
  }
  if (!st.ok()) {
    Trouble("index", "cannot write the index (" + st.error().message + "); retrying");
    index_stamp_ = {};
    active_index_stamp_ = {};
    index_dirty_ = true;
    if (index_timer_) index_timer_->Start(1000);
    return;
  }
  if (whole) {
    whole_index_written_ = t0;
    if (whole_index_timer_) whole_index_timer_->Stop();
  } else if (whole_index_timer_ && !whole_index_timer_->Active()) {
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(whole_index_written_ + lag - t0);
    whole_index_timer_->Start(static_cast<uint64_t>(std::max<int64_t>(wait.count(), 0)));
  }
  // The index is written less often when its writes take long: the next write
  // waits forty times this one's duration, between 250 and 800 ms (a 30 MB
  // index.json at 100,000 jobs takes about 13 ms): a few percent of the time,
  // within SPEC.md's second. The replaced file is freed in the thread pool.
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  index_delay_ms_ = std::clamp<uint64_t>(static_cast<uint64_t>(took.count()) * kIndexDelayPerWriteMs,
                                         kIndexDelayMs, kIndexMaxDelayMs);
  if (!replaced.empty()) UnlinkInThreadPool(&loop_, replaced);
  TroubleOver("index");
  auto stamp = [](const std::string& path) {
    struct stat info {};
    return ::stat(path.c_str(), &info) == 0 ? FileStamp{info.st_ino, info.st_size} : FileStamp{};
  };
  if (whole) index_stamp_ = stamp(paths_.Index());
  active_index_stamp_ = stamp(paths_.IndexActive());
  NotifyStatus();
}

void Daemon::NotifyStatus() {
  // Sent with the index, which is coalesced already: systemctl status shows the
  // counts at most a fraction of a second late.
  int running = 0, queued = 0;
  for (const auto& [name, pool] : scheduler_.Pools()) {
    running += pool.running;
    queued += pool.queued;
  }
  std::string status = "STATUS=" + std::to_string(running) + " running, " + std::to_string(queued) + " queued, " +
                       std::to_string(index_jobs_.size()) + " jobs";
  if (stopping_) status += " (stopping)";
  if (status != last_status_ && notifier_.Notify(status)) last_status_ = status;
}

// ---- retention, signals, reload ----

Reason Daemon::EndedReason(const std::string& id, JobState state) const {
  auto status = store_.Load(id);
  return status.ok() && status->state == state ? status->reason : Reason::kNone;
}

void Daemon::ApplyRetention(TimePoint now) {
  retention_pending_ = false;
  if (config_.retention_finished.count() == 0) return;
  bool expired = false;
  std::vector<std::string> ids;
  std::vector<Tombstones::Entry> buried;
  for (auto& id : index_jobs_.EndedBefore(now - config_.retention_finished)) {
    if (scheduler_.Find(id) != nullptr) continue;
    std::optional<JobState> state = index_jobs_.StateOf(id);
    if (!state || !IsTerminal(*state)) continue;
    // Undelivered hook events keep the job up to hooks.retention_wait longer.
    if (hooks_->Pending(id)) {
      const TimePoint finished = index_jobs_.FinishedOf(id).value_or(now);
      if (finished + config_.retention_finished + config_.hooks.retention_wait > now) continue;
      spdlog::warn(
          "retention: job {} still has undelivered hook events after hooks.retention_wait ({}); removed", id,
          FormatDuration(config_.hooks.retention_wait));
    }
    buried.push_back({id, *state, EndedReason(id, *state), index_jobs_.FinishedOf(id).value_or(now)});
    ids.push_back(std::move(id));
  }
  // Their ends stay known to `after` before their folders go (SPEC.md section
  // 5); without that, nothing is removed, and it is tried again.
  if (auto st = tombstones_.Bury(buried, now); !st.ok()) {
    spdlog::error("retention: cannot record the ends of {} jobs in {}: {}; none removed", buried.size(),
                  paths_.Tombstones(), st.error().message);
    return;
  }
  for (const auto& id : ids) {
    if (auto st = store_.Remove(id); !st.ok()) {
      spdlog::error("retention: cannot remove job {}: {}", id, st.error().message);
      continue;
    }
    hooks_->Forget(id);  // only once it is gone: a job left in place keeps its hooks
    index_jobs_.Erase(id);
    expired = true;
    spdlog::info("retention: removed job {}, finished more than {} ago", id,
                 FormatDuration(config_.retention_finished));
  }
  if (expired) MarkIndexDirty();
}
}  // namespace spoold

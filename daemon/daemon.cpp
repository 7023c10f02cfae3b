#include "daemon/daemon.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "daemon/daemon_hooks.h"
#include "daemon/slurm_executor.h"
#include "daemon/supervised_executor.h"
#include "daemon/version.h"
#include "spool/fileio.h"

namespace spoold {
namespace {

constexpr size_t kIntakePerTurn = 256;
constexpr uint64_t kProgressIntervalMs = 1000;
constexpr uint64_t kRetentionIntervalMs = 60'000;

// The signals that stop or reload the daemon.
sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, sig);
  return set;
}

}  // namespace

Daemon::Daemon(Config config, std::string config_path)
    : config_(std::move(config)),
      config_path_(std::move(config_path)),
      paths_(config_.root),
      store_(paths_),
      batch_(paths_.Root()),
      intake_(store_, config_),
      definitions_(paths_, config_),
      scheduler_(config_),
      attempts_(scheduler_,
                AttemptHooks{
                    [this](SchedJob& job, Level level, const std::string& event, const std::string& message,
                           Json extra) { Event(job, level, event, message, std::move(extra)); },
                    [this](const std::string& key, const std::string& message) { Trouble(key, message); },
                    [this](const std::string& key) { TroubleOver(key); }}),
      root_lock_(paths_.Root(), paths_.Lock()),
      index_jobs_(paths_.IndexSegment()),
      tombstones_(paths_.Tombstones(), config_.retention_tombstones) {
  SPOOLD_CHECK(uv_loop_init(&loop_) == 0);
  // Pools name their executor; the first one added serves any other name.
  local_ = std::make_unique<SupervisedExecutor>(&loop_, paths_, store_, config_, attempts_);
  slurm_ = std::make_unique<SlurmExecutor>(&loop_, paths_, store_, attempts_);
  attempts_.AddExecutor("local", local_.get());
  attempts_.AddExecutor("slurm", slurm_.get());
  hooks_ = std::make_unique<DaemonHooks>(
      &loop_, config_, paths_, store_, batch_, scheduler_,
      [this](SchedJob& job, Level level, const std::string& event, const std::string& message, Json extra) {
        Event(job, level, event, message, std::move(extra));
      });
  // A parent that ended before its child was accepted is known by its index
  // entry (the scheduler forgets a job once its end is written), and its
  // reason by its status.json; one removed by retention by its tombstone. An
  // active entry the scheduler does not hold is a folder whose job file no
  // longer loads: waited for, never taken as missing.
  scheduler_.SetMetrics(&metrics_);
  scheduler_.SetEndedLookup([this](const std::string& id) -> std::optional<Scheduler::Ended> {
    if (ParseTaskId(id)) return EndedTask(id);
    std::optional<JobState> state = index_jobs_.StateOf(id);
    if (state && !IsTerminal(*state)) return Scheduler::Ended{*state, Reason::kNone, /*active=*/true};
    if (state) return Scheduler::Ended{*state, EndedReason(id, *state)};
    if (damaged_.count(id) != 0) return Scheduler::Ended{JobState::kQueued, Reason::kNone, /*active=*/true};
    if (auto removed = tombstones_.Find(id, Now())) return Scheduler::Ended{removed->state, removed->reason};
    return std::nullopt;
  });
}

Daemon::~Daemon() {
  // Handles are closed through their owners; the loop then runs the close
  // callbacks that free the boxes, and must end empty.
  CloseHandles();
  attempts_.Shutdown();
  hooks_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  SPOOLD_CHECK(uv_loop_close(&loop_) == 0);
}

void Daemon::CloseHandles() {
  // Closing a signal handle puts back the default action, which for these is
  // to die: a second SIGTERM during the last steps of a stop (or the
  // sanitizers' exit checks) would end an orderly exit with a signal. They are
  // blocked (the thread pool's threads block them from the start) until their
  // action is "ignore", which drops one that came meanwhile. Nothing is
  // started from here on, and the exec helper resets every signal anyway.
  const sigset_t stop_signals = StopSignals();
  sigset_t mask;
  SPOOLD_CHECK(pthread_sigmask(SIG_BLOCK, &stop_signals, &mask) == 0);
  prepare_.reset();
  rescan_timer_.reset();
  wake_timer_.reset();
  index_timer_.reset();
  whole_index_timer_.reset();
  metrics_timer_.reset();
  progress_timer_.reset();
  retention_timer_.reset();
  watchdog_timer_.reset();
  incoming_watch_.reset();
  definitions_watch_.reset();
  definitions_timer_.reset();
  control_watch_.reset();
  root_watch_.reset();
  sigterm_.reset();
  sigint_.reset();
  sighup_.reset();
  // Running hooks get TERM; what they were delivering is delivered again at
  // the next start (their cursors did not move).
  if (hooks_) hooks_->Stop();
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::signal(sig, SIG_IGN);
  SPOOLD_CHECK(pthread_sigmask(SIG_SETMASK, &mask, nullptr) == 0);
}

// inotify on a drop folder, as a hint only: a missed or merged event is caught
// by the periodic scan, and a queue overflow (no name) asks for one at once.
std::unique_ptr<DirWatch> Daemon::WatchFolder(const std::string& dir, std::set<std::string>* pending) {
  auto watch = std::make_unique<DirWatch>(&loop_);
  watch->SetCallback([this, pending](const char* name, int status) {
    if (status < 0 || name == nullptr || *name == '\0') {
      scan_pending_ = true;
    } else {
      pending->insert(name);
    }
  });
  if (int rc = watch->Start(dir); rc != 0) {
    spdlog::warn("cannot watch {} ({}); relying on the scan every {}", dir, uv_strerror(rc),
                 FormatDuration(config_.rescan_interval));
  }
  return watch;
}

Status Daemon::Start() {
  // libuv's thread pool starts here, with the stop signals blocked: its
  // threads keep that mask, so those signals only ever reach the loop's
  // thread, which blocks them while CloseHandles changes their action.
  const sigset_t stop_signals = StopSignals();
  sigset_t mask;
  SPOOLD_CHECK(pthread_sigmask(SIG_BLOCK, &stop_signals, &mask) == 0);
  RunInThreadPool(
      &loop_, [] {}, [] {});
  SPOOLD_CHECK(pthread_sigmask(SIG_SETMASK, &mask, nullptr) == 0);

  if (auto st = local_->Open(); !st.ok()) return st;
  // Before any attempt is started or adopted: where memory limits go.
  local_->SetCgroups(Cgroups::Detect(CgroupTag(paths_.Root())));
  {
    const MachineConfig& m = config_.machine;
    spdlog::info("resources: CPUs by affinity ({} of them: {}); {}; {} of memory; GPUs: {}", m.cpus,
                 JoinNumbers(m.cpu_ids), local_->cgroups().Describe(), FormatSize(m.memory),
                 m.gpus.empty() ? std::string("none") : JoinNumbers(m.gpus));
  }
  if (auto st = paths_.EnsureLayout(); !st.ok()) return st;

  if (auto st = root_lock_.Acquire(); !st.ok()) return st;

  started_at_ = Now();
  if (auto st = index_jobs_.Open(); !st.ok()) return st;
  if (auto st = tombstones_.Open(started_at_); !st.ok()) {
    // Only `after` naming a removed job needs them: such a job then waits for
    // the parent as if it had never been submitted.
    spdlog::error("cannot read {}: {}; jobs removed by retention are unknown to after", paths_.Tombstones(),
                  st.error().message);
  }
  // Runs of definitions are resolved by intake (RepairRejected in Recover
  // checks refused runs again).
  LoadDefinitions();
  Recover(started_at_);
  // Recovery indexes every ended job before it adds the others, so this
  // finds nothing in the usual case; it keeps a waiting job from depending on
  // that order.
  scheduler_.ResolveEnded(started_at_);
  // The jobs marked in hooks-pending/ and the active ones with hooks.
  hooks_->Open();
  // From here on, the writes of each loop turn share one round of syncs.
  store_.SetBatch(&batch_);

  prepare_ = std::make_unique<Prepare>(&loop_);
  prepare_->SetCallback([this] { Pump(); });
  rescan_timer_ = std::make_unique<Timer>(&loop_);
  rescan_timer_->SetCallback([this] { scan_pending_ = true; });
  auto rescan_ms = static_cast<uint64_t>(config_.rescan_interval.count());
  rescan_timer_->Start(rescan_ms, rescan_ms);
  wake_timer_ = std::make_unique<Timer>(&loop_);
  wake_timer_->SetCallback([] {});  // Pump runs after every loop turn anyway
  index_timer_ = std::make_unique<Timer>(&loop_);
  index_timer_->SetCallback([this] { FlushIndex(false); });
  whole_index_timer_ = std::make_unique<Timer>(&loop_);
  whole_index_timer_->SetCallback([this] { FlushIndex(true); });
  metrics_timer_ = std::make_unique<Timer>(&loop_);
  metrics_timer_->SetCallback([this] { WriteMetrics(); });
  progress_timer_ = std::make_unique<Timer>(&loop_);
  progress_timer_->SetCallback([this] { progress_pending_ = true; });
  retention_timer_ = std::make_unique<Timer>(&loop_);
  retention_timer_->SetCallback([this] { retention_pending_ = true; });
  retention_timer_->Start(kRetentionIntervalMs, kRetentionIntervalMs);
  slurm_->Open();
  if (auto interval = notifier_.WatchdogInterval()) {
    watchdog_timer_ = std::make_unique<Timer>(&loop_);
    watchdog_timer_->SetCallback([this] { notifier_.Notify("WATCHDOG=1"); });
    auto ms = static_cast<uint64_t>(interval->count());
    watchdog_timer_->Start(ms, ms);
  }

  StartDefinitions(started_at_);
  incoming_watch_ = WatchFolder(paths_.Incoming(), &pending_names_);
  control_watch_ = WatchFolder(paths_.Control(), &pending_controls_);
  // Any change in the root (spoold.lock deleted, the root moved away) wakes the
  // loop, and every turn checks the root (CheckRoot, in Pump).
  root_watch_ = std::make_unique<DirWatch>(&loop_);
  root_watch_->SetCallback([](const char*, int) {});
  if (int rc = root_watch_->Start(paths_.Root()); rc != 0) {
    spdlog::warn("cannot watch {} ({}); checking it every {}", paths_.Root(), uv_strerror(rc),
                 FormatDuration(config_.rescan_interval));
  }

  sigterm_ = std::make_unique<SignalWatch>(&loop_, SIGTERM);
  sigterm_->SetCallback([this](int n) { RequestStop(SignalName(n)); });
  sigint_ = std::make_unique<SignalWatch>(&loop_, SIGINT);
  sigint_->SetCallback([this](int n) { RequestStop(SignalName(n)); });
  sighup_ = std::make_unique<SignalWatch>(&loop_, SIGHUP);
  sighup_->SetCallback([this](int) { reload_pending_ = true; });

  // The first scan runs in the first loop turn; the index is written at once,
  // whatever the old file held.
  FlushIndex(true);
  WriteMetrics();
  spdlog::info("spoold {} running on {} (pid {}), {} pools, {} jobs known; metrics in {}", Version(),
               paths_.Root(), ::getpid(), scheduler_.Pools().size(), index_jobs_.size(), MetricsPath());
  return OkStatus();
}

int Daemon::Run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
  spdlog::info("spoold stopped");
  return 0;
}

// ---- the loop turn ----

void Daemon::Pump() {
  // Four system calls a turn: nothing is written into a root that is no
  // longer the one we locked.
  CheckRoot();
  TimePoint now = Now();
  if (reload_pending_) Reload();
  if (!stopping_) {
    if (scan_pending_) ScanIncoming();
    ProcessDefinitions(now);
    // Names are taken one by one: processing may add more (a hint arriving
    // meanwhile lands in pending_names_ for the next turn).
    // At most kIntakePerTurn files a turn: a burst of thousands must not keep
    // exits from being reaped nor jobs from starting (or a stop from stopping).
    std::set<std::string> names;
    while (!pending_names_.empty() && names.size() < kIntakePerTurn) {
      names.insert(pending_names_.extract(pending_names_.begin()));
    }
    for (const auto& name : names) ProcessIncoming(name, now);
    // The folders accepted now are published by the flush below. Until then,
    // what is written for them (a control request's event, the status and
    // logs of an attempt started at once) goes into the unpublished folder
    // (JobStore::Here), and a job started now waits for that flush anyway: one
    // round of syncs for accepting and starting it.
    names.clear();
    names.swap(pending_controls_);
    for (const auto& name : names) ProcessControl(name, now);
  }
  if (retention_pending_) ApplyRetention(now);
  scheduler_.Tick(now);
  if (progress_pending_) ReadProgress(now);
  attempts_.Tick(now, !stopping_ ? StopMode::kRunning : stop_jobs_ ? StopMode::kStopJobs : StopMode::kLeaveJobs);
  if (!stopping_) StartJobs(now);
  // Hook runs that ended: their events and cursors go into this turn's writes.
  hooks_->Collect(now);
  Persist();
  // A local job is let run once its running state with its pid is visible to
  // any process and its content durable, before the rename that shows it is
  // durable too (SPEC.md section 9: a process crash keeps the page cache, and
  // a machine crash takes the job with it). A Slurm job outlives a local power
  // loss: its sbatch waits for the second sync. Both come before the flush's
  // after-actions (deleting the dropped files), which they need not wait for.
  auto recorded = [this](const std::string& id) {
    return unwritten_.count(id) == 0 && !store_.IsUnpublished(id) && !batch_.Staged(paths_.StatusFile(id));
  };
  FlushBatch([&] { attempts_.ReleaseRecorded(recorded, /*renames_durable=*/true); },
             [&] { attempts_.ReleaseRecorded(recorded, /*renames_durable=*/false); });
  if (!ready_sent_ && !stopping_) {
    // Recovery is done, and the first scan of incoming/ and control/ too: what
    // it accepted is published.
    ready_sent_ = true;
    notifier_.Notify("READY=1\nMAINPID=" + std::to_string(::getpid()));
  }
  Persist();
  FlushBatch();
  // Hooks deliver only events that this flush (or an earlier one) wrote.
  // Only events made durable are delivered (SPEC.md section 5, "Hooks").
  if (!stopping_ && flushed_) hooks_->Tick(now);
  // After this turn's children were released: a spare helper, Slurm's poll.
  attempts_wake_ = attempts_.EndTurn(now, stopping_);
  // A stop leaves Slurm jobs to Slurm and local ones to their supervisors (a
  // stop with its jobs waits for them), once no attempt is being started or
  // recorded and no Slurm command runs. The next start adopts them.
  if (stopping_ && !attempts_.Busy(stop_jobs_)) {
    attempts_.Shutdown();
    FlushIndex(true);
    WriteMetrics();
    // For the next start: the ended jobs it need not read (JobIndex::Resume).
    if (auto st = index_jobs_.SaveManifest(
            [this](const std::string& id) { return StatFileId(paths_.StatusFile(id)); });
        !st.ok()) {
      spdlog::warn("the next start reads every job again: {}", st.error().message);
    }
    // Closing every handle lets uv_run return.
    CloseHandles();
    return;
  }
  ArmWakeTimer(now);
}

void Daemon::Trouble(const std::string& key, const std::string& message) {
  auto [it, inserted] = troubles_.emplace(key, message);
  if (inserted) spdlog::error("{}", message);
}

void Daemon::TroubleOver(const std::string& key) {
  if (troubles_.erase(key) != 0) spdlog::info("recovered: {} works again", key);
}

void Daemon::ArmWakeTimer(TimePoint now) {
  std::optional<TimePoint> next = scheduler_.NextWakeup();
  auto consider = [&](TimePoint t) {
    if (!next || t < *next) next = t;
  };
  // A Slurm attempt's limit, a spare helper's retry, the end of a start backoff.
  if (attempts_wake_) consider(*attempts_wake_);
  // Writes or renames that failed (a full disk) are tried again every second.
  if (!unwritten_.empty() || !batch_.Empty()) consider(now + std::chrono::seconds(1));
  if (!pending_names_.empty() || !pending_controls_.empty()) consider(now);
  if (auto hooks = hooks_->NextWakeup(now)) consider(*hooks);  // a retry due, a run ended
  if (next) {
    auto delay = std::max<int64_t>(0, (*next - now).count()) + 1;
    wake_timer_->Start(static_cast<uint64_t>(delay));
  } else {
    wake_timer_->Stop();
  }
  // Progress files are read only while something runs: an idle daemon wakes
  // for nothing but its rescan.
  if (attempts_.Empty()) {
    progress_timer_->Stop();
  } else if (!progress_timer_->Active()) {
    progress_timer_->Start(kProgressIntervalMs, kProgressIntervalMs);
  }
}

// ---- signals, reload ----

void Daemon::RequestStop(const std::string& by) {
  if (stopping_) {
    // A stop that keeps the jobs may become one that stops them, not back.
    if (stop_jobs_) spdlog::info("{}: stopping the running jobs too", by);
    return;
  }
  stopping_ = true;
  const std::string what = stop_jobs_ ? "stopping " + std::to_string(attempts_.Count("local")) +
                                            " running local jobs"
                                      : "leaving " + std::to_string(attempts_.Ids().size()) +
                                            " running jobs to their supervisors (Slurm jobs to Slurm)";
  spdlog::info("stop requested by {}: stopping intake and {}", by, what);
  notifier_.Notify("STOPPING=1\nSTATUS=stopping: " + what);
  incoming_watch_.reset();
  control_watch_.reset();
  if (rescan_timer_) rescan_timer_->Stop();
  // From the next loop turn on: unreleased attempts are let go, and with
  // stop_jobs_ every running one is stopped (Attempts::Tick).
  MarkIndexDirty();
}

void Daemon::Reload() {
  reload_pending_ = false;
  auto loaded = LoadConfig(config_path_);
  if (!loaded.ok()) {
    spdlog::error("reload failed, keeping the old configuration: {}",
                  FormatConfigError(loaded.error(), config_path_));
    return;
  }
  if (loaded->root != config_.root) {
    spdlog::warn("reload: spool.root changed to {}; a new root takes effect only at restart", loaded->root);
    loaded->root = config_.root;
  }
  config_ = std::move(loaded.value());
  scheduler_.SetConfig(config_, Now());
  MetricsChanged();  // pools' workers, new pools
  tombstones_.SetKeep(config_.retention_tombstones);
  definitions_.SetConfig(config_);
  scan_pending_ = true;  // refused definitions are read again
  hooks_->Reload();      // hooks.max_running; pool hooks apply to jobs followed from now on
  auto rescan_ms = static_cast<uint64_t>(config_.rescan_interval.count());
  if (rescan_timer_ && !stopping_) rescan_timer_->Start(rescan_ms, rescan_ms);
  MarkIndexDirty();
  spdlog::info("configuration reloaded from {}: {} pools", config_path_, config_.pools.size());
}
}  // namespace spoold

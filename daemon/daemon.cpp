#include "daemon/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include "daemon/exec_protocol.h"
#include "daemon/version.h"
#include "spool/dropped_file.h"
#include "spool/failpoint.h"
#include "spool/fileio.h"
#include "spool/results.h"

namespace spoold {
namespace {

constexpr size_t kIntakePerTurn = 256;
constexpr uint64_t kSlurmPollMs = 2000;  // Slurm's scheduler ticks about once a second
constexpr uint64_t kIndexDelayMs = 250;       // coalesces bursts; keeps the index < 1 s behind
constexpr uint64_t kIndexMaxDelayMs = 800;    // + the write itself: still < 1 s behind
constexpr uint64_t kIndexDelayPerWriteMs = 40;  // delay per ms the last write took
constexpr uint64_t kProgressIntervalMs = 1000;
constexpr uint64_t kRetentionIntervalMs = 60'000;

// The event recorded for a transition into (state, reason).
const char* TransitionEvent(JobState from, JobState state, Reason reason) {
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
  switch (reason) {
    case Reason::kRetryBackoff:
      return "retry_scheduled";
    case Reason::kHeld:
      return "held";
    case Reason::kPoolPaused:
      return "pool_paused";
    default:
      return from == JobState::kRunning ? "requeued" : "queued";
  }
}

}  // namespace

Daemon::Daemon(Config config, std::string config_path)
    : config_(std::move(config)),
      config_path_(std::move(config_path)),
      paths_(config_.root),
      store_(paths_),
      batch_(paths_.Root()),
      intake_(store_, config_),
      scheduler_(config_),
      root_lock_(paths_.Root(), paths_.Lock()),
      index_jobs_(paths_.IndexSegment()) {
  SPOOLD_CHECK(uv_loop_init(&loop_) == 0);
}

Daemon::~Daemon() {
  // Handles are closed through their owners; the loop then runs the close
  // callbacks that free the boxes, and must end empty.
  CloseHandles();
  DismissSpareHelper();
  uv_run(&loop_, UV_RUN_DEFAULT);
  SPOOLD_CHECK(uv_loop_close(&loop_) == 0);
}

void Daemon::CloseHandles() {
  prepare_.reset();
  rescan_timer_.reset();
  wake_timer_.reset();
  index_timer_.reset();
  progress_timer_.reset();
  retention_timer_.reset();
  watchdog_timer_.reset();
  slurm_timer_.reset();
  incoming_watch_.reset();
  control_watch_.reset();
  root_watch_.reset();
  sigchld_.reset();
  sigterm_.reset();
  sigint_.reset();
  sighup_.reset();
  // Closing a signal handle puts back the default action, which for these is
  // to die: a second SIGTERM during the last steps of a stop (or the
  // sanitizers' exit checks) would end an orderly exit with a signal. Nothing
  // is started from here on, and the exec helper resets every signal anyway.
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::signal(sig, SIG_IGN);
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
  auto helper = FindExecHelper(ExecHelperCandidates());
  if (!helper.ok()) return helper.error();
  exec_helper_ = std::move(helper.value());
  if (auto st = paths_.EnsureLayout(); !st.ok()) return st;

  if (auto st = root_lock_.Acquire(); !st.ok()) return st;
  // Orphaned descendants of jobs are re-parented to us, so we can reap them and
  // see when a job's whole process group is gone.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  started_at_ = Now();
  boot_id_ = BootId();
  if (auto st = index_jobs_.Open(); !st.ok()) return st;
  Recover(started_at_);
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
  index_timer_->SetCallback([this] { FlushIndex(); });
  progress_timer_ = std::make_unique<Timer>(&loop_);
  progress_timer_->SetCallback([this] { progress_pending_ = true; });
  retention_timer_ = std::make_unique<Timer>(&loop_);
  retention_timer_->SetCallback([this] { retention_pending_ = true; });
  retention_timer_->Start(kRetentionIntervalMs, kRetentionIntervalMs);
  slurm_timer_ = std::make_unique<Timer>(&loop_);
  slurm_timer_->SetCallback([this] { StartSlurmPoll(); });
  if (auto interval = notifier_.WatchdogInterval()) {
    watchdog_timer_ = std::make_unique<Timer>(&loop_);
    watchdog_timer_->SetCallback([this] { notifier_.Notify("WATCHDOG=1"); });
    auto ms = static_cast<uint64_t>(interval->count());
    watchdog_timer_->Start(ms, ms);
  }

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

  sigchld_ = std::make_unique<SignalWatch>(&loop_, SIGCHLD);
  sigchld_->SetCallback([this](int) { ReapChildren(); });
  sigterm_ = std::make_unique<SignalWatch>(&loop_, SIGTERM);
  sigterm_->SetCallback([this](int n) { RequestStop(SignalName(n)); });
  sigint_ = std::make_unique<SignalWatch>(&loop_, SIGINT);
  sigint_->SetCallback([this](int n) { RequestStop(SignalName(n)); });
  sighup_ = std::make_unique<SignalWatch>(&loop_, SIGHUP);
  sighup_->SetCallback([this](int) { reload_pending_ = true; });

  // The first scan runs in the first loop turn; the index is written at once,
  // whatever the old file held.
  FlushIndex();
  spdlog::info("spoold {} running on {} (pid {}), {} pools, {} jobs known", Version(), paths_.Root(),
               ::getpid(), scheduler_.Pools().size(), index_jobs_.size());
  return OkStatus();
}

int Daemon::Run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
  spdlog::info("spoold stopped");
  return 0;
}

// ---- recovery ----

void Daemon::Recover(TimePoint now) {
  if (auto cleaned = store_.CleanTemp(); !cleaned.ok()) {
    spdlog::error("cannot clean {}: {}", paths_.Jobs(), cleaned.error().message);
  } else if (*cleaned > 0) {
    spdlog::warn("removed {} half-made job folders left by a crash", *cleaned);
  }
  const auto repaired = intake_.RepairRejected(now);
  if (repaired.written > 0) {
    spdlog::warn("wrote the missing error files of {} rejected files (a crash came between)",
                 repaired.written);
  }
  if (repaired.orphans_removed > 0) {
    spdlog::warn(
        "removed {} error files in rejected/ whose file was never moved there (a crash came between; "
        "the file is refused again)",
        repaired.orphans_removed);
  }
  auto ids = store_.ListJobs();
  if (!ids.ok()) {
    spdlog::error("cannot list jobs: {}", ids.error().message);
    return;
  }
  // Load everything first: jobs re-enter their queues in their original order
  // (creation time), with interrupted ones first, so that FIFO survives a restart
  // and what a stop interrupted runs again first.
  std::vector<JobStatus> active;
  for (const auto& id : *ids) {
    auto status = store_.Load(id);
    if (!status.ok()) {
      MarkDamaged(id, status.error().message, now);
      continue;
    }
    if (IsTerminal(status->state)) {
      SetIndexEntry(id, *status);
      continue;
    }
    active.push_back(std::move(status.value()));
  }
  std::sort(active.begin(), active.end(), [](const JobStatus& a, const JobStatus& b) {
    const bool ra = a.state == JobState::kRunning;
    const bool rb = b.state == JobState::kRunning;
    if (ra != rb) return ra;
    return std::tie(a.created, a.id) < std::tie(b.created, b.id);
  });
  for (auto& loaded : active) AdoptJob(std::move(loaded), /*ours=*/true, now);
  Persist();
}

// Takes a job found on disk (at start, or a folder that appeared in jobs/, such
// as an import) into the scheduler: queued jobs join their queue; a job recorded
// running is never left running unseen. Only jobs found at start (`ours`) can
// have live processes of ours: an imported job's pid belongs to another
// machine or another daemon, and is never signalled.
void Daemon::AdoptJob(JobStatus loaded, bool ours, TimePoint now) {
  const std::string id = loaded.id;
  Result<JobStatus> status = std::move(loaded);
  auto file = store_.ReadJobFile(id, 64 << 20);
  Result<JobSpec> spec = MakeError("io_error", "no job file");
  if (file.ok()) {
    auto doc = ParseDocument(file->second, file->first);
    if (doc.ok()) {
      spec = ValidateJobSpec(*doc, id, config_);
      if (!spec.ok() && spec.error().code == "unknown_pool") {
        // The pool left the configuration: keep the job; it waits in a pool
        // that starts nothing until the pool is configured again.
        Config with_pool = config_;
        PoolConfig orphan;
        orphan.name = doc->value.value("pool", "default");
        with_pool.pools[orphan.name] = orphan;
        spec = ValidateJobSpec(*doc, id, with_pool);
      }
    } else {
      spec = doc.error();
    }
  } else {
    spec = file.error();
  }
  if (!spec.ok()) {
    spdlog::error("job {}: its job file no longer loads ({}); left as it is", id, spec.error().message);
    SetIndexEntry(id, *status);
    return;
  }
  spec->format = file->first;
  const bool was_running = status->state == JobState::kRunning;
  std::optional<int64_t> pid;
  std::optional<uint64_t> pid_start;
  if (was_running && !status->attempts.empty()) {
    pid = status->attempts.back().pid;
    pid_start = status->attempts.back().pid_start;
  }
  std::optional<std::string> slurm_id;
  if (was_running && !status->attempts.empty()) slurm_id = status->attempts.back().slurm_job_id;
  scheduler_.Add(std::move(spec.value()), std::move(status.value()));
  SchedJob& job = *scheduler_.Find(id);
  SetIndexEntry(id, job.status);
  if (!was_running) return;
  if (slurm_id && ours) {
    // A Slurm job outlives the daemon: it is followed again, never submitted
    // twice. Its timeout is counted from the attempt's recorded start.
    Attempt attempt;
    attempt.id = id;
    attempt.attempt = job.status.attempt;
    attempt.kill = job.spec.kill;
    attempt.slurm = true;
    attempt.slurm_id = *slurm_id;
    running_.emplace(id, std::move(attempt));
    Event(job, Level::kInfo, "recovered", "following Slurm job " + *slurm_id + " again after a daemon restart",
          {{"slurm_job_id", *slurm_id}});
    spdlog::info("job {}: following Slurm job {} again", id, *slurm_id);
    return;
  }
  if (ours && AdoptLocal(job, now)) return;
  // An attempt of a spoold before supervisors (no supervisor_pid), or an
  // imported job: a job recorded running is never left running unseen: if
  // its process is still the one we started (same pid and start time, never
  // a bare pid), its
  // whole group is killed before the attempt is recorded as interrupted.
  std::string how = "no process of it was left";
  if (ours && pid && pid_start && ProcessStartTicks(static_cast<pid_t>(*pid)) == pid_start) {
    auto pgid = static_cast<pid_t>(*pid);
    ::kill(-pgid, SIGKILL);
    // Not our children: their zombies wait for their own parent, so only live
    // members count.
    for (int i = 0; i < 200 && GroupHasLiveMembers(pgid); ++i) ::usleep(25'000);
    how = "its processes (group " + std::to_string(pgid) + ") were still running and were killed";
  }
  AttemptEnd end;
  end.cause = Reason::kInterrupted;
  scheduler_.AttemptEnded(id, end, now);
  Event(job, Level::kWarning, "recovered",
        "the daemon stopped while attempt " + std::to_string(job.status.attempt) + " ran; " + how);
  spdlog::warn("job {}: attempt {} was interrupted by a daemon stop; {}", id, job.status.attempt, how);
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
  SuperviseRunning(now);
  if (!stopping_) StartJobs(now);
  Persist();
  // A local job is let run once its running state with its pid is visible to
  // any process and its content durable, before the rename that shows it is
  // durable too (SPEC.md section 9: a process crash keeps the page cache, and
  // a machine crash takes the job with it). A Slurm job outlives a local power
  // loss: its sbatch waits for the second sync. Both come before the flush's
  // after-actions (deleting the dropped files), which they need not wait for.
  FlushBatch([this] { ReleasePending(/*local=*/false); }, [this] { ReleasePending(/*local=*/true); });
  if (!ready_sent_ && !stopping_) {
    // Recovery is done, and the first scan of incoming/ and control/ too: what
    // it accepted is published.
    ready_sent_ = true;
    notifier_.Notify("READY=1\nMAINPID=" + std::to_string(::getpid()));
  }
  Persist();
  FlushBatch();
  // After this turn's children were released, not before: they do not wait
  // for it. None is kept for Slurm pools alone.
  if (stopping_ || !HasLocalPool()) {
    DismissSpareHelper();
  } else if (!spare_helper_ && now >= spare_helper_due_) {
    KeepSpareHelper(now);
  }
  if (stopping_ && MayExit()) {
    // What runs on is left to its supervisor, and adopted again at the next start.
    for (auto& [id, attempt] : running_) attempt.pidfd_watch.reset();
    FlushIndex();
    // Closing every handle lets uv_run return.
    CloseHandles();
    return;
  }
  ArmWakeTimer(now);
}

void Daemon::ScanIncoming() {
  scan_pending_ = false;
  ReconcileJobFolders(Now());
  // The index is a cache: if it is gone, or not the file we wrote last, rebuild it.
  struct stat st {};
  const bool present = ::stat(paths_.Index().c_str(), &st) == 0;
  if ((!present || !(FileStamp{st.st_ino, st.st_size} == index_stamp_)) && !index_dirty_) {
    spdlog::warn("{} was deleted or changed by someone else; rebuilding it", paths_.Index());
    FlushIndex();
  }
  for (auto [dir, pending] : {std::pair{paths_.Incoming(), &pending_names_},
                              std::pair{paths_.Control(), &pending_controls_}}) {
    auto names = ListDir(dir);
    if (!names.ok()) {
      spdlog::error("cannot scan {}: {}", dir, names.error().message);
      continue;
    }
    for (auto& name : *names) {
      if (IsFinalName(name)) pending->insert(std::move(name));
    }
  }
}

void Daemon::ProcessControl(const std::string& name, TimePoint now) {
  if (!IsFinalName(name)) return;
  const std::string shown = PrintableName(name);
  auto reject = [&](const Error& error) {
    auto stored = intake_.Quarantine(paths_.Control(), name, error, now);
    if (!stored.ok() && stored.error().code == "vanished") return;
    if (!stored.ok()) {
      // Said once until it works again; the request stays in control/ and the
      // next scan refuses it again.
      Trouble("reject",
              "cannot refuse control request " + shown + " now (" + stored.error().message +
                  "); it stays in control/, with no error file, and is tried again at the next scan");
      return;
    }
    TroubleOver("reject");
    spdlog::warn("rejected control request {}: {}: {}", shown, error.code, error.message);
  };
  auto file = ReadDroppedFile(paths_.Control(), name, static_cast<size_t>(config_.max_job_file_size));
  if (!file.ok()) {
    if (file.error().code == "vanished") return;
    if (file.error().code == "io_error") {
      spdlog::error("cannot read control request {}: {}", shown, file.error().message);
      return;
    }
    return reject(file.error());
  }
  if (auto single = CheckSingleLink(name, *file); !single.ok()) return reject(single.error());
  auto doc = ParseDocument(file->bytes, file->format);
  if (!doc.ok()) return reject(doc.error());
  auto request = ParseControlRequest(*doc);
  if (!request.ok()) return reject(request.error());
  if (auto allowed = MayControl(*request, file->uid); !allowed.ok()) return reject(allowed.error());
  if (auto applied = ApplyControl(*request, name, now); !applied.ok()) return reject(applied.error());
  // Acted on; once what it changed is durable (this turn's flush), it is done.
  batch_.After([path = paths_.ControlFile(name), shown] {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      spdlog::error("cannot remove control request {}: {}", shown, std::strerror(errno));
    }
  });
}

// Who may act on what: root and the daemon's own user on everything; another
// user (only possible when spoold is root) on their own jobs only.
Status Daemon::MayControl(const ControlRequest& request, uid_t requester) const {
  if (requester == 0 || requester == ::geteuid()) return OkStatus();
  if (request.action == ControlAction::kPause || request.action == ControlAction::kResume) {
    return MakeError("not_permitted", "only root may pause or resume a pool", "pool");
  }
  if (request.action == ControlAction::kShutdown) {
    return MakeError("not_permitted", "only root or the daemon's own user may stop the daemon", "action");
  }
  int64_t owner = -1;
  if (auto it = scheduler_.Jobs().find(request.job); it != scheduler_.Jobs().end()) {
    owner = it->second.status.owner_uid;
  } else if (auto status = store_.Load(request.job); status.ok()) {
    owner = status->owner_uid;
  } else {
    return OkStatus();  // no such job: ApplyControl says so
  }
  if (owner != static_cast<int64_t>(requester)) {
    return MakeError("not_permitted", "job " + request.job + " belongs to another user", "job");
  }
  return OkStatus();
}

Status Daemon::ApplyControl(const ControlRequest& request, const std::string& name, TimePoint now) {
  const std::string source = "control/" + SanitizeUtf8(name);
  const char* action = ControlActionName(request.action);
  if (request.action == ControlAction::kShutdown) {
    if (request.stop_jobs) stop_jobs_ = true;
    RequestStop(source + (request.stop_jobs ? " (stopping the running jobs too)" : ""));
    return OkStatus();
  }
  if (request.action == ControlAction::kPause || request.action == ControlAction::kResume) {
    Status st = request.action == ControlAction::kPause ? scheduler_.Pause(request.pool, now)
                                                        : scheduler_.Resume(request.pool, now);
    if (!st.ok()) return st;
    spdlog::info("pool {} {} by {}", request.pool, request.action == ControlAction::kPause ? "paused" : "resumed",
                 source);
    MarkIndexDirty();
    return OkStatus();
  }
  SchedJob* job = scheduler_.Find(request.job);
  if (job == nullptr) {
    auto known = index_jobs_.StateOf(request.job);
    if (!known) return MakeError("unknown_job", "there is no job " + request.job, "job");
    return MakeError("invalid_state",
                     "job " + request.job + " has ended (" + StateName(*known) + "); nothing to " + action, "job");
  }
  if (request.action == ControlAction::kCancel) {
    bool was_running = false;
    const std::string state = StateName(job->status.state);
    if (auto st = scheduler_.Cancel(request.job, now, &was_running); !st.ok()) return st;
    Event(*job, Level::kInfo, "cancel_requested", "cancel requested by " + source + " while " + state);
    if (was_running) {
      auto it = running_.find(request.job);
      if (it != running_.end()) {
        if (it->second.pending) {
          AbandonPending(it->second, Reason::kCancelledByUser);
        } else {
          StopAttempt(it->second, Reason::kCancelledByUser, now);
        }
      }
    }
    return OkStatus();
  }
  if (job->status.state != JobState::kQueued || job->status.reason != Reason::kHeld) {
    return MakeError("invalid_state", "job " + request.job + " is not held; only held jobs can be started", "job");
  }
  if (auto st = scheduler_.Release(request.job, now); !st.ok()) return st;
  Event(*job, Level::kInfo, "start_requested", "start requested by " + source);
  return OkStatus();
}

void Daemon::ProcessIncoming(const std::string& name, TimePoint now) {
  // Two files for one id in the same turn (x.toml and x.json): the second waits
  // until the first is published, then meets it as an existing job.
  const auto dot = name.rfind('.');
  const std::string stem = dot == std::string::npos ? name : name.substr(0, dot);
  // The id of a job whose folder was removed while the job was active: the old
  // job is (about to be) stopped, and the new file waits in incoming/ until it
  // is forgotten (a scan then takes it in). A scan is asked for at once, which
  // notices a removal not yet seen.
  if (vanished_.count(stem) != 0 ||
      (scheduler_.Find(stem) != nullptr && !PathExists(paths_.JobDir(stem)) && !store_.IsUnpublished(stem))) {
    scan_pending_ = true;
    return;
  }
  if (ids_in_batch_.count(stem) != 0) {
    pending_names_.insert(name);
    return;
  }
  // Accepted, but its folder could not be renamed into place yet (the flush
  // retries it): this is its own dropped file, or a second one for the id,
  // and either waits for a later scan.
  if (store_.IsUnpublished(stem)) return;
  IntakeOutcome out = intake_.Process(name, [this](const JobSpec& spec) { return scheduler_.Admit(spec); }, now);
  const std::string shown = PrintableName(name);
  switch (out.kind) {
    case IntakeKind::kIgnored:
    case IntakeKind::kVanished:
      return;
    case IntakeKind::kAccepted: {
      TroubleOver("intake");
      ids_in_batch_.insert(out.id);
      spdlog::info("accepted job {} into pool {}", out.id, out.spec->pool);
      scheduler_.Add(std::move(*out.spec), std::move(*out.status));
      SetIndexEntry(out.id, scheduler_.Find(out.id)->status);
      MarkIndexDirty();
      return;
    }
    case IntakeKind::kRejected:
      TroubleOver("intake");
      spdlog::warn("rejected {}: {}{}{}", shown, out.error.code,
                   out.error.field.empty() ? "" : " (" + PrintableName(out.error.field) + ")",
                   ": " + out.error.message);
      return;
    case IntakeKind::kDuplicate: {
      const std::string message = "the same file was dropped again as " + SanitizeUtf8(name) + "; ignored";
      if (SchedJob* job = scheduler_.Find(out.id)) {
        Event(*job, Level::kInfo, "duplicate_ignored", message);
      } else if (auto status = store_.Load(out.id); status.ok()) {
        if (auto st = store_.AppendEvent(*status, {Level::kInfo, "duplicate_ignored", status->attempt, message, {}});
            !st.ok()) {
          spdlog::error("job {}: {}", out.id, st.error().message);
        }
      }
      if (auto st = intake_.RemoveIncoming(name); !st.ok()) spdlog::error("{}", st.error().message);
      spdlog::info("{} is byte-identical to job {}; removed", shown, out.id);
      return;
    }
    case IntakeKind::kFailed:
      // Left in incoming/ whether it was to be accepted or refused (nothing
      // was moved); the next scan tries again.
      if (out.refusal) {
        Trouble("intake",
                "cannot refuse " + shown + " now (" + out.refusal->code + "; " + out.error.message +
                    "); it waits in incoming/, with no error file, and is tried again at the next scan");
      } else {
        Trouble("intake", "cannot take in job files now (" + out.error.message + "); they wait in incoming/");
      }
      return;
  }
}

// ---- running jobs ----

std::vector<std::string> Daemon::JobEnvironment(const SchedJob& job, const UserEntry& user) const {
  std::map<std::string, std::string> env = {{"PATH", config_.job_path}, {"HOME", user.home},
                                            {"USER", user.name},        {"LOGNAME", user.name},
                                            {"SHELL", user.shell},      {"LANG", config_.job_lang}};
  for (const auto& [key, value] : job.spec.env) env[key] = value;
  const std::string& id = job.status.id;
  env["SPOOLD_JOB_ID"] = id;
  env["SPOOLD_ATTEMPT"] = std::to_string(job.status.attempt);
  env["SPOOLD_POOL"] = job.status.pool;
  env["SPOOLD_JOB_DIR"] = paths_.JobDir(id);
  env["SPOOLD_RESULTS_DIR"] = paths_.ResultsDir(id);
  env["SPOOLD_PROGRESS_FILE"] = paths_.Progress(id);
  std::vector<std::string> out;
  for (const auto& [key, value] : env) out.push_back(key + "=" + value);
  return out;
}

Result<UserEntry> Daemon::User(uid_t uid, TimePoint now) {
  if (const UserEntry* known = users_.Find(uid, now)) return *known;
  auto user = LookUpUser(uid);
  if (!user.ok()) {
    users_.Erase(uid);
    return user;
  }
  users_.Put(uid, *user, now);
  return user;
}

void Daemon::StartJobs(TimePoint now) {
  if (now < start_backoff_until_) return;
  for (const auto& id : scheduler_.TakeStartable(now)) Launch(id, now);
}

void Daemon::Launch(const std::string& id, TimePoint now) {
  SchedJob& job = *scheduler_.Find(id);
  const int n = job.status.attempt;
  auto fail = [&](const Error& error) { NeverRan(id, error, now); };
  auto logs = store_.OpenAttemptLogs(id, n);
  if (!logs.ok()) return fail(logs.error());
  LaunchSpec spec;
  if (job.spec.script) {
    spec.argv = job.spec.shell;
    spec.argv.push_back(paths_.Script(id));
  } else {
    spec.argv = job.spec.command;
  }
  // Who the job runs as: its submitter when we are root (SPEC.md section 5),
  // else the daemon's own user.
  const uid_t me = ::geteuid();
  const bool switch_user = me == 0 && job.status.owner_uid > 0;
  auto user = User(switch_user ? static_cast<uid_t>(job.status.owner_uid) : me, now);
  if (!user.ok()) {
    ::close(logs->stdout_fd);
    ::close(logs->stderr_fd);
    return fail(user.error());
  }
  if (switch_user) spec.run_as = user->ids;
  spec.env = JobEnvironment(job, *user);
  spec.cwd = job.spec.cwd.empty() ? paths_.ResultsDir(id) : job.spec.cwd;
  spec.stdout_fd = logs->stdout_fd;
  spec.stderr_fd = logs->stderr_fd;

  auto pool = scheduler_.Pools().find(job.status.pool);
  if (pool != scheduler_.Pools().end() && pool->second.config.executor == "slurm") {
    // The attempt becomes a Slurm job: sbatch writes nothing of ours, the
    // job's step writes the logs (as the job's user) and its exit code file.
    ::close(logs->stdout_fd);
    ::close(logs->stderr_fd);
    if (switch_user) {
      for (const std::string& path : {paths_.AttemptDir(id, n), paths_.StdoutLog(id, n), paths_.StderrLog(id, n)}) {
        if (::chown(store_.Here(id, path).c_str(), user->ids.uid, user->ids.gid) != 0) {
          return fail(MakeError("spawn_failed", ErrnoMessage("chown", path, errno)));
        }
      }
    }
    SlurmSubmit submit;
    submit.job_name = "spoold-" + id + "-" + std::to_string(n);
    submit.partition = pool->second.config.slurm.partition;
    submit.sbatch_args = pool->second.config.slurm.sbatch_args;
    submit.chdir = spec.cwd;
    submit.stdout_path = paths_.StdoutLog(id, n);
    submit.stderr_path = paths_.StderrLog(id, n);
    submit.exit_code_path = paths_.ExitCodeFile(id, n);
    submit.script_path = paths_.SlurmScript(id, n);
    submit.timeout = job.spec.timeout.value_or(config_.TimeoutFor(job.status.pool));
    submit.argv = spec.argv;
    submit.env = spec.env;
    submit.run_as = spec.run_as;
    Attempt attempt;
    attempt.id = id;
    attempt.attempt = n;
    attempt.kill = job.spec.kill;
    attempt.slurm = true;
    attempt.slurm_submit = std::move(submit);
    running_.emplace(id, std::move(attempt));
    return;
  }

  StartLocal(id, std::move(spec), now);
}

void Daemon::ReleasePending(bool local) {
  // Runs in a flush, after its first sync and its renames (`local`): every
  // job let run here is visible as running with its pid and start time, and
  // that content is durable; or after its second sync (Slurm): a Slurm
  // attempt is durable as running before sbatch. One whose status could not be
  // written or published yet (a full disk) waits, unreleased, for a later turn.
  for (auto& [id, attempt] : running_) {
    if (local ? !attempt.pending : !attempt.slurm_submit) continue;
    if (unwritten_.count(id) != 0 || store_.IsUnpublished(id) || batch_.Staged(paths_.StatusFile(id))) continue;
    if (attempt.slurm_submit) {
      StartSlurmSubmit(attempt);
      continue;
    }
    SPOOLD_FAILPOINT("attempt.before_release");
    ReleaseProcess(*attempt.pending);
    SPOOLD_FAILPOINT("attempt.after_release");
    attempt.pending.reset();
    // Whether exec worked is in the supervisor's outcome: the loop does not
    // wait while the kernel loads the program.
  }
}

// An attempt that never ran its command: requeued without counting when the
// machine (or Slurm) is short of something, else ended as spawn_failed.
void Daemon::NeverRan(const std::string& id, const Error& error, TimePoint now) {
  if (error.code == "transient" || error.code == "io_error") return RequeueForLackOfResources(id, error.message, now);
  AttemptEnd end;
  end.cause = Reason::kSpawnFailed;
  end.detail = error.message;
  spdlog::warn("job {}: attempt {} could not start: {}", id, scheduler_.Find(id)->status.attempt, error.message);
  scheduler_.AttemptEnded(id, end, now);
}

// Not the job's fault (the machine is short of descriptors, processes or
// memory): it waits at the head of its queue, no attempt counted, and no job
// starts for a second.
void Daemon::RequeueForLackOfResources(const std::string& id, const std::string& why, TimePoint now) {
  Trouble("spawn", "cannot start jobs now: " + why);
  start_backoff_until_ = now + std::chrono::seconds(1);
  scheduler_.AttemptNotStarted(id, why, now);
}

bool Daemon::MayExit() const {
  // A stop leaves Slurm jobs running, once no sbatch or scancel is under way
  // (an attempt stays in running_ until its command answered), and local jobs
  // to their supervisors, once released and while still running: the next
  // start adopts them. A stop with its jobs waits for every local one.
  return std::all_of(running_.begin(), running_.end(), [this](const auto& entry) {
    const Attempt& a = entry.second;
    if (a.slurm) return !a.slurm_busy;
    return !stop_jobs_ && !a.pending && !a.abandoned && !a.supervisor_done;
  });
}

// sbatch runs in the thread pool: it may take up to 30 s, and the loop goes on
// meanwhile (intake, local jobs, signals, the watchdog).
void Daemon::StartSlurmSubmit(Attempt& attempt) {
  auto submit = std::make_shared<SlurmSubmit>(std::move(*attempt.slurm_submit));
  attempt.slurm_submit.reset();
  RunSlurmCommand(
      attempt, [submit] { return Submit(*submit, std::chrono::seconds(30)); },
      [this](Attempt& a, const Result<std::string>& slurm_id, TimePoint now) {
        SlurmSubmitted(a, slurm_id, now);
      });
}

void Daemon::SlurmSubmitted(Attempt& attempt, const Result<std::string>& slurm_id, TimePoint now) {
  if (!slurm_id.ok()) {
    if (slurm_id.error().code == "transient") {
      Trouble("slurm", "cannot reach Slurm (" + slurm_id.error().message + ")");
    }
    if (attempt.cause != Reason::kNone) {
      // Cancelled (or past its deadline) while sbatch ran, and nothing was
      // submitted: the attempt ends as that.
      attempt.slurm_ended = true;
      return;
    }
    const std::string id = attempt.id;
    const Error error = slurm_id.error();
    running_.erase(id);
    return NeverRan(id, error, now);
  }
  TroubleOver("slurm");
  attempt.slurm_id = *slurm_id;
  SchedJob& job = *scheduler_.Find(attempt.id);
  scheduler_.AttemptSubmitted(attempt.id, *slurm_id, now);
  Event(job, Level::kInfo, "submitted",
        "attempt " + std::to_string(attempt.attempt) + " is Slurm job " + *slurm_id,
        {{"slurm_job_id", *slurm_id}});
  // A cancel, timeout or deadline that came while sbatch ran: scancel now.
  if (attempt.cause != Reason::kNone) StopAttempt(attempt, attempt.cause, now);
  StartSlurmPoll();
}

// A Slurm command for `attempt` in libuv's thread pool: a controller that does
// not answer must not stall the loop. `done` runs on the loop when it returns;
// the attempt, marked busy until then, does not end before (SuperviseRunning).
void Daemon::RunSlurmCommand(Attempt& attempt, std::function<Result<std::string>()> command,
                             std::function<void(Attempt&, const Result<std::string>&, TimePoint)> done) {
  auto result = std::make_shared<Result<std::string>>(MakeError("slurm_error", "not run"));
  attempt.slurm_busy = true;
  RunInThreadPool(
      &loop_, [result, command = std::move(command)] { *result = command(); },
      [this, result, id = attempt.id, n = attempt.attempt, done = std::move(done)] {
        auto it = running_.find(id);
        if (it == running_.end() || it->second.attempt != n) return;  // not expected: see above
        it->second.slurm_busy = false;
        done(it->second, *result, Now());
      });
}

// One squeue call for all of our Slurm jobs, on the thread pool: a controller
// that does not answer must not stall the loop.
void Daemon::StartSlurmPoll() {
  if (slurm_poll_in_flight_) return;
  std::vector<std::string> ids;
  for (const auto& [id, attempt] : running_) {
    if (attempt.slurm && !attempt.slurm_id.empty() && !attempt.slurm_ended) ids.push_back(attempt.slurm_id);
  }
  if (ids.empty()) return;
  auto result = std::make_shared<Result<std::map<std::string, SlurmJobInfo>>>(MakeError("transient", "not polled"));
  slurm_poll_in_flight_ = true;
  RunInThreadPool(
      &loop_, [result, ids = std::move(ids)] { *result = Poll(ids, std::chrono::seconds(20)); },
      [this, result] {
        slurm_poll_in_flight_ = false;
        ApplySlurmPoll(*result);
      });
}

void Daemon::ApplySlurmPoll(const Result<std::map<std::string, SlurmJobInfo>>& polled) {
  if (!polled.ok()) {
    // Jobs keep their state; the poll goes on and the problem is logged once.
    Trouble("slurm", "cannot reach Slurm (" + polled.error().message + ")");
    return;
  }
  TroubleOver("slurm");
  for (auto& [id, attempt] : running_) {
    if (!attempt.slurm || attempt.slurm_id.empty() || attempt.slurm_ended) continue;
    const std::string exit_path = paths_.ExitCodeFile(id, attempt.attempt);
    auto it = polled->find(attempt.slurm_id);
    if (it == polled->end()) {
      // Purged from Slurm's memory: twice in a row before it counts.
      if (++attempt.missing_polls < 2) continue;
      attempt.end = MapLost(attempt.slurm_id, ReadExitFile(exit_path));
    } else {
      attempt.missing_polls = 0;
      if (!it->second.terminal) continue;
      attempt.end = MapEnd(it->second, ReadExitFile(exit_path));
    }
    attempt.leader_done = true;
    attempt.slurm_ended = true;
  }
}

void Daemon::ReapChildren() {
  for (;;) {
    int status = 0;
    struct rusage usage {};
    pid_t pid = ::wait4(-1, &status, WNOHANG, &usage);
    if (pid <= 0) return;  // 0: none ready; -1 ECHILD: no children
    if (spare_helper_ && pid == spare_helper_->pid) {
      // Killed by someone while it waited: another is started at the end of
      // the turn.
      spdlog::warn("the idle exec helper {} ended ({} {}); starting another", pid,
                   WIFSIGNALED(status) ? "signal" : "exit code",
                   WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
      DismissSpareHelper();
      continue;
    }
    auto it = pid_to_job_.find(pid);
    if (it == pid_to_job_.end()) continue;  // an orphaned descendant of a job, or a dismissed helper
    SPOOLD_FAILPOINT("attempt.after_reap");
    // A supervisor exits when nothing of its job is left, after writing the
    // outcome (or without one: it was let go, or something killed it).
    running_.at(it->second).supervisor_done = true;
    pid_to_job_.erase(it);
  }
}

void Daemon::StopAttempt(Attempt& attempt, Reason cause, TimePoint now) {
  SchedJob& job = *scheduler_.Find(attempt.id);
  if (attempt.cause == Reason::kNone) attempt.cause = cause;
  if (attempt.kill_stage > 0) return;  // the kill sequence already runs
  if (attempt.slurm) {
    if (attempt.slurm_submit) {
      // Not handed to Slurm yet: it never will be, and the attempt ends.
      attempt.slurm_submit.reset();
      attempt.slurm_ended = true;
      return;
    }
    // While sbatch runs, its end sends the scancel (SlurmSubmitted).
    if (attempt.slurm_id.empty() || attempt.slurm_busy) return;
    // Slurm runs its own sequence (TERM, then KILL after KillWait).
    attempt.kill_stage = 2;
    const std::string slurm_id = attempt.slurm_id;
    RunSlurmCommand(
        attempt,
        [slurm_id]() -> Result<std::string> {
          if (Status st = Cancel(slurm_id, std::chrono::seconds(20)); !st.ok()) return st.error();
          return slurm_id;
        },
        [this](Attempt& a, const Result<std::string>& cancelled, TimePoint) {
          if (!cancelled.ok()) {
            Trouble("slurm", "cannot reach Slurm (" + cancelled.error().message + ")");
            a.kill_stage = 0;  // sent again at the next turn
            return;
          }
          Event(*scheduler_.Find(a.id), Level::kWarning, "kill_sent", "cancelled Slurm job " + *cancelled,
                {{"slurm_job_id", *cancelled}});
        });
    return;
  }
  // The supervisor runs the kill sequence; its outcome says what it sent.
  (void)job;
  (void)now;
  attempt.kill_stage = 1;
  SignalSupervisor(attempt, cause == Reason::kInterrupted ? exec_protocol::kStopSignal
                                                          : exec_protocol::kCancelSignal);
}

// A child never released (its running state could not be written yet, e.g. on
// a full disk) is let go without running anything: its go pipe closes, it
// exits, and the attempt ends as `cause` once it is reaped.
void Daemon::AbandonPending(Attempt& attempt, Reason cause) {
  if (attempt.cause == Reason::kNone) attempt.cause = cause;
  ::close(attempt.pending->go_fd);
  attempt.pending.reset();
  attempt.abandoned = true;
}

void Daemon::SuperviseRunning(TimePoint now) {
  std::vector<std::string> finished;
  for (auto& [id, attempt] : running_) {
    if (attempt.pending) {
      if (stopping_) AbandonPending(attempt, Reason::kInterrupted);
      continue;
    }
    SchedJob& job = *scheduler_.Find(id);
    if (attempt.slurm) {
      if (attempt.slurm_ended) {
        // Its scancel may still run: the attempt ends once that answered, so
        // that the history says what was sent before the attempt's end.
        if (!attempt.slurm_busy) finished.push_back(id);
        continue;
      }
      // A stop leaves Slurm jobs running: they are followed again at the next
      // start. Timeouts and deadlines are spoold's own, enforced with scancel.
      if (!stopping_ && attempt.cause == Reason::kNone && !attempt.slurm_id.empty()) {
        if (auto limit = scheduler_.AttemptLimit(id); limit && now >= limit->first) {
          Event(job, Level::kWarning, limit->second == Reason::kTimeout ? "timeout" : "deadline",
                "attempt " + std::to_string(attempt.attempt) + " reached its limit; cancelling Slurm job " +
                    attempt.slurm_id);
          StopAttempt(attempt, limit->second, now);
        }
      } else if (attempt.cause != Reason::kNone && attempt.kill_stage == 0 && !attempt.slurm_id.empty()) {
        // A scancel that failed (Slurm unreachable) is sent again.
        StopAttempt(attempt, attempt.cause, now);
      }
      continue;
    }
    // Local: the supervisor enforces the limits and the kill sequence, also
    // while the daemon is down. A stop leaves the job running, unless it
    // stops the jobs too.
    if (stop_jobs_ && attempt.cause == Reason::kNone && !attempt.supervisor_done) {
      StopAttempt(attempt, Reason::kInterrupted, now);
    }
    if (attempt.supervisor_done) finished.push_back(id);
  }
  for (const auto& id : finished) FinishAttempt(id, now);
}

void Daemon::FinishAttempt(const std::string& id, TimePoint now) {
  Attempt attempt = std::move(running_.at(id));
  running_.erase(id);
  SPOOLD_FAILPOINT("attempt.before_finish");
  if (!attempt.slurm) return FinishLocal(std::move(attempt), now);
  AttemptEnd end = attempt.end;
  if (attempt.cause != Reason::kNone) end.cause = attempt.cause;
  SchedJob& job = *scheduler_.Find(id);
  std::string how = end.exit_code  ? "exited with code " + std::to_string(*end.exit_code)
                    : end.signal   ? "was killed by signal " + SignalName(*end.signal)
                                   : "ended";
  Event(job, end.exit_code == 0 ? Level::kInfo : Level::kWarning, "exited",
        "attempt " + std::to_string(attempt.attempt) + " " + how,
        {{"exit_code", end.exit_code ? Json(*end.exit_code) : Json(nullptr)},
         {"signal", end.signal ? Json(SignalName(*end.signal)) : Json(nullptr)}});
  scheduler_.AttemptEnded(id, end, now);
}

void Daemon::ReadProgress(TimePoint now) {
  progress_pending_ = false;
  for (const auto& [id, attempt] : running_) {
    auto text = ReadSmallFile(paths_.Progress(id), 4096);
    if (!text.ok()) continue;  // no progress file (yet), or not a regular file
    // "42" or "42 converting tiles": a number from 0 to 100, then a message.
    const std::string& t = *text;
    size_t end = 0;
    double value = 0;
    try {
      value = std::stod(t, &end);
    } catch (...) {
      continue;
    }
    if (!(value >= 0 && value <= 100)) continue;
    std::string message = t.substr(end);
    auto trim = [](std::string& s) {
      while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(s.begin());
      while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    };
    trim(message);
    if (auto nl = message.find('\n'); nl != std::string::npos) message.resize(nl);
    message = SanitizeUtf8(message.substr(0, 200));
    scheduler_.SetProgress(id, value, message.empty() ? std::nullopt : std::optional<std::string>(message), now);
  }
}

// ---- persistence ----

void Daemon::Event(SchedJob& job, Level level, const std::string& event, const std::string& message,
                   Json extra) {
  if (vanished_.count(job.status.id) != 0) return;  // its folder is gone
  if (auto st = store_.AppendEvent(job.status, {level, event, job.status.attempt, message, std::move(extra)});
      !st.ok()) {
    Trouble("events", "cannot append to events.jsonl (" + st.error().message + ")");
  }
}

void Daemon::RecordTransition(SchedJob& job) {
  const JobStatus& s = job.status;
  if (s.state == job.persisted_state && s.reason == job.persisted_reason) return;
  const char* name = TransitionEvent(job.persisted_state, s.state, s.reason);
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
  const JobStatus& s = job.status;
  ResultsInfo info{s.id, s.title, StateName(s.state), s.pool, s.created, s.finished.value_or(s.updated)};
  auto item = BuildResultsItem(store_.Here(s.id, paths_.JobDir(s.id)), info);
  if (!item.ok()) {
    spdlog::error("job {}: cannot list results: {}", s.id, item.error().message);
    return;
  }
  if (auto st = store_.WriteResults(s.id, *item); !st.ok()) {
    Trouble("results", "cannot write results.json (" + st.error().message + ")");
  }
}

void Daemon::Persist() {
  std::set<std::string> ids;
  for (auto& id : scheduler_.TakeChanged()) ids.insert(std::move(id));
  ids.insert(unwritten_.begin(), unwritten_.end());
  for (const auto& id : ids) {
    SchedJob* job = scheduler_.Find(id);
    if (job == nullptr) continue;
    if (vanished_.count(id) != 0) {
      // Its folder is gone: nothing is written; forgotten once it has ended.
      job->persisted_state = job->status.state;
      job->persisted_reason = job->status.reason;
      if (IsTerminal(job->status.state)) {
        scheduler_.Forget(id);
        vanished_.erase(id);
        jobs_mtime_ = {};  // a folder under its id since then is taken in at the next scan
      }
      continue;
    }
    RecordTransition(*job);
    const bool terminal = IsTerminal(job->status.state);
    // results.json comes before the terminal status, so whoever sees the job
    // ended finds its results listed.
    if (terminal) WriteResults(*job);
    if (auto st = store_.WriteStatus(job->status); !st.ok()) {
      // Kept and tried again; until it is on disk, a terminal job stays known
      // here, so its state is never lost nor reported without being written.
      Trouble("status", "cannot write job status (" + st.error().message + "); retrying every second");
      unwritten_.insert(id);
      continue;
    }
    if (unwritten_.erase(id) != 0 && unwritten_.empty()) TroubleOver("status");
    SetIndexEntry(id, job->status);
    MarkIndexDirty();
    if (terminal) scheduler_.Forget(id);
  }
}

void Daemon::FlushBatch(const std::function<void()>& once_synced, const std::function<void()>& once_visible) {
  ids_in_batch_.clear();
  if (auto st = batch_.Flush(nullptr, once_synced, once_visible); !st.ok()) {
    Trouble("sync", "cannot make this turn's writes durable (" + st.error().message + "); retrying");
    return;
  }
  TroubleOver("sync");
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
  // Local attempts' limits are their supervisors' to enforce; Slurm ones are ours.
  for (const auto& [id, attempt] : running_) {
    if (attempt.slurm && !attempt.slurm_ended && attempt.cause == Reason::kNone) {
      if (auto limit = scheduler_.AttemptLimit(id)) consider(limit->first);
    }
  }
  // Writes or renames that failed (a full disk) are tried again every second.
  if (!unwritten_.empty() || !batch_.Empty()) consider(now + std::chrono::seconds(1));
  if (!pending_names_.empty() || !pending_controls_.empty()) consider(now);
  if (start_backoff_until_ > now) consider(start_backoff_until_);
  if (!spare_helper_ && spare_helper_due_ != TimePoint{}) consider(spare_helper_due_);
  if (next) {
    auto delay = std::max<int64_t>(0, (*next - now).count()) + 1;
    wake_timer_->Start(static_cast<uint64_t>(delay));
  } else {
    wake_timer_->Stop();
  }
  // Slurm is polled only while we follow Slurm jobs.
  const bool following_slurm = std::any_of(running_.begin(), running_.end(), [](const auto& entry) {
    return entry.second.slurm && !entry.second.slurm_id.empty() && !entry.second.slurm_ended;
  });
  if (!following_slurm) {
    slurm_timer_->Stop();
  } else if (!slurm_timer_->Active()) {
    slurm_timer_->Start(kSlurmPollMs, kSlurmPollMs);
  }
  // Progress files are read only while something runs: an idle daemon wakes
  // for nothing but its rescan.
  if (running_.empty()) {
    progress_timer_->Stop();
  } else if (!progress_timer_->Active()) {
    progress_timer_->Start(kProgressIntervalMs, kProgressIntervalMs);
  }
}

// ---- index ----

void Daemon::MarkIndexDirty() {
  index_dirty_ = true;
  if (index_timer_ && !index_timer_->Active()) index_timer_->Start(index_delay_ms_);
}

void Daemon::FlushIndex() {
  CheckRoot();  // its timer runs outside Pump
  index_dirty_ = false;
  Json pools = Json::object();
  for (const auto& [name, pool] : scheduler_.Pools()) {
    pools[name] = {{"workers", pool.config.workers},       {"queue_limit", pool.config.queue_limit},
                   {"paused", pool.paused},                {"auto_resume", pool.config.auto_resume},
                   {"executor", pool.config.executor},     {"running", pool.running},
                   {"queued", pool.queued}};
  }
  Json doc = {{"schema", "spoold/index/v1"},
              {"updated", FormatTime(Now())},
              {"daemon",
               {{"pid", ::getpid()},
                {"version", Version()},
                {"started", FormatTime(started_at_)},
                {"state", stopping_ ? (running_.empty() ? "stopped" : "stopping") : "running"}}},
              {"pools", std::move(pools)}};
  Json damaged = Json::object();
  for (const auto& [id, d] : damaged_) {
    damaged[SanitizeUtf8(id)] = {{"problem", SanitizeUtf8(d.problem)}, {"since", FormatTime(d.since)}};
  }
  doc["damaged"] = std::move(damaged);
  // Each job's entry is kept serialised (an ended job's in a file): the
  // document is assembled as text, never as one tree of every job. "jobs" goes
  // last, after the small header.
  const auto t0 = std::chrono::steady_clock::now();
  SPOOLD_FAILPOINT("index.before_write");
  // A cache: replaced atomically but not synced (it is rebuilt at every start).
  std::string replaced;
  if (auto st = index_jobs_.Write(paths_.Index(), DumpJson(doc), &replaced); !st.ok()) {
    Trouble("index", "cannot write the index (" + st.error().message + "); retrying");
    index_stamp_ = {};
    index_dirty_ = true;
    if (index_timer_) index_timer_->Start(1000);
    return;
  }
  // A large index is written less often: the next write waits forty times
  // this one's duration, between 250 and 800 ms (a 30 MB index at 100,000
  // jobs takes about 13 ms): a few percent of the time, within SPEC.md's
  // second. The replaced file is freed in the thread pool.
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  index_delay_ms_ = std::clamp<uint64_t>(static_cast<uint64_t>(took.count()) * kIndexDelayPerWriteMs,
                                         kIndexDelayMs, kIndexMaxDelayMs);
  if (!replaced.empty()) UnlinkInThreadPool(&loop_, replaced);
  TroubleOver("index");
  struct stat st {};
  index_stamp_ = ::stat(paths_.Index().c_str(), &st) == 0 ? FileStamp{st.st_ino, st.st_size} : FileStamp{};
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

void Daemon::ApplyRetention(TimePoint now) {
  retention_pending_ = false;
  if (config_.retention_finished.count() == 0) return;
  bool expired = false;
  for (const auto& id : index_jobs_.EndedBefore(now - config_.retention_finished)) {
    if (scheduler_.Find(id) != nullptr) continue;
    if (auto st = store_.Remove(id); !st.ok()) {
      spdlog::error("retention: cannot remove job {}: {}", id, st.error().message);
      continue;
    }
    index_jobs_.Erase(id);
    expired = true;
    spdlog::info("retention: removed job {}, finished more than {} ago", id,
                 FormatDuration(config_.retention_finished));
  }
  if (expired) MarkIndexDirty();
}

void Daemon::RequestStop(const std::string& by) {
  if (stopping_) {
    // A stop that keeps the jobs may become one that stops them, not back.
    if (stop_jobs_) spdlog::info("{}: stopping the running jobs too", by);
    return;
  }
  stopping_ = true;
  size_t local = 0;
  for (const auto& [id, attempt] : running_) local += attempt.slurm ? 0 : 1;
  const std::string what = stop_jobs_ ? "stopping " + std::to_string(local) + " running local jobs"
                                      : "leaving " + std::to_string(running_.size()) +
                                            " running jobs to their supervisors (Slurm jobs to Slurm)";
  spdlog::info("stop requested by {}: stopping intake and {}", by, what);
  notifier_.Notify("STOPPING=1\nSTATUS=stopping: " + what);
  incoming_watch_.reset();
  control_watch_.reset();
  if (rescan_timer_) rescan_timer_->Stop();
  // From the next loop turn on: unreleased attempts are let go, and with
  // stop_jobs_ every running one is stopped (SuperviseRunning).
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
  auto rescan_ms = static_cast<uint64_t>(config_.rescan_interval.count());
  if (rescan_timer_ && !stopping_) rescan_timer_->Start(rescan_ms, rescan_ms);
  MarkIndexDirty();
  spdlog::info("configuration reloaded from {}: {} pools", config_path_, config_.pools.size());
}

}  // namespace spoold

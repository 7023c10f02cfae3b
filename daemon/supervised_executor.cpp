#include "daemon/supervised_executor.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "config/resources.h"
#include "daemon/exec_protocol.h"
#include "spool/failpoint.h"
#include "spool/fileio.h"

namespace spoold {
namespace {

std::string KillMessage(const KillRecord& kill, pid_t pgid, const KillPolicy& policy, TimePoint now) {
  const std::string sig = SignalName(kill.signal);
  std::string text = kill.leftovers ? "sent " + sig + " to what the main process left behind"
                                    : "sent " + sig + " to process group " + std::to_string(pgid);
  if (kill.signal != SIGKILL && !kill.leftovers) text += "; KILL follows in " + FormatDuration(policy.grace);
  return text + " (at " + FormatMessageTime(kill.at, now) + ")";
}

// An attempt's cgroup (SPEC.md section 5): its job id may hold ':' (array
// tasks), which a folder name takes.
std::string CgroupName(const std::string& id, int attempt) { return id + "." + std::to_string(attempt); }

// Binds process `pid` (one thread: the job's process before its exec, whose
// affinity everything it starts inherits) to `cpus`; "" or what failed.
std::string BindCpus(pid_t pid, const std::vector<int>& cpus) {
  const int highest = *std::max_element(cpus.begin(), cpus.end());
  if (highest < 0) return "no CPU number in the grant";
  cpu_set_t* set = CPU_ALLOC(highest + 1);
  if (set == nullptr) return "out of memory";
  const size_t size = CPU_ALLOC_SIZE(highest + 1);
  CPU_ZERO_S(size, set);
  for (int cpu : cpus) {
    if (cpu >= 0) CPU_SET_S(static_cast<size_t>(cpu), size, set);
  }
  const int rc = ::sched_setaffinity(pid, size, set);
  const int err = errno;
  CPU_FREE(set);
  return rc == 0 ? "" : std::string("sched_setaffinity: ") + std::strerror(err);
}

}  // namespace

SupervisedExecutor::SupervisedExecutor(uv_loop_t* loop, const SpoolPaths& paths, const JobStore& store,
                                       const Config& config, ExecutorHost& host)
    : loop_(loop), paths_(paths), store_(store), config_(config), host_(host) {}

SupervisedExecutor::~SupervisedExecutor() { DismissSpareHelper(); }

Status SupervisedExecutor::Open() {
  auto helper = FindExecHelper(ExecHelperCandidates());
  if (!helper.ok()) return helper.error();
  exec_helper_ = std::move(helper.value());
  // Orphaned descendants of jobs are re-parented to us, so we can reap them and
  // see when a job's whole process group is gone.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  boot_id_ = BootId();
  sigchld_ = std::make_unique<SignalWatch>(loop_, SIGCHLD);
  sigchld_->SetCallback([this](int) { ReapChildren(); });
  return OkStatus();
}

Result<StartInfo> SupervisedExecutor::Start(AttemptSpec spec, TimePoint) {
  const std::string& id = spec.id;
  LaunchSpec& launch = spec.launch;
  const std::string dir = store_.Here(id, paths_.AttemptDir(id, spec.attempt));
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  auto close_all = [&] {
    ::close(launch.stdout_fd);
    ::close(launch.stderr_fd);
    if (dir_fd >= 0) ::close(dir_fd);
  };
  if (dir_fd < 0) {
    const int err = errno;
    close_all();
    return MakeError(err == EMFILE || err == ENFILE ? "transient" : "io_error", ErrnoMessage("open", dir, err));
  }
  launch.attempt_dir_fd = dir_fd;
  launch.timeout_ms = spec.timeout.count() > 0 ? spec.timeout.count() : 0;
  if (spec.deadline) launch.deadline_unix_ms = std::max<int64_t>(1, spec.deadline->time_since_epoch().count());
  launch.kill_signal = spec.kill.signal;
  launch.kill_grace_ms = spec.kill.grace.count();

  auto exe = FindProgram(launch);
  Result<PendingProcess> pending = exe.ok() ? HandToHelper(launch, *exe) : Result<PendingProcess>(exe.error());
  close_all();
  if (!pending.ok()) return pending.error();
  SPOOLD_FAILPOINT("attempt.after_spawn");

  Attempt attempt;
  StartInfo info;
  info.not_enforced = BindResources(spec, pending->job_pid, attempt, info);
  attempt.id = id;
  attempt.attempt = spec.attempt;
  attempt.pid = pending->job_pid;
  attempt.pid_start = pending->job_start_ticks;
  attempt.supervisor = pending->pid;
  attempt.kill = spec.kill;
  attempt.timeout = spec.timeout;
  attempt.exe = *exe;
  attempt.cwd = launch.cwd;
  pid_to_job_[attempt.supervisor] = id;
  info.pid = pending->job_pid;
  info.pid_start = pending->job_start_ticks;
  info.supervisor_pid = pending->pid;
  if (!boot_id_.empty()) info.boot_id = boot_id_;
  attempt.pending = std::move(pending.value());
  running_.emplace(id, std::move(attempt));
  return info;
}

// Applies the grant to the job's process while it waits for its go: nothing of
// the job has run yet, and all it starts inherits its CPUs and cgroup. What
// this host cannot do is said (the job's resources_not_enforced warning);
// the attempt runs anyway.
std::string SupervisedExecutor::BindResources(const AttemptSpec& spec, pid_t job_pid, Attempt& attempt,
                                              StartInfo& info) {
  std::string not_enforced;
  auto add = [&not_enforced](const std::string& text) {
    not_enforced += (not_enforced.empty() ? "" : "; ") + text;
  };
  if (!spec.grant.cpus.empty()) {
    if (std::string failed = BindCpus(job_pid, spec.grant.cpus); !failed.empty()) {
      add("cpus: " + JoinNumbers(spec.grant.cpus) + " given, not bound: " + failed);
    }
  }
  if (spec.grant.memory > 0) {
    const std::string asked = "memory: " + FormatSize(spec.grant.memory) + " asked, not enforced: ";
    if (!cgroups_.CanLimitMemory()) {
      add(asked + "no cgroup can be made here (" + cgroups_.reason() + ")");
    } else {
      const std::string name = CgroupName(spec.id, spec.attempt);
      Status st = cgroups_.Create(name, spec.grant.memory);
      if (st.ok()) {
        st = cgroups_.Enter(name, job_pid);
        if (!st.ok()) cgroups_.Remove(name);
      }
      if (st.ok()) {
        attempt.cgroup = name;
        attempt.memory_limit = spec.grant.memory;
        info.memory_limit = spec.grant.memory;
      } else {
        add(asked + st.error().message);
      }
    }
  }
  if (!not_enforced.empty()) spdlog::warn("job {}: attempt {}: {}", spec.id, spec.attempt, not_enforced);
  return not_enforced;
}

void SupervisedExecutor::Release(const std::string& id) {
  auto it = running_.find(id);
  if (it == running_.end() || !it->second.pending) return;
  SPOOLD_FAILPOINT("attempt.before_release");
  ReleaseProcess(*it->second.pending);
  SPOOLD_FAILPOINT("attempt.after_release");
  it->second.pending.reset();
  // Whether exec worked is in the supervisor's outcome: the loop does not
  // wait while the kernel loads the program.
}

Result<PendingProcess> SupervisedExecutor::HandToHelper(const LaunchSpec& spec, const std::string& exe) {
  if (spare_helper_) {
    IdleHelper helper = *spare_helper_;
    spare_helper_.reset();
    auto pending = HandOver(helper, spec, exe);
    if (pending.ok() || pending.error().code != "transient") return pending;
    // It died since it was started (someone killed it): a new one, below.
    spdlog::warn("the idle exec helper {} is gone ({}); starting another", helper.pid,
                 pending.error().message);
  }
  auto helper = StartHelper(exec_helper_, paths_.Root());
  if (!helper.ok()) return helper.error();
  return HandOver(*helper, spec, exe);
}

void SupervisedExecutor::KeepSpareHelper(TimePoint now) {
  spare_helper_due_ = TimePoint{};
  auto helper = StartHelper(exec_helper_, paths_.Root());
  if (helper.ok()) {
    spare_helper_ = *helper;
  } else {
    // Not reported here: the next start tries again, and says why.
    spare_helper_due_ = now + std::chrono::seconds(1);
  }
}

void SupervisedExecutor::DismissSpareHelper() {
  if (!spare_helper_) return;
  DismissHelper(*spare_helper_);
  spare_helper_.reset();
}

std::optional<TimePoint> SupervisedExecutor::EndTurn(TimePoint now, bool keep_ready) {
  // After this turn's children were released, not before: they do not wait
  // for it. None is kept for Slurm pools alone, nor during a stop.
  if (!keep_ready) {
    DismissSpareHelper();
  } else if (!spare_helper_ && now >= spare_helper_due_) {
    KeepSpareHelper(now);
  }
  if (!spare_helper_ && spare_helper_due_ != TimePoint{}) return spare_helper_due_;
  return std::nullopt;
}

void SupervisedExecutor::Stop(const std::string& id, Reason cause, TimePoint) {
  auto it = running_.find(id);
  if (it == running_.end()) return;
  if (it->second.pending) return Abandon(it->second, cause);
  StopAttempt(it->second, cause);
}

// A child never released (its running state could not be written yet, e.g. on
// a full disk) is let go without running anything: its go pipe closes, it
// exits, and the attempt ends as `cause` once it is reaped.
void SupervisedExecutor::Abandon(Attempt& attempt, Reason cause) {
  if (attempt.cause == Reason::kNone) attempt.cause = cause;
  ::close(attempt.pending->go_fd);
  attempt.pending.reset();
  attempt.abandoned = true;
}

// The supervisor runs the kill sequence; its outcome says what it sent.
void SupervisedExecutor::StopAttempt(Attempt& attempt, Reason cause) {
  if (attempt.cause == Reason::kNone) attempt.cause = cause;
  if (attempt.signalled) return;  // the kill sequence already runs
  attempt.signalled = true;
  SignalSupervisor(attempt, cause == Reason::kInterrupted ? exec_protocol::kStopSignal
                                                          : exec_protocol::kCancelSignal);
}

// A supervisor we started is our child until we reap it, so its pid is its
// own until then; an adopted one is reached through its pidfd only.
void SupervisedExecutor::SignalSupervisor(Attempt& attempt, int sig) {
  if (attempt.supervisor_done) return;
  if (attempt.pidfd >= 0) {
    ::syscall(SYS_pidfd_send_signal, attempt.pidfd, sig, nullptr, 0);
  } else if (pid_to_job_.count(attempt.supervisor) != 0) {
    ::kill(attempt.supervisor, sig);
  }
}

void SupervisedExecutor::WatchSupervisor(Attempt& attempt) {
  attempt.pidfd_watch = std::make_unique<FdWatch>(loop_, attempt.pidfd);
  attempt.pidfd_watch->SetCallback([this, id = attempt.id, n = attempt.attempt](int) {
    auto it = running_.find(id);
    if (it == running_.end() || it->second.attempt != n) return;
    it->second.supervisor_done = true;
    it->second.pidfd_watch.reset();  // readable until closed: once is enough
  });
  SPOOLD_CHECK(attempt.pidfd_watch->Start(UV_READABLE) == 0);
}

void SupervisedExecutor::ReapChildren() {
  for (;;) {
    // The job's CPU time and peak memory are its supervisor's to record.
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
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

// The supervisor enforces the limits and the kill sequence, also while the
// daemon is down. A stop leaves the job running, unless it stops the jobs too;
// attempts not yet released are let go.
void SupervisedExecutor::Tick(TimePoint now, StopMode mode) {
  std::vector<std::string> finished;
  for (auto& [id, attempt] : running_) {
    if (attempt.pending) {
      if (mode != StopMode::kRunning) Abandon(attempt, Reason::kInterrupted);
      continue;
    }
    if (mode == StopMode::kStopJobs && attempt.cause == Reason::kNone && !attempt.supervisor_done) {
      StopAttempt(attempt, Reason::kInterrupted);
    }
    if (attempt.supervisor_done) finished.push_back(id);
  }
  for (const auto& id : finished) Finish(id, now);
}

// A stop leaves local jobs to their supervisors, once released and while still
// running: the next start adopts them. A stop with its jobs waits for every one.
bool SupervisedExecutor::Busy(bool stop_jobs) const {
  return std::any_of(running_.begin(), running_.end(), [stop_jobs](const auto& entry) {
    const Attempt& a = entry.second;
    return stop_jobs || a.pending || a.abandoned || a.supervisor_done;
  });
}

std::vector<std::string> SupervisedExecutor::Ids() const {
  std::vector<std::string> ids;
  for (const auto& entry : running_) ids.push_back(entry.first);
  return ids;
}

void SupervisedExecutor::Shutdown() {
  // What runs on is left to its supervisor, and adopted again at the next start.
  for (auto& [id, attempt] : running_) attempt.pidfd_watch.reset();
  sigchld_.reset();
  DismissSpareHelper();
}

// ---- ends ----

void SupervisedExecutor::Finish(const std::string& id, TimePoint now) {
  Attempt attempt = std::move(running_.at(id));
  running_.erase(id);
  SPOOLD_FAILPOINT("attempt.before_finish");
  attempt.pidfd_watch.reset();
  if (attempt.pidfd >= 0) ::close(attempt.pidfd);
  const std::string dir = store_.Here(id, paths_.AttemptDir(id, attempt.attempt));
  auto outcome = ReadOutcome(dir);
  if (outcome && outcome->ok()) return RecordOutcome(attempt, **outcome, now);
  if (attempt.abandoned) {
    // Let go before its job ran (a cancel, a stop, a vanished folder).
    TakeCgroupUsage(attempt, nullptr);
    if (attempt.cause == Reason::kCancelledByUser) {
      AttemptEnd end;
      end.cause = attempt.cause;
      return host_.AttemptEnded(id, end, now);
    }
    return host_.AttemptNotStarted(id, "the daemon stopped before the job ran", now);
  }
  // Gone without a record: killed (SIGKILL), or its outcome could not be
  // written. Nothing of the job may run on unseen.
  const std::string problem = outcome ? outcome->error().message : "it left no outcome.json";
  const std::string how = StopOrphanedJob(attempt.pid, attempt.pid_start);
  const std::string supervisor = "the supervisor of attempt " + std::to_string(attempt.attempt) + " (pid " +
                                 std::to_string(attempt.supervisor) + ")";
  if (attempt.found_at_start) {
    host_.AttemptEvent(id, Level::kWarning, "recovered",
                       "the daemon stopped while attempt " + std::to_string(attempt.attempt) + " ran, and " +
                           supervisor + " is gone without recording it (" + problem + "); " + how);
  } else {
    host_.AttemptEvent(id, Level::kError, "supervisor_lost",
                       supervisor + " ended without recording the attempt (" + problem + "); " + how);
  }
  spdlog::error("job {}: the supervisor of attempt {} ended without recording it ({}); {}", id, attempt.attempt,
                problem, how);
  AttemptEnd end;
  end.cause = Reason::kInterrupted;
  // What it used until then, but not whether the kernel killed part of it:
  // the attempt ended because its supervisor did.
  TakeCgroupUsage(attempt, &end);
  end.out_of_memory = false;
  host_.AttemptEnded(id, end, now);
}

// Reads what the attempt's cgroup recorded into `end` (when the cgroup
// enforced its limit), then removes the cgroup: nothing of the attempt is
// left in it once its supervisor is done.
void SupervisedExecutor::TakeCgroupUsage(Attempt& attempt, AttemptEnd* end) {
  if (attempt.cgroup.empty()) return;
  if (end != nullptr && attempt.memory_limit) {
    const CgroupUsage usage = cgroups_.Read(attempt.cgroup);
    end->memory_peak = usage.memory_peak;
    end->out_of_memory = usage.oom_kills.value_or(0) > 0;
    // All of its processes, orphans the supervisor reaped included.
    if (usage.cpu_user_s && usage.cpu_sys_s) {
      end->cpu_user_s = *usage.cpu_user_s;
      end->cpu_sys_s = *usage.cpu_sys_s;
    }
  }
  cgroups_.Remove(attempt.cgroup);
  attempt.cgroup.clear();
}

void SupervisedExecutor::RecordOutcome(Attempt& attempt, const Outcome& outcome, TimePoint now) {
  const std::string& id = attempt.id;
  if (outcome.spawn_error) {
    TakeCgroupUsage(attempt, nullptr);
    const std::string exe = attempt.exe.empty() ? "the job's program" : attempt.exe;
    return host_.AttemptNeverRan(
        id, ChildSetupError(outcome.spawn_error->first, outcome.spawn_error->second, exe, attempt.cwd), now);
  }
  AttemptEnd end = outcome.end;
  end.ended_at = outcome.ended;
  TakeCgroupUsage(attempt, &end);
  // A cancel the daemon asked for wins over how the job ended meanwhile.
  if (attempt.cause == Reason::kCancelledByUser) end.cause = attempt.cause;
  const std::string n = std::to_string(attempt.attempt);
  // When the limit struck: the first kill was sent then.
  Json when = Json::object();
  if (!outcome.kills.empty()) when["at"] = FormatTime(outcome.kills.front().at);
  if (end.cause == Reason::kTimeout) {
    host_.AttemptEvent(id, Level::kWarning, "timeout",
                       "attempt " + n + " ran past its timeout of " + FormatDuration(attempt.timeout), when);
  } else if (end.cause == Reason::kDeadline) {
    host_.AttemptEvent(id, Level::kWarning, "deadline", "the job's deadline passed while attempt " + n + " ran",
                       when);
  }
  for (const KillRecord& kill : outcome.kills) {
    host_.AttemptEvent(id, Level::kWarning, "kill_sent", KillMessage(kill, attempt.pid, attempt.kill, now),
                       {{"signal", SignalName(kill.signal)}, {"at", FormatTime(kill.at)}});
  }
  if (outcome.survivors) {
    spdlog::error("job {}: processes of attempt {} survived SIGKILL; recorded as ended", id, n);
  }
  std::string how = end.exit_code ? "exited with code " + std::to_string(*end.exit_code)
                    : end.signal  ? "was killed by signal " + SignalName(*end.signal)
                                  : "ended";
  host_.AttemptEvent(id, end.exit_code == 0 ? Level::kInfo : Level::kWarning, "exited", "attempt " + n + " " + how,
                     {{"exit_code", end.exit_code ? Json(*end.exit_code) : Json(nullptr)},
                      {"signal", end.signal ? Json(SignalName(*end.signal)) : Json(nullptr)}});
  host_.AttemptEnded(id, end, now);
}

void SupervisedExecutor::Interrupted(const std::string& id, const std::string& message, TimePoint now) {
  AttemptEnd end;
  end.cause = Reason::kInterrupted;
  host_.AttemptEnded(id, end, now);
  host_.AttemptEvent(id, Level::kWarning, "recovered", message);
}

bool SupervisedExecutor::Adopt(SchedJob& job, TimePoint now) {
  const std::string& id = job.status().id;
  const std::string n = std::to_string(job.status().attempt);
  if (job.status().attempts.empty() || !job.status().attempts.back().supervisor_pid) {
    // An attempt of a spoold before supervisors: a job recorded running is
    // never left running unseen: if its process is still the one we started
    // (same pid and start time, never a bare pid), its whole group is killed
    // before the attempt is recorded as interrupted.
    std::string how = "no process of it was left";
    const AttemptRecord* record = job.status().attempts.empty() ? nullptr : &job.status().attempts.back();
    if (record && record->pid && record->pid_start &&
        ProcessStartTicks(static_cast<pid_t>(*record->pid)) == record->pid_start) {
      auto pgid = static_cast<pid_t>(*record->pid);
      ::kill(-pgid, SIGKILL);
      // Not our children: their zombies wait for their own parent, so only live
      // members count.
      for (int i = 0; i < 200 && GroupHasLiveMembers(pgid); ++i) ::usleep(25'000);
      how = "its processes (group " + std::to_string(pgid) + ") were still running and were killed";
    }
    Interrupted(id, "the daemon stopped while attempt " + n + " ran; " + how, now);
    spdlog::warn("job {}: attempt {} was interrupted by a daemon stop; {}", id, n, how);
    return true;
  }
  const AttemptRecord& record = job.status().attempts.back();
  Attempt attempt;
  attempt.id = id;
  attempt.attempt = job.status().attempt;
  attempt.pid = static_cast<pid_t>(record.pid.value_or(-1));
  attempt.pid_start = record.pid_start;
  attempt.supervisor = static_cast<pid_t>(*record.supervisor_pid);
  attempt.kill = job.spec().kill;
  attempt.timeout = job.spec().timeout.value_or(config_.TimeoutFor(job.status().pool));
  attempt.found_at_start = true;
  // Its cgroup, read and removed when it ends; with a memory request but no
  // limit recorded, none was made (or it was removed at once): nothing to read.
  attempt.memory_limit = record.memory_limit;
  if (record.memory_limit || job.status().resources.memory > 0) {
    attempt.cgroup = CgroupName(id, attempt.attempt);
  }
  const std::string dir = paths_.AttemptDir(id, job.status().attempt);
  if (record.boot_id && !boot_id_.empty() && *record.boot_id != boot_id_) {
    const std::string why = "ran before the machine restarted; nothing of it can be running";
    Interrupted(id, "attempt " + n + " " + why, now);
    spdlog::warn("job {}: attempt {} {}", id, n, why);
    return true;
  }
  // Ended while we were down: its outcome is recorded now, once.
  auto finish = [&] {
    running_.emplace(id, std::move(attempt));
    Finish(id, now);
    return true;
  };
  if (auto outcome = ReadOutcome(dir); outcome && outcome->ok()) return finish();
  if (auto holder = LockHolder(dir)) {
    // Only a supervisor of this attempt takes its lock: whoever holds it runs
    // the attempt, even if its pid is not the recorded one (a record from
    // another pid namespace), and the attempt is never started twice.
    if (*holder != attempt.supervisor) {
      spdlog::warn("job {}: the lock of attempt {} is held by pid {}, not by the recorded supervisor {}; following "
                   "the holder",
                   id, n, *holder, attempt.supervisor);
      attempt.supervisor = *holder;
    }
    attempt.pidfd = OpenSupervisor(*holder, dir);
    if (attempt.pidfd >= 0) {
      host_.AttemptEvent(id, Level::kInfo, "adopted",
                         "attempt " + n + " ran on while the daemon was down; its supervisor " +
                             std::to_string(attempt.supervisor) + " is followed again",
                         {{"pid", attempt.pid}, {"supervisor_pid", attempt.supervisor}});
      spdlog::info("job {}: re-adopted attempt {} (supervisor {}, job pid {})", id, n, attempt.supervisor,
                   attempt.pid);
      auto [it, inserted] = running_.emplace(id, std::move(attempt));
      SPOOLD_CHECK(inserted);
      WatchSupervisor(it->second);
      return true;
    }
  }
  // The supervisor ended between the two looks, leaving its outcome: recorded.
  if (auto outcome = ReadOutcome(dir); outcome && outcome->ok()) return finish();
  // Gone without an outcome: Finish says so and stops what is left.
  attempt.supervisor_done = true;
  return finish();
}

}  // namespace spoold

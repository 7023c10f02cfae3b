// Local attempts: each runs under its own supervisor, spoold-exec
// (daemon/exec_protocol.h), which outlives the daemon. The daemon hands the
// attempt over, records its start, lets it go, and records the outcome the
// supervisor leaves in the attempt's folder; a restarted daemon re-adopts the
// supervisors that still run (AdoptLocal).
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "daemon/daemon.h"
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

}  // namespace

void Daemon::StartLocal(const std::string& id, LaunchSpec spec, TimePoint now) {
  SchedJob& job = *scheduler_.Find(id);
  const int n = job.status.attempt;
  const std::string dir = store_.Here(id, paths_.AttemptDir(id, n));
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  auto close_all = [&] {
    ::close(spec.stdout_fd);
    ::close(spec.stderr_fd);
    if (dir_fd >= 0) ::close(dir_fd);
  };
  if (dir_fd < 0) {
    const int err = errno;
    close_all();
    return NeverRan(id, MakeError(err == EMFILE || err == ENFILE ? "transient" : "io_error",
                                  ErrnoMessage("open", dir, err)),
                    now);
  }
  spec.attempt_dir_fd = dir_fd;
  const Millis timeout = job.spec.timeout.value_or(config_.TimeoutFor(job.status.pool));
  spec.timeout_ms = timeout.count() > 0 ? timeout.count() : 0;
  if (auto deadline = scheduler_.DeadlineOf(job)) spec.deadline_unix_ms = std::max<int64_t>(1, deadline->time_since_epoch().count());
  spec.kill_signal = job.spec.kill.signal;
  spec.kill_grace_ms = job.spec.kill.grace.count();

  auto exe = FindProgram(spec);
  Result<PendingProcess> pending = exe.ok() ? HandToHelper(spec, *exe) : Result<PendingProcess>(exe.error());
  const std::string cwd = spec.cwd;
  close_all();
  if (!pending.ok()) return NeverRan(id, pending.error(), now);
  SPOOLD_FAILPOINT("attempt.after_spawn");

  Attempt attempt;
  attempt.id = id;
  attempt.attempt = n;
  attempt.pid = pending->job_pid;
  attempt.supervisor = pending->pid;
  attempt.kill = job.spec.kill;
  attempt.exe = *exe;
  attempt.cwd = cwd;
  pid_to_job_[attempt.supervisor] = id;
  scheduler_.AttemptStarted(id, pending->job_pid, pending->job_start_ticks, now);
  AttemptRecord& record = job.status.attempts.back();
  record.supervisor_pid = pending->pid;
  if (!boot_id_.empty()) record.boot_id = boot_id_;
  attempt.pending = std::move(pending.value());
  running_.emplace(id, std::move(attempt));
}

Result<PendingProcess> Daemon::HandToHelper(const LaunchSpec& spec, const std::string& exe) {
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

bool Daemon::HasLocalPool() const {
  const auto& pools = scheduler_.Pools();
  return std::any_of(pools.begin(), pools.end(),
                     [](const auto& entry) { return entry.second.config.executor != "slurm"; });
}

void Daemon::KeepSpareHelper(TimePoint now) {
  spare_helper_due_ = TimePoint{};
  auto helper = StartHelper(exec_helper_, paths_.Root());
  if (helper.ok()) {
    spare_helper_ = *helper;
  } else {
    // Not reported here: the next start tries again, and says why.
    spare_helper_due_ = now + std::chrono::seconds(1);
  }
}

void Daemon::DismissSpareHelper() {
  if (!spare_helper_) return;
  DismissHelper(*spare_helper_);
  spare_helper_.reset();
}

// A supervisor we started is our child until we reap it, so its pid is its
// own until then; an adopted one is reached through its pidfd only.
void Daemon::SignalSupervisor(Attempt& attempt, int sig) {
  if (attempt.supervisor_done) return;
  if (attempt.pidfd >= 0) {
    ::syscall(SYS_pidfd_send_signal, attempt.pidfd, sig, nullptr, 0);
  } else if (pid_to_job_.count(attempt.supervisor) != 0) {
    ::kill(attempt.supervisor, sig);
  }
}

void Daemon::WatchSupervisor(Attempt& attempt) {
  attempt.pidfd_watch = std::make_unique<FdWatch>(&loop_, attempt.pidfd);
  attempt.pidfd_watch->SetCallback([this, id = attempt.id, n = attempt.attempt](int) {
    auto it = running_.find(id);
    if (it == running_.end() || it->second.attempt != n) return;
    it->second.supervisor_done = true;
    it->second.pidfd_watch.reset();  // readable until closed: once is enough
  });
  SPOOLD_CHECK(attempt.pidfd_watch->Start(UV_READABLE) == 0);
}

void Daemon::FinishLocal(Attempt attempt, TimePoint now) {
  attempt.pidfd_watch.reset();
  if (attempt.pidfd >= 0) ::close(attempt.pidfd);
  const std::string& id = attempt.id;
  SchedJob& job = *scheduler_.Find(id);
  const std::string dir = store_.Here(id, paths_.AttemptDir(id, attempt.attempt));
  auto outcome = ReadOutcome(dir);
  if (outcome && outcome->ok()) return RecordOutcome(id, attempt, **outcome, now);
  if (attempt.abandoned) {
    // Let go before its job ran (a cancel, a stop, a vanished folder).
    if (attempt.cause == Reason::kCancelledByUser) {
      AttemptEnd end;
      end.cause = attempt.cause;
      return scheduler_.AttemptEnded(id, end, now);
    }
    return scheduler_.AttemptNotStarted(id, "the daemon stopped before the job ran", now);
  }
  // Gone without a record: killed (SIGKILL), or its outcome could not be
  // written. Nothing of the job may run on unseen.
  const std::string problem = outcome ? outcome->error().message : "it left no outcome.json";
  const std::string how = StopOrphanedJob(attempt.pid, job.status.attempts.back().pid_start);
  const std::string supervisor = "the supervisor of attempt " + std::to_string(attempt.attempt) + " (pid " +
                                 std::to_string(attempt.supervisor) + ")";
  if (attempt.found_at_start) {
    Event(job, Level::kWarning, "recovered",
          "the daemon stopped while attempt " + std::to_string(attempt.attempt) + " ran, and " + supervisor +
              " is gone without recording it (" + problem + "); " + how);
  } else {
    Event(job, Level::kError, "supervisor_lost",
          supervisor + " ended without recording the attempt (" + problem + "); " + how);
  }
  spdlog::error("job {}: the supervisor of attempt {} ended without recording it ({}); {}", id, attempt.attempt,
                problem, how);
  AttemptEnd end;
  end.cause = Reason::kInterrupted;
  scheduler_.AttemptEnded(id, end, now);
}

void Daemon::RecordOutcome(const std::string& id, const Attempt& attempt, const Outcome& outcome, TimePoint now) {
  SchedJob& job = *scheduler_.Find(id);
  if (outcome.spawn_error) {
    const std::string exe = attempt.exe.empty() ? "the job's program" : attempt.exe;
    return NeverRan(id, ChildSetupError(outcome.spawn_error->first, outcome.spawn_error->second, exe, attempt.cwd),
                    now);
  }
  AttemptEnd end = outcome.end;
  end.ended_at = outcome.ended;
  // A cancel the daemon asked for wins over how the job ended meanwhile.
  if (attempt.cause == Reason::kCancelledByUser) end.cause = attempt.cause;
  const std::string n = std::to_string(attempt.attempt);
  // When the limit struck: the first kill was sent then.
  Json when = Json::object();
  if (!outcome.kills.empty()) when["at"] = FormatTime(outcome.kills.front().at);
  if (end.cause == Reason::kTimeout) {
    const Millis timeout = job.spec.timeout.value_or(config_.TimeoutFor(job.status.pool));
    Event(job, Level::kWarning, "timeout", "attempt " + n + " ran past its timeout of " + FormatDuration(timeout),
          when);
  } else if (end.cause == Reason::kDeadline) {
    Event(job, Level::kWarning, "deadline", "the job's deadline passed while attempt " + n + " ran", when);
  }
  for (const KillRecord& kill : outcome.kills) {
    Event(job, Level::kWarning, "kill_sent", KillMessage(kill, attempt.pid, attempt.kill, now),
          {{"signal", SignalName(kill.signal)}, {"at", FormatTime(kill.at)}});
  }
  if (outcome.survivors) {
    spdlog::error("job {}: processes of attempt {} survived SIGKILL; recorded as ended", id, n);
  }
  std::string how = end.exit_code ? "exited with code " + std::to_string(*end.exit_code)
                    : end.signal  ? "was killed by signal " + SignalName(*end.signal)
                                  : "ended";
  Event(job, end.exit_code == 0 ? Level::kInfo : Level::kWarning, "exited", "attempt " + n + " " + how,
        {{"exit_code", end.exit_code ? Json(*end.exit_code) : Json(nullptr)},
         {"signal", end.signal ? Json(SignalName(*end.signal)) : Json(nullptr)}});
  scheduler_.AttemptEnded(id, end, now);
}

bool Daemon::AdoptLocal(SchedJob& job, TimePoint now) {
  const AttemptRecord& record = job.status.attempts.back();
  if (!record.supervisor_pid) return false;
  const std::string& id = job.status.id;
  const std::string n = std::to_string(job.status.attempt);
  Attempt attempt;
  attempt.id = id;
  attempt.attempt = job.status.attempt;
  attempt.pid = static_cast<pid_t>(record.pid.value_or(-1));
  attempt.supervisor = static_cast<pid_t>(*record.supervisor_pid);
  attempt.kill = job.spec.kill;
  attempt.found_at_start = true;
  const std::string dir = paths_.AttemptDir(id, job.status.attempt);
  auto interrupted = [&](const std::string& why) {
    AttemptEnd end;
    end.cause = Reason::kInterrupted;
    scheduler_.AttemptEnded(id, end, now);
    Event(job, Level::kWarning, "recovered", "attempt " + n + " " + why);
    spdlog::warn("job {}: attempt {} {}", id, n, why);
    return true;
  };
  if (record.boot_id && !boot_id_.empty() && *record.boot_id != boot_id_) {
    return interrupted("ran before the machine restarted; nothing of it can be running");
  }
  // Ended while we were down: its outcome is recorded now, once.
  auto finish = [&] {
    running_.emplace(id, std::move(attempt));
    FinishAttempt(id, now);
    return true;
  };
  if (auto outcome = ReadOutcome(dir); outcome && outcome->ok()) return finish();
  if (auto holder = LockHolder(dir); holder && *holder == attempt.supervisor) {
    attempt.pidfd = OpenSupervisor(*holder, dir);
    if (attempt.pidfd >= 0) {
      Event(job, Level::kInfo, "adopted",
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
  } else if (holder) {
    spdlog::error("job {}: the lock of attempt {} is held by pid {}, not by its supervisor {}; left alone", id, n,
                  *holder, attempt.supervisor);
  }
  // The supervisor ended between the two looks, leaving its outcome: recorded.
  if (auto outcome = ReadOutcome(dir); outcome && outcome->ok()) return finish();
  // Gone without an outcome: FinishLocal says so and stops what is left.
  attempt.supervisor_done = true;
  return finish();
}

}  // namespace spoold

// The daemon's watch over its root: the jobs found at start (Recover), the
// job folders under jobs/ (index.json shows every one of them: taken in,
// damaged or vanished; SPEC.md section 7) and the root itself (one daemon per
// root; SPEC.md section 1). Member functions of Daemon (daemon.h), kept apart
// from the loop of daemon.cpp.
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "daemon/daemon.h"

namespace spoold {

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
  size_t resumed = 0;
  const int jobs_fd = ::open(paths_.Jobs().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  std::string relative;
  for (const auto& id : *ids) {
    // An ended job whose status.json is the file the last clean stop knew
    // is taken back as it was, unread (JobIndex::Resume).
    relative.assign(id).append("/status.json");
    const auto file = jobs_fd >= 0 ? StatFileId(relative, jobs_fd) : std::nullopt;
    if (file && index_jobs_.Resume(id, *file)) {
      ++resumed;
      continue;
    }
    auto status = store_.Load(id);
    if (!status.ok()) {
      MarkDamaged(id, status.error().message, now);
      continue;
    }
    if (status->array) {
      // A task's status in a job folder of its own: not written by spoold.
      MarkDamaged(id, "status.json is a task's (array " + *status->array + "), not a job's", now);
      continue;
    }
    if (IsTerminal(status->state)) {
      SetIndexEntry(id, *status);
      if (file) index_jobs_.SetFileId(id, *file);
      continue;
    }
    active.push_back(std::move(status.value()));
  }
  if (jobs_fd >= 0) ::close(jobs_fd);
  index_jobs_.EndResume();
  if (resumed > 0) spdlog::info("{} ended jobs taken back unread from the last clean stop", resumed);
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
      // A pool that left the configuration keeps its job; it waits in a pool
      // that starts nothing until the pool is configured again.
      spec = RevalidateJobSpec(*doc, id, config_);
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
  TakeIn(std::move(spec.value()), std::move(status.value()), std::move(file->second), ours, now);
}

void Daemon::TakeIn(JobSpec spec, JobStatus status, std::string text, bool ours, TimePoint now) {
  const std::string id = status.id;
  const bool was_running = status.state == JobState::kRunning;
  const bool is_array = spec.array != nullptr;
  const bool is_task = status.array.has_value();
  scheduler_.Add(std::move(spec), std::move(status), std::move(text), now);
  SchedJob& job = *scheduler_.Find(id);
  if (!is_task) SetIndexEntry(id, job.status());  // index.json lists an array once, not its tasks
  if (is_array) {
    RecoverTasks(id, ours, now);
    return;
  }
  if (!was_running) {
    scheduler_.Settle(id);
    return;
  }
  // Its executor follows it again, or records how it ended.
  if (ours && attempts_.Adopt(job, now)) return;
  // An imported job: its pid belongs to another machine or daemon.
  const std::string how = "no process of it was left";
  AttemptEnd end;
  end.cause = Reason::kInterrupted;
  scheduler_.AttemptEnded(id, end, now);
  Event(job, Level::kWarning, "recovered",
        "the daemon stopped while attempt " + std::to_string(job.status().attempt) + " ran; " + how);
  spdlog::warn("job {}: attempt {} was interrupted by a daemon stop; {}", id, job.status().attempt, how);
}

// index.json shows every folder under jobs/ (SPEC.md section 7): folders
// that appear without passing through intake (an import) are taken in, ones
// whose status.json cannot be read are listed as damaged (and looked at again
// at every scan), and ones that vanished are forgotten. jobs/'s mtime says
// when to list it again.
void Daemon::ReconcileJobFolders(TimePoint now) {
  struct stat st {};
  if (::stat(paths_.Jobs().c_str(), &st) != 0) return;
  const bool changed = st.st_mtim.tv_sec != jobs_mtime_.tv_sec || st.st_mtim.tv_nsec != jobs_mtime_.tv_nsec;
  std::vector<std::string> ids;
  if (changed) {
    // About one folder per job known, and a few more that appeared.
    auto listed = store_.ListJobs(index_jobs_.size() + damaged_.size() + 64);
    if (!listed.ok()) {
      Trouble("jobs", "cannot list " + paths_.Jobs() + " (" + listed.error().message + ")");
      return;
    }
    TroubleOver("jobs");
    jobs_mtime_ = st.st_mtim;
    ids = std::move(listed.value());
    std::sort(ids.begin(), ids.end());
  } else {
    for (const auto& [id, damaged] : damaged_) ids.push_back(id);  // the ones to look at again
  }
  bool took_ended = false;
  for (const auto& id : ids) {
    // A vanished job still being stopped: a folder under its id is taken in
    // once the old job is forgotten.
    if (index_jobs_.Contains(id) || vanished_.count(id) != 0) continue;
    auto status = store_.Load(id);
    if (!status.ok()) {
      MarkDamaged(id, status.error().message, now);
      continue;
    }
    if (damaged_.erase(id) != 0) {
      spdlog::info("job {}: its status.json can be read again; taking it in", id);
    } else {
      spdlog::info("job {} appeared in {}; taking it in", id, paths_.Jobs());
    }
    if (status->array) {
      // A task's status in a job folder of its own: not written by spoold.
      MarkDamaged(id, "status.json is a task's (array " + *status->array + "), not a job's", now);
      continue;
    }
    if (IsTerminal(status->state)) {
      SetIndexEntry(id, *status);
      took_ended = true;
    } else {
      AdoptJob(std::move(status.value()), /*ours=*/false, now);
    }
    MarkIndexDirty();
  }
  // An ended job taken in (a folder put back, a damaged one readable again)
  // decides the jobs waiting for it.
  if (took_ended) scheduler_.ResolveEnded(now);
  if (!changed) return;
  std::vector<std::string> ended;  // said in one line: a clean-up may remove thousands
  for (const auto& id : index_jobs_.NotIn(ids)) {
    // Accepted, but its folder is still jobs/.<id>.tmp (a flush whose rename
    // failed retries it): not vanished, not yet there.
    if (store_.IsUnpublished(id)) continue;
    if (!ForgetVanished(id, now)) ended.push_back(id);
  }
  if (!ended.empty()) {
    std::string some;
    for (size_t i = 0; i < ended.size() && i < 5; ++i) some += (i ? ", " : "") + ended[i];
    spdlog::info("the folders of {} ended jobs were removed from {}; dropped from the index ({}{})",
                 ended.size(), paths_.Jobs(), some, ended.size() > 5 ? ", ..." : "");
  }
  for (auto it = damaged_.begin(); it != damaged_.end();) {
    if (std::binary_search(ids.begin(), ids.end(), it->first)) {
      ++it;
      continue;
    }
    spdlog::info("damaged job folder {} was removed", it->first);
    it = damaged_.erase(it);
    MarkIndexDirty();
  }
}

void Daemon::MarkDamaged(const std::string& id, const std::string& problem, TimePoint now) {
  auto [it, inserted] = damaged_.try_emplace(id, Damaged{problem, now});
  if (!inserted && it->second.problem == problem) return;
  it->second.problem = problem;
  spdlog::error("job {} is damaged and left as it is: {}; index.json lists it under \"damaged\"", id,
                problem);
  MarkIndexDirty();
}

// A job folder removed from under the daemon: its job is gone for every reader,
// so the daemon stops what still runs of it (kill sequence or scancel) and
// forgets it, writing nothing more for it.
bool Daemon::ForgetVanished(const std::string& id, TimePoint now) {
  index_jobs_.Erase(id);
  MarkIndexDirty();
  SchedJob* job = scheduler_.Find(id);
  if (job == nullptr) return false;  // it had ended
  const std::string state = StateName(job->state());
  unwritten_.erase(id);
  if (IsTerminal(job->state())) {
    // Ended, its status not yet written (a full disk): nothing more to write.
    spdlog::warn("job {}: its folder {} was removed after the job ended; forgotten", id, paths_.JobDir(id));
    scheduler_.Forget(id);
    return true;
  }
  vanished_.insert(id);
  std::vector<std::string> to_stop;
  if (auto st = scheduler_.Cancel(id, now, &to_stop); !st.ok()) {
    spdlog::error("job {}: cannot stop it: {}", id, st.error().message);
  }
  bool running = false;
  for (const auto& stop : to_stop) running = attempts_.Stop(stop, Reason::kCancelledByUser, now) || running;
  spdlog::warn("job {}: its folder {} was removed while the job was {}; {}", id, paths_.JobDir(id), state,
               running ? "stopping what runs of it, then forgetting it" : "forgotten");
  return true;
}

// SPEC.md section 1: one daemon per root. The root's flock already keeps a
// second daemon out whatever happens to spoold.lock; a lock file that was
// deleted is put back for the readers that look at it. A root folder that was
// moved away or replaced is no longer the one we locked, and a second daemon
// may start on the new one: we stop at once, touching nothing more, as a
// crash would (SPEC.md section 9 holds for that), and leave the root to the
// next start.
void Daemon::CheckRoot() {
  auto check = root_lock_.Check();
  switch (check.outcome) {
    case RootLock::Outcome::kOk:
      root_problem_.clear();
      return;
    case RootLock::Outcome::kLockFileRestored:
      spdlog::warn("{}", check.message);
      root_problem_.clear();
      return;
    case RootLock::Outcome::kLockFileNotRestored:
      // Said once, not at every check, until it changes.
      if (check.message != root_problem_) spdlog::error("{}", check.message);
      root_problem_ = check.message;
      return;
    case RootLock::Outcome::kRootGone:
      spdlog::critical(
          "{}; stopping at once without writing anything more, as after a crash (the next "
          "start on that root recovers its jobs)",
          check.message);
      spdlog::default_logger()->flush();
      ::_exit(1);
  }
}

}  // namespace spoold

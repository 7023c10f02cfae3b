// The daemon's watch over its root: the job folders under jobs/ (index.json
// shows every one of them: taken in, damaged or vanished; SPEC.md section 7)
// and the root itself (one daemon per root; SPEC.md section 1). Member
// functions of Daemon (daemon.h), kept apart from the loop, intake and
// attempts of daemon.cpp.
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "daemon/daemon.h"

namespace spoold {

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
    auto listed = store_.ListJobs();
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
    if (IsTerminal(status->state)) {
      SetIndexEntry(id, *status);
    } else {
      AdoptJob(std::move(status.value()), /*ours=*/false, now);
    }
    MarkIndexDirty();
  }
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
  const std::string state = StateName(job->status.state);
  unwritten_.erase(id);
  if (IsTerminal(job->status.state)) {
    // Ended, its status not yet written (a full disk): nothing more to write.
    spdlog::warn("job {}: its folder {} was removed after the job ended; forgotten", id, paths_.JobDir(id));
    scheduler_.Forget(id);
    return true;
  }
  vanished_.insert(id);
  bool was_running = false;
  if (auto st = scheduler_.Cancel(id, now, &was_running); !st.ok()) {
    spdlog::error("job {}: cannot stop it: {}", id, st.error().message);
  }
  auto it = running_.find(id);
  spdlog::warn("job {}: its folder {} was removed while the job was {}; {}", id, paths_.JobDir(id), state,
               it != running_.end() ? "stopping what runs of it, then forgetting it" : "forgotten");
  if (it == running_.end()) return true;
  if (it->second.pending) {
    AbandonPending(it->second, Reason::kCancelledByUser);
  } else {
    StopAttempt(it->second, Reason::kCancelledByUser, now);
  }
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

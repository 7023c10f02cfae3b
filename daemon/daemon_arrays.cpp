// Daemon (daemon.h): the files of job arrays (SPEC.md section 5). A task's
// folder is made when the scheduler makes the task a job; a restarted daemon
// rebuilds an array's counts from its task folders; an ended array's
// results.json lists every task's results. The decisions are the scheduler's
// (scheduler_array.cpp).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "spool/fileio.h"
#include "spool/results.h"

namespace spoold {

void Daemon::CommitNewTasks(TimePoint now) {
  for (auto& id : scheduler_.TakeNewTasks()) uncommitted_.insert(std::move(id));
  for (auto it = uncommitted_.begin(); it != uncommitted_.end();) {
    const std::string id = *it;
    SchedJob* job = scheduler_.Find(id);
    if (job == nullptr) {
      it = uncommitted_.erase(it);
      continue;
    }
    JobStatus& s = job->status();
    NewJob folder;
    folder.id = id;
    folder.task = true;
    folder.accepted_at = now;
    if (::geteuid() == 0 && s.owner_uid > 0) {
      // Like its array's folder: results/ and progress are the owner's.
      auto user = User(static_cast<uid_t>(s.owner_uid), now);
      if (user.ok()) {
        folder.owner_uid = user->ids.uid;
        folder.owner_gid = user->ids.gid;
      }
    }
    const spoold::Event accepted{
        Level::kInfo,
        "accepted",
        0,
        "task " + std::to_string(s.array_index.value_or(0)) + " of array " + s.array.value_or(""),
        {{"state", "queued"}, {"reason", "in_queue"}, {"pool", s.pool}}};
    // The folder holds the state the task is taken in; its first transition
    // (started, or cancelled) follows as for any job.
    JobStatus taken = s;
    taken.state = JobState::kQueued;
    taken.reason = Reason::kInQueue;
    taken.attempts.clear();
    taken.attempt = 0;
    taken.started.reset();
    if (auto st = store_.Commit(folder, taken, accepted); !st.ok()) {
      // Tried again at each turn; until then the task neither runs nor is
      // written (StartJobs, Persist).
      Trouble("task", "cannot create the folder of task " + id + " (" + st.error().message + "); retrying");
      ++it;
      continue;
    }
    s.seq = taken.seq;
    it = uncommitted_.erase(it);
    if (uncommitted_.empty()) TroubleOver("task");
  }
}

void Daemon::RecoverTasks(const std::string& array, bool ours, TimePoint now) {
  auto indexes = store_.ListTasks(array);
  if (!indexes.ok()) {
    spdlog::error("array {}: cannot list its tasks: {}", array, indexes.error().message);
    indexes = std::vector<int64_t>{};
  }
  SchedJob* holder = scheduler_.Find(array);
  if (holder == nullptr) return;
  for (int64_t index : *indexes) {
    const std::string id = TaskId(array, index);
    auto status = store_.Load(id);
    if (!status.ok()) {
      // Never run twice: a task whose folder does not read counts as failed.
      spdlog::error("task {}: its status does not read ({}); counted as failed", id, status.error().message);
      scheduler_.AddEndedTask(array, index, JobState::kFailed);
      continue;
    }
    if (IsTerminal(status->state)) {
      scheduler_.AddEndedTask(array, index, status->state);
      continue;
    }
    if (!holder->spec().array->PositionOf(index)) {
      spdlog::error("task {}: array {} has no such index; its folder is left as it is", id, array);
      continue;
    }
    status->array = array;
    status->array_index = index;
    TakeIn(scheduler_.TaskSpec(*holder, index), std::move(*status), {}, ours, now);
  }
  // An array cancelled before the restart stops what still runs of it.
  for (const auto& id : scheduler_.ArrayRecovered(array, now))
    attempts_.Stop(id, Reason::kCancelledByUser, now);
}

std::optional<Scheduler::Ended> Daemon::EndedTask(const std::string& id) const {
  auto ref = ParseTaskId(id);
  if (!ref) return std::nullopt;
  if (auto status = store_.Load(id); status.ok()) {
    return Scheduler::Ended{status->state, status->reason, !IsTerminal(status->state)};
  }
  // An array held by the scheduler answered for its tasks already
  // (TaskOutcome): an index it has not is no task.
  if (scheduler_.Jobs().count(ref->array) != 0) return std::nullopt;
  std::optional<JobState> array = index_jobs_.StateOf(ref->array);
  if (!array) return std::nullopt;
  if (!IsTerminal(*array)) return Scheduler::Ended{*array, Reason::kNone, /*active=*/true};
  // A task that never started ended with its array: failed by the deadline
  // if listed as failed, else cancelled (halted, or with the array).
  auto status = store_.Load(ref->array);
  if (!status.ok() || !status->failed_indexes) return std::nullopt;
  // Only an index the array has names a task of it.
  auto file = store_.ReadJobFile(ref->array, static_cast<size_t>(config_.max_job_file_size));
  auto doc = file.ok() ? ParseDocument(file->second, file->first) : Result<Document>(file.error());
  auto spec = doc.ok() ? RevalidateJobSpec(*doc, ref->array, config_) : Result<JobSpec>(doc.error());
  if (!spec.ok() || !spec->array || !spec->array->PositionOf(ref->index)) return std::nullopt;
  if (!status->failed_indexes->empty()) {
    if (auto failed = ParseIndexes(*status->failed_indexes); failed.ok()) {
      ArraySpec listed;
      listed.ranges = std::move(*failed);
      listed.Seal();
      if (listed.PositionOf(ref->index)) return Scheduler::Ended{JobState::kFailed, Reason::kDeadline};
    }
  }
  if (status->state == JobState::kSucceeded) return std::nullopt;  // every task ran: no such task
  return Scheduler::Ended{JobState::kCancelled, status->state == JobState::kFailed
                                                    ? Reason::kArrayHalted
                                                    : Reason::kCancelledByUser};
}

void Daemon::AddTaskResults(const std::string& array, Json* item) {
  auto indexes = store_.ListTasks(array);
  if (!indexes.ok()) return;
  std::sort(indexes->begin(), indexes->end());
  Json& assets = (*item)["assets"];
  for (int64_t index : *indexes) {
    const std::string prefix = "tasks/" + std::to_string(index) + "/";
    const std::string task_id = TaskId(array, index);
    Json task;
    if (auto ended_now = task_results_.find(task_id); ended_now != task_results_.end()) {
      task = std::move(ended_now->second);
    } else {
      auto text = ReadSmallFile(paths_.ResultsJson(task_id), 64 << 20);
      if (!text.ok()) continue;  // a task that never wrote one (cancelled before it started)
      task = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
    }
    if (!task.is_object() || !task.contains("assets") || !task["assets"].is_object()) continue;
    for (auto& [key, asset] : task["assets"].items()) {
      if (asset.is_object() && asset.contains("href") && asset["href"].is_string()) {
        asset["href"] = prefix + asset["href"].get<std::string>();
      }
      assets[prefix + key] = std::move(asset);
    }
  }
}

}  // namespace spoold

// The spoold daemon: one libuv loop, one thread, no locks. It wires the spool
// (intake, job folders, index) to the scheduler and, through Attempts
// (daemon/attempts.h), to the executors (daemon/executor.h). Event
// callbacks only note what happened; all work is done once per loop turn in
// Pump(), so bursts are batched (STYLE.md: redis' beforeSleep). Owns the loop,
// its handles, the executors and the index cache.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "config/config.h"
#include "daemon/attempts.h"
#include "daemon/definitions.h"
#include "daemon/metrics.h"
#include "daemon/root_lock.h"
#include "daemon/scheduler.h"
#include "daemon/sd_notify.h"
#include "daemon/uv_handles.h"
#include "spool/control.h"
#include "spool/intake.h"
#include "spool/job_index.h"
#include "spool/job_store.h"
#include "spool/paths.h"
#include "spool/tombstones.h"

namespace spoold {

class SupervisedExecutor;
class SlurmExecutor;
class DaemonHooks;

class Daemon {
 public:
  Daemon(Config config, std::string config_path);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Takes the root's lock, creates missing folders, recovers the jobs on disk,
  // rebuilds the index and scans incoming/. An error means the daemon must not
  // run (another one holds the lock, the root is unusable).
  Status Start();

  // Runs until SIGTERM/SIGINT has stopped every running job. Returns the exit code.
  int Run();

 private:
  void Pump();
  void CloseHandles();  // each owner closes its handle; idempotent
  std::unique_ptr<DirWatch> WatchFolder(const std::string& dir, std::set<std::string>* pending);
  void ScanIncoming();
  void CheckRoot();
  void ProcessIncoming(const std::string& name, TimePoint now);
  void ProcessControl(const std::string& name, TimePoint now);
  Status MayControl(const ControlRequest& request, uid_t requester) const;
  Status ApplyControl(const ControlRequest& request, const std::string& name, TimePoint now);
  void StartJobs(TimePoint now);
  void Launch(const std::string& id, TimePoint now);
  void ReadProgress(TimePoint now);
  void Persist();
  // Makes the turn's writes durable; `once_synced` runs if the syncs worked
  // (renames may still wait), before the flush's after-actions;
  // `once_visible` after the first sync and the renames (SyncBatch::Flush).
  void FlushBatch(const std::function<void()>& once_synced = nullptr,
                  const std::function<void()>& once_visible = nullptr);
  void RecordTransition(SchedJob& job);
  void WriteResults(const SchedJob& job);
  void ArmWakeTimer(TimePoint now);
  void MarkIndexDirty();
  // Writes index.active.json, and index.json when `whole` or when it is due
  // (at once while the spool is small, else within spool.large_index_lag).
  void FlushIndex(bool whole);
  void NotifyStatus();
  // Metrics (daemon_metrics.cpp): a change due in the text file, and its write.
  std::string MetricsPath() const;
  void MetricsChanged();
  void WriteMetrics();
  Metrics metrics_;
  std::unique_ptr<Timer> metrics_timer_;
  std::chrono::steady_clock::time_point metrics_written_{};
  void ApplyRetention(TimePoint now);
  void Recover(TimePoint now);
  void AdoptJob(JobStatus status, bool ours, TimePoint now);
  // The part of AdoptJob after the definition was read (also a task's).
  void TakeIn(JobSpec spec, JobStatus status, std::string text, bool ours, TimePoint now);
  // Arrays (daemon_arrays.cpp).
  void CommitNewTasks(TimePoint now);  // folders of the tasks the scheduler made jobs
  void RecoverTasks(const std::string& array, bool ours, TimePoint now);
  // How a task of an array the scheduler does not hold ended, for `after`.
  std::optional<Scheduler::Ended> EndedTask(const std::string& id) const;
  // Adds the results of array `array`'s tasks to its results item (SPEC.md
  // section 5: keyed tasks/<index>/<path>).
  void AddTaskResults(const std::string& array, Json* item);
  // The results items of tasks written in this Persist: their results.json
  // is staged in the batch, not yet on disk, when their array ends with them.
  std::map<std::string, Json> task_results_;
  std::set<std::string> uncommitted_;  // tasks whose folder could not be made yet
  void ReconcileJobFolders(TimePoint now);
  void MarkDamaged(const std::string& id, const std::string& problem, TimePoint now);
  // Drops a job whose folder is gone; false if it had ended (nothing to stop).
  bool ForgetVanished(const std::string& id, TimePoint now);
  void RequestStop(const std::string& by);  // by: the signal's name or the control file
  void Reload();
  // A problem of the machine (disk full, out of descriptors) is logged once
  // when it starts and once when it is over, not at every retry.
  void Trouble(const std::string& key, const std::string& message);
  void TroubleOver(const std::string& key);
  void Event(SchedJob& job, Level level, const std::string& event, const std::string& message,
             Json extra = Json::object());
  std::vector<std::string> JobEnvironment(const SchedJob& job, const UserEntry& user) const;
  // LookUpUser, remembered for a few seconds: a burst of one user's jobs reads
  // the passwd and group databases once, not once a job.
  Result<UserEntry> User(uid_t uid, TimePoint now);
  TtlCache<uid_t, UserEntry> users_{std::chrono::seconds(5)};  // a changed entry applies within 5 s

  Config config_;
  std::string config_path_;
  SpoolPaths paths_;
  JobStore store_;
  SyncBatch batch_;                     // group commit of one loop turn
  std::set<std::string> ids_in_batch_;  // jobs accepted this turn, not yet published
  Intake intake_;
  // Job definitions (daemon_definitions.cpp): definitions/ is read once a
  // burst of changes has been quiet for a moment, so that a file written in
  // place is not read half-written.
  DefinitionRegistry definitions_;
  std::set<std::string> pending_definitions_;
  std::unique_ptr<DirWatch> definitions_watch_;
  std::unique_ptr<Timer> definitions_timer_;
  bool definitions_due_ = false;
  void LoadDefinitions();
  void StartDefinitions(TimePoint now);
  void ProcessDefinitions(TimePoint now);
  Scheduler scheduler_;
  Attempts attempts_;  // the executors' host
  // Hooks (daemon/daemon_hooks.h): follows the jobs with hooks, delivers their events.
  std::unique_ptr<DaemonHooks> hooks_;
  std::unique_ptr<SupervisedExecutor> local_;
  std::unique_ptr<SlurmExecutor> slurm_;
  std::optional<TimePoint> attempts_wake_;  // when the loop must wake for attempts

  uv_loop_t loop_{};
  std::unique_ptr<Prepare> prepare_;
  std::unique_ptr<Timer> rescan_timer_;
  std::unique_ptr<Timer> wake_timer_;
  std::unique_ptr<Timer> index_timer_;
  std::unique_ptr<Timer> whole_index_timer_;  // a large index.json's deferred write
  std::unique_ptr<Timer> progress_timer_;
  std::unique_ptr<Timer> retention_timer_;
  std::unique_ptr<Timer> watchdog_timer_;
  std::unique_ptr<DirWatch> incoming_watch_;
  std::unique_ptr<DirWatch> control_watch_;
  std::unique_ptr<DirWatch> root_watch_;  // wakes the loop for CheckRoot()
  std::unique_ptr<SignalWatch> sigterm_, sigint_, sighup_;

  SdNotifier notifier_;
  bool ready_sent_ = false;
  std::string last_status_;  // the last STATUS= sent to systemd
  RootLock root_lock_;
  std::string root_problem_;  // the last one logged, so it is said once
  TimePoint started_at_{};
  bool stopping_ = false;
  bool stop_jobs_ = false;  // a stop that stops the local jobs too (control action shutdown)
  bool scan_pending_ = true;
  bool reload_pending_ = false;
  bool retention_pending_ = true;
  bool flushed_ = true;  // whether the last FlushBatch made its writes durable
  bool progress_pending_ = false;
  std::set<std::string> pending_names_;     // in incoming/
  std::set<std::string> pending_controls_;  // in control/
  std::set<std::string> unwritten_;         // jobs whose status write failed: retried
  std::map<std::string, std::string> troubles_;  // key -> message, while it lasts
  // Every job's index entry, serialised once per change; ended jobs' entries
  // live in a file, not in memory.
  JobIndex index_jobs_;
  // Why an ended job ended, from its status.json (the index keeps its state
  // only); kNone if the file cannot say.
  Reason EndedReason(const std::string& id, JobState state) const;
  Tombstones tombstones_;  // how jobs removed by retention ended, for `after`
  void SetIndexEntry(const std::string& id, const JobStatus& status) { index_jobs_.Set(id, status); }
  uint64_t index_delay_ms_ = 250;  // grows with the cost of the last write, within SPEC's 1 s
  bool index_dirty_ = false;
  std::chrono::steady_clock::time_point whole_index_written_{};  // index.json's last write
  struct timespec jobs_mtime_ {};  // jobs/ as last listed
  // Folders under jobs/ whose status.json cannot be read: in index.json's
  // "damaged", looked at again at every scan.
  struct Damaged {
    std::string problem;
    TimePoint since{};
  };
  std::map<std::string, Damaged> damaged_;
  // Active jobs whose folder was removed: stopped, nothing more is written for
  // them, and they are forgotten once their attempt has ended.
  std::set<std::string> vanished_;
  // Whether the folder of `id` is gone: it vanished, or its array's did.
  bool Gone(const std::string& id) const {
    if (vanished_.empty()) return false;
    const size_t colon = id.find(':');
    return vanished_.count(id) != 0 ||
           (colon != std::string::npos && vanished_.count(id.substr(0, colon)) != 0);
  }
  // What our last index write left on disk, to notice at each scan when someone
  // deleted or replaced the file (SPEC.md section 7: it is then rebuilt).
  struct FileStamp {
    ino_t ino = 0;
    off_t size = -1;
    bool operator==(const FileStamp&) const = default;
  } index_stamp_, active_index_stamp_;
};

}  // namespace spoold

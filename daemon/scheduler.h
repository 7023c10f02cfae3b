// The scheduler: every decision about jobs, and nothing else. It owns the job
// records (spec + status) and the pools' counters, and changes them only through
// the methods below, each of which takes the time as a parameter and does no I/O
// (STYLE.md: ninja's plan). The daemon persists what changed and performs the
// effects (spawn, kill, timers). A broken invariant aborts (SPOOLD_CHECK).
//
// Queue order within a pool: higher priority first, then arrival (FIFO). Every
// queued job holds a place against the pool's queue_limit, whatever its reason
// (in_queue, held, pool_paused, retry_backoff, dependency); running jobs do not.
//
// Dependencies (`after`, SPEC.md section 5): a job whose parents have not all
// ended waits with reason dependency, in no ready queue; its status's
// waiting_on lists the open parents. A parent's end decides each of its
// waiting children at once (scheduler_deps.cpp): released, or cancelled with
// dependency_failed, which in turn decides the children's children.
//
// Arrays (`[array]`, SPEC.md section 5; scheduler_array.cpp): an array is one
// job in its pool's queue that, each time it is taken, starts its next task.
// A task becomes a job of its own (id `<array>:<index>`) only when it starts
// (or is cancelled before): tasks not started are a counter. The array is
// running from its first task's start until its last task has ended.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "config/config.h"
#include "daemon/metrics.h"
#include "daemon/resource_ledger.h"
#include "daemon/sched_job.h"
#include "spool/job_spec.h"
#include "spool/kept_spec.h"
#include "spool/status.h"

namespace spoold {

// How an attempt ended, as the executor saw it.
struct AttemptEnd {
  std::optional<int> exit_code;  // set when the process exited
  std::optional<int> signal;     // set when a signal killed it
  // Why the daemon ended it, if it did: kTimeout, kDeadline, kCancelledByUser,
  // kInterrupted (shutdown or crash), kSpawnFailed; kNone when it ended by itself.
  Reason cause = Reason::kNone;
  std::string detail;  // e.g. the spawn error
  double cpu_user_s = 0;
  double cpu_sys_s = 0;
  int64_t max_rss_kb = 0;
  // From the attempt's cgroup, when it had one (SPEC.md section 5,
  // "Resources"): the most memory it used, and whether the kernel killed a
  // process of it at its memory limit (the attempt then ends out_of_memory
  // unless it succeeded). cpu_user_s and cpu_sys_s then come from the cgroup.
  std::optional<int64_t> memory_peak;
  bool out_of_memory = false;
  // When it ended, if not now: an attempt that ended while the daemon was down
  // is recorded later, with the time its supervisor saw the end.
  std::optional<TimePoint> ended_at;
};

struct PoolState {
  PoolConfig config;
  bool paused = false;
  int running = 0;
  int queued = 0;
};

class Scheduler {
 public:
  explicit Scheduler(const Config& config);
  // Jobs point at config_: a scheduler stays where it was made.
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Applies a (re)loaded configuration: pools added or changed take effect; a
  // pool that disappears keeps its jobs (it starts nothing: no workers, paused).
  void SetConfig(const Config& config, TimePoint now);

  // Whether a new job may enter its pool, and the reason it waits with.
  Result<Reason> Admit(const JobSpec& spec) const;

  // Adds an accepted or recovered job. Queued jobs join their pool's queue. A
  // job recovered as running counts as running until the caller reports its
  // attempt's end (as interrupted). Terminal jobs are not added. `text` is the
  // accepted file the spec was validated from: a job that joins a queue already
  // kHotQueued long keeps only it until it starts (an empty text: never).
  // `now` is when it is added, if not the status's `updated` (recovery).
  void Add(JobSpec spec, JobStatus status, std::string text = {},
           std::optional<TimePoint> now = std::nullopt);

  // How many queued jobs of a pool keep their parsed spec before later ones
  // keep only their text: enough that the next starts of a busy pool never
  // wait for a parse.
  static constexpr int kHotQueued = 64;

  // Keeps a queued job's status short (SchedJob::Settle): the daemon calls it
  // once the status is written, so that a job waiting far back in a long queue
  // costs little memory. Reading or changing the status again makes it whole.
  void Settle(const std::string& id);

  // What the daemon knows of a job the scheduler does not hold (its index
  // entry, or a tombstone), asked when a job names such a parent: how it
  // ended, or `active` for a job that has not ended but is not here (a folder
  // whose job file no longer loads). nullopt: no such job is known.
  struct Ended {
    JobState state = JobState::kSucceeded;
    Reason reason = Reason::kNone;
    bool active = false;
  };
  using EndedLookup = std::function<std::optional<Ended>(const std::string& id)>;
  void SetEndedLookup(EndedLookup lookup) { ended_lookup_ = std::move(lookup); }
  // Where attempts' starts and ends, retries and jobs' ends are counted
  // (daemon/metrics.h); none by default.
  void SetMetrics(Metrics* metrics) { metrics_ = metrics; }

  // Decides every waiting job whose open parent is not held here but is
  // known to have ended: after recovery, and whenever the daemon learns of an
  // ended job outside the scheduler (a folder taken in by a scan).
  void ResolveEnded(TimePoint now);

  // Removes a terminal job (retention).
  void Forget(const std::string& id);

  SchedJob* Find(const std::string& id);
  const std::map<std::string, SchedJob>& Jobs() const { return jobs_; }
  const std::map<std::string, PoolState>& Pools() const { return pools_; }

  // Jobs that start now, marked running with their next attempt number and
  // what they were given (attempts[].cpus and .gpus): the caller starts them
  // and reports back with AttemptStarted or AttemptEnded. Resources and the
  // rule against starvation: SPEC.md section 5, "Resources"
  // (scheduler_resources.cpp).
  std::vector<std::string> TakeStartable(TimePoint now);

  // How many queued jobs of a pool TakeStartable looks at past those that
  // cannot start now, each time.
  static constexpr int kBackfillWindow = 64;
  // And at most this many that ask for more than their pool has at all now.
  static constexpr int kScanLimit = 4096;

  // Who holds what, for index.json.
  const ResourceLedger& Ledger() const { return ledger_; }

  void AttemptStarted(const std::string& id, int64_t pid, std::optional<uint64_t> pid_start,
                      TimePoint now);

  // A slurm pool's attempt was accepted by sbatch as Slurm job `slurm_id`.
  void AttemptSubmitted(const std::string& id, const std::string& slurm_id, TimePoint now);

  // The attempt could not start for a reason that is not the job's (the machine
  // is out of descriptors or processes): the job goes back to the head of its
  // queue as if it had not been taken, and no attempt is counted.
  void AttemptNotStarted(const std::string& id, const std::string& why, TimePoint now);

  // Decides what follows an attempt: succeeded, failed, or queued again for a
  // retry (reason retry_backoff with next_attempt_at) or after an interruption.
  void AttemptEnded(const std::string& id, const AttemptEnd& end, TimePoint now);

  // Moves retry-waiting jobs whose time has come back into the queue, and fails
  // queued jobs whose deadline passed. Returns the ids it changed.
  std::vector<std::string> Tick(TimePoint now);

  // The next time Tick has something to do, if any.
  std::optional<TimePoint> NextWakeup() const;

  // When the running attempt of `id` must be stopped (timeout or deadline,
  // whichever comes first), and which of the two it is.
  std::optional<std::pair<TimePoint, Reason>> AttemptLimit(const std::string& id) const;

  // When the job's deadline passes (created + deadline), if it has one.
  std::optional<TimePoint> DeadlineOf(const SchedJob& job) const;

  // Control requests. Each returns an error (code invalid_field or unknown_job)
  // when the request does not apply; Cancel of a running job only marks the
  // intent: the daemon kills each job in `to_stop` (the job, or an array's
  // running tasks) and reports AttemptEnded with kCancelledByUser.
  Status Cancel(const std::string& id, TimePoint now, std::vector<std::string>* to_stop);
  // The same, for a caller that knows `id` is no array: whether it runs.
  Status Cancel(const std::string& id, TimePoint now, bool* was_running) {
    std::vector<std::string> to_stop;
    Status st = Cancel(id, now, &to_stop);
    *was_running = !to_stop.empty();
    return st;
  }
  Status Release(const std::string& id, TimePoint now);  // start a held job
  Status Pause(const std::string& pool, TimePoint now);
  Status Resume(const std::string& pool, TimePoint now);

  // The job's progress file changed (running jobs only).
  void SetProgress(const std::string& id, std::optional<double> progress,
                   std::optional<std::string> message, TimePoint now);

  // Retry wait before the n-th retry (1-based): min(max_delay, delay * backoff^(n-1)).
  static Millis RetryDelay(const RetryPolicy& policy, int n);

  // The ids whose status changed since the last call (for persistence).
  std::vector<std::string> TakeChanged();

  // Arrays (scheduler_array.cpp).
  // Tasks made jobs since the last call: the daemon creates their folders
  // before it starts or writes them.
  std::vector<std::string> TakeNewTasks();
  // The definition task `index` of `array` (held here) runs with.
  JobSpec TaskSpec(const SchedJob& array, int64_t index) const;
  // Recovery, after Add of the array: a task that had ended (`state`
  // terminal), or one to take back (Add), found in the array's folder.
  void AddEndedTask(const std::string& array, int64_t index, JobState state);
  // Once every task folder of a recovered array was seen: its counts are
  // whole, and it starts tasks again or ends. Returns the running tasks the
  // daemon must stop (an array cancelled before the restart).
  std::vector<std::string> ArrayRecovered(const std::string& array, TimePoint now);
  // What is known of task `id` of an array held here: nullopt when the id
  // is no such task.
  std::optional<Ended> TaskOutcome(const std::string& id) const;

 private:
  // An array's tasks share its arrival (a task keeps its array's place in
  // the queue), so the id (the job's key in jobs_) decides among them: the
  // array, then its tasks by id.
  struct QueueKey {
    int64_t neg_priority;
    uint64_t arrival;
    const std::string* id;
    bool operator<(const QueueKey& other) const {
      return std::tie(neg_priority, arrival, *id) < std::tie(other.neg_priority, other.arrival, *other.id);
    }
  };
  QueueKey KeyOf(const SchedJob& job) const { return {-job.priority(), job.arrival, &job.id()}; }

  void Enqueue(SchedJob& job, TimePoint now);   // into the ready or waiting set
  void Dequeue(SchedJob& job);                  // out of both
  void SetState(SchedJob& job, JobState state, Reason reason, std::string message, TimePoint now);
  Reason WaitingReason(const SchedJob& job) const;
  // How far a queued job had come, for the message that ends its wait
  // (scheduler_control.cpp).
  static std::string QueuedSoFar(const JobStatus& s);
  // scheduler_deps.cpp
  std::optional<std::string> CycleThrough(const JobSpec& spec) const;
  void AddWaiting(SchedJob& job, TimePoint now);
  // Applies parent's end to `child`; false once the child waits no more.
  bool Decide(SchedJob& child, const std::string& parent, JobState state, Reason reason, TimePoint now);
  void ParentEnded(const std::string& parent, TimePoint now);
  // Decides every job waiting for `parent`, which ended so.
  void DecideChildren(const std::string& parent, JobState state, Reason reason, TimePoint now);
  void ExpireMissing(TimePoint now, std::vector<std::string>* changed);
  std::string WaitMessage(const SchedJob& job) const;
  void DropEdges(SchedJob& job);
  Status SetPaused(const std::string& pool, bool paused, TimePoint now);
  // scheduler_array.cpp
  struct ArrayRun;
  void BeginAttempt(SchedJob& job, TimePoint now);
  // Starts the array's next task, if it may; requeues the array if it may
  // start one more after it.
  void StartTask(SchedJob& array, TimePoint now, std::vector<std::string>* started);
  SchedJob& MakeTask(SchedJob& array, ArrayRun& run, uint64_t position, TimePoint now);
  void TaskEnded(SchedJob& task, TimePoint now);
  bool MayStartTask(const SchedJob& array, const ArrayRun& run) const;
  // Ends the tasks not started: state, reason (array_halted, cancelled_by_user, deadline).
  void EndPending(SchedJob& array, ArrayRun& run, JobState state, Reason reason, TimePoint now);
  void MaybeEndArray(SchedJob& array, ArrayRun& run, TimePoint now);
  // `exact`: failed_indexes written whatever its length (the array ends).
  void RefreshArray(const std::string& id, TimePoint now, bool exact = false);
  std::string FailedIndexes(const SchedJob& array, const ArrayRun& run) const;
  uint64_t Unstarted(const SchedJob& array, const ArrayRun& run) const;
  Status CancelArray(SchedJob& array, TimePoint now, std::vector<std::string>* to_stop);
  Status CancelPendingTask(const std::string& id, TimePoint now);
  void Finish(SchedJob& job, JobState state, Reason reason, std::string message, TimePoint now);
  int CountedAttempts(const SchedJob& job) const { return job.status().attempt - job.status().interruptions; }
  PoolState& PoolOf(const SchedJob& job);

  Config config_;
  std::map<std::string, SchedJob> jobs_;
  std::map<std::string, PoolState> pools_;
  std::map<std::string, std::set<QueueKey>> ready_;              // per pool
  std::set<std::pair<TimePoint, std::string>> waiting_;          // retry_backoff
  std::set<std::pair<TimePoint, std::string>> deadlines_;        // jobs with a deadline: none is scanned for
  std::set<std::string> cancel_requested_;
  std::set<std::string> changed_;
  std::set<std::string> owners_;  // the owners of settled jobs, each name once
  std::map<std::string, std::set<std::string>> dependents_;  // open parent -> its waiting children
  // (grace end, child, its created) for children with a parent not submitted
  // yet; `created` tells an entry of an earlier job under the same id.
  std::set<std::tuple<TimePoint, std::string, TimePoint>> missing_;
  EndedLookup ended_lookup_;
  Metrics* metrics_ = nullptr;
  void CountStart(const SchedJob& job);
  // scheduler_resources.cpp
  struct Reservation {
    std::string pool;
    std::string job;              // the reserved job
    std::optional<TimePoint> at;  // when the reserved job fits at the latest; nullopt: not known
    FreeAmounts extra_pool;       // what is left over then, beyond its request
    FreeAmounts extra_machine;
    int64_t extra_workers = 0;
  };
  Reservation Reserve(const std::string& pool, const SchedJob& job, TimePoint now) const;
  // Whether a job of `pool` that fits now may start without delaying a
  // reserved job; if so, takes what it needs out of the reservations' extras.
  bool MayGoAhead(const SchedJob& job, const std::string& pool, const ResourceAmounts& want, TimePoint now);
  std::optional<TimePoint> LimitIfStarted(const SchedJob& job, TimePoint now) const;
  void MarkWaiting(SchedJob& job, Reason reason, std::string message, TimePoint now);
  bool StartQueued(SchedJob& job, TimePoint now, std::vector<std::string>* started);
  ResourceLedger ledger_;
  std::vector<Reservation> reservations_;
  std::map<std::string, std::string> reserved_;  // pool -> its reserved job
  std::vector<std::string> ended_;  // jobs whose end is still to be applied to their children
  bool cascading_ = false;
  uint64_t next_arrival_ = 1;
  // Arrays held here, and their tasks.
  struct ArrayRun {
    uint64_t next = 0;             // the position of the next task to start
    std::set<uint64_t> early;      // positions past `next` ended before they started (cancelled by hand)
    std::set<std::string> active;  // tasks started and not ended
    std::set<int64_t> failed;      // indexes
    std::set<int64_t> cancelled;   // indexes of tasks cancelled after they were made jobs
    uint64_t succeeded = 0;
    // How the tasks not started ended, once they did (halt, cancel, deadline).
    std::optional<std::pair<JobState, Reason>> rest;
    uint64_t rest_count = 0;  // how many of them
    uint64_t rest_from = 0;   // the first position they count from
    bool cancelling = false;  // the array was cancelled: it ends cancelled
    // failed_indexes as last written, for how many failed tasks, and when:
    // a long list is written again at most once a second while tasks run.
    uint64_t failed_shown = 0;
    TimePoint failed_shown_at{};
  };
  std::map<std::string, ArrayRun> arrays_;
  std::vector<std::string> new_tasks_;
  std::map<std::string, TimePoint> dirty_arrays_;  // arrays whose counts changed, and when
};

}  // namespace spoold

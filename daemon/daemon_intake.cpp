// Daemon (daemon.h): what comes in and what starts. Job files in incoming/,
// control requests in control/, and the start of the jobs the scheduler
// lets run (handed to their executor through Attempts).
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

#include "spool/dropped_file.h"
#include "spool/fileio.h"

namespace spoold {

void Daemon::ScanIncoming() {
  scan_pending_ = false;
  ReconcileJobFolders(Now());
  // The index files are a cache: if one is gone, or not the file we wrote
  // last, both are written again.
  for (const auto& [path, ours] :
       {std::pair{paths_.Index(), index_stamp_}, std::pair{paths_.IndexActive(), active_index_stamp_}}) {
    struct stat st {};
    const bool present = ::stat(path.c_str(), &st) == 0;
    if ((!present || !(FileStamp{st.st_ino, st.st_size} == ours)) && !index_dirty_) {
      spdlog::warn("{} was deleted or changed by someone else; rebuilding it", path);
      FlushIndex(true);
      break;
    }
  }
  for (auto& file : definitions_.Scan()) pending_definitions_.insert(std::move(file));
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
    metrics_.Rejected("control", error.code);
    MetricsChanged();
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
  // A task is its array's owner's, started or not.
  const auto task = ParseTaskId(request.job);
  const std::string& whose = task ? task->array : request.job;
  if (auto it = scheduler_.Jobs().find(whose); it != scheduler_.Jobs().end()) {
    owner = it->second.owner_uid();
  } else if (auto status = store_.Load(whose); status.ok()) {
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
  if (job == nullptr && request.action == ControlAction::kCancel) {
    // A task of an array held here that has not started: cancelled without
    // running, in a folder of its own (SPEC.md section 5).
    if (auto task = scheduler_.TaskOutcome(request.job); task && task->active) {
      std::vector<std::string> none;
      if (auto st = scheduler_.Cancel(request.job, now, &none); !st.ok()) return st;
      CommitNewTasks(now);
      if (SchedJob* made = scheduler_.Find(request.job)) {
        Event(*made, Level::kInfo, "cancel_requested",
              "cancel requested by " + source + " before it started");
      }
      return OkStatus();
    }
  }
  if (job == nullptr && request.action == ControlAction::kStart && ParseTaskId(request.job) &&
      (scheduler_.TaskOutcome(request.job) || EndedTask(request.job))) {
    return MakeError("invalid_state",
                     "a task is never held: start applies to its array, " + ParseTaskId(request.job)->array,
                     "job");
  }
  if (job == nullptr) {
    auto task = scheduler_.TaskOutcome(request.job);
    if (!task) task = EndedTask(request.job);
    if (task && !task->active) {
      return MakeError(
          "invalid_state",
          "task " + request.job + " has ended (" + StateName(task->state) + "); nothing to " + action, "job");
    }
    auto known = index_jobs_.StateOf(request.job);
    if (!known) return MakeError("unknown_job", "there is no job " + request.job, "job");
    return MakeError("invalid_state",
                     "job " + request.job + " has ended (" + StateName(*known) + "); nothing to " + action, "job");
  }
  if (request.action == ControlAction::kCancel) {
    std::vector<std::string> to_stop;
    const std::string state = StateName(job->state());
    if (auto st = scheduler_.Cancel(request.job, now, &to_stop); !st.ok()) return st;
    Event(*job, Level::kInfo, "cancel_requested", "cancel requested by " + source + " while " + state);
    for (const auto& id : to_stop) {
      if (SchedJob* stopping = scheduler_.Find(id); stopping != nullptr && id != request.job) {
        Event(*stopping, Level::kInfo, "cancel_requested",
              "cancel of array " + request.job + " by " + source);
      }
      attempts_.Stop(id, Reason::kCancelledByUser, now);
    }
    return OkStatus();
  }
  // The scheduler says why a job cannot be started (not held, or still
  // waiting for its parents).
  if (auto st = scheduler_.Release(request.job, now); !st.ok()) {
    return MakeError("invalid_state", st.error().message, "job");
  }
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
      metrics_.JobAccepted(out.spec->pool);
      if (const Json& def = out.status->definition; def.is_object()) {
        definitions_.RecordRun(def["name"].get<std::string>(), out.id, def["revision"].get<int>(), now,
                               &batch_);
      }
      scheduler_.Add(std::move(*out.spec), std::move(*out.status), std::move(out.text));
      SetIndexEntry(out.id, scheduler_.Find(out.id)->status());
      scheduler_.Settle(out.id);  // written: a job far back in a long queue keeps little
      MarkIndexDirty();
      return;
    }
    case IntakeKind::kRejected:
      TroubleOver("intake");
      metrics_.Rejected("job", out.error.code);
      MetricsChanged();
      spdlog::warn("rejected {}: {}{}{}", shown, out.error.code,
                   out.error.field.empty() ? "" : " (" + PrintableName(out.error.field) + ")",
                   ": " + out.error.message);
      return;
    case IntakeKind::kDuplicate: {
      const std::string message = "the same file was dropped again as " + SanitizeUtf8(name) + "; ignored";
      if (SchedJob* job = scheduler_.Find(out.id)) {
        Event(*job, Level::kInfo, "duplicate_ignored", message);
        scheduler_.Settle(out.id);  // the event's write rebuilt a settled status
      } else if (auto status = store_.Load(out.id); status.ok()) {
        if (auto st = store_.AppendEvent(*status, {Level::kInfo, "duplicate_ignored", status->attempt, message, {}});
            !st.ok()) {
          spdlog::error("job {}: {}", out.id, st.error().message);
        }
      }
      if (auto st = intake_.RemoveIncoming(name, out.file); !st.ok()) spdlog::error("{}", st.error().message);
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
  for (const auto& [key, value] : job.spec().env) env[key] = value;
  const std::string& id = job.status().id;
  // A run of a definition has its params (a task its array's).
  const JobStatus* run = &job.status();
  if (const auto& array = job.status().array) {
    auto it = scheduler_.Jobs().find(*array);
    run = it != scheduler_.Jobs().end() ? &it->second.status() : nullptr;
  }
  if (run != nullptr && run->definition.is_object()) {
    // (status.json may have been edited or imported: nothing is assumed of it.)
    if (auto params = run->definition.find("params");
        params != run->definition.end() && params->is_object()) {
      for (const auto& [param, value] : params->items()) {
        if (IsValidParamName(param)) env[ParamVariable(param)] = ParamText(value);
      }
    }
  }
  env["SPOOLD_JOB_ID"] = id;
  env["SPOOLD_ATTEMPT"] = std::to_string(job.status().attempt);
  env["SPOOLD_POOL"] = job.status().pool;
  env["SPOOLD_JOB_DIR"] = paths_.JobDir(id);
  env["SPOOLD_RESULTS_DIR"] = paths_.ResultsDir(id);
  env["SPOOLD_PROGRESS_FILE"] = paths_.Progress(id);
  if (const auto& array = job.status().array) {
    const int64_t index = job.status().array_index.value_or(0);
    env["SPOOLD_ARRAY_ID"] = *array;
    env["SPOOLD_ARRAY_INDEX"] = std::to_string(index);
    if (auto it = scheduler_.Jobs().find(*array); it != scheduler_.Jobs().end()) {
      const ArraySpec& spec = *it->second.spec().array;
      env["SPOOLD_ARRAY_COUNT"] = std::to_string(spec.count);
      if (const std::string* item = spec.ItemOf(index)) env["SPOOLD_ARRAY_ITEM"] = *item;
    }
  }
  // What a local attempt was given (SPEC.md section 5, "Resources"), after
  // the job's own env: a job cannot take a device it was not given. Slurm
  // sets its jobs' own.
  if (scheduler_.Ledger().Local(job.status().pool) && !job.status().attempts.empty()) {
    const AttemptRecord& a = job.status().attempts.back();
    if (!a.cpus.empty()) env["SPOOLD_CPUS"] = JoinNumbers(a.cpus);
    if (!a.gpus.empty() || !config_.machine.gpus.empty()) {
      env["SPOOLD_GPUS"] = JoinNumbers(a.gpus);
      env["CUDA_VISIBLE_DEVICES"] = JoinNumbers(a.gpus);
      env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID";  // numbered as nvidia-smi numbers them
    }
  }
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
  if (!attempts_.MayStart(now)) return;
  const std::vector<std::string> started = scheduler_.TakeStartable(now);
  CommitNewTasks(now);  // a task's first start makes its folder
  for (const auto& id : started) {
    if (uncommitted_.count(id) != 0) {
      scheduler_.AttemptNotStarted(id, "its folder cannot be made", now);
      continue;
    }
    Launch(id, now);
  }
}

void Daemon::Launch(const std::string& id, TimePoint now) {
  SchedJob& job = *scheduler_.Find(id);
  const int n = job.status().attempt;
  auto fail = [&](const Error& error) { attempts_.AttemptNeverRan(id, error, now); };
  auto logs = store_.OpenAttemptLogs(id, n);
  if (!logs.ok()) return fail(logs.error());
  LaunchSpec spec;
  if (job.spec().script) {
    spec.argv = job.spec().shell;
    spec.argv.push_back(paths_.Script(id));
  } else {
    spec.argv = job.spec().command;
  }
  // Who the job runs as: its submitter when we are root (SPEC.md section 5),
  // else the daemon's own user.
  const uid_t me = ::geteuid();
  const bool switch_user = me == 0 && job.status().owner_uid > 0;
  auto user = User(switch_user ? static_cast<uid_t>(job.status().owner_uid) : me, now);
  if (!user.ok()) {
    ::close(logs->stdout_fd);
    ::close(logs->stderr_fd);
    return fail(user.error());
  }
  if (switch_user) spec.run_as = user->ids;
  spec.env = JobEnvironment(job, *user);
  spec.cwd = job.spec().cwd.empty() ? paths_.ResultsDir(id) : job.spec().cwd;
  spec.stdout_fd = logs->stdout_fd;
  spec.stderr_fd = logs->stderr_fd;

  AttemptSpec attempt;
  attempt.id = id;
  attempt.attempt = n;
  attempt.launch = std::move(spec);
  attempt.kill = job.spec().kill;
  attempt.timeout = job.spec().timeout.value_or(config_.TimeoutFor(job.status().pool));
  attempt.deadline = scheduler_.DeadlineOf(job);
  if (auto pool = scheduler_.Pools().find(job.status().pool); pool != scheduler_.Pools().end()) {
    attempt.slurm = pool->second.config.slurm;
  }
  const AttemptRecord& record = job.status().attempts.back();
  attempt.grant = {record.cpus, record.gpus, job.status().resources.memory};
  attempt.request = job.status().resources;  // a slurm pool passes it to sbatch
  attempts_.Start(std::move(attempt), now);
}

void Daemon::ReadProgress(TimePoint now) {
  progress_pending_ = false;
  for (const auto& id : attempts_.Ids()) {
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
}  // namespace spoold

#include "daemon/daemon_hooks.h"

#include <fcntl.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

#include "spool/failpoint.h"
#include "spool/fileio.h"
#include "spool/job_array.h"

namespace spoold {
namespace {

// events.jsonl is read whole to find the next event; a file larger than this
// is not one the daemon wrote for a hook to follow.
constexpr size_t kMaxEventsFile = 64u << 20;

std::optional<uid_t> UidOfName(const std::string& name) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr)
    return std::nullopt;
  return pw.pw_uid;
}

std::string EventId(const HookRun& run) { return run.job + "/" + std::to_string(run.event.seq); }

// The reason of a failed run, as hook_failed names it.
const char* ReasonOf(const HookOutcome& outcome) {
  switch (outcome.end) {
    case HookOutcome::End::kExited:
      return "nonzero_exit";
    case HookOutcome::End::kSignaled:
      return "signal";
    case HookOutcome::End::kTimeout:
      return "timeout";
    case HookOutcome::End::kSpawnFailed:
      return "spawn_failed";
  }
  return "unknown";
}

std::string Describe(const HookOutcome& outcome, const Millis& timeout) {
  switch (outcome.end) {
    case HookOutcome::End::kExited:
      return "exited with code " + std::to_string(outcome.exit_code);
    case HookOutcome::End::kSignaled:
      return "killed by signal " + SignalName(outcome.signal);
    case HookOutcome::End::kTimeout:
      return "still running after its timeout of " + FormatDuration(timeout) + ", killed";
    case HookOutcome::End::kSpawnFailed:
      return "could not run: " + outcome.error;
  }
  return "ended";
}

}  // namespace

DaemonHooks::DaemonHooks(uv_loop_t* loop, const Config& config, const SpoolPaths& paths, JobStore& store,
                         SyncBatch& batch, Scheduler& scheduler, AppendActive append)
    : config_(config),
      paths_(paths),
      store_(store),
      batch_(batch),
      scheduler_(scheduler),
      append_(std::move(append)),
      hooks_(*this, config.hooks.max_running),
      processes_(loop) {}

std::map<std::string, HookSpec> DaemonHooks::HooksOf(const std::vector<HookSpec>& own,
                                                     const std::string& pool) const {
  std::map<std::string, HookSpec> out;
  for (size_t k = 0; k < own.size(); ++k) out.emplace("job-" + std::to_string(k), own[k]);
  if (auto it = config_.pools.find(pool); it != config_.pools.end()) {
    for (size_t k = 0; k < it->second.hooks.size(); ++k)
      out.emplace("pool-" + std::to_string(k), it->second.hooks[k]);
  }
  return out;
}

void DaemonHooks::Open() {
  auto names = ListDir(paths_.HooksPending());
  if (!names.ok()) {
    spdlog::error("hooks: cannot list {}: {}; undelivered events of ended jobs wait for the next start",
                  paths_.HooksPending(), names.error().message);
  } else {
    for (const auto& id : *names) {
      const std::string marker = paths_.HooksPendingFile(id);
      // Active (Note below), or followed already: a job that ended while the
      // daemon was down was recorded, and followed, by Recover.
      if (scheduler_.Find(id) != nullptr || followed_.count(id) != 0) continue;
      if (!PathExists(paths_.JobDir(id))) {
        ::unlink(marker.c_str());  // removed, or never published (a crash before its commit)
        continue;
      }
      auto status = store_.Load(id);
      const auto task = ParseTaskId(id);
      const std::string file_id = task ? task->array : id;
      auto file = store_.ReadJobFile(file_id, static_cast<size_t>(config_.max_job_file_size));
      std::optional<JobSpec> spec;
      if (status.ok() && file.ok()) {
        if (auto doc = ParseDocument(file->second, file->first); doc.ok()) {
          if (auto s = RevalidateJobSpec(*doc, file_id, config_); s.ok()) spec = std::move(*s);
        }
      }
      if (!spec) {
        spdlog::warn(
            "hooks: job {} has undelivered hook events, but its status or job file cannot be read; "
            "left for the next start",
            id);
        continue;
      }
      auto hooks = HooksOf(spec->hooks, status->pool);
      if (hooks.empty()) {
        ::unlink(marker.c_str());
        continue;
      }
      Follow(id, hooks, IsTerminal(status->state));
    }
  }
  for (const auto& [id, job] : scheduler_.Jobs()) Note(job);
  if (!followed_.empty())
    spdlog::info("hooks: following {} jobs with hook events to deliver", followed_.size());
}

void DaemonHooks::Note(const SchedJob& job) {
  const std::string& id = job.id();
  if (followed_.count(id) != 0) {
    hooks_.Poke(id);
    if (IsTerminal(job.state())) hooks_.JobEnded(id);
    return;
  }
  const auto pool = config_.pools.find(job.pool());
  const bool pool_hooks = pool != config_.pools.end() && !pool->second.hooks.empty();
  if (!job.kept.has_hooks() && !pool_hooks) return;  // most jobs: nothing parsed, nothing copied
  std::vector<HookSpec> own;
  if (!job.kept.Frozen()) {
    own = job.spec().hooks;
  } else if (auto spec = job.kept.Parse(id, config_); spec.ok()) {
    own = std::move(spec->hooks);
  }
  if (own.empty() && !pool_hooks) return;
  // The marker comes first: it is durable with the turn's writes, before
  // the job's terminal status is renamed into place, so a restart finds
  // every ended job that may still have events to deliver.
  Mark(id);
  Follow(id, HooksOf(own, job.pool()), IsTerminal(job.state()));
}

bool DaemonHooks::Mark(const std::string& id) {
  const std::string marker = paths_.HooksPendingFile(id);
  int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    spdlog::error("hooks: cannot create {}: {}; a restart may not deliver this job's hook events", marker,
                  std::strerror(errno));
    return false;
  }
  ::close(fd);
  batch_.MarkDirty();  // made durable by the turn's syncs
  return true;
}

void DaemonHooks::Follow(const std::string& id, const std::map<std::string, HookSpec>& hooks, bool ended) {
  followed_.insert(id);
  for (const auto& [key, spec] : hooks) hooks_.Track(id, key, spec, ReadCursor(id, key));
  if (ended) hooks_.JobEnded(id);
}

uint64_t DaemonHooks::ReadCursor(const std::string& id, const std::string& key) const {
  auto text = ReadSmallFile(paths_.HookCursor(id, key), 64);
  if (!text.ok()) return 0;  // none yet: nothing delivered
  uint64_t seq = 0;
  const char* end = text->data() + text->size();
  auto [ptr, ec] = std::from_chars(text->data(), end, seq);
  if (ec != std::errc() || (ptr != end && *ptr != '\n')) {
    spdlog::warn("hooks: {} does not hold a seq; delivering job {}'s events to {} from the start",
                 paths_.HookCursor(id, key), id, key);
    return 0;
  }
  return seq;
}

bool DaemonHooks::Pending(const std::string& id) const {
  if (followed_.count(id) != 0) return true;
  auto it = followed_.lower_bound(id + ":");
  return it != followed_.end() && it->compare(0, id.size() + 1, id + ":") == 0;
}

void DaemonHooks::Forget(const std::string& id) {
  // The job and its tasks ("id:7"); ids such as "id-2" sort between them.
  std::vector<std::string> gone;
  if (followed_.count(id) != 0) gone.push_back(id);
  for (auto it = followed_.lower_bound(id + ":"); it != followed_.end(); ++it) {
    if (it->compare(0, id.size() + 1, id + ":") != 0) break;
    gone.push_back(*it);
  }
  for (const auto& job : gone) {
    hooks_.Forget(job);
    followed_.erase(job);
    ::unlink(paths_.HooksPendingFile(job).c_str());
  }
}

std::optional<TimePoint> DaemonHooks::NextWakeup(TimePoint now) const {
  if (!early_.empty() || processes_.HasEnded()) return now;
  return hooks_.NextWakeup();
}

void DaemonHooks::Collect(TimePoint now) {
  std::vector<std::pair<uint64_t, HookOutcome>> ended;
  ended.swap(early_);
  for (auto& e : processes_.Collect()) ended.push_back(std::move(e));
  for (const auto& [token, outcome] : ended) {
    auto it = tokens_.find(token);
    if (it == tokens_.end()) continue;
    const Token t = it->second;
    tokens_.erase(it);
    hooks_.Finished(t.job, t.key, outcome, now);
  }
}

std::optional<HookEvent> DaemonHooks::NextEvent(const std::string& job, uint64_t after,
                                                const HookSpec& spec) {
  auto text = ReadSmallFile(paths_.Events(job), kMaxEventsFile);
  if (!text.ok()) {
    // Not "nothing to deliver": the job stays marked for the next start.
    if (unreadable_.insert(job).second) {
      spdlog::error("hooks: cannot read the events of job {} ({}); its hooks wait for the next start", job,
                    text.error().message);
    }
    return std::nullopt;
  }
  size_t start = 0;
  while (start < text->size()) {
    const size_t nl = text->find('\n', start);
    if (nl == std::string::npos) break;  // a line being written: not an event yet
    std::string_view line(text->data() + start, nl - start);
    start = nl + 1;
    Json event = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!event.is_object()) continue;
    auto seq = event.find("seq");
    auto name = event.find("event");
    if (seq == event.end() || !seq->is_number_unsigned() || name == event.end() || !name->is_string())
      continue;
    if (seq->get<uint64_t>() <= after || !HookFollows(spec, name->get_ref<const std::string&>())) continue;
    return HookEvent{seq->get<uint64_t>(), name->get<std::string>(), std::string(line)};
  }
  return std::nullopt;
}

void DaemonHooks::Fail(uint64_t token, const std::string& error) {
  HookOutcome outcome;
  outcome.end = HookOutcome::End::kSpawnFailed;
  outcome.error = error;
  early_.emplace_back(token, std::move(outcome));
}

void DaemonHooks::Start(const HookRun& run) {
  const uint64_t token = next_token_++;
  tokens_[token] = Token{run.job, run.hook};
  Json status = nullptr;
  if (auto text = ReadSmallFile(paths_.StatusFile(run.job), 64u << 20); text.ok()) {
    status = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (status.is_discarded()) status = nullptr;
  }
  const bool pool_hook = run.hook.rfind("pool-", 0) == 0;
  const std::string pool = status.is_object() ? status.value("pool", "") : "";

  // Who it runs as: a job's hook as the job's owner, a pool's as hooks.user,
  // when spoold is root; else as spoold's own user.
  uid_t uid = ::geteuid();
  if (uid == 0) {
    if (pool_hook) {
      auto named = UidOfName(config_.hooks.user);
      if (!named) return Fail(token, "hooks.user " + config_.hooks.user + " has no passwd entry");
      if (*named == 0 && !config_.hooks.allow_root) {
        return Fail(token, "hooks.user " + config_.hooks.user + " is root, and hooks.allow_root is false");
      }
      uid = *named;
    } else {
      const Json owner = status.is_object() ? status.value("owner_uid", Json(nullptr)) : Json(nullptr);
      if (!owner.is_number_integer() || owner.get<int64_t>() < 0) {
        return Fail(token, "the job's owner is not known (status.json has no owner_uid)");
      }
      uid = static_cast<uid_t>(owner.get<int64_t>());
    }
  }
  auto user = LookUpUser(uid);
  if (!user.ok()) return Fail(token, "uid " + std::to_string(uid) + " has no passwd entry");

  auto exe = ResolveCommand(run.spec.command[0], config_.job_path);
  if (!exe) return Fail(token, "ENOENT: " + PrintableName(run.spec.command[0]) + " not found in PATH");
  SPOOLD_FAILPOINT("hook.before_start");

  if (auto st = EnsureDir(paths_.HooksDir(run.job)); !st.ok()) return Fail(token, st.error().message);
  const std::string event_id = EventId(run);
  Json event = Json::parse(run.event.line, nullptr, /*allow_exceptions=*/false);
  Json input = {{"event_id", event_id},
                {"job", run.job},
                {"hook", run.hook},
                {"event", std::move(event)},
                {"status", std::move(status)}};

  HookLaunch launch;
  launch.exe = *exe;
  launch.argv = run.spec.command;
  launch.env = {"PATH=" + config_.job_path,
                "LANG=" + config_.job_lang,
                "HOME=" + user->home,
                "USER=" + user->name,
                "LOGNAME=" + user->name,
                "SPOOLD_JOB_ID=" + run.job,
                "SPOOLD_JOB_DIR=" + paths_.JobDir(run.job),
                "SPOOLD_EVENT=" + run.event.name,
                "SPOOLD_EVENT_ID=" + event_id,
                "SPOOLD_EVENT_SEQ=" + std::to_string(run.event.seq),
                "SPOOLD_HOOK=" + run.hook,
                "SPOOLD_POOL=" + pool};
  launch.stdin_data = DumpJson(input) + "\n";
  launch.log_path = paths_.HookLog(run.job, run.hook);
  launch.log_header = "[" + FormatTime(Now()) + "] " + event_id + " (" + run.event.name + "), attempt " +
                      std::to_string(run.attempt) + "\n";
  if (::geteuid() == 0) launch.run_as = user->ids;
  launch.timeout = run.spec.timeout;
  processes_.Start(token, launch);
}

void DaemonHooks::Append(const std::string& id, Level level, const std::string& event,
                         const std::string& message, Json extra) {
  if (SchedJob* job = scheduler_.Find(id)) {
    append_(*job, level, event, message, std::move(extra));
    return;
  }
  // An ended job: its seq continues from its files (JobStore::Load).
  auto status = store_.Load(id);
  if (!status.ok()) {
    spdlog::error("hooks: cannot record {} for job {}: {}", event, id, status.error().message);
    return;
  }
  if (auto st = store_.AppendEvent(*status, {level, event, status->attempt, message, std::move(extra)});
      !st.ok()) {
    spdlog::error("hooks: cannot record {} for job {}: {}", event, id, st.error().message);
  }
}

void DaemonHooks::Done(const HookRun& run, const HookOutcome& outcome) {
  if (outcome.ok()) SPOOLD_FAILPOINT("hook.before_cursor");
  const std::string event_id = EventId(run);
  Json extra = {{"hook", run.hook},
                {"event_id", event_id},
                {"attempts", run.attempt},
                {"hook_event", run.event.name},
                {"hook_seq", run.event.seq}};
  const std::string what = "hook " + run.hook + " (" + PrintableName(run.spec.command[0]) + ") for " +
                           event_id + " (" + run.event.name + ")";
  if (outcome.ok()) {
    Append(run.job, Level::kInfo, "hook_ok", what + " delivered", std::move(extra));
  } else {
    extra["reason"] = ReasonOf(outcome);
    extra["exit_code"] = outcome.end == HookOutcome::End::kExited ? Json(outcome.exit_code) : Json(nullptr);
    extra["signal"] = outcome.signal != 0 ? Json(SignalName(outcome.signal)) : Json(nullptr);
    if (!outcome.error.empty()) extra["error"] = SanitizeUtf8(outcome.error);
    const std::string tries = std::to_string(run.attempt) + (run.attempt == 1 ? " attempt" : " attempts");
    Append(run.job, Level::kWarning, "hook_failed",
           what + " given up after " + tries + ": " + Describe(outcome, run.spec.timeout), std::move(extra));
  }
  // The cursor last, in the turn's batch: durable with the event, at the flush.
  if (auto st = EnsureDir(paths_.HooksDir(run.job)); !st.ok()) {
    spdlog::error("hooks: cannot write the cursor of {} for job {}: {}", run.hook, run.job,
                  st.error().message);
    return;
  }
  if (auto st = WriteFileAtomic(paths_.HookCursor(run.job, run.hook), std::to_string(run.event.seq) + "\n",
                                0644, &batch_);
      !st.ok()) {
    spdlog::error("hooks: cannot write the cursor of {} for job {}: {}; the event will be delivered again",
                  run.hook, run.job, st.error().message);
  }
}

void DaemonHooks::CaughtUp(const std::string& job) {
  if (unreadable_.count(job) != 0) return;  // not caught up: unread (NextEvent); followed and marked still
  followed_.erase(job);
  // Not synced: a marker that outlives this only makes the next start look
  // at the job once more and find nothing to deliver.
  ::unlink(paths_.HooksPendingFile(job).c_str());
}

}  // namespace spoold

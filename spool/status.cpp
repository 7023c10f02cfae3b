#include "spool/status.h"

#include "config/toml_safety.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <limits>
#include <type_traits>

namespace spoold {
namespace {

constexpr struct {
  JobState state;
  const char* name;
} kStateNames[] = {{JobState::kQueued, "queued"},
                   {JobState::kRunning, "running"},
                   {JobState::kSucceeded, "succeeded"},
                   {JobState::kFailed, "failed"},
                   {JobState::kCancelled, "cancelled"}};

constexpr struct {
  Reason reason;
  const char* name;
} kReasonNames[] = {{Reason::kInQueue, "in_queue"},
                    {Reason::kHeld, "held"},
                    {Reason::kPoolPaused, "pool_paused"},
                    {Reason::kRetryBackoff, "retry_backoff"},
                    {Reason::kNonzeroExit, "nonzero_exit"},
                    {Reason::kTimeout, "timeout"},
                    {Reason::kSignal, "signal"},
                    {Reason::kSpawnFailed, "spawn_failed"},
                    {Reason::kDeadline, "deadline"},
                    {Reason::kInterrupted, "interrupted"},
                    {Reason::kCancelledByUser, "cancelled_by_user"},
                    {Reason::kDependency, "dependency"},
                    {Reason::kDependencyMissing, "dependency_missing"},
                    {Reason::kDependencyFailed, "dependency_failed"},
                    {Reason::kTasksFailed, "tasks_failed"},
                    {Reason::kArrayHalted, "array_halted"},
                    {Reason::kResources, "resources"},
                    {Reason::kOutOfMemory, "out_of_memory"}};

constexpr struct {
  int signal;
  const char* name;
} kSignalNames[] = {{SIGHUP, "HUP"},   {SIGINT, "INT"},   {SIGQUIT, "QUIT"}, {SIGILL, "ILL"},
                    {SIGTRAP, "TRAP"}, {SIGABRT, "ABRT"}, {SIGBUS, "BUS"},   {SIGFPE, "FPE"},
                    {SIGKILL, "KILL"}, {SIGUSR1, "USR1"}, {SIGSEGV, "SEGV"}, {SIGUSR2, "USR2"},
                    {SIGPIPE, "PIPE"}, {SIGALRM, "ALRM"}, {SIGTERM, "TERM"}, {SIGXCPU, "XCPU"},
                    {SIGXFSZ, "XFSZ"}, {SIGSYS, "SYS"}};

constexpr const char* kLevelNames[] = {"debug", "info", "warning", "error"};

template <class T>
Json Nullable(const std::optional<T>& v) {
  return v ? Json(*v) : Json(nullptr);
}

Json TimeOrNull(const std::optional<TimePoint>& t) {
  return t ? Json(FormatTime(*t)) : Json(nullptr);
}

Json ReasonJson(Reason r) {
  const char* name = ReasonName(r);
  return name ? Json(name) : Json(nullptr);
}

// Readers of our own files: a field of the wrong type is a corrupt file, reported
// as an error value rather than thrown through the daemon.
struct Reader {
  const Json& json;
  std::string error;

  // The value of `key` converted to T, if it is of T's kind and in its range:
  // nlohmann's get<int>() of 1e300 or of a string is undefined behaviour or an
  // exception, and a status.json on disk may hold anything.
  template <class T>
  std::optional<T> Convert(const char* key, const Json& v) {
    bool ok;
    if constexpr (std::is_same_v<T, bool>) {
      ok = v.is_boolean();
    } else if constexpr (std::is_integral_v<T>) {
      ok = v.is_number_integer() &&
           (v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                                   : v.get<int64_t>() >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                                         (std::is_unsigned_v<T> ||
                                          v.get<int64_t>() <= static_cast<int64_t>(std::numeric_limits<T>::max())));
    } else if constexpr (std::is_floating_point_v<T>) {
      ok = v.is_number();
    } else if constexpr (std::is_same_v<T, std::string>) {
      ok = v.is_string();
    } else {
      static_assert(std::is_same_v<T, std::vector<std::string>>);
      ok = v.is_array() && std::all_of(v.begin(), v.end(), [](const Json& e) { return e.is_string(); });
    }
    if (!ok) {
      if (error.empty()) error = std::string("field ") + key + " has the wrong type or range";
      return std::nullopt;
    }
    return v.get<T>();
  }
  template <class T>
  T Get(const char* key, T fallback) {
    auto it = json.find(key);
    if (it == json.end() || it->is_null()) return fallback;
    return Convert<T>(key, *it).value_or(fallback);
  }
  template <class T>
  std::optional<T> Opt(const char* key) {
    auto it = json.find(key);
    if (it == json.end() || it->is_null()) return std::nullopt;
    return Convert<T>(key, *it);
  }
  std::optional<TimePoint> Time(const char* key) {
    auto text = Opt<std::string>(key);
    if (!text) return std::nullopt;
    auto t = ParseTime(*text);
    if (!t && error.empty()) error = std::string("field ") + key + " is not a time";
    return t;
  }
  // A list of CPU or device numbers; an absent one is empty.
  std::vector<int> Numbers(const char* key) {
    std::vector<int> out;
    auto it = json.find(key);
    if (it == json.end() || it->is_null()) return out;
    if (!it->is_array()) {
      if (error.empty()) error = std::string("field ") + key + " is not an array";
      return out;
    }
    for (const Json& e : *it) {
      std::optional<int> n = Convert<int>(key, e);
      if (!n) return {};
      out.push_back(*n);
    }
    return out;
  }
  Reason ReasonField(const char* key) {
    auto text = Opt<std::string>(key);
    if (!text) return Reason::kNone;
    auto r = ParseReason(*text);
    if (!r && error.empty()) error = std::string("field ") + key + " is not a known reason";
    return r.value_or(Reason::kNone);
  }
};

}  // namespace

const char* StateName(JobState state) {
  for (const auto& e : kStateNames) {
    if (e.state == state) return e.name;
  }
  SPOOLD_CHECK(false);
}

std::optional<JobState> ParseState(std::string_view name) {
  for (const auto& e : kStateNames) {
    if (name == e.name) return e.state;
  }
  return std::nullopt;
}

const char* ReasonName(Reason reason) {
  for (const auto& e : kReasonNames) {
    if (e.reason == reason) return e.name;
  }
  return nullptr;
}

std::optional<Reason> ParseReason(std::string_view name) {
  for (const auto& e : kReasonNames) {
    if (name == e.name) return e.reason;
  }
  return std::nullopt;
}

bool IsTerminal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

std::string SignalName(int signal) {
  for (const auto& e : kSignalNames) {
    if (e.signal == signal) return e.name;
  }
  return "SIG" + std::to_string(signal);
}

const char* LevelName(Level level) { return kLevelNames[static_cast<int>(level)]; }

const char* AfterOnName(AfterOn on) {
  switch (on) {
    case AfterOn::kSuccess:
      return "success";
    case AfterOn::kFailure:
      return "failure";
    case AfterOn::kAny:
      return "any";
  }
  return "success";
}

std::optional<AfterOn> ParseAfterOn(std::string_view name) {
  for (AfterOn on : {AfterOn::kSuccess, AfterOn::kFailure, AfterOn::kAny}) {
    if (name == AfterOnName(on)) return on;
  }
  return std::nullopt;
}

Json StatusToJson(const JobStatus& s) {
  Json after = Json::array();
  for (const auto& dep : s.after) after.push_back({{"job", dep.job}, {"on", AfterOnName(dep.on)}});
  Json attempts = Json::array();
  for (const auto& a : s.attempts) {
    attempts.push_back({{"attempt", a.attempt},
                        {"started", FormatTime(a.started)},
                        {"finished", TimeOrNull(a.finished)},
                        {"exit_code", Nullable(a.exit_code)},
                        {"signal", Nullable(a.signal)},
                        {"reason", ReasonJson(a.reason)},
                        {"duration_s", a.duration_s},
                        {"cpu_user_s", a.cpu_user_s},
                        {"cpu_sys_s", a.cpu_sys_s},
                        {"max_rss_kb", a.max_rss_kb},
                        {"pid", Nullable(a.pid)},
                        {"pid_start", Nullable(a.pid_start)},
                        {"slurm_job_id", Nullable(a.slurm_job_id)},
                        {"supervisor_pid", Nullable(a.supervisor_pid)},
                        {"boot_id", Nullable(a.boot_id)},
                        {"cpus", a.cpus},
                        {"gpus", a.gpus},
                        {"memory_limit", Nullable(a.memory_limit)},
                        {"memory_peak", Nullable(a.memory_peak)}});
  }
  return Json{{"schema", "spoold/status/v1"},
              {"seq", s.seq},
              {"id", s.id},
              {"title", s.title},
              {"pool", s.pool},
              {"tags", s.tags},
              {"priority", s.priority},
              {"owner", s.owner},
              {"owner_uid", s.owner_uid},
              {"metadata", s.metadata},
              {"state", StateName(s.state)},
              {"reason", ReasonJson(s.reason)},
              {"message", s.message},
              {"attempt", s.attempt},
              {"max_attempts", s.max_attempts},
              {"exit_code", Nullable(s.exit_code)},
              {"signal", Nullable(s.signal)},
              {"progress", Nullable(s.progress)},
              {"progress_message", Nullable(s.progress_message)},
              {"pid", Nullable(s.pid)},
              {"next_attempt_at", TimeOrNull(s.next_attempt_at)},
              {"created", FormatTime(s.created)},
              {"started", TimeOrNull(s.started)},
              {"finished", TimeOrNull(s.finished)},
              {"updated", FormatTime(s.updated)},
              {"interruptions", s.interruptions},
              {"after", std::move(after)},
              {"waiting_on", s.waiting_on},
              {"tasks", s.tasks ? TaskCountsJson(*s.tasks) : Json(nullptr)},
              {"failed_indexes", Nullable(s.failed_indexes)},
              {"halted_by", ReasonJson(s.halted_by)},
              {"definition", s.definition},
              {"array", Nullable(s.array)},
              {"array_index", Nullable(s.array_index)},
              {"resources", ResourcesJson(s.resources)},
              {"attempts", std::move(attempts)}};
}

Json ResourcesJson(const ResourceAmounts& r) {
  return Json{{"cpus", r.cpus}, {"memory", r.memory}, {"gpus", r.gpus}};
}

Json TaskCountsJson(const TaskCounts& c) {
  return Json{{"total", c.total},         {"queued", c.queued}, {"running", c.running},
              {"succeeded", c.succeeded}, {"failed", c.failed}, {"cancelled", c.cancelled}};
}

Result<TaskCounts> TaskCountsFromJson(const Json& tasks) {
  if (!tasks.is_object()) return MakeError("io_error", "tasks is not an object");
  Reader tr{tasks, {}};
  TaskCounts c;
  c.total = tr.Get<uint64_t>("total", 0);
  c.queued = tr.Get<uint64_t>("queued", 0);
  c.running = tr.Get<uint64_t>("running", 0);
  c.succeeded = tr.Get<uint64_t>("succeeded", 0);
  c.failed = tr.Get<uint64_t>("failed", 0);
  c.cancelled = tr.Get<uint64_t>("cancelled", 0);
  if (!tr.error.empty()) return MakeError("io_error", "tasks: " + tr.error);
  return c;
}

Result<JobStatus> StatusFromJson(const Json& json) {
  auto schema = json.is_object() ? json.find("schema") : json.end();
  if (!json.is_object() || schema == json.end() || !schema->is_string() || *schema != "spoold/status/v1") {
    return MakeError("io_error", "not a spoold/status/v1 document");
  }
  Reader r{json, {}};
  JobStatus s;
  s.seq = r.Get<uint64_t>("seq", 0);
  s.id = r.Get<std::string>("id", "");
  s.title = r.Get<std::string>("title", "");
  s.pool = r.Get<std::string>("pool", "");
  s.tags = r.Get<std::vector<std::string>>("tags", {});
  s.priority = r.Get<int64_t>("priority", 0);
  s.owner = r.Get<std::string>("owner", "");
  s.owner_uid = r.Get<int64_t>("owner_uid", -1);
  if (auto it = json.find("metadata"); it != json.end()) {
    // Copying a value is recursive: a metadata nested deeper than any job file
    // can give was not written by us, and must not overflow the stack.
    if (!JsonValueDepthWithin(*it, kMaxNesting)) return MakeError("io_error", "metadata is nested too deep");
    s.metadata = *it;
  }
  if (auto it = json.find("definition"); it != json.end() && it->is_object()) {
    if (!JsonValueDepthWithin(*it, kMaxNesting))
      return MakeError("io_error", "definition is nested too deep");
    s.definition = *it;
  }
  auto state = ParseState(r.Get<std::string>("state", ""));
  if (!state) return MakeError("io_error", "status.json has no valid state");
  s.state = *state;
  s.reason = r.ReasonField("reason");
  s.message = r.Get<std::string>("message", "");
  s.attempt = r.Get<int>("attempt", 0);
  s.max_attempts = r.Get<int>("max_attempts", 1);
  s.exit_code = r.Opt<int>("exit_code");
  s.signal = r.Opt<std::string>("signal");
  s.progress = r.Opt<double>("progress");
  s.progress_message = r.Opt<std::string>("progress_message");
  s.pid = r.Opt<int64_t>("pid");
  s.next_attempt_at = r.Time("next_attempt_at");
  s.created = r.Time("created").value_or(TimePoint{});
  s.started = r.Time("started");
  s.finished = r.Time("finished");
  s.updated = r.Time("updated").value_or(TimePoint{});
  s.interruptions = r.Get<int>("interruptions", 0);
  s.waiting_on = r.Get<std::vector<std::string>>("waiting_on", {});
  if (auto it = json.find("after"); it != json.end() && it->is_array()) {
    for (const auto& item : *it) {
      if (!item.is_object()) return MakeError("io_error", "after[] holds a non-object");
      auto job = item.find("job");
      auto on = item.find("on");
      std::optional<AfterOn> parsed =
          on != item.end() && on->is_string() ? ParseAfterOn(on->get<std::string>()) : std::nullopt;
      if (job == item.end() || !job->is_string() || !parsed) {
        return MakeError("io_error", "after[] holds an entry without a job or a known on");
      }
      s.after.push_back({job->get<std::string>(), *parsed});
    }
  }
  if (auto it = json.find("tasks"); it != json.end() && it->is_object()) {
    auto counts = TaskCountsFromJson(*it);
    if (!counts.ok()) return counts.error();
    s.tasks = *counts;
  }
  s.failed_indexes = r.Opt<std::string>("failed_indexes");
  s.halted_by = r.ReasonField("halted_by");
  s.array = r.Opt<std::string>("array");
  s.array_index = r.Opt<int64_t>("array_index");
  if (auto it = json.find("resources"); it != json.end() && it->is_object()) {
    Reader rr{*it, {}};
    s.resources = {rr.Get<int64_t>("cpus", 0), rr.Get<int64_t>("memory", 0), rr.Get<int64_t>("gpus", 0)};
    if (!rr.error.empty()) return MakeError("io_error", "resources: " + rr.error);
  }
  if (auto it = json.find("attempts"); it != json.end() && it->is_array()) {
    for (const auto& item : *it) {
      if (!item.is_object()) return MakeError("io_error", "attempts[] holds a non-object");
      Reader ar{item, {}};
      AttemptRecord a;
      a.attempt = ar.Get<int>("attempt", 0);
      a.started = ar.Time("started").value_or(TimePoint{});
      a.finished = ar.Time("finished");
      a.exit_code = ar.Opt<int>("exit_code");
      a.signal = ar.Opt<std::string>("signal");
      a.reason = ar.ReasonField("reason");
      a.duration_s = ar.Get<double>("duration_s", 0);
      a.cpu_user_s = ar.Get<double>("cpu_user_s", 0);
      a.cpu_sys_s = ar.Get<double>("cpu_sys_s", 0);
      a.max_rss_kb = ar.Get<int64_t>("max_rss_kb", 0);
      a.pid = ar.Opt<int64_t>("pid");
      a.pid_start = ar.Opt<uint64_t>("pid_start");
      a.slurm_job_id = ar.Opt<std::string>("slurm_job_id");
      a.supervisor_pid = ar.Opt<int64_t>("supervisor_pid");
      a.boot_id = ar.Opt<std::string>("boot_id");
      a.cpus = ar.Numbers("cpus");
      a.gpus = ar.Numbers("gpus");
      a.memory_limit = ar.Opt<int64_t>("memory_limit");
      a.memory_peak = ar.Opt<int64_t>("memory_peak");
      if (!ar.error.empty()) return MakeError("io_error", "attempts[]: " + ar.error);
      s.attempts.push_back(std::move(a));
    }
  }
  if (!r.error.empty()) return MakeError("io_error", r.error);
  if (s.id.empty()) return MakeError("io_error", "status.json has no id");
  return s;
}

Json IndexEntry(const JobStatus& s) {
  Json entry{{"state", StateName(s.state)},
             {"reason", ReasonJson(s.reason)},
             {"pool", s.pool},
             {"title", s.title},
             {"priority", s.priority},
             {"owner", s.owner},
             {"tags", s.tags},
             {"attempt", s.attempt},
             {"exit_code", Nullable(s.exit_code)},
             {"progress", Nullable(s.progress)},
             {"created", FormatTime(s.created)},
             {"started", TimeOrNull(s.started)},
             {"finished", TimeOrNull(s.finished)},
             {"updated", FormatTime(s.updated)}};
  // Only jobs with parents carry them (spoolctl list --tree): 100,000 entries
  // of an empty list would add a megabyte to index.json.
  if (!s.after.empty()) {
    Json parents = Json::array();
    for (const auto& dep : s.after) parents.push_back(dep.job);
    entry["after"] = std::move(parents);
  }
  if (s.tasks) entry["tasks"] = TaskCountsJson(*s.tasks);
  // Resources only where there are any, as for `after`.
  if (!s.resources.Empty()) entry["resources"] = ResourcesJson(s.resources);
  if (s.state == JobState::kRunning && !s.attempts.empty()) {
    if (!s.attempts.back().cpus.empty()) entry["cpus"] = s.attempts.back().cpus;
    if (!s.attempts.back().gpus.empty()) entry["gpus"] = s.attempts.back().gpus;
  }
  return entry;
}

std::string EventLine(const Event& event, uint64_t seq, TimePoint time) {
  Json line = {{"seq", seq},
               {"time", FormatTime(time)},
               {"level", LevelName(event.level)},
               {"event", event.event},
               {"attempt", event.attempt},
               {"message", event.message}};
  for (const auto& [key, value] : event.extra.items()) line[key] = value;
  return DumpJson(line) + "\n";
}

}  // namespace spoold

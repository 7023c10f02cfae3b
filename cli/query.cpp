// status, list, pools: the reading commands. They work without the daemon.
// list lists the folders under jobs/: ended jobs from index.json, active ones
// and those the index does not name yet (such as imported ones) from their
// status.json; when index.json is missing or unreadable, every status.json.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <sstream>

#include "cli/commands.h"
#include "cli/index_reader.h"
#include "spool/fileio.h"
#include "spool/status.h"

namespace spoold::cli {
namespace {

// What `list` shows for a folder under jobs/ whose status.json cannot be read
// (not a state of SPEC.md: index.json lists such folders under "damaged").
constexpr const char* kDamagedState = "damaged";

// "2026-11-21T10:00:00.123Z (5m ago)", or "-".
std::string TimeWithAge(const Json& value) {
  if (!value.is_string()) return "-";
  auto t = ParseTime(value.get<std::string>());
  if (!t) return value.get<std::string>();
  return value.get<std::string>() + " (" + FormatAge(Now() - *t) + " ago)";
}

void Row(const char* key, const std::string& value) {
  if (value.empty() || value == "-") return;
  std::printf("  %-10s %s\n", key, value.c_str());
}

void PrintAttempts(const Json& attempts) {
  if (!attempts.is_array() || attempts.empty()) return;
  std::printf("attempts:\n");
  for (const auto& a : attempts) {
    std::ostringstream line;
    line << "  #" << JsonText(a.value("attempt", Json(0))) << "  " << JsonText(a.value("reason", Json("ok")))
         << "  exit " << JsonText(a.value("exit_code", Json(nullptr)));
    if (a.value("signal", Json(nullptr)).is_string()) line << "  signal " << JsonText(a["signal"]);
    char buf[96];
    std::snprintf(buf, sizeof buf, "  %.2fs  cpu %.2f+%.2fs  rss %s kB", a.value("duration_s", 0.0),
                  a.value("cpu_user_s", 0.0), a.value("cpu_sys_s", 0.0),
                  JsonText(a.value("max_rss_kb", Json(0))).c_str());
    std::printf("%s%s\n", line.str().c_str(), buf);
  }
}

void PrintStatus(const Context& ctx, const std::string& id, const Json& st) {
  const std::string state = JsonString(st, "state", "?");
  std::string head = id + ": " + Paint(ctx, state, StateColor(state));
  if (std::string reason = JsonString(st, "reason"); !reason.empty()) head += " (" + reason + ")";
  Out(head + "\n");
  Row("title", JsonString(st, "title"));
  Row("message", JsonString(st, "message"));
  Row("pool", JsonString(st, "pool") + "  priority " + JsonText(st.value("priority", Json(0))));
  Row("owner", JsonString(st, "owner"));
  Row("attempt",
      JsonText(st.value("attempt", Json(0))) + " of " + JsonText(st.value("max_attempts", Json(1))));
  if (st.value("exit_code", Json(nullptr)).is_number()) Row("exit code", JsonText(st["exit_code"]));
  if (st.value("signal", Json(nullptr)).is_string()) Row("signal", JsonText(st["signal"]));
  if (st.value("progress", Json(nullptr)).is_number()) {
    Row("progress", JsonText(st["progress"]) + "% " + JsonString(st, "progress_message"));
  }
  if (st.value("pid", Json(nullptr)).is_number()) Row("pid", JsonText(st["pid"]));
  Row("next try", JsonString(st, "next_attempt_at"));
  for (const char* key : {"created", "started", "finished"})
    Row(key, TimeWithAge(st.value(key, Json(nullptr))));
  if (st.value("tags", Json::array()).is_array() && !st["tags"].empty()) Row("tags", DumpJson(st["tags"]));
  if (st.value("metadata", Json::object()).is_object() && !st["metadata"].empty()) {
    Row("metadata", DumpJson(st["metadata"]));
  }
  Row("folder", ctx.Paths().JobDir(id));
  PrintAttempts(st.value("attempts", Json::array()));
}

// Every job's summary: index.json's entries for the folders that exist, and
// status.json for folders the index does not name. A folder whose
// status.json cannot be read is listed too: as index.json has it (another
// user's job, say), or as state "damaged" with the problem when index.json
// says so or knows nothing of it. Folders this user may not read at all and
// the index does not name are left out.
Result<std::vector<JobSummary>> CollectJobs(const Context& ctx) {
  auto names = ListDir(ctx.Paths().Jobs());
  if (!names.ok()) return names.error();
  std::sort(names->begin(), names->end());
  std::vector<JobSummary> index_jobs;
  Json index_damaged = Json::object();
  if (auto index = ReadIndexFile(ctx.Paths().Index(), /*with_jobs=*/true); index.ok()) {
    index_jobs = std::move(index->jobs);
    const Json& head = index->head;
    if (auto it = head.find("damaged"); it != head.end() && it->is_object()) index_damaged = *it;
  }
  std::vector<JobSummary> jobs;
  jobs.reserve(names->size());
  auto entry = index_jobs.begin();  // both sorted by id: one merge
  for (const auto& id : *names) {
    if (id.empty() || id[0] == '.') continue;  // jobs/.<id>.tmp: being assembled
    while (entry != index_jobs.end() && entry->id < id) ++entry;
    const bool indexed = entry != index_jobs.end() && entry->id == id;
    // A terminal entry no longer changes; an active one may lag status.json by
    // up to a second, so active jobs are read from their folders.
    if (indexed && IsTerminalStateName(entry->state)) {
      jobs.push_back(std::move(*entry));
      continue;
    }
    const std::string path = ctx.Paths().StatusFile(id);
    auto status = ReadJsonFile(path, 64 << 20);
    if (status.ok() && status->is_object()) {
      jobs.push_back(SummaryOf(id, std::move(status.value())));
      continue;
    }
    if (auto damaged = index_damaged.find(id); damaged != index_damaged.end() && damaged->is_object()) {
      jobs.push_back(SummaryOf(id, Json{{"state", kDamagedState}, {"problem", JsonString(*damaged, "problem")}}));
    } else if (indexed) {
      jobs.push_back(std::move(*entry));
    } else if (!PathExists(ctx.Paths().JobDir(id)) ||
               (::access(path.c_str(), R_OK) != 0 && errno == EACCES)) {
      continue;  // removed since the listing, or not this user's to read
    } else {
      const std::string problem = status.ok() ? path + " is not a JSON object" : status.error().message;
      jobs.push_back(SummaryOf(id, Json{{"state", kDamagedState}, {"problem", problem}}));
    }
  }
  std::stable_sort(jobs.begin(), jobs.end(),
                   [](const JobSummary& a, const JobSummary& b) { return a.created < b.created; });
  return jobs;
}

struct ListFilter {
  std::set<std::string> states;
  std::optional<std::string> pool, tag, owner;
  std::optional<TimePoint> since;

  bool Matches(const JobSummary& job) const {
    if (!states.empty() && states.count(job.state) == 0) return false;
    if (pool && job.pool != *pool) return false;
    if (owner && job.owner != *owner) return false;
    if (tag && std::find(job.tags.begin(), job.tags.end(), *tag) == job.tags.end()) return false;
    if (since) {
      auto created = ParseTime(job.created);
      if (!created || *created < *since) return false;
    }
    return true;
  }
};

Result<ListFilter> ParseFilter(const Args& args) {
  ListFilter f;
  if (auto states = args.Value("state")) {
    std::stringstream in(*states);
    for (std::string s; std::getline(in, s, ',');) {
      if (!ParseState(s) && s != kDamagedState) {
        return MakeError("usage",
                         "--state takes queued, running, succeeded, failed, cancelled or damaged "
                         "(comma-separated)");
      }
      f.states.insert(s);
    }
  }
  f.pool = args.Value("pool");
  f.tag = args.Value("tag");
  f.owner = args.Value("owner");
  if (auto since = args.Value("since")) {
    auto d = ParseDuration(*since);
    if (!d.ok()) return MakeError("usage", "--since: " + d.error().message);
    f.since = Now() - *d;
  }
  return f;
}

std::vector<std::string> ListRow(const Context& ctx, const JobSummary& job, TimePoint now) {
  const std::string state = job.state.empty() ? "?" : job.state;
  auto created = ParseTime(job.created);
  return {job.id,
          Paint(ctx, state, StateColor(state)),
          job.reason.value_or("-"),
          job.pool.empty() ? "-" : job.pool,
          std::to_string(job.attempt.value_or(0)),
          created ? FormatAge(now - *created) : "-",
          job.problem.empty() ? job.title : job.problem};
}

// One job of `list --json`: the keys of an index.json entry (SPEC.md section
// 7) with its id, and the problem of a damaged folder. `index_jobs` holds the
// entries of index.json, for the jobs listed from it.
Json ListJson(const JobSummary& job, const Json& index_jobs) {
  const Json* found = nullptr;
  if (job.json.is_null()) {
    auto it = index_jobs.find(job.id);
    if (it != index_jobs.end()) found = &*it;
  }
  const Json& source = found ? *found : job.json;
  Json entry = {{"id", job.id}};
  for (const char* key : {"state", "reason", "pool", "title", "priority", "owner", "tags", "attempt", "exit_code",
                          "progress", "created", "started", "finished", "updated"}) {
    entry[key] = source.value(key, Json(nullptr));
  }
  if (source.contains("problem")) entry["problem"] = source["problem"];
  return entry;
}

}  // namespace

int CmdStatus(Context& ctx, const Args& args) {
  if (args.positional.size() != 1) return UsageError("give one job id");
  const std::string& id = args.positional[0];
  auto st = LoadStatusJson(ctx, id);
  if (!st.ok()) return Fail(st.error().message);
  if (ctx.json) {
    // status.json as it is on disk.
    auto bytes = ReadSmallFile(ctx.Paths().StatusFile(id), 64 << 20);
    if (!bytes.ok()) return Fail(bytes.error().message);
    Out(*bytes);
    if (!bytes->empty() && bytes->back() != '\n') Out("\n");
    return kExitOk;
  }
  PrintStatus(ctx, id, *st);
  return kExitOk;
}

int CmdList(Context& ctx, const Args& args) {
  if (!args.positional.empty())
    return UsageError("list takes no arguments; filter with --state, --pool, ...");
  auto filter = ParseFilter(args);
  if (!filter.ok()) return UsageError(filter.error().message);
  auto jobs = CollectJobs(ctx);
  if (!jobs.ok()) return Fail(jobs.error().message);
  // --json copies whole entries: index.json parsed again, as JSON objects.
  Json index_jobs = Json::object();
  if (ctx.json) {
    if (auto index = ReadJsonFile(ctx.Paths().Index()); index.ok() && index->is_object()) {
      index_jobs = std::move((*index)["jobs"]);
    }
  }
  Json out = Json::array();
  std::vector<std::vector<std::string>> rows;
  const TimePoint now = Now();
  for (const JobSummary& job : *jobs) {
    if (!filter->Matches(job)) continue;
    if (args.Flag("quiet")) {
      Out(job.id + "\n");
    } else if (ctx.json) {
      out.push_back(ListJson(job, index_jobs));
    } else {
      rows.push_back(ListRow(ctx, job, now));
    }
  }
  if (args.Flag("quiet")) return kExitOk;
  if (ctx.json) {
    OutJson(ctx, out);
  } else {
    PrintTable({"ID", "STATE", "REASON", "POOL", "ATTEMPT", "AGE", "TITLE"}, rows);
  }
  return kExitOk;
}

int CmdPools(Context& ctx, const Args& args) {
  if (!args.positional.empty()) return UsageError("pools takes no arguments");
  Json pools = Json::object();
  auto index = ReadIndex(ctx);
  if (index.ok() && index->contains("pools") && (*index)["pools"].is_object()) {
    pools = (*index)["pools"];
  } else if (ctx.config) {
    for (const auto& [name, pool] : ctx.config->pools) {
      pools[name] = {{"workers", pool.workers},   {"queue_limit", pool.queue_limit},
                     {"paused", pool.paused},     {"auto_resume", pool.auto_resume},
                     {"executor", pool.executor}, {"running", nullptr},
                     {"queued", nullptr}};
    }
  } else {
    return Fail(
        "no pools known: " + (index.ok() ? ctx.Paths().Index() + " lists none" : index.error().message) +
        ", and no configuration was given (--config)");
  }
  if (args.Flag("quiet")) {
    for (const auto& [name, pool] : pools.items()) Out(name + "\n");
    return kExitOk;
  }
  if (ctx.json) {
    OutJson(ctx, pools);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, pool] : pools.items()) {
    const bool paused = pool.value("paused", false);
    rows.push_back(
        {name, JsonText(pool.value("executor", Json(nullptr))),
         JsonText(pool.value("workers", Json(nullptr))), JsonText(pool.value("running", Json(nullptr))),
         JsonText(pool.value("queued", Json(nullptr))), JsonText(pool.value("queue_limit", Json(nullptr))),
         paused ? Paint(ctx, "paused", Color::kYellow) : "no"});
  }
  PrintTable({"POOL", "EXECUTOR", "WORKERS", "RUNNING", "QUEUED", "LIMIT", "PAUSED"}, rows);
  if (!DetectDaemon(ctx.Paths()).running)
    PrintNote(NotRunningMessage(ctx) + " (counts as it last wrote them)");
  return kExitOk;
}

}  // namespace spoold::cli

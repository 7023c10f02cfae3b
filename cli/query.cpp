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

// Every job as (id, summary): index.json's entries for the folders that exist,
// and status.json for folders the index does not name. A folder whose
// status.json cannot be read is listed too: as index.json has it (another
// user's job, say), or as state "damaged" with the problem when index.json
// says so or knows nothing of it. Folders this user may not read at all and
// the index does not name are left out.
Result<std::vector<std::pair<std::string, Json>>> CollectJobs(const Context& ctx) {
  auto names = ListDir(ctx.Paths().Jobs());
  if (!names.ok()) return names.error();
  Json index_jobs = Json::object();
  Json index_damaged = Json::object();
  if (auto index = ReadIndex(ctx); index.ok()) {
    if (index->contains("jobs") && (*index)["jobs"].is_object()) index_jobs = std::move((*index)["jobs"]);
    if (index->contains("damaged") && (*index)["damaged"].is_object()) {
      index_damaged = std::move((*index)["damaged"]);
    }
  }
  std::vector<std::pair<std::string, Json>> jobs;
  for (const auto& id : *names) {
    if (id.empty() || id[0] == '.') continue;  // jobs/.<id>.tmp: being assembled
    // A terminal entry no longer changes; an active one may lag status.json by
    // up to a second, so active jobs are read from their folders.
    auto it = index_jobs.find(id);
    if (it != index_jobs.end() && it->is_object() && IsTerminalStateName(JsonString(*it, "state"))) {
      jobs.emplace_back(id, std::move(*it));
      continue;
    }
    const std::string path = ctx.Paths().StatusFile(id);
    auto status = ReadJsonFile(path, 64 << 20);
    if (status.ok() && status->is_object()) {
      jobs.emplace_back(id, std::move(status.value()));
      continue;
    }
    if (auto damaged = index_damaged.find(id); damaged != index_damaged.end() && damaged->is_object()) {
      jobs.emplace_back(id, Json{{"state", kDamagedState}, {"problem", JsonString(*damaged, "problem")}});
    } else if (it != index_jobs.end() && it->is_object()) {
      jobs.emplace_back(id, std::move(*it));
    } else if (!PathExists(ctx.Paths().JobDir(id)) ||
               (::access(path.c_str(), R_OK) != 0 && errno == EACCES)) {
      continue;  // removed since the listing, or not this user's to read
    } else {
      const std::string problem = status.ok() ? path + " is not a JSON object" : status.error().message;
      jobs.emplace_back(id, Json{{"state", kDamagedState}, {"problem", problem}});
    }
  }
  std::stable_sort(jobs.begin(), jobs.end(), [](const auto& a, const auto& b) {
    return JsonString(a.second, "created") < JsonString(b.second, "created");
  });
  return jobs;
}

struct ListFilter {
  std::set<std::string> states;
  std::optional<std::string> pool, tag, owner;
  std::optional<TimePoint> since;

  bool Matches(const Json& job) const {
    if (!states.empty() && states.count(JsonString(job, "state")) == 0) return false;
    if (pool && JsonString(job, "pool") != *pool) return false;
    if (owner && JsonString(job, "owner") != *owner) return false;
    if (tag) {
      const Json& tags = job.value("tags", Json::array());
      if (!tags.is_array() || std::find(tags.begin(), tags.end(), Json(*tag)) == tags.end()) return false;
    }
    if (since) {
      auto created = ParseTime(JsonString(job, "created"));
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

std::vector<std::string> ListRow(const Context& ctx, const std::string& id, const Json& job) {
  const std::string state = JsonString(job, "state", "?");
  auto created = ParseTime(JsonString(job, "created"));
  return {id,
          Paint(ctx, state, StateColor(state)),
          JsonText(job.value("reason", Json(nullptr))),
          JsonString(job, "pool", "-"),
          JsonText(job.value("attempt", Json(0))),
          created ? FormatAge(Now() - *created) : "-",
          job.contains("problem") ? JsonString(job, "problem") : JsonString(job, "title")};
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
  Json out = Json::array();
  std::vector<std::vector<std::string>> rows;
  for (auto& [id, job] : *jobs) {
    if (!filter->Matches(job)) continue;
    if (args.Flag("quiet")) {
      Out(id + "\n");
    } else if (ctx.json) {
      Json entry = {{"id", id}};
      for (const char* key : {"state", "reason", "pool", "title", "priority", "owner", "tags", "attempt",
                              "exit_code", "progress", "created", "started", "finished", "updated"}) {
        entry[key] = job.value(key, Json(nullptr));
      }
      if (job.contains("problem")) entry["problem"] = job["problem"];
      out.push_back(std::move(entry));
    } else {
      rows.push_back(ListRow(ctx, id, job));
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

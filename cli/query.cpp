// status, list, pools: the reading commands. They work without the daemon.
// list lists the folders under jobs/: ended jobs from index.json, active ones
// and those the index does not name yet (such as imported ones) from their
// status.json; when index.json is missing or unreadable, every status.json.
// An array is one folder, so one line with its task counts: its tasks' folders
// lie inside it (jobs/<id>/tasks/) and are not listed.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <future>
#include <map>
#include <set>
#include <sstream>

#include "cli/array_cli.h"
#include "cli/commands.h"
#include "cli/index_reader.h"
#include "spool/fileio.h"
#include "spool/json_util.h"
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
  // An array's attempts are its tasks': its counts take their place.
  const auto array_rows = ArrayStatusRows(id, st);
  const bool array = TaskCountsOf(st.value("tasks", Json(nullptr))).has_value();
  Row("title", JsonString(st, "title"));
  Row("message", JsonString(st, "message"));
  for (const auto& [key, value] : array_rows) Row(key.c_str(), value);
  Row("pool", JsonString(st, "pool") + "  priority " + JsonText(st.value("priority", Json(0))));
  Row("owner", JsonString(st, "owner"));
  if (!array) {
    Row("attempt",
        JsonText(st.value("attempt", Json(0))) + " of " + JsonText(st.value("max_attempts", Json(1))));
  }
  if (st.value("exit_code", Json(nullptr)).is_number()) Row("exit code", JsonText(st["exit_code"]));
  if (st.value("signal", Json(nullptr)).is_string()) Row("signal", JsonText(st["signal"]));
  if (!array && st.value("progress", Json(nullptr)).is_number()) {
    Row("progress", JsonText(st["progress"]) + "% " + JsonString(st, "progress_message"));
  }
  if (st.value("pid", Json(nullptr)).is_number()) Row("pid", JsonText(st["pid"]));
  Row("next try", JsonString(st, "next_attempt_at"));
  if (const Json waiting = st.value("waiting_on", Json::array()); waiting.is_array() && !waiting.empty()) {
    std::string ids;
    for (const auto& parent : waiting)
      ids +=
          (ids.empty() ? "" : ", ") + (parent.is_string() ? PrintableName(parent.get<std::string>()) : "?");
    Row("waiting on", ids);
  }
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
// the index does not name are left out. The summaries point into `store`.
Result<std::vector<JobSummary>> CollectJobs(const Context& ctx, SummaryStore& store) {
  // jobs/ is listed on another thread while index.json is read: with 100,000
  // jobs each takes a good part of the time `list` may take.
  auto listing = std::async(std::launch::async, [&ctx] {
    auto names = ListDir(ctx.Paths().Jobs());
    if (names.ok()) std::sort(names->begin(), names->end());
    return names;
  });
  // The index's entries become the result, in place: with 100,000 jobs a
  // second copy of them is tens of megabytes to fault in.
  std::vector<JobSummary> jobs;
  Json index_damaged = Json::object();
  auto entries = store.ReadIndexJobs(ctx.Paths().Index(), index_damaged);
  if (entries.ok()) jobs = std::move(entries.value());
  // What a torn index said of damaged folders is not taken.
  if (!entries.ok() || !index_damaged.is_object()) index_damaged = Json::object();
  auto names = listing.get();
  if (!names.ok()) return names.error();
  std::vector<bool> listed(jobs.size());
  std::vector<JobSummary> unindexed;
  size_t entry = 0;  // both sorted by id: one merge
  for (auto& id : *names) {
    if (id.empty() || id[0] == '.') continue;  // jobs/.<id>.tmp: being assembled
    while (entry < jobs.size() && jobs[entry].id < id) ++entry;
    const bool indexed = entry < jobs.size() && jobs[entry].id == id;
    // A terminal entry no longer changes; an active one may lag status.json by
    // up to a second, so active jobs are read from their folders.
    if (indexed && IsTerminalStateName(jobs[entry].state)) {
      listed[entry] = true;
      continue;
    }
    auto put = [&](JobSummary summary) {
      if (indexed) {
        jobs[entry] = std::move(summary);
        listed[entry] = true;
      } else {
        unindexed.push_back(std::move(summary));
      }
    };
    const std::string path = ctx.Paths().StatusFile(id);
    auto status = ReadJsonFile(path, 64 << 20);
    if (status.ok() && status->is_object()) {
      put(store.SummaryOf(std::move(id), std::move(status.value())));
    } else if (auto damaged = index_damaged.find(id);
               damaged != index_damaged.end() && damaged->is_object()) {
      put(store.SummaryOf(std::move(id),
                          Json{{"state", kDamagedState}, {"problem", JsonString(*damaged, "problem")}}));
    } else if (indexed) {
      listed[entry] = true;  // as index.json has it
    } else if (!PathExists(ctx.Paths().JobDir(id)) ||
               (::access(path.c_str(), R_OK) != 0 && errno == EACCES)) {
      continue;  // removed since the listing, or not this user's to read
    } else {
      const std::string problem = status.ok() ? path + " is not a JSON object" : status.error().message;
      put(store.SummaryOf(std::move(id), Json{{"state", kDamagedState}, {"problem", problem}}));
    }
  }
  // Entries of folders that are gone leave; folders the index does not name
  // yet join, in id order.
  size_t kept = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!listed[i]) continue;
    if (kept != i) jobs[kept] = std::move(jobs[i]);
    ++kept;
  }
  jobs.erase(jobs.begin() + static_cast<ptrdiff_t>(kept), jobs.end());
  const auto middle = static_cast<ptrdiff_t>(jobs.size());
  std::move(unindexed.begin(), unindexed.end(), std::back_inserter(jobs));
  std::inplace_merge(jobs.begin(), jobs.begin() + middle, jobs.end(),
                     [](const JobSummary& a, const JobSummary& b) { return a.id < b.id; });
  return jobs;
}

// The digits of a time as spoold writes it ("2026-12-05T14:06:30.679Z") as one
// number that orders the same way the text does; nullopt for any other text.
std::optional<uint64_t> TimeKey(std::string_view t) {
  static constexpr std::string_view kShape = "0000-00-00T00:00:00.000Z";
  if (t.size() != kShape.size()) return std::nullopt;
  uint64_t key = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    if (kShape[i] != '0') {
      if (t[i] != kShape[i]) return std::nullopt;
      continue;
    }
    if (t[i] < '0' || t[i] > '9') return std::nullopt;
    key = key * 10 + static_cast<uint64_t>(t[i] - '0');
  }
  return key;
}

// The order `list` shows: by creation time (as text), then by id (the order
// `jobs` is in). Sorted on numbers kept side by side: comparing the texts,
// which lie all over the 30 MB of a large index.json, took most of the time.
std::vector<uint32_t> ByCreation(const std::vector<JobSummary>& jobs) {
  struct Key {
    uint64_t time;
    uint32_t index;
    bool shaped;  // created has spoold's shape: `time` orders it
  };
  std::vector<Key> keys(jobs.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    auto time = TimeKey(jobs[i].created);
    keys[i] = {time.value_or(0), static_cast<uint32_t>(i), time.has_value()};
  }
  auto before = [&jobs](const Key& a, const Key& b) {
    if (a.shaped && b.shaped) return a.time < b.time;
    return jobs[a.index].created < jobs[b.index].created;
  };
  // Often already in order: index.json's entries sorted by id, ids given in
  // the order jobs were made.
  if (!std::is_sorted(keys.begin(), keys.end(), before)) std::stable_sort(keys.begin(), keys.end(), before);
  std::vector<uint32_t> order(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) order[i] = keys[i].index;
  return order;
}

struct ListFilter {
  std::set<std::string, std::less<>> states;
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

// The table of `list`. The TASKS column is there only when an array is
// listed, so that a spool without arrays lists as before.
Table ListTable(bool with_tasks) {
  if (!with_tasks) return Table({"ID", "STATE", "REASON", "POOL", "ATTEMPT", "AGE", "TITLE"});
  return Table({"ID", "STATE", "REASON", "POOL", "ATTEMPT", "AGE", "TASKS", "TITLE"});
}

void AddListRow(Table& table, const Context& ctx, const JobSummary& job, TimePoint now, bool with_tasks) {
  const std::string_view state = job.state.empty() ? "?" : job.state;
  const auto created = ParseTime(job.created);
  const std::string painted = Paint(ctx, state, StateColor(state));
  const std::string attempt = std::to_string(job.attempt.value_or(0));
  const std::string age = created ? FormatAge(now - *created) : "-";
  const std::string_view reason = job.reason.value_or("-"), pool = job.pool.empty() ? "-" : job.pool;
  const std::string_view title = job.problem.empty() ? job.title : job.problem;
  if (!with_tasks) {
    table.Add({job.id, painted, reason, pool, attempt, age, title});
    return;
  }
  const auto counts = job.tasks.empty() ? std::nullopt : TaskCountsOf(Json::parse(job.tasks, nullptr, false));
  const std::string tasks = counts ? TaskCountsText(*counts) : "-";
  table.Add({job.id, painted, reason, pool, attempt, age, tasks, title});
}

// One job of `list --json`: the keys of an index.json entry (SPEC.md section
// 7) with its id, and the problem of a damaged folder.
Json ListJson(const JobSummary& job) {
  Json from_index;
  if (job.json.is_null() && !job.raw.empty()) from_index = Json::parse(job.raw, nullptr, false);
  static const Json kNone = Json::object();
  const Json& source = from_index.is_object() ? from_index : job.json.is_object() ? job.json : kNone;
  Json entry = {{"id", job.id}};
  for (const char* key : {"state", "reason", "pool", "title", "priority", "owner", "tags", "attempt", "exit_code",
                          "progress", "created", "started", "finished", "updated"}) {
    entry[key] = source.value(key, Json(nullptr));
  }
  if (source.contains("problem")) entry["problem"] = source["problem"];
  if (!job.after.empty()) {
    entry["after"] = Json::array();
    for (auto parent : job.after) entry["after"].push_back(parent);
  }
  if (auto tasks = source.find("tasks"); tasks != source.end() && tasks->is_object()) entry["tasks"] = *tasks;
  return entry;
}

// `list --tree`: the listed jobs in creation order, each dependent right under
// the first of its parents that is listed too, with the ID column drawn as a
// tree (ASCII, so that the table's widths hold). A job whose parents are not
// listed is a root. An array is one line: a job waiting for one of its tasks
// (`after = ["sweep:7"]`) hangs under the array.
std::vector<std::pair<uint32_t, std::string>> TreeOrder(const std::vector<JobSummary>& jobs,
                                                        const std::vector<uint32_t>& listed) {
  std::map<std::string_view, uint32_t> position;
  for (uint32_t i : listed) position.emplace(jobs[i].id, i);
  std::map<uint32_t, std::vector<uint32_t>> children;
  std::vector<uint32_t> roots;
  for (uint32_t i : listed) {
    std::optional<uint32_t> parent;
    for (auto id : jobs[i].after) {
      id = id.substr(0, id.find(':'));  // a task's array
      if (auto it = position.find(id); it != position.end() && it->second != i) {
        parent = it->second;
        break;
      }
    }
    (parent ? children[*parent] : roots).push_back(i);
  }
  // Depth first, without recursion (a chain may be long); a job is shown once.
  std::vector<std::pair<uint32_t, std::string>> out;
  std::vector<bool> shown(jobs.size(), false);
  struct Frame {
    uint32_t job;
    std::string lead;  // what the job's line starts with
    std::string rest;  // what its children's lines start with
  };
  std::vector<Frame> stack;
  for (auto it = roots.rbegin(); it != roots.rend(); ++it) stack.push_back({*it, "", ""});
  while (!stack.empty()) {
    Frame f = std::move(stack.back());
    stack.pop_back();
    if (shown[f.job]) continue;
    shown[f.job] = true;
    out.emplace_back(f.job, f.lead + std::string(jobs[f.job].id));
    auto kids = children.find(f.job);
    if (kids == children.end()) continue;
    const auto& list = kids->second;
    for (size_t k = list.size(); k-- > 0;) {
      const bool last = k + 1 == list.size();
      stack.push_back({list[k], f.rest + (last ? "`- " : "|- "), f.rest + (last ? "   " : "|  ")});
    }
  }
  return out;
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
  SummaryStore store;
  auto jobs = CollectJobs(ctx, store);
  if (!jobs.ok()) return Fail(jobs.error().message);
  const bool quiet = args.Flag("quiet");
  const bool with_tasks =
      !quiet && !ctx.json && std::any_of(jobs->begin(), jobs->end(), [&](const JobSummary& job) {
        return !job.tasks.empty() && filter->Matches(job);
      });
  if (args.Flag("tree") && !quiet && !ctx.json) {
    std::vector<uint32_t> listed;
    for (uint32_t i : ByCreation(*jobs)) {
      if (filter->Matches((*jobs)[i])) listed.push_back(i);
    }
    Table table = ListTable(with_tasks);
    const TimePoint now = Now();
    for (const auto& [i, drawn] : TreeOrder(*jobs, listed)) {
      JobSummary row = (*jobs)[i];
      row.id = drawn;
      AddListRow(table, ctx, row, now, with_tasks);
    }
    table.Print();
    return kExitOk;
  }
  // Compact JSON goes out entry by entry; for a terminal it is indented whole.
  const bool stream_json = ctx.json && !ctx.tty;
  Json out = Json::array();
  Table table = ListTable(with_tasks);
  std::string text;
  bool first = true;
  const TimePoint now = Now();
  if (stream_json) text = "[";
  for (uint32_t i : ByCreation(*jobs)) {
    const JobSummary& job = (*jobs)[i];
    if (!filter->Matches(job)) continue;
    if (quiet) {
      text.append(job.id).push_back('\n');
    } else if (stream_json) {
      if (!first) text.push_back(',');
      text += DumpJson(ListJson(job), -1);
    } else if (ctx.json) {
      out.push_back(ListJson(job));
    } else {
      AddListRow(table, ctx, job, now, with_tasks);
    }
    first = false;
    if (text.size() >= (1 << 16)) {
      Out(text);
      text.clear();
    }
  }
  if (stream_json) text += "]\n";
  Out(text);
  if (quiet || stream_json) return kExitOk;
  if (ctx.json) {
    OutJson(ctx, out);
  } else {
    table.Print();
  }
  return kExitOk;
}

namespace {

// Resources in `pools` (SPEC.md section 7): a capacity or use, {"cpus",
// "memory", "gpus"}, as "used/capacity" cells. A member index.json does not
// have (a daemon without resources) shows as "-"; so does a slurm pool's
// capacity of 0 or [] (no bound).
struct ResourceCells {
  std::string cpus = "-", memory = "-", gpus = "-";
};

enum class Part { kCpus, kMemory, kGpus };

// One amount as shown: a count, a size, or a list's length (GPU devices;
// CPUs, should a daemon list their numbers); nullopt when `amounts` has none
// that is valid.
std::optional<int64_t> Amount(const Json& amounts, Part part) {
  if (!amounts.is_object()) return std::nullopt;
  const char* key = part == Part::kCpus ? "cpus" : part == Part::kMemory ? "memory" : "gpus";
  auto it = amounts.find(key);
  if (it == amounts.end()) return std::nullopt;
  if (part != Part::kMemory && it->is_array()) return static_cast<int64_t>(it->size());
  if (!it->is_number_integer() || it->get<int64_t>() < 0) return std::nullopt;
  return it->get<int64_t>();
}

// A size as configuration files write it ("64M", "1536M", "4G": spoold's
// FormatSize, not cli::FormatSize's "64.0 MiB"), or, where that is long
// (a MemTotal of "24683748K"), to a tenth of its largest unit: "23.5G".
std::string ShownSize(int64_t bytes) {
  std::string exact = spoold::FormatSize(bytes);
  if (exact.size() <= 6) return exact;
  static constexpr const char* kUnits[] = {"K", "M", "G", "T", "P"};
  int k = 0;
  while (k < 4 && bytes >= (int64_t{1} << (10 * (k + 2)))) ++k;
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%s",
                static_cast<double>(bytes) / static_cast<double>(int64_t{1} << (10 * (k + 1))), kUnits[k]);
  return text;
}

std::string Cell(const Json& used, const Json& capacity, Part part, bool bound_zero_is_none) {
  auto text = [&](std::optional<int64_t> n) -> std::string {
    if (!n) return "-";
    return part == Part::kMemory ? ShownSize(*n) : std::to_string(*n);
  };
  const auto u = Amount(used, part);
  auto c = Amount(capacity, part);
  if (bound_zero_is_none && c == 0) c.reset();
  if (!u && !c) return "-";
  return text(u) + "/" + text(c);
}

ResourceCells CellsOf(const Json& used, const Json& capacity, bool slurm) {
  return {Cell(used, capacity, Part::kCpus, slurm), Cell(used, capacity, Part::kMemory, slurm),
          Cell(used, capacity, Part::kGpus, slurm)};
}

Json Member(const Json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? Json(nullptr) : *it;
}

// What a pool may hand out, from the configuration, as index.json has it.
Json CapacityJson(const Config& config, const PoolConfig& pool) {
  const PoolCapacity c = config.CapacityOf(pool);
  auto bound = [](int64_t n) { return n == PoolCapacity::kNoBound ? 0 : n; };
  Json gpus = Json::array();
  if (pool.executor == "local") {
    gpus = c.gpus;
  } else if (pool.gpus) {
    gpus = *pool.gpus;
  }
  return {{"cpus", bound(c.cpus)}, {"memory", bound(c.memory)}, {"gpus", gpus}};
}

}  // namespace

int CmdPools(Context& ctx, const Args& args) {
  if (!args.positional.empty()) return UsageError("pools takes no arguments");
  Json pools = Json::object();
  Json machine = nullptr;
  auto index = ReadIndex(ctx);
  if (index.ok() && index->contains("pools") && (*index)["pools"].is_object()) {
    pools = (*index)["pools"];
    machine = Member(*index, "machine");
  } else if (ctx.config) {
    for (const auto& [name, pool] : ctx.config->pools) {
      pools[name] = {{"workers", pool.workers},
                     {"queue_limit", pool.queue_limit},
                     {"paused", pool.paused},
                     {"auto_resume", pool.auto_resume},
                     {"executor", pool.executor},
                     {"running", nullptr},
                     {"queued", nullptr},
                     {"capacity", CapacityJson(*ctx.config, pool)},
                     {"used", nullptr}};
    }
    const MachineConfig& m = ctx.config->machine;
    machine = {{"cpus", m.cpus}, {"memory", m.memory}, {"gpus", m.gpus}, {"used", nullptr}};
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
    if (!pool.is_object()) continue;
    const bool paused = pool.value("paused", false);
    const bool slurm = JsonString(pool, "executor") == "slurm";
    const ResourceCells cells = CellsOf(Member(pool, "used"), Member(pool, "capacity"), slurm);
    rows.push_back(
        {name, JsonText(pool.value("executor", Json(nullptr))),
         JsonText(pool.value("workers", Json(nullptr))), JsonText(pool.value("running", Json(nullptr))),
         JsonText(pool.value("queued", Json(nullptr))), JsonText(pool.value("queue_limit", Json(nullptr))),
         paused ? Paint(ctx, "paused", Color::kYellow) : "no", cells.cpus, cells.memory, cells.gpus});
  }
  // What the local pools share: index.json's head "machine", when it has one.
  if (machine.is_object()) {
    const ResourceCells cells = CellsOf(Member(machine, "used"), machine, false);
    rows.push_back({"(machine)", "", "", "", "", "", "", cells.cpus, cells.memory, cells.gpus});
  }
  PrintTable(
      {"POOL", "EXECUTOR", "WORKERS", "RUNNING", "QUEUED", "LIMIT", "PAUSED", "CPUS", "MEMORY", "GPUS"},
      rows);
  if (!DetectDaemon(ctx.Paths()).running)
    PrintNote(NotRunningMessage(ctx) + " (counts as it last wrote them)");
  return kExitOk;
}

}  // namespace spoold::cli

// definitions list|show|history: the job definitions of a spool, read from
// the daemon's files (SPEC.md section 2, "Definitions"; section 4,
// "revisions/"): the revisions, their history and runs through
// DefinitionStore, the files under definitions/ and their pending error
// files, and each run's status.json. They work without the daemon, like the
// other reading commands.
//
// A definition is listed when it has a revision or a file in definitions/:
// one whose file was refused before it ever had a revision shows its error,
// one whose file is gone shows "removed" and keeps its revisions and runs.
#include <map>
#include <set>

#include "cli/commands.h"
#include "cli/definition_cli.h"
#include "spool/fileio.h"
#include "spool/sha256.h"

namespace spoold::cli {
namespace {

// What `definitions list` shows of one definition.
struct Entry {
  std::string name;
  std::optional<RevisionInfo> latest;
  std::string file;  // its file in definitions/, "" when there is none
  size_t runs = 0;
  std::optional<RunRecord> last_run;
  std::string last_run_state;
  std::optional<Json> error;  // the file's pending error file
  bool changed = false;       // the file is not its latest revision (not taken in yet)
};

const char* FormatName(DocFormat format) { return format == DocFormat::kToml ? "toml" : "json"; }

// Names with a revision or a file in definitions/, sorted.
Result<std::vector<std::string>> DefinitionNames(const Context& ctx) {
  std::set<std::string> names;
  if (PathExists(ctx.Paths().Revisions())) {
    auto stored = DefinitionStore(ctx.Paths()).Names();
    if (!stored.ok()) return stored.error();
    names.insert(stored->begin(), stored->end());
  }
  if (PathExists(ctx.Paths().Definitions())) {
    auto files = ListDir(ctx.Paths().Definitions());
    if (!files.ok()) return files.error();
    for (const auto& file : *files) {
      // "etl.toml.error.json" has a dot left in its stem: no definition's.
      if (file.size() <= 5 || !(file.ends_with(".toml") || file.ends_with(".json"))) continue;
      std::string stem = file.substr(0, file.size() - 5);
      if (IsValidDefinitionName(stem)) names.insert(std::move(stem));
    }
  }
  return std::vector<std::string>(names.begin(), names.end());
}

Result<Entry> LoadEntry(const Context& ctx, const std::string& name) {
  const DefinitionStore store(ctx.Paths());
  Entry e;
  e.name = name;
  auto history = store.History(name);
  if (!history.ok()) return history.error();
  if (!history->empty()) e.latest = history->back();
  auto runs = store.Runs(name);
  if (!runs.ok()) return runs.error();
  e.runs = runs->size();
  if (!runs->empty()) {
    e.last_run = runs->back();
    e.last_run_state = RunState(ctx, e.last_run->run);
  }
  e.file = DefinitionFileOf(ctx, name);
  if (!e.file.empty()) {
    e.error = DefinitionErrorOf(ctx, e.file);
    if (!e.error && e.latest) {
      auto text = ReadSmallFile(ctx.Paths().DefinitionFile(e.file), size_t{64} << 20);
      e.changed = text.ok() && (Sha256Hex(*text) != e.latest->sha256 || e.file != e.latest->file);
    }
  }
  return e;
}

// The entry as index.json's "definitions" has it (SPEC.md section 7).
Json EntryJson(const Entry& e) {
  Json error = nullptr;
  if (e.error) {
    error = *e.error;
    error.erase("time");  // the error file without its time, as index.json has it
  }
  auto or_null = [](bool known, auto value) { return known ? Json(value) : Json(nullptr); };
  return {{"revision", or_null(e.latest.has_value(), e.latest ? e.latest->revision : 0)},
          {"updated", or_null(e.latest.has_value(), e.latest ? e.latest->time : "")},
          {"file", or_null(!e.file.empty(), e.file)},
          {"present", !e.file.empty()},
          {"runs", e.runs},
          {"last_run", or_null(e.last_run.has_value(), e.last_run ? e.last_run->run : "")},
          {"last_run_state", or_null(e.last_run.has_value(), e.last_run_state)},
          {"error", error}};
}

std::string EntryNote(const Context& ctx, const Entry& e) {
  if (e.error) return Paint(ctx, "error: " + FormatDefinitionError(*e.error), Color::kRed);
  if (e.file.empty()) return Paint(ctx, "removed", Color::kDim);
  if (!e.latest) return "not taken in yet";
  if (e.changed) return "changed since revision " + std::to_string(e.latest->revision) + ", not taken in yet";
  return "";
}

int List(const Context& ctx, const Args& args) {
  auto names = DefinitionNames(ctx);
  if (!names.ok()) return Fail(names.error().message);
  if (args.Flag("quiet")) {
    for (const auto& name : *names) Out(name + "\n");
    return kExitOk;
  }
  std::vector<Entry> entries;
  std::optional<Json> index;  // read once, if a run's status.json cannot be
  for (const auto& name : *names) {
    auto entry = LoadEntry(ctx, name);
    if (!entry.ok()) return Fail(entry.error().message);
    if (entry->last_run && entry->last_run_state == "?") {
      // Another user's job (its folder is theirs): index.json says its state.
      if (!index) {
        auto read = ReadIndex(ctx);
        index = read.ok() && read->is_object() ? *read : Json::object();
      }
      const auto all = index->find("definitions");
      const Json known =
          all != index->end() && all->is_object() ? all->value(name, Json(nullptr)) : Json(nullptr);
      if (JsonString(known, "last_run") == entry->last_run->run) {
        entry->last_run_state = JsonString(known, "last_run_state", "?");
      }
    }
    entries.push_back(std::move(entry.value()));
  }
  if (ctx.json) {
    Json out = Json::object();
    for (const auto& e : entries) out[e.name] = EntryJson(e);
    OutJson(ctx, out);
    return kExitOk;
  }
  const TimePoint now = Now();
  Table table({"NAME", "REV", "UPDATED", "RUNS", "LAST RUN", "STATE", "NOTE"});
  for (const auto& e : entries) {
    const auto updated = e.latest ? ParseTime(e.latest->time) : std::nullopt;
    const std::string state = e.last_run ? e.last_run_state : "-";
    table.Add({e.name, e.latest ? std::to_string(e.latest->revision) : "-",
               updated ? FormatAge(now - *updated) + " ago" : "-", std::to_string(e.runs),
               e.last_run ? e.last_run->run : "-", Paint(ctx, state, StateColor(state)), EntryNote(ctx, e)});
  }
  table.Print();
  return kExitOk;
}

Json ParamsJson(const Definition& def) {
  Json params = Json::object();
  for (const auto& [name, spec] : def.params) {
    params[name] = {{"type", ParamTypeName(spec.type)},
                    {"default", spec.default_value.value_or(Json(nullptr))},
                    {"required", !spec.default_value.has_value()},
                    {"pattern", spec.pattern.empty() ? Json(nullptr) : Json(spec.pattern)},
                    {"description", spec.description},
                    {"variable", ParamVariable(name)}};
  }
  return params;
}

int Show(Context& ctx, const std::string& word, bool params) {
  auto ref = ParseDefinitionRef(word);
  if (!ref) return UsageError("give a definition as NAME or NAME:REV, not \"" + PrintableName(word) + "\"");
  if (!params) {
    auto read = ReadRevision(ctx, ref->name, ref->revision);
    if (!read.ok()) return Fail(read.error().message);
    const auto& [info, text] = *read;
    if (!ctx.json) {
      Out(text);  // byte for byte: `show etl:3 > etl.toml` gives revision 3 back
      return kExitOk;
    }
    OutJson(ctx, Json{{"name", ref->name},
                      {"revision", info.revision},
                      {"time", info.time},
                      {"file", info.file},
                      {"format", FormatName(info.format)},
                      {"sha256", info.sha256},
                      {"owner", info.owner},
                      {"text", SanitizeUtf8(text)}});
    return kExitOk;
  }
  Settings settings = LoadSettings(ctx);
  std::string error_file;
  auto loaded = LoadDefinition(ctx, ref->name, ref->revision, settings, &error_file);
  if (!loaded.ok()) {
    if (error_file.empty()) return Fail(loaded.error().message);
    return Fail(FormatErrorJson(ErrorJson(error_file, loaded.error())));
  }
  const Definition& def = loaded->def;
  if (ctx.json) {
    OutJson(ctx, Json{{"name", ref->name},
                      {"revision", loaded->info.revision},
                      {"params", ParamsJson(def)},
                      {"allow_override", def.allow_override}});
    return kExitOk;
  }
  Table table({"PARAM", "TYPE", "DEFAULT", "PATTERN", "DESCRIPTION"});
  for (const auto& [name, spec] : def.params) {
    table.Add({name, ParamTypeName(spec.type),
               spec.default_value ? ParamText(*spec.default_value) : std::string("(required)"),
               spec.pattern.empty() ? std::string("-") : spec.pattern, spec.description});
  }
  table.Print();
  std::string overridable;
  for (const auto& key : def.allow_override) overridable += (overridable.empty() ? "" : ", ") + key;
  Out("revision " + std::to_string(loaded->info.revision) +
      "; a run may also set: " + (overridable.empty() ? "" : overridable + ", ") + "hold, after, metadata\n");
  return kExitOk;
}

int History(Context& ctx, const std::string& name, bool with_runs) {
  if (!IsValidDefinitionName(name)) {
    return UsageError("give a definition's name (letters, digits, '_' and '-'), not \"" +
                      PrintableName(name) + "\"");
  }
  const DefinitionStore store(ctx.Paths());
  auto history = store.History(name);
  if (!history.ok()) return Fail(history.error().message);
  if (history->empty()) {
    auto read = ReadRevision(ctx, name, std::nullopt);  // says why there is none
    return Fail(read.ok() ? "definition " + name + " has no revisions" : read.error().message);
  }
  auto runs = store.Runs(name);
  if (!runs.ok()) return Fail(runs.error().message);
  std::map<int, size_t> runs_of;
  for (const auto& run : *runs) ++runs_of[run.revision];
  Json revisions = Json::array();
  for (auto it = history->rbegin(); it != history->rend(); ++it) {
    revisions.push_back({{"revision", it->revision},
                         {"time", it->time},
                         {"file", it->file},
                         {"format", FormatName(it->format)},
                         {"sha256", it->sha256},
                         {"owner", it->owner},
                         {"owner_uid", it->owner_uid},
                         {"runs", runs_of[it->revision]}});
  }
  Json run_list = Json::array();
  if (with_runs) {
    for (auto it = runs->rbegin(); it != runs->rend(); ++it) {
      run_list.push_back({{"run", it->run},
                          {"revision", it->revision},
                          {"time", it->time},
                          {"state", RunState(ctx, it->run)}});
    }
  }
  if (ctx.json) {
    Json out = {{"name", name}, {"revisions", revisions}};
    if (with_runs) out["runs"] = run_list;
    OutJson(ctx, out);
    return kExitOk;
  }
  if (with_runs) {
    Table table({"RUN", "REV", "TIME", "STATE"});
    for (const auto& r : run_list) {
      const std::string state = r["state"].get<std::string>();
      table.Add({r["run"].get<std::string>(), std::to_string(r["revision"].get<int>()),
                 r["time"].get<std::string>(), Paint(ctx, state, StateColor(state))});
    }
    table.Print();
    return kExitOk;
  }
  Table table({"REV", "TIME", "OWNER", "SHA256", "FILE", "RUNS"});
  for (const auto& r : revisions) {
    table.Add({std::to_string(r["revision"].get<int>()), r["time"].get<std::string>(),
               r["owner"].get<std::string>(), r["sha256"].get<std::string>().substr(0, 12),
               r["file"].get<std::string>(), std::to_string(r["runs"].get<size_t>())});
  }
  table.Print();
  return kExitOk;
}

}  // namespace

int CmdDefinitions(Context& ctx, const Args& args) {
  const std::vector<std::string>& words = args.positional;
  const std::string sub = words.empty() ? "list" : words[0];
  const size_t given = words.empty() ? 0 : words.size() - 1;
  const bool params = args.Flag("params"), runs = args.Flag("runs");
  if (sub == "list") {
    if (given != 0) return UsageError("definitions list takes no arguments");
    if (params || runs) return UsageError("--params is for definitions show, --runs for definitions history");
    return List(ctx, args);
  }
  if (sub == "show") {
    if (given != 1) return UsageError("give one definition: definitions show NAME[:REV]");
    if (runs) return UsageError("--runs is for definitions history");
    return Show(ctx, words[1], params);
  }
  if (sub == "history") {
    if (given != 1) return UsageError("give one definition: definitions history NAME");
    if (params) return UsageError("--params is for definitions show");
    return History(ctx, words[1], runs);
  }
  return UsageError("definitions takes list, show NAME[:REV] or history NAME, not \"" + PrintableName(sub) +
                    "\"");
}

}  // namespace spoold::cli

// submit and run of a definition (`spoolctl submit etl -p day=2026-12-01`):
// the run file, how it is checked before it is dropped, and its id.
//
// The run file is JSON, {"definition": "etl" | "etl:3", "params": {...}}
// with the top-level keys of --pool, --priority, --hold, --after and --array
// beside: those a run may always give (hold, after) and those the
// definition's allow_override names; any other is override_not_allowed,
// found here by the daemon's own ResolveRun. Every param value is a string,
// as typed: the daemon reads "3" for an integer param and "true"/"false" for
// a boolean one, so -p needs no types. The file is dumped with sorted keys,
// so the same command line always makes the same bytes: that is what makes
// --id idempotent.
//
// Ids. With --id ID, the run is that job: when jobs/ID/ (or incoming/) holds
// this very run file already, nothing is dropped and the job is reported as
// it is, like the daemon ignores a byte-identical file dropped again (SPEC.md
// section 2); when it holds anything else, the id is refused. Without --id,
// NAME-<n>, n counting on from the definition's runs (runs.jsonl), the first
// id that is free: a run's id is not reused when an earlier run's folder is
// removed, as long as its runs.jsonl line stays.
#include "cli/definition_cli.h"
#include "cli/placing.h"
#include "spool/fileio.h"
#include "spool/job_spec.h"
#include "spool/job_store.h"

namespace spoold::cli {
namespace {

// -p NAME=VALUE, each param once, as the run's "params".
Result<Json> ParseParams(const std::vector<std::string>& given) {
  Json params = Json::object();
  for (const auto& word : given) {
    const size_t eq = word.find('=');
    if (eq == std::string::npos) {
      return MakeError("usage", "-p takes NAME=VALUE; \"" + PrintableName(word) + "\" has no '='");
    }
    const std::string name = word.substr(0, eq);
    if (name.empty()) {
      return MakeError("usage",
                       "-p takes NAME=VALUE; \"" + PrintableName(word) + "\" has no name before '='");
    }
    if (params.contains(name)) return MakeError("usage", "-p gives param " + PrintableName(name) + " twice");
    params[name] = word.substr(eq + 1);
  }
  return params;
}

enum class Earlier { kNone, kSame, kOther };

struct EarlierRun {
  Earlier kind = Earlier::kNone;
  std::string where;  // "jobs/ID/run.json", "incoming/ID.json"
};

// What job id `id` holds already: nothing, this very run file, or another job.
EarlierRun FindEarlier(const Context& ctx, const std::string& id, const std::string& bytes) {
  if (PathExists(ctx.Paths().JobDir(id))) {
    // What the daemon compares a file dropped again with (JobStore::ReadDroppedFile).
    auto kept = JobStore(ctx.Paths()).ReadDroppedFile(id, bytes.size() + 1);
    const bool same = kept.ok() && kept->second == bytes;
    return {same ? Earlier::kSame : Earlier::kOther,
            "jobs/" + id + "/" + (same ? ctx.Paths().RunFileName(kept->first) : "")};
  }
  if (std::string file = IncomingFileOf(ctx, id); !file.empty()) {
    auto kept = ReadSmallFile(ctx.Paths().IncomingFile(file), bytes.size() + 1);
    return {kept.ok() && *kept == bytes ? Earlier::kSame : Earlier::kOther, "incoming/" + file};
  }
  return {};
}

int ReportEarlier(const Context& ctx, const std::string& id, const EarlierRun& earlier, std::string* id_out,
                  bool quiet) {
  if (id_out) *id_out = id;
  if (ctx.json && !quiet) {
    OutJson(ctx, Json{{"id", id}, {"file", earlier.where}, {"outcome", "already_submitted"}});
  } else if (!quiet) {
    Out(id + "\n");
  }
  PrintNote(id + " was submitted before with the same run (" + earlier.where + "); nothing was dropped");
  return kExitOk;
}

// An error about the run file spoolctl wrote, without the line and column
// in it: the user wrote the command line, not that file.
int ReportRunInvalid(const Context& ctx, const std::string& label, Error error) {
  error.line = error.column = 0;
  return ReportInvalid(ctx, label, error);
}

int RefuseTaken(const Context& ctx, const std::string& id, const EarlierRun& earlier) {
  return Fail("job id " + id + " is taken in " + ctx.Root() + " by another job (" + earlier.where +
              " is not this run); choose another --id, or leave it out");
}

}  // namespace

int SubmitRun(Context& ctx, const Args& args, const RunArg& arg, std::string* id_out, bool quiet) {
  auto ov = ParseOverrides(args);
  if (!ov.ok()) return UsageError(ov.error().message);
  auto params = ParseParams(args.List("param"));
  if (!params.ok()) return UsageError(params.error().message);
  const auto explicit_id = args.Value("id");
  if (explicit_id && !IsValidJobId(*explicit_id)) {
    return UsageError(
        "--id takes a job id (1 to 128 letters, digits, '.', '_' or '-', starting with a "
        "letter or digit), got \"" +
        PrintableName(*explicit_id) + "\"");
  }
  Settings settings = LoadSettings(ctx);
  std::string error_file;
  auto loaded = LoadDefinition(ctx, arg.name, arg.revision, settings, &error_file);
  if (!loaded.ok() && !error_file.empty()) {
    // The daemon refuses to run a revision that no longer checks out.
    return ReportInvalid(
        ctx, arg.text,
        MakeError("unknown_definition",
                  "definition " + arg.name + " no longer checks out with the configuration: " +
                      FormatErrorJson(ErrorJson(error_file, loaded.error())),
                  "definition"));
  }
  if (!loaded.ok()) return ReportInvalid(ctx, arg.text, loaded.error());
  if (!arg.revision && DefinitionFileOf(ctx, arg.name).empty()) {
    // As the daemon judges it: a removed definition runs only pinned.
    return ReportInvalid(
        ctx, arg.text,
        MakeError("unknown_definition",
                  "definition " + arg.name + " was removed from " + ctx.Paths().Definitions() +
                      "/; its revisions are kept, and " + arg.name + ":N runs revision N (" + arg.name + ":" +
                      std::to_string(loaded->info.revision) + " the latest)",
                  "definition"));
  }

  Json run = {{"definition", arg.text}, {"params", std::move(params.value())}};
  ApplyOverrides(*ov, run);
  settings.AssumePool(run.value("pool", Json(nullptr)));
  const std::string bytes = DumpJson(run, 2) + "\n";
  const std::string label = "run of " + arg.text;
  auto doc = ParseDocument(bytes, DocFormat::kJson);
  if (!doc.ok()) return ReportRunInvalid(ctx, label, doc.error());
  if (auto ref = ParseRunRef(*doc); !ref.ok()) return ReportRunInvalid(ctx, label, ref.error());

  // The next run's number: one more than the runs recorded so far.
  int first = 1;
  if (!explicit_id) {
    auto runs = DefinitionStore(ctx.Paths()).Runs(arg.name);
    if (runs.ok()) first = static_cast<int>(runs->size()) + 1;
  }
  const std::string name = arg.name;
  const Candidate candidate = explicit_id
                                  ? Candidate([id = *explicit_id](int) { return id; })
                                  : Candidate([name](int n) { return name + "-" + std::to_string(n); });
  auto resolved = ResolveRun(loaded->def, *doc, candidate(first), settings.config);
  if (!resolved.ok()) return ReportRunInvalid(ctx, label, resolved.error());

  if (explicit_id) {
    const EarlierRun earlier = FindEarlier(ctx, *explicit_id, bytes);
    if (earlier.kind == Earlier::kSame) return ReportEarlier(ctx, *explicit_id, earlier, id_out, quiet);
    if (earlier.kind == Earlier::kOther) return RefuseTaken(ctx, *explicit_id, earlier);
  }
  int n = first;
  auto placed = Place(ctx, bytes, DocFormat::kJson, candidate, &n, explicit_id ? first : first + 100000);
  if (!placed.ok()) {
    // The same run with the same --id, dropped by another spoolctl meanwhile.
    if (explicit_id) {
      const EarlierRun earlier = FindEarlier(ctx, *explicit_id, bytes);
      if (earlier.kind == Earlier::kSame) return ReportEarlier(ctx, *explicit_id, earlier, id_out, quiet);
    }
    return Fail(placed.error().message);
  }
  if (id_out) *id_out = placed->id;
  return ReportIntake(ctx, placed->id, placed->file, placed->report, quiet);
}

}  // namespace spoold::cli

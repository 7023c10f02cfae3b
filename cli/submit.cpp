// submit, run, validate, rerun, duplicate: everything that turns a job file
// into a job. A file is validated locally with the daemon's own functions
// (ParseDocument, ValidateJobSpec) before anything is written, so a bad file is
// reported exactly as the daemon would report it and never submitted.
//
// Ids. A file's id is its name without .toml/.json ("stdin" for standard
// input). When it is taken (jobs/<id>/ exists, or incoming/<id>.toml|json
// waits), submit picks the first free "<id>-2", "<id>-3", ...; so the same file
// submitted twice makes two jobs. An id given with --id is used as is, and a
// taken one is an error. rerun makes "<id>.r2", "<id>.r3", ... (an existing
// ".rN" suffix is replaced, so rerunning x.r2 gives x.r3); duplicate makes
// "<id>.d1", "<id>.d2", ... Ids are shortened where the suffix would pass 128.
//
// Format. The daemon keeps a job file byte for byte, so a file is submitted
// unchanged unless something must change in it: --pool, --priority, --hold,
// --after, --array (with --parallel, --max-failed), the metadata.derived_from
// that rerun and duplicate add, or the indexes rerun --failed picks. Then the
// job is written as JSON (<id>.json) from the parsed file, whatever its format
// (TOML dates in metadata become RFC 3339 strings): spool/ has no TOML writer.
//
// submit and run also take a definition's name instead of a file (NAME or
// NAME:REV, with -p k=v): that run is built and checked in
// definition_run.cpp; the ids, the drop and the report of the daemon's
// intake are placing.cpp's, the options job_options.cpp's.
#include <unistd.h>

#include <functional>

#include "cli/actions.h"
#include "cli/array_cli.h"
#include "cli/commands.h"
#include "cli/definition_cli.h"
#include "cli/job_options.h"
#include "cli/placing.h"
#include "spool/dropped_file.h"
#include "spool/fileio.h"
#include "spool/job_spec.h"
#include "spool/job_store.h"
#include "spool/status.h"

namespace spoold::cli {
namespace {

constexpr size_t kReadCap = size_t{64} << 20;

struct JobInput {
  std::string file;  // as shown in messages: the path, "<stdin>", "jobs/x/job.toml"
  std::string bytes;
  DocFormat format = DocFormat::kToml;
  std::string id;  // the id the file asks for
};

Result<std::string> ReadStdin() {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return MakeError("io_error", ErrnoMessage("read", "standard input", errno));
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kReadCap) return MakeError("too_large", "standard input is larger than 64 MiB");
  }
}

Result<JobInput> ReadJobInput(const std::string& path) {
  JobInput in;
  if (path == "-") {
    auto bytes = ReadStdin();
    if (!bytes.ok()) return bytes.error();
    in.file = "<stdin>";
    in.bytes = std::move(bytes.value());
    size_t first = in.bytes.find_first_not_of(" \t\r\n");
    in.format = first != std::string::npos && in.bytes[first] == '{' ? DocFormat::kJson : DocFormat::kToml;
    in.id = "stdin";
    return in;
  }
  in.file = path;
  const std::string name = path.substr(path.find_last_of('/') + 1);
  const bool toml = name.size() > 5 && name.ends_with(".toml");
  const bool json = name.size() > 5 && name.ends_with(".json");
  if (!toml && !json) {
    return MakeError("unsupported_type", PrintableName(name) + " is neither .toml nor .json");
  }
  in.format = toml ? DocFormat::kToml : DocFormat::kJson;
  in.id = name.substr(0, name.size() - 5);
  auto bytes = ReadSmallFile(path, kReadCap);
  if (!bytes.ok()) return bytes.error();
  in.bytes = std::move(bytes.value());
  return in;
}

struct Prepared {
  JobSpec spec;
  std::string bytes;
  DocFormat format = DocFormat::kToml;
};

// Parses, applies the overrides and validates as the daemon would, for the job
// id `id`. The error is the one the daemon would write to rejected/.
Result<Prepared> Prepare(const JobInput& in, const std::string& id, const Overrides& ov, Settings& settings) {
  // Without the configuration the limit is unknown: the daemon judges.
  const auto limit = static_cast<size_t>(settings.config.max_job_file_size);
  if (settings.config_known && in.bytes.size() > limit) {
    return MakeError("too_large", PrintableName(in.file) + " has " + std::to_string(in.bytes.size()) +
                                      " bytes; spool.max_job_file_size is " + std::to_string(limit));
  }
  if (settings.config_known) {
    // The file spoolctl drops is ours, with one link.
    DroppedFile ours;
    ours.uid = ::geteuid();
    ours.links = 1;
    if (auto owner = CheckOwner(in.file, ours, settings.config.allow_root); !owner.ok()) return owner.error();
  }
  auto doc = ParseDocument(in.bytes, in.format);
  if (!doc.ok()) return doc.error();
  ApplyOverrides(ov, doc->value);
  settings.AssumePool(doc->value.contains("pool") ? doc->value["pool"] : Json("default"));
  auto spec = ValidateJobSpec(*doc, id, settings.config);
  if (!spec.ok()) return spec.error();
  Prepared out{std::move(spec.value()), in.bytes, in.format};
  if (ov.Any()) {
    out.bytes = DumpJson(doc->value, 2) + "\n";
    out.format = DocFormat::kJson;
  }
  return out;
}

// submit and run: reads FILE|-, validates, drops; the id goes to *id_out. A
// word that names no file but a definition (NAME or NAME:REV) submits a run
// of it instead (cli/definition_cli.h).
int SubmitFromArgs(Context& ctx, const Args& args, std::string* id_out, bool quiet) {
  if (args.positional.size() != 1) {
    return UsageError("give one job file (or - for standard input), or a definition NAME[:REV]");
  }
  if (auto run = ParseRunArg(args.positional[0])) return SubmitRun(ctx, args, *run, id_out, quiet);
  if (!args.List("param").empty()) {
    return UsageError("-p/--param gives a definition's params; " + PrintableName(args.positional[0]) +
                      " is a job file");
  }
  auto ov = ParseOverrides(args);
  if (!ov.ok()) return UsageError(ov.error().message);
  auto in = ReadJobInput(args.positional[0]);
  if (!in.ok()) return ReportInvalid(ctx, args.positional[0], in.error());
  const auto explicit_id = args.Value("id");
  const std::string wanted = explicit_id.value_or(in->id);
  Settings settings = LoadSettings(ctx);
  auto job = Prepare(*in, wanted, *ov, settings);
  if (!job.ok()) return ReportInvalid(ctx, in->file, job.error());
  if (explicit_id && IdTaken(ctx, wanted)) {
    return Fail("job id " + wanted + " is taken in " + ctx.Root() + "; choose another --id or leave it out");
  }
  Candidate candidate = [&](int n) { return n == 1 ? wanted : WithSuffix(wanted, "-" + std::to_string(n)); };
  int n = 1;
  return PlaceAndReport(ctx, job->bytes, job->format, candidate, &n, explicit_id ? 1 : 100000, id_out, quiet);
}

// rerun and duplicate: the job file of an existing job, with derived_from.
Result<JobInput> ReadJobOf(const Context& ctx, const std::string& id) {
  if (auto status = LoadStatusJson(ctx, id); !status.ok()) return status.error();
  auto file = JobStore(ctx.Paths()).ReadJobFile(id, kReadCap);
  if (!file.ok()) return file.error();
  return JobInput{"jobs/" + id + "/" + ctx.Paths().JobFileName(file->first), std::move(file->second),
                  file->first, id};
}

// "x.r2" -> "x": rerunning a rerun numbers on from the original.
std::string RerunBase(const std::string& id) {
  size_t dot = id.rfind(".r");
  if (dot == std::string::npos || dot + 2 >= id.size()) return id;
  for (size_t i = dot + 2; i < id.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(id[i]))) return id;
  }
  return id.substr(0, dot);
}

// The job file of `source` made ready to be copied as `first_id` (rerun,
// duplicate), with metadata.derived_from added to `ov`. When the file does
// not validate, *invalid_file names it (and the error is the daemon's).
// A run of a definition is copied as a run, pinned to the revision it ran
// with the params it resolved to: its job.json alone would lose the params'
// SPOOLD_PARAM_ variables. nullopt when `source` is no run.
std::optional<Result<Prepared>> PrepareRunCopy(const Context& ctx, const std::string& source,
                                               const Overrides& ov, const std::string& first_id,
                                               std::string* invalid_file) {
  auto status = LoadStatusJson(ctx, source);
  if (!status.ok()) return std::nullopt;
  auto def = status->find("definition");
  if (def == status->end() || !def->is_object() || !def->contains("name") || !(*def)["name"].is_string() ||
      !def->contains("revision") || !(*def)["revision"].is_number_integer() || !def->contains("params")) {
    return std::nullopt;
  }
  auto run = JobStore(ctx.Paths()).ReadDroppedFile(source, kReadCap);
  if (!run.ok()) return Result<Prepared>(run.error());
  const std::string file = "jobs/" + source + "/" + ctx.Paths().RunFileName(run->first);
  auto doc = ParseDocument(run->second, run->first);
  if (!doc.ok()) return Result<Prepared>(doc.error());
  const std::string name = (*def)["name"].get<std::string>();
  const int revision = (*def)["revision"].get<int>();
  doc->value["definition"] = name + ":" + std::to_string(revision);
  doc->value["params"] = (*def)["params"];
  ApplyOverrides(ov, doc->value);
  Settings settings = LoadSettings(ctx);
  auto loaded = LoadDefinition(ctx, name, revision, settings, invalid_file);
  if (!loaded.ok()) return Result<Prepared>(loaded.error());
  auto resolved = ResolveRun(loaded->def, *doc, first_id, settings.config);
  if (!resolved.ok()) {
    *invalid_file = file;
    return Result<Prepared>(resolved.error());
  }
  return Result<Prepared>(
      Prepared{std::move(resolved->spec), DumpJson(doc->value, 2) + "\n", DocFormat::kJson});
}

Result<Prepared> PrepareCopy(const Context& ctx, const std::string& source, Overrides ov,
                             const std::string& first_id, std::string* invalid_file) {
  if (auto task = ParseTaskId(source)) {
    // A task has no job file of its own: it runs its array's.
    return MakeError("invalid_state", source + " is a task of array " + task->array + "; copy the array (" +
                                          task->array + "), or rerun its failed tasks with spoolctl rerun " +
                                          task->array + " --failed");
  }
  ov.derived_from = source;
  if (auto run = PrepareRunCopy(ctx, source, ov, first_id, invalid_file)) return std::move(*run);
  auto in = ReadJobOf(ctx, source);
  if (!in.ok()) return in.error();
  Settings settings = LoadSettings(ctx);
  auto job = Prepare(*in, first_id, ov, settings);
  if (!job.ok()) *invalid_file = in->file;
  return job;
}

Candidate RerunCandidate(const std::string& id) {
  return [base = RerunBase(id)](int n) { return WithSuffix(base, ".r" + std::to_string(n)); };
}

// `failed_indexes`: rerun --failed's, which replace the [array]'s indexes.
int SubmitCopies(Context& ctx, const Args& args, const Candidate& candidate, int first, int count,
                 const std::optional<std::string>& failed_indexes = std::nullopt) {
  if (args.positional.size() != 1) return UsageError("give one job id");
  auto ov = ParseOverrides(args);
  if (!ov.ok()) return UsageError(ov.error().message);
  ov->array.indexes = failed_indexes;
  std::string invalid_file;
  auto job = PrepareCopy(ctx, args.positional[0], *ov, candidate(first), &invalid_file);
  if (!job.ok()) {
    return invalid_file.empty() ? Fail(job.error().message) : ReportInvalid(ctx, invalid_file, job.error());
  }
  int worst = kExitOk;
  for (int n = first, made = 0; made < count; ++made, ++n) {
    worst =
        std::max(worst, PlaceAndReport(ctx, job->bytes, job->format, candidate, &n, 100000, nullptr, false));
  }
  return worst;
}

// --explain: the settings in effect after defaults, as JSON (also printed as
// "key  value" lines).
Json Effective(const JobSpec& spec, const Settings& settings) {
  Json e;
  e["id"] = spec.id;
  if (spec.script) {
    e["script"] = std::to_string(std::count(spec.script->begin(), spec.script->end(), '\n') + 1) + " lines";
    e["shell"] = spec.shell;
  } else {
    e["command"] = spec.command;
  }
  e["title"] = spec.title;
  e["pool"] = spec.pool;
  e["pool_checked"] = settings.pools_known;
  e["priority"] = spec.priority;
  e["hold"] = spec.hold;
  e["cwd"] = spec.cwd.empty() ? "jobs/" + spec.id + "/results/" : spec.cwd;
  Millis timeout = settings.config.TimeoutFor(spec.pool);
  std::string from = settings.config_known ? "defaults.timeout" : "built-in default";
  if (auto pool = settings.config.pools.find(spec.pool);
      pool != settings.config.pools.end() && pool->second.timeout) {
    from = "pool " + spec.pool;
  }
  if (spec.timeout) {
    timeout = *spec.timeout;
    from = "the job file";
  }
  e["timeout"] = timeout.count() == 0 ? "none" : FormatDuration(timeout);
  e["timeout_from"] = from;
  e["deadline"] = spec.deadline ? FormatDuration(*spec.deadline) : "none";
  e["retry"] = {
      {"attempts", spec.retry.attempts},
      {"delay", FormatDuration(spec.retry.delay)},
      {"backoff", spec.retry.backoff},
      {"max_delay", spec.retry.max_delay.count() == 0 ? "none" : FormatDuration(spec.retry.max_delay)},
      {"on_timeout", spec.retry.on_timeout},
      {"exit_codes", spec.retry.exit_codes}};
  e["kill"] = {{"signal", spec.kill.signal_name}, {"grace", FormatDuration(spec.kill.grace)}};
  if (spec.array) e["array"] = ArrayEffective(*spec.array);
  // The request, the pool's defaults applied, as status.json will have it
  // (defaults are known only from the configuration).
  e["resources"] = ResourcesJson(spec.resources);
  e["env"] = spec.env;
  e["tags"] = spec.tags;
  e["metadata"] = spec.metadata;
  e["settings_from"] = settings.source;
  return e;
}

// "2 CPUs, 4G of memory, 1 GPU", or "none".
std::string ResourcesText(const Json& resources) {
  std::vector<std::string> parts;
  const int64_t cpus = resources.value("cpus", int64_t{0});
  const int64_t memory = resources.value("memory", int64_t{0});
  const int64_t gpus = resources.value("gpus", int64_t{0});
  if (cpus > 0) parts.push_back(std::to_string(cpus) + (cpus == 1 ? " CPU" : " CPUs"));
  if (memory > 0) parts.push_back(spoold::FormatSize(memory) + " of memory");
  if (gpus > 0) parts.push_back(std::to_string(gpus) + (gpus == 1 ? " GPU" : " GPUs"));
  if (parts.empty()) return "none";
  std::string text;
  for (const auto& part : parts) text += (text.empty() ? "" : ", ") + part;
  return text;
}

void PrintEffective(const Json& effective) {
  for (const char* key :
       {"id",       "title",     "command", "script",  "shell",        "pool",     "pool_checked",
        "priority", "hold",      "cwd",     "timeout", "timeout_from", "deadline", "retry",
        "kill",     "resources", "array",   "env",     "tags",         "metadata", "settings_from"}) {
    if (!effective.contains(key)) continue;
    const std::string text =
        std::string_view(key) == "resources" ? ResourcesText(effective[key]) : JsonText(effective[key]);
    std::printf("  %-14s %s\n", key, text.c_str());
  }
}

int ValidateOne(const Context& ctx, const std::string& path, bool explain) {
  auto in = ReadJobInput(path);
  if (!in.ok()) return ReportInvalid(ctx, path, in.error());
  Settings settings = LoadSettings(ctx);
  auto job = Prepare(*in, in->id, Overrides{}, settings);
  if (!job.ok()) return ReportInvalid(ctx, in->file, job.error());
  Json effective = Effective(job->spec, settings);
  if (ctx.json) {
    Json out = {{"file", SanitizeUtf8(in->file)}, {"valid", true}};
    if (explain) out["effective"] = effective;
    OutJson(ctx, out);
    return kExitOk;
  }
  Out(in->file + ": valid (job id " + in->id + ")\n");
  if (explain) PrintEffective(effective);
  return kExitOk;
}

}  // namespace

int CmdSubmit(Context& ctx, const Args& args) { return SubmitFromArgs(ctx, args, nullptr, false); }

int CmdRun(Context& ctx, const Args& args) {
  std::string id;
  if (int code = SubmitFromArgs(ctx, args, &id, /*quiet=*/true); code != kExitOk) return code;
  if (!ctx.json) Out("submitted " + id + "\n");
  return WaitForJobs(ctx, {id});
}

int CmdValidate(Context& ctx, const Args& args) {
  if (args.positional.empty()) return UsageError("give one or more job files");
  int worst = kExitOk;
  for (const auto& path : args.positional)
    worst = std::max(worst, ValidateOne(ctx, path, args.Flag("explain")));
  return worst;
}

Result<Json> RerunJob(const Context& ctx, const std::string& id) {
  const Candidate candidate = RerunCandidate(id);
  std::string invalid_file;
  auto job = PrepareCopy(ctx, id, Overrides{}, candidate(2), &invalid_file);
  if (!job.ok()) {
    if (invalid_file.empty()) return job.error();
    return MakeError(job.error().code, FormatErrorJson(ErrorJson(invalid_file, job.error())));
  }
  int n = 2;
  auto placed = Place(ctx, job->bytes, job->format, candidate, &n, 100000);
  if (!placed.ok()) return placed.error();
  return IntakeJson(placed->id, placed->file, placed->report);
}

int CmdRerun(Context& ctx, const Args& args) {
  std::optional<std::string> failed;
  if (args.Flag("failed")) {
    if (args.positional.size() != 1) return UsageError("give one array id");
    auto indexes = FailedIndexesToRerun(ctx, args.positional[0]);
    if (!indexes.ok()) return Fail("cannot rerun the failed tasks: " + indexes.error().message);
    failed = *indexes;
  }
  return SubmitCopies(ctx, args, RerunCandidate(args.positional.empty() ? "" : args.positional[0]), 2, 1,
                      failed);
}

int CmdDuplicate(Context& ctx, const Args& args) {
  int64_t count = 1;
  if (auto text = args.Value("count")) {
    auto n = ParseIntArg("-n", *text, 1, 1000);
    if (!n.ok()) return UsageError(n.error().message);
    count = *n;
  }
  const std::string base = args.positional.empty() ? "" : args.positional[0];
  return SubmitCopies(
      ctx, args, [&](int n) { return WithSuffix(base, ".d" + std::to_string(n)); }, 1,
      static_cast<int>(count));
}

}  // namespace spoold::cli

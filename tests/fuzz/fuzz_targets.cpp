// The fuzz targets' bodies (fuzz_targets.h). Compiled once into the fuzz
// build's harness library, and included by tests/unit/fuzz_regressions_test.cpp
// into the main test binary, whose build does not look into tests/fuzz/.
#include "tests/fuzz/fuzz_targets.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/config.h"
#include "config/result.h"
#include "spool/control.h"
#include "spool/definition.h"
#include "spool/document.h"
#include "spool/job_spec.h"
#include "spool/json_util.h"
#include "spool/status.h"

namespace spoold::fuzz {
namespace {

// Like SPOOLD_CHECK, but names the property: the report is what a person reads
// first when a fuzzer stops.
[[noreturn]] void PropertyFailed(const char* what, const char* file, int line) {
  std::fprintf(stderr, "fuzz: property broken: %s at %s:%d\n", what, file, line);
  std::abort();
}

#define FUZZ_CHECK(expr) ((expr) ? (void)0 : ::spoold::fuzz::PropertyFailed(#expr, __FILE__, __LINE__))

bool IsValidUtf8(std::string_view text) { return SanitizeUtf8(text) == text; }

// A message meant for people and for .error.json files: valid UTF-8 and no raw
// control characters (untrusted names go through PrintableName, which escapes
// them, so a raw one means file content was quoted as it was).
bool IsCleanMessage(std::string_view text) {
  if (!IsValidUtf8(text)) return false;
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return false;
  }
  return true;
}

// The error the daemon would write beside a rejected file.
std::string DumpError(const Error& error) {
  Json json = {{"code", error.code},
               {"error", error.message},
               {"field", error.field},
               {"line", error.line},
               {"column", error.column}};
  return DumpJson(json) + DumpJson(json, 2);
}

void CheckDocumentError(const Error& error) {
  FUZZ_CHECK(error.code == "parse_error");
  FUZZ_CHECK(!error.message.empty());
  FUZZ_CHECK(IsCleanMessage(error.message));
  FUZZ_CHECK(error.line >= 0 && error.column >= 0);
  DumpError(error);
}

// What must hold for every document ParseDocument accepts.
void CheckDocument(const Document& doc) {
  FUZZ_CHECK(doc.value.is_object());
  const std::string dumped = DumpJson(doc.value);
  DumpJson(doc.value, 2);
  // The input was valid UTF-8, so the JSON we would write is the value itself,
  // byte for byte readable again, unless it holds TOML's nan or inf (written as
  // null; validation refuses them).
  FUZZ_CHECK(IsValidUtf8(dumped));
  Json again = Json::parse(dumped, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(!again.is_discarded());
  FUZZ_CHECK(again == doc.value || FindNonFinite(doc.value));
  for (const auto& [path, pos] : doc.positions) {
    FUZZ_CHECK(pos.line >= 1 && pos.column >= 1);
    DumpJson(Json(path));  // keys may hold anything: writing them must not throw
  }
}

// The configuration job files are validated against: three pools, one of them
// paused and one a Slurm pool, as a real daemon might have.
const Config& FuzzConfig() {
  static const Config config = [] {
    Config c;
    for (const char* name : {"default", "gpu", "cluster"}) {
      PoolConfig pool;
      pool.name = name;
      pool.workers = 2;
      c.pools[name] = pool;
    }
    c.pools["gpu"].paused = true;
    c.pools["gpu"].timeout = std::chrono::minutes(30);
    c.pools["cluster"].executor = "slurm";
    return c;
  }();
  return config;
}

void CheckJobSpec(const JobSpec& spec, const Config& config) {
  FUZZ_CHECK(spec.command.empty() == spec.script.has_value());
  if (!spec.command.empty()) FUZZ_CHECK(!spec.command[0].empty());
  FUZZ_CHECK(!spec.shell.empty() && !spec.shell[0].empty());
  FUZZ_CHECK(config.pools.count(spec.pool) == 1);
  FUZZ_CHECK(spec.priority >= -1'000'000 && spec.priority <= 1'000'000);
  FUZZ_CHECK(spec.cwd.empty() || spec.cwd[0] == '/');
  FUZZ_CHECK(!spec.timeout || (spec.timeout->count() >= 0 && *spec.timeout <= kMaxDuration));
  FUZZ_CHECK(!spec.deadline || (spec.deadline->count() > 0 && *spec.deadline <= kMaxDuration));
  FUZZ_CHECK(spec.retry.attempts >= 0 && spec.retry.attempts <= 100);
  FUZZ_CHECK(spec.retry.backoff >= 1.0 && spec.retry.backoff <= 100.0);
  FUZZ_CHECK(spec.retry.delay.count() >= 0 && spec.retry.delay <= kMaxDuration);
  FUZZ_CHECK(spec.retry.max_delay.count() >= 0 && spec.retry.max_delay <= kMaxDuration);
  for (int code : spec.retry.exit_codes) FUZZ_CHECK(code >= 1 && code <= 255);
  FUZZ_CHECK(SignalFromName(spec.kill.signal_name) == spec.kill.signal);
  FUZZ_CHECK(spec.kill.grace.count() >= 0 && spec.kill.grace <= kMaxDuration);
  for (const auto& [name, value] : spec.env) {
    FUZZ_CHECK(name.rfind("SPOOLD_", 0) != 0);
    FUZZ_CHECK(value.find('\0') == std::string::npos);
  }
  FUZZ_CHECK(spec.metadata.is_object());
  // What status.json and index.json would carry from the spec.
  Json shown = {{"id", spec.id},
                {"title", spec.title},
                {"description", spec.description},
                {"tags", spec.tags},
                {"pool", spec.pool},
                {"priority", spec.priority},
                {"cwd", spec.cwd},
                {"env", spec.env},
                {"metadata", spec.metadata},
                {"command", spec.command},
                {"script", spec.script.value_or("")},
                {"shell", spec.shell}};
  DumpJson(shown);
  DumpJson(shown, 2);
}

void CheckJobError(const Error& error) {
  FUZZ_CHECK(error.code == "invalid_field" || error.code == "unknown_field" ||
             error.code == "missing_field" || error.code == "unknown_pool");
  FUZZ_CHECK(!error.message.empty());
  FUZZ_CHECK(IsCleanMessage(error.message));
  FUZZ_CHECK(IsCleanMessage(error.field));
  FUZZ_CHECK(error.line >= 0 && error.column >= 0);
  DumpError(error);
}

// The same bytes as a definition, and as a run of a fixed definition (intake
// resolves runs before it validates them): refused with a clean error, or
// resolved to a job that validates.
void RunDefinitionAndRun(std::string_view bytes, DocFormat format, const Document& doc) {
  auto def = ParseDefinition("fuzz", bytes, format, FuzzConfig());
  if (!def.ok()) {
    FUZZ_CHECK(IsCleanMessage(def.error().message));
    FUZZ_CHECK(IsCleanMessage(def.error().field));
  }
  static const Definition fixed = [] {
    auto parsed =
        ParseDefinition("fuzz",
                        "command = [\"x\", \"{{a}}\", \"-n{{n}}\"]\nenv = { B = \"{{b}}\" }\n"
                        "allow_override = [\"env\", \"priority\", \"tags\"]\n"
                        "[params.a]\npattern = \"[a-z]*\"\n[params.n]\ntype = \"integer\"\ndefault = 1\n"
                        "[params.b]\ntype = \"boolean\"\ndefault = false\n",
                        DocFormat::kToml, FuzzConfig());
    FUZZ_CHECK(parsed.ok());
    return *parsed;
  }();
  auto ref = ParseRunRef(doc);
  if (!ref.ok()) {
    FUZZ_CHECK(ref.error().code == "invalid_field" && ref.error().field == "definition");
    return;
  }
  if (!*ref) return;
  auto run = ResolveRun(fixed, doc, "fuzz-run", FuzzConfig());
  if (!run.ok()) {
    const Error& error = run.error();
    FUZZ_CHECK(IsCleanMessage(error.message));
    FUZZ_CHECK(IsCleanMessage(error.field));
    FUZZ_CHECK(!error.code.empty());
    return;
  }
  CheckJobSpec(run->spec, FuzzConfig());
  FUZZ_CHECK(run->params.size() == 3);
  // What is kept (job.json) reads back as the same job.
  Result<Document> kept = ParseDocument(DumpJson(run->job.value, 2), DocFormat::kJson);
  FUZZ_CHECK(kept.ok());
  Result<JobSpec> again = ValidateJobSpec(*kept, "fuzz-run", FuzzConfig());
  FUZZ_CHECK(again.ok() && again->command == run->spec.command && again->env == run->spec.env);
}

// A job file: parsed, then validated, the way intake does it.
void RunJobFile(std::string_view bytes, DocFormat format) {
  Result<Document> doc = ParseDocument(bytes, format);
  if (!doc.ok()) {
    CheckDocumentError(doc.error());
    return;
  }
  CheckDocument(*doc);
  RunDefinitionAndRun(bytes, format, *doc);
  Result<JobSpec> spec = ValidateJobSpec(*doc, "fuzz-job_1.x", FuzzConfig());
  if (spec.ok()) {
    // Every value of an accepted file has its JSON form (spoolctl submit writes it).
    FUZZ_CHECK(!FindNonFinite(doc->value));
    CheckJobSpec(*spec, FuzzConfig());
  } else {
    CheckJobError(spec.error());
  }
}

void RunControl(std::string_view bytes, DocFormat format) {
  Result<Document> doc = ParseDocument(bytes, format);
  if (!doc.ok()) {
    CheckDocumentError(doc.error());
    return;
  }
  CheckDocument(*doc);
  Result<ControlRequest> request = ParseControlRequest(*doc);
  if (!request.ok()) {
    const Error& error = request.error();
    FUZZ_CHECK(error.code == "missing_field" || error.code == "invalid_field" ||
               error.code == "unknown_field" || error.code == "bad_id");
    FUZZ_CHECK(IsCleanMessage(error.message));
    FUZZ_CHECK(IsCleanMessage(error.field));
    DumpError(error);
    return;
  }
  const std::string action = ControlActionName(request->action);
  const bool on_job = request->action == ControlAction::kCancel || request->action == ControlAction::kStart;
  const bool on_pool = request->action == ControlAction::kPause || request->action == ControlAction::kResume;
  if (on_job) {
    FUZZ_CHECK(IsValidJobId(request->job) && request->pool.empty() && !request->stop_jobs);
  } else if (on_pool) {
    FUZZ_CHECK(IsValidPoolName(request->pool) && request->job.empty() && !request->stop_jobs);
  } else {
    FUZZ_CHECK(request->action == ControlAction::kShutdown && request->job.empty() && request->pool.empty());
  }
  // What spoolctl writes for the same request must read back as the same request.
  Json json = {{"action", action}};
  if (on_job || on_pool) {
    json[on_job ? "job" : "pool"] = on_job ? request->job : request->pool;
  } else {
    json["stop_jobs"] = request->stop_jobs;
  }
  Result<Document> again = ParseDocument(DumpJson(json), DocFormat::kJson);
  FUZZ_CHECK(again.ok());
  Result<ControlRequest> same = ParseControlRequest(*again);
  FUZZ_CHECK(same.ok() && same->action == request->action && same->job == request->job &&
             same->pool == request->pool && same->stop_jobs == request->stop_jobs);
}

}  // namespace

void FuzzJobToml(const uint8_t* data, size_t size) {
  RunJobFile(std::string_view(reinterpret_cast<const char*>(data), size), DocFormat::kToml);
}

void FuzzJobJson(const uint8_t* data, size_t size) {
  RunJobFile(std::string_view(reinterpret_cast<const char*>(data), size), DocFormat::kJson);
}

// The configuration file. It is trusted, but a typo must give a message, not a
// crash; and whatever it accepts must be a Config the rest of the daemon can use.
void FuzzConfigFile(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string file_name = "/etc/spoold/fuzz.toml";
  Result<Config> config = ParseConfig(text, file_name);
  if (!config.ok()) {
    const Error& error = config.error();
    FUZZ_CHECK(!error.code.empty());
    FUZZ_CHECK(!error.message.empty());
    FUZZ_CHECK(error.line >= 0 && error.column >= 0);
    DumpError(error);
    DumpJson(Json(FormatConfigError(error, file_name)));
    return;
  }
  FUZZ_CHECK(config->pools.count("default") == 1);
  FUZZ_CHECK(!config->root.empty() && config->root[0] == '/');
  FUZZ_CHECK(config->max_job_file_size > 0);
  FUZZ_CHECK(config->rescan_interval.count() > 0);
  Json pools = Json::object();
  for (const auto& [name, pool] : config->pools) {
    FUZZ_CHECK(IsValidPoolName(name));
    FUZZ_CHECK(pool.workers >= 1);
    FUZZ_CHECK(pool.queue_limit >= 1);
    FUZZ_CHECK(pool.executor == "local" || pool.executor == "slurm");
    FUZZ_CHECK(config->TimeoutFor(name).count() >= 0);
    // index.json's pools object (SPEC section 7).
    pools[name] = {{"workers", pool.workers},
                   {"queue_limit", pool.queue_limit},
                   {"paused", pool.paused},
                   {"executor", pool.executor},
                   {"partition", pool.slurm.partition},
                   {"sbatch_args", pool.slurm.sbatch_args}};
  }
  DumpJson(pools);
  DumpJson(Json{{"root", config->root}, {"path", config->job_path}, {"lang", config->job_lang}});
  // A fixed job validated against the fuzzed configuration.
  static const Document job = [] {
    Result<Document> doc = ParseDocument("command = [\"true\"]\npool = \"gpu\"\n", DocFormat::kToml);
    SPOOLD_CHECK(doc.ok());
    return *doc;
  }();
  Result<JobSpec> spec = ValidateJobSpec(job, "fixed", *config);
  if (spec.ok()) {
    CheckJobSpec(*spec, *config);
  } else {
    CheckJobError(spec.error());
  }
}

// A control request: the same bytes as .json and as .toml.
void FuzzControl(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  RunControl(bytes, DocFormat::kJson);
  RunControl(bytes, DocFormat::kToml);
}

// status.json as JobStore::Load reads it back at restart (it may be corrupt on
// disk): parsed without exceptions, converted, and written again. Whatever was
// accepted once must survive a second round trip unchanged.
void FuzzStatus(const uint8_t* data, size_t size) {
  Json json = Json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return;
  Result<JobStatus> status = StatusFromJson(json);
  if (!status.ok()) {
    FUZZ_CHECK(!status.error().message.empty());
    DumpError(status.error());
    return;
  }
  const Json first = StatusToJson(*status);
  const std::string written = DumpJson(first, 2);
  DumpJson(IndexEntry(*status));
  Json reread = Json::parse(written, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(!reread.is_discarded());
  Result<JobStatus> again = StatusFromJson(reread);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(DumpJson(StatusToJson(*again), 2) == written);
}

}  // namespace spoold::fuzz

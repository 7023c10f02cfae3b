#include "cli/definition_cli.h"

#include <algorithm>
#include <cctype>

#include "spool/fileio.h"
#include "spool/job_spec.h"

namespace spoold::cli {
namespace {

constexpr size_t kErrorFileCap = size_t{1} << 20;

bool AllDigits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(),
                                      [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

std::string LastPart(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

// Why `name` (or its revision `revision`) cannot be read, naming where a
// definition comes from: the definitions folder.
std::string WhyUnknown(const Context& ctx, const DefinitionStore& store, const std::string& name,
                       std::optional<int> revision) {
  const std::string folder = ctx.Paths().Definitions() + "/";
  auto history = store.History(name);
  if (history.ok() && !history->empty() && revision) {
    return "definition " + name + " has no revision " + std::to_string(*revision) + " (its latest is " +
           std::to_string(history->back().revision) + "; spoolctl definitions history " + name +
           " lists them)";
  }
  const std::string file = DefinitionFileOf(ctx, name);
  if (file.empty()) {
    return "no definition " + name + " in " + folder + " (neither " + name + ".toml nor " + name +
           ".json is there, and it never had a revision)";
  }
  if (auto error = DefinitionErrorOf(ctx, file)) {
    return folder + file + " was refused, so " + name + " has no revision: " + FormatDefinitionError(*error);
  }
  const std::string why =
      DetectDaemon(ctx.Paths()).running ? "spoold has not taken it in yet" : NotRunningMessage(ctx);
  return folder + file + " has no revision yet (" + why + ")";
}

}  // namespace

std::optional<RunArg> ParseRunArg(const std::string& word) {
  // A file by that name is a job file, whatever it is called.
  if (word.empty() || word == "-" || PathExists(word)) return std::nullopt;
  return ParseDefinitionRef(word);
}

std::optional<RunArg> ParseDefinitionRef(const std::string& word) {
  const size_t colon = word.find(':');
  RunArg out{word.substr(0, colon), std::nullopt, word};
  if (!IsValidDefinitionName(out.name)) return std::nullopt;
  if (colon != std::string::npos) {
    const std::string revision = word.substr(colon + 1);
    if (!AllDigits(revision) || revision.size() > 9) return std::nullopt;
    out.revision = std::stoi(revision);
  }
  return out;
}

std::string DefinitionFileOf(const Context& ctx, const std::string& name) {
  for (const char* ext : {".toml", ".json"}) {
    if (PathExists(ctx.Paths().DefinitionFile(name + ext))) return name + ext;
  }
  return "";
}

std::optional<Json> DefinitionErrorOf(const Context& ctx, const std::string& file) {
  auto error = ReadJsonFile(ctx.Paths().DefinitionFile(file + ".error.json"), kErrorFileCap);
  if (!error.ok() || !error->is_object()) return std::nullopt;
  return *error;
}

std::string FormatDefinitionError(const Json& error) {
  Json shown = error;
  shown["file"] = "definitions/" + JsonString(error, "file", "?");
  return FormatErrorJson(shown);
}

Result<std::pair<RevisionInfo, std::string>> ReadRevision(const Context& ctx, const std::string& name,
                                                          std::optional<int> revision) {
  const DefinitionStore store(ctx.Paths());
  auto read = store.Read(name, revision);
  if (!read.ok() && read.error().code == "unknown_definition") {
    return MakeError("unknown_definition", WhyUnknown(ctx, store, name, revision));
  }
  return read;
}

Result<LoadedDefinition> LoadDefinition(const Context& ctx, const std::string& name,
                                        std::optional<int> revision, Settings& settings,
                                        std::string* error_file) {
  auto read = ReadRevision(ctx, name, revision);
  if (!read.ok()) return read.error();
  LoadedDefinition out{std::move(read->first), std::move(read->second), Definition{}};
  if (!settings.pools_known) {
    // The definition's pool cannot be checked here: the daemon will.
    if (auto doc = ParseDocument(out.text, out.info.format); doc.ok() && doc->value.is_object()) {
      settings.AssumePool(doc->value.value("pool", Json("default")));
    }
  }
  auto def = ParseDefinition(name, out.text, out.info.format, settings.config);
  if (!def.ok()) {
    *error_file = "revisions/" + name + "/" +
                  LastPart(ctx.Paths().RevisionFile(name, out.info.revision, out.info.format));
    return def.error();
  }
  out.def = std::move(def.value());
  return out;
}

std::string RunState(const Context& ctx, const std::string& id) {
  if (!IsValidJobId(id)) return "?";
  if (!PathExists(ctx.Paths().JobDir(id))) return IncomingFileOf(ctx, id).empty() ? "removed" : "waiting";
  auto status = ReadJsonFile(ctx.Paths().StatusFile(id), 64 << 20);
  if (!status.ok() || !status->is_object()) return "?";
  return JsonString(*status, "state", "?");
}

}  // namespace spoold::cli

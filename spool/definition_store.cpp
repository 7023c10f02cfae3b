#include "spool/definition_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <sstream>

#include "spool/definition.h"
#include "spool/fileio.h"
#include "spool/json_util.h"
#include "spool/sha256.h"

namespace spoold {
namespace {

constexpr size_t kMaxHistory = 64 << 20;

// The JSON lines of `path`, each parsed; a line that does not parse (a torn
// last line after a crash) is skipped. A missing file has none.
Result<std::vector<Json>> ReadLines(const std::string& path) {
  if (!PathExists(path)) return std::vector<Json>{};
  auto text = ReadSmallFile(path, kMaxHistory);
  if (!text.ok()) return text.error();
  std::vector<Json> out;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    Json value = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (value.is_object()) out.push_back(std::move(value));
  }
  return out;
}

std::string Str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t Int(const Json& j, const char* key, int64_t fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

}  // namespace

Result<std::vector<std::string>> DefinitionStore::Names() const {
  auto names = ListDir(paths_.Revisions());
  if (!names.ok()) return names.error();
  std::erase_if(*names, [](const std::string& n) { return !IsValidDefinitionName(n); });
  std::sort(names->begin(), names->end());
  return names;
}

Result<std::vector<RevisionInfo>> DefinitionStore::History(const std::string& name) const {
  if (!IsValidDefinitionName(name)) return std::vector<RevisionInfo>{};
  auto lines = ReadLines(paths_.RevisionHistory(name));
  if (!lines.ok()) return lines.error();
  std::vector<RevisionInfo> out;
  for (const Json& line : *lines) {
    RevisionInfo info;
    info.revision = static_cast<int>(Int(line, "revision", 0));
    if (info.revision != static_cast<int>(out.size()) + 1) continue;  // not the next one: not ours
    info.time = Str(line, "time");
    info.file = Str(line, "file");
    info.format = Str(line, "format") == "json" ? DocFormat::kJson : DocFormat::kToml;
    info.sha256 = Str(line, "sha256");
    info.owner = Str(line, "owner");
    info.owner_uid = Int(line, "owner_uid", -1);
    out.push_back(std::move(info));
  }
  return out;
}

Result<std::pair<RevisionInfo, std::string>> DefinitionStore::Read(const std::string& name,
                                                                   std::optional<int> revision) const {
  auto history = History(name);
  if (!history.ok()) return history.error();
  if (history->empty()) {
    return MakeError("unknown_definition",
                     "there is no definition " + name + " (none in " + paths_.Definitions() +
                         " was ever accepted under that name)",
                     "definition");
  }
  const int n = revision.value_or(static_cast<int>(history->size()));
  if (n < 1 || n > static_cast<int>(history->size())) {
    return MakeError("unknown_definition",
                     "definition " + name + " has no revision " + std::to_string(n) + " (its latest is " +
                         std::to_string(history->size()) + ")",
                     "definition");
  }
  RevisionInfo info = (*history)[n - 1];
  auto text = ReadSmallFile(paths_.RevisionFile(name, n, info.format), kMaxHistory);
  if (!text.ok()) return text.error();
  return std::make_pair(std::move(info), std::move(text.value()));
}

Result<RevisionInfo> DefinitionStore::Add(const std::string& name, const std::string& file, DocFormat format,
                                          const std::string& text, const std::string& owner,
                                          int64_t owner_uid, TimePoint now) {
  auto history = History(name);
  if (!history.ok()) return history.error();
  if (auto st = EnsureDir(paths_.RevisionsDir(name)); !st.ok()) return st.error();
  RevisionInfo info;
  info.revision = static_cast<int>(history->size()) + 1;
  info.time = FormatTime(now);
  info.file = file;
  info.format = format;
  info.sha256 = Sha256Hex(text);
  info.owner = owner;
  info.owner_uid = owner_uid;
  // The file first, the line that makes it a revision after: a crash between
  // leaves a file the next Add replaces.
  if (auto st = WriteFileAtomic(paths_.RevisionFile(name, info.revision, format), text); !st.ok())
    return st.error();
  Json line = {{"revision", info.revision},  {"time", info.time},
               {"file", SanitizeUtf8(file)}, {"format", format == DocFormat::kJson ? "json" : "toml"},
               {"sha256", info.sha256},      {"owner", SanitizeUtf8(owner)},
               {"owner_uid", owner_uid}};
  // A line torn by a crash is ended first, so that this one stands alone.
  std::string torn;
  if (auto old = ReadSmallFile(paths_.RevisionHistory(name), kMaxHistory);
      old.ok() && !old->empty() && old->back() != '\n') {
    torn = "\n";
  }
  if (auto st = AppendDurable(paths_.RevisionHistory(name), torn + DumpJson(line) + "\n"); !st.ok()) {
    return st.error();
  }
  return info;
}

Status DefinitionStore::AddRun(const std::string& name, const std::string& run, int revision, TimePoint now,
                               SyncBatch* batch) {
  Json line = {{"run", run}, {"revision", revision}, {"time", FormatTime(now)}};
  return AppendDurable(paths_.RevisionRuns(name), DumpJson(line) + "\n", batch);
}

Result<std::vector<RunRecord>> DefinitionStore::Runs(const std::string& name) const {
  if (!IsValidDefinitionName(name)) return std::vector<RunRecord>{};
  auto lines = ReadLines(paths_.RevisionRuns(name));
  if (!lines.ok()) return lines.error();
  std::vector<RunRecord> out;
  for (const Json& line : *lines) {
    RunRecord r{Str(line, "run"), static_cast<int>(Int(line, "revision", 0)), Str(line, "time")};
    if (!r.run.empty()) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace spoold

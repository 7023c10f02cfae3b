#include "daemon/definitions.h"

#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "spool/dropped_file.h"
#include "spool/fileio.h"
#include "spool/intake.h"
#include "spool/json_util.h"
#include "spool/sha256.h"

namespace spoold {
namespace {

constexpr std::string_view kErrorSuffix = ".error.json";

// "<file>.error.json", shortened with a hash where it would pass NAME_MAX.
std::string ErrorFileOf(const std::string& file) {
  return FitName(file, kNameMax - kErrorSuffix.size()) + std::string(kErrorSuffix);
}

// The definition `file` names (without .toml/.json), and its format; nullopt
// for a name that is no definition's file at all (hidden, temporary, ours).
std::optional<std::pair<std::string, DocFormat>> DefinitionFileName(const std::string& file) {
  if (file.empty() || file[0] == '.' || !IsFinalName(file) || file.ends_with(kErrorSuffix))
    return std::nullopt;
  if (file.ends_with(".toml")) return std::make_pair(file.substr(0, file.size() - 5), DocFormat::kToml);
  if (file.ends_with(".json")) return std::make_pair(file.substr(0, file.size() - 5), DocFormat::kJson);
  return std::nullopt;  // editors' backups and notes: not definitions
}

std::string OtherFile(const std::string& name, DocFormat format) {
  return name + (format == DocFormat::kToml ? ".json" : ".toml");
}

}  // namespace

void DefinitionRegistry::Load() {
  auto names = store_.Names();
  if (!names.ok()) {
    spdlog::error("cannot read the definitions' revisions: {}", names.error().message);
    return;
  }
  for (const auto& name : *names) {
    auto latest = store_.Read(name, std::nullopt);
    if (!latest.ok()) {
      if (latest.error().code != "unknown_definition")
        spdlog::error("definition {}: {}", name, latest.error().message);
      continue;
    }
    State& state = defs_[name];
    state.latest = latest->first;
    state.text = latest->second;
    auto parsed = ParseDefinition(name, state.text, latest->first.format, *config_);
    if (parsed.ok()) {
      state.parsed = std::move(parsed.value());
    } else {
      // Valid when it was accepted; the configuration changed since (a pool
      // it names is gone). Its runs are refused with the reason.
      spdlog::warn("definition {}: revision {} no longer checks out: {}", name, state.latest.revision,
                   parsed.error().message);
    }
    if (auto runs = store_.Runs(name); runs.ok()) {
      // A crash between a run's line and its folder's commit takes the file
      // in again: a run counts once.
      std::set<std::string> distinct;
      for (const auto& run : *runs) distinct.insert(run.run);
      state.runs = static_cast<int64_t>(distinct.size());
      if (!runs->empty()) state.last_run = runs->back().run;
    }
  }
}

void DefinitionRegistry::SetConfig(const Config& config) {
  config_ = &config;
  for (auto& [name, state] : defs_) {
    auto parsed = ParseDefinition(name, state.text, state.latest.format, config);
    state.parsed.reset();
    if (parsed.ok()) state.parsed = std::move(parsed.value());
  }
  for (auto& [file, record] : files_) record.stamp = {};
}

bool DefinitionRegistry::MayRevise(const std::string& name, uid_t uid) const {
  if (::geteuid() != 0 || uid == 0) return true;
  auto it = defs_.find(name);
  return it == defs_.end() || it->second.latest.owner_uid == static_cast<int64_t>(uid);
}

bool DefinitionRegistry::Process(const std::string& file, TimePoint now) {
  auto parts = DefinitionFileName(file);
  if (!parts) return false;
  const auto& [name, format] = *parts;
  struct stat st {};
  if (::lstat(paths_.DefinitionFile(file).c_str(), &st) != 0) {
    // Gone: its error file goes too; the definition keeps its revisions, and
    // a run of its latest is refused until a file defines it again.
    const bool known = files_.erase(file) != 0;
    ClearError(file);
    const std::string other = OtherFile(name, format);
    if (auto it = files_.find(other); it != files_.end()) {
      it->second.stamp = {};  // refused beside this one, perhaps: read again
      Process(other, now);
    } else if (known && defs_.count(name) != 0) {
      spdlog::info("definition {}: {} was removed; its {} revisions are kept", name, PrintableName(file),
                   defs_[name].latest.revision);
    }
    return true;
  }
  FileRecord& record = files_[file];
  const Stamp stamp{st.st_ino, st.st_size,
                    static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  if (record.stamp == stamp) return true;  // read as it is already (accepted, or refused)
  record.stamp = stamp;
  if (!IsValidDefinitionName(name)) {
    Refuse(file,
           MakeError("bad_name",
                     "a definition's name (its file name without .toml/.json) must be 1 to 64 letters, "
                     "digits, '_' or '-', starting with a letter or digit"),
           now);
    return true;
  }
  if (!MayRevise(name, st.st_uid)) {
    Refuse(file,
           MakeError("not_permitted", "definition " + name + " belongs to " +
                                          OwnerName(defs_[name].latest.owner_uid) +
                                          " (its latest revision's owner); only they or root may change it"),
           now);
    return true;
  }
  const std::string other = OtherFile(name, format);
  if (struct stat ost{}; ::lstat(paths_.DefinitionFile(other).c_str(), &ost) == 0) {
    // Two files for one name: the one whose owner may revise it wins if the
    // other's may not (another user cannot block an owner's edits so);
    // otherwise neither is read.
    if (!(MayRevise(name, st.st_uid) && !MayRevise(name, ost.st_uid))) {
      Refuse(file,
             MakeError("duplicate_definition", "both " + name + ".toml and " + name + ".json define " + name +
                                                   "; remove one (the last good revision stays in force)"),
             now);
      if (files_.count(other) == 0) Process(other, now);  // said of both
      return true;
    }
  }
  auto read = ReadDroppedFile(paths_.Definitions(), file, static_cast<size_t>(config_->max_job_file_size));
  if (!read.ok()) {
    record.stamp = {};
    if (read.error().code == "vanished") return true;  // its removal comes as an event of its own
    if (read.error().code == "io_error") {
      spdlog::error("cannot read definitions/{}: {}", PrintableName(file), read.error().message);
      return true;
    }
    Refuse(file, read.error(), now);
    return true;
  }
  if (auto single = CheckSingleLink(file, *read); !single.ok()) {
    Refuse(file, single.error(), now);
    return true;
  }
  auto known = defs_.find(name);
  const std::string sha = Sha256Hex(read->bytes);
  if (known != defs_.end() && known->second.latest.sha256 == sha && known->second.latest.format == format) {
    ClearError(file);  // the same content again (touched, or back after an error was fixed)
    return true;
  }
  auto parsed = ParseDefinition(name, read->bytes, format, *config_);
  if (!parsed.ok()) {
    Refuse(file, parsed.error(), now);
    return true;
  }
  auto added = store_.Add(name, file, format, read->bytes, OwnerName(read->uid), read->uid, now);
  if (!added.ok()) {
    record.stamp = {};  // not recorded: read again at the next scan
    spdlog::error("definition {}: cannot record revision: {}", name, added.error().message);
    return true;
  }
  State& state = defs_[name];
  state.latest = *added;
  state.text = std::move(read->bytes);
  state.parsed = std::move(parsed.value());
  ClearError(file);
  spdlog::info("definition {}: revision {} from definitions/{}", name, added->revision, PrintableName(file));
  return true;
}

std::vector<std::string> DefinitionRegistry::Scan() {
  auto names = ListDir(paths_.Definitions());
  if (!names.ok()) {
    spdlog::error("cannot scan {}: {}", paths_.Definitions(), names.error().message);
    return {};
  }
  std::set<std::string> present(names->begin(), names->end());
  std::set<std::string> ours;
  for (const auto& [file, record] : files_) {
    if (!record.error.is_null()) ours.insert(ErrorFileOf(file));
  }
  std::vector<std::string> out;
  for (const auto& file : *names) {
    // An error file no refusal of ours stands behind (planted, or left by a
    // crash) goes, so that no reader trusts it.
    if (file.ends_with(kErrorSuffix) && ours.count(file) == 0) {
      (void)::unlink(paths_.DefinitionFile(file).c_str());
      continue;
    }
    if (DefinitionFileName(file)) out.push_back(file);
  }
  for (const auto& [file, record] : files_) {
    if (present.count(file) == 0) out.push_back(file);
  }
  return out;
}

void DefinitionRegistry::Refuse(const std::string& file, const Error& error, TimePoint now) {
  Json doc = RejectionDocument(file, error, now);
  Json same = doc;
  same.erase("time");
  FileRecord& record = files_[file];
  const std::string path = paths_.DefinitionFile(ErrorFileOf(file));
  if (record.error == same && PathExists(path)) return;  // said already
  record.error = same;
  if (auto st = WriteFileAtomic(path, DumpJson(doc, 2) + "\n"); !st.ok()) {
    spdlog::error("cannot write the error file of definitions/{}: {}", PrintableName(file),
                  st.error().message);
  }
  auto parts = DefinitionFileName(file);
  auto it = parts ? defs_.find(parts->first) : defs_.end();
  spdlog::warn(
      "definition file {} refused: {}{}: {}{}", PrintableName(file), error.code,
      error.field.empty() ? "" : " (" + PrintableName(error.field) + ")", SanitizeUtf8(error.message),
      it == defs_.end() ? ""
                        : "; revision " + std::to_string(it->second.latest.revision) + " stays in force");
}

void DefinitionRegistry::ClearError(const std::string& file) {
  if (auto it = files_.find(file); it != files_.end()) it->second.error = nullptr;
  const std::string path = paths_.DefinitionFile(ErrorFileOf(file));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    spdlog::error("cannot remove {}: {}", path, std::strerror(errno));
  }
}

std::string DefinitionRegistry::OwnerName(int64_t uid) const {
  struct passwd pw {};
  struct passwd* found = nullptr;
  char buf[4096];
  if (getpwuid_r(static_cast<uid_t>(uid), &pw, buf, sizeof buf, &found) != 0 || found == nullptr) {
    return std::to_string(uid);
  }
  return pw.pw_name;
}

Result<FoundDefinition> DefinitionRegistry::Find(const RunRef& ref) const {
  auto unknown = [&](const std::string& message) {
    return MakeError("unknown_definition", message, "definition");
  };
  auto it = defs_.find(ref.name);
  if (it == defs_.end()) {
    return unknown("there is no definition " + ref.name + " (no file " + ref.name + ".toml or " + ref.name +
                   ".json was ever accepted in definitions/)");
  }
  const State& state = it->second;
  const bool present = files_.count(ref.name + ".toml") != 0 || files_.count(ref.name + ".json") != 0;
  if (!ref.revision && !present) {
    return unknown("definition " + ref.name + " was removed from definitions/; its revisions are kept, and " +
                   ref.name + ":N runs revision N");
  }
  const int revision = ref.revision.value_or(state.latest.revision);
  if (revision == state.latest.revision && state.parsed) {
    // The latest, as kept in memory: a run of it reads nothing from disk.
    return FoundDefinition{*state.parsed, state.latest, state.text};
  }
  auto read = store_.Read(ref.name, revision);
  if (!read.ok()) return read.error();
  FoundDefinition found{Definition{}, read->first, std::move(read->second)};
  auto parsed = ParseDefinition(ref.name, found.text, found.info.format, *config_);
  if (!parsed.ok()) {
    return unknown("revision " + std::to_string(revision) + " of definition " + ref.name +
                   " no longer checks out with the configuration: " + parsed.error().message);
  }
  found.def = std::move(parsed.value());
  return found;
}

void DefinitionRegistry::RecordRun(const std::string& name, const std::string& run, int revision,
                                   TimePoint now, SyncBatch* batch) {
  State& state = defs_[name];
  ++state.runs;
  state.last_run = run;
  if (auto st = store_.AddRun(name, run, revision, now, batch); !st.ok()) {
    spdlog::error("definition {}: cannot record run {}: {}", name, run, st.error().message);
  }
}

Json DefinitionRegistry::IndexJson(
    const std::function<std::optional<std::string>(const std::string&)>& state_of) const {
  Json out = Json::object();
  // Names with a revision, and names of files refused before any was accepted.
  std::set<std::string> names;
  for (const auto& [name, state] : defs_) names.insert(name);
  for (const auto& [file, record] : files_) {
    if (auto parts = DefinitionFileName(file); parts && IsValidDefinitionName(parts->first))
      names.insert(parts->first);
  }
  for (const auto& name : names) {
    auto it = defs_.find(name);
    const State* state = it == defs_.end() ? nullptr : &it->second;
    // The file that defines it: its latest revision's name if that is there.
    std::string file;
    for (const std::string& candidate :
         {state != nullptr ? state->latest.file : std::string(), name + ".toml", name + ".json"}) {
      if (!candidate.empty() && files_.count(candidate) != 0) {
        file = candidate;
        break;
      }
    }
    Json error = nullptr;
    for (const std::string& candidate : {file, name + ".toml", name + ".json"}) {
      if (auto f = files_.find(candidate); f != files_.end() && !f->second.error.is_null()) {
        error = f->second.error;
        break;
      }
    }
    Json last_state = nullptr;
    if (state != nullptr && !state->last_run.empty()) {
      auto s = state_of(state->last_run);
      last_state = s ? Json(*s) : Json("removed");
    }
    out[name] = {
        {"revision", state != nullptr ? Json(state->latest.revision) : Json(nullptr)},
        {"updated", state != nullptr ? Json(state->latest.time) : Json(nullptr)},
        {"file", file.empty() ? Json(nullptr) : Json(SanitizeUtf8(file))},
        {"present", !file.empty()},
        {"runs", state != nullptr ? state->runs : 0},
        {"last_run", state == nullptr || state->last_run.empty() ? Json(nullptr) : Json(state->last_run)},
        {"last_run_state", std::move(last_state)},
        {"error", std::move(error)}};
  }
  return out;
}

}  // namespace spoold

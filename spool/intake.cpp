#include "spool/intake.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include "spool/control.h"
#include "spool/dropped_file.h"
#include "spool/failpoint.h"
#include "spool/fileio.h"

namespace spoold {
namespace {

constexpr std::string_view kErrorSuffix = ".error.json";

// Variables that steer the dynamic loader or libc (glibc's list of variables it
// drops for set-user-ID programs, less TMPDIR and TZDIR which only concern the
// job itself).
constexpr std::string_view kLoaderVariables[] = {
    "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH",
    "MALLOC_TRACE", "NIS_PATH",  "NLSPATH",        "RESOLV_HOST_CONF", "RES_OPTIONS"};

// A job that runs as its submitter, started by root, must not steer the loader:
// its environment is built by a privileged process.
Status CheckEnvForUserSwitch(const JobSpec& spec, const Document& doc) {
  for (const auto& [key, value] : spec.env) {
    bool refused = key.rfind("LD_", 0) == 0;
    for (auto name : kLoaderVariables) refused = refused || key == name;
    if (refused) {
      SourcePos pos = doc.PositionOf("env." + key);
      return MakeError("invalid_field",
                       "env." + key + " steers the dynamic loader and is refused for jobs that run as their submitter",
                       "env." + key, pos.line, pos.column);
    }
  }
  return OkStatus();
}

}  // namespace

// The name a rejected file is stored under: its own name if free, else with
// "~2", "~3", ... (shortened with a hash where the suffix would not fit).
std::string RejectedName(const std::string& name, int n) {
  return n == 1 ? name : FitName(name + "~" + std::to_string(n), kNameMax);
}

// Its error file: "<stored>.error.json", the stored name shortened with a hash
// where the whole would pass NAME_MAX; the file inside names both.
std::string RejectionErrorFile(const std::string& stored) {
  return FitName(stored, kNameMax - kErrorSuffix.size()) + std::string(kErrorSuffix);
}

Status Intake::RemoveIncoming(const std::string& name, std::pair<dev_t, ino_t> file) const {
  const std::string path = store_.Paths().IncomingFile(name);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return OkStatus();  // gone already
  if (st.st_dev != file.first || st.st_ino != file.second) return OkStatus();  // a newer drop
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return MakeError("io_error", ErrnoMessage("remove", path, errno));
  }
  return OkStatus();
}

Json RejectionDocument(const std::string& file, const Error& error, TimePoint now) {
  return {{"file", SanitizeUtf8(file)},
          {"time", FormatTime(now)},
          {"code", error.code},
          {"field", error.field.empty() ? Json(nullptr) : Json(SanitizeUtf8(error.field))},
          {"line", error.line > 0 ? Json(error.line) : Json(nullptr)},
          {"column", error.column > 0 ? Json(error.column) : Json(nullptr)},
          {"error", SanitizeUtf8(error.message)}};
}

Result<std::string> Intake::Quarantine(const std::string& folder, const std::string& name,
                                       const Error& error, TimePoint now) const {
  // The reason is written first, and the file moved beside it after: a file
  // in rejected/ never lacks its error file. When either step fails (a full
  // disk), the file stays where it was dropped, the error file written for
  // nothing is removed, and the next scan tries again. A crash between the two
  // steps leaves an error file without its file, which RepairRejected removes.
  const SpoolPaths& paths = store_.Paths();
  const std::string from = folder + "/" + name;
  for (int n = 1;; ++n) {
    if (n > 10000) return MakeError("io_error", "no free name in " + paths.Rejected());
    const std::string stored = RejectedName(name, n);
    const std::string error_file = paths.RejectedFile(RejectionErrorFile(stored));
    // Both names must be free: never overwrite anything there.
    if (PathExists(error_file) || PathExists(paths.RejectedFile(stored))) continue;
    Json doc = RejectionDocument(name, error, now);
    if (stored != name) doc["stored_as"] = SanitizeUtf8(stored);
    if (auto st = WriteFileAtomic(error_file, DumpJson(doc, 2) + "\n"); !st.ok()) {
      ::unlink(error_file.c_str());  // in case only the last sync failed
      return st.error();
    }
    SPOOLD_FAILPOINT("reject.after_error_file");
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, paths.RejectedFile(stored).c_str(), RENAME_NOREPLACE) ==
        0) {
      return stored;
    }
    const int err = errno;
    ::unlink(error_file.c_str());
    // Taken away by its writer meanwhile: nothing left to refuse.
    if (err == ENOENT) return MakeError("vanished", from + " was removed before it could be refused");
    if (err != EEXIST) return MakeError("io_error", ErrnoMessage("move to rejected/", from, err));
  }
}

namespace {

// Whether rejected/<name> is an error file that Quarantine wrote and then
// stopped (a crash) before moving its file beside it: it names the file, as
// stored, the file is not there, and nothing else says the name is a refused
// file in its own right (one that was dropped as x.error.json has its own
// error file beside it, and is not ours to delete).
bool IsOrphanErrorFile(const SpoolPaths& paths, const std::string& name,
                       const std::set<std::string>& present) {
  if (present.count(RejectionErrorFile(name)) != 0) return false;
  auto text = ReadSmallFile(paths.RejectedFile(name), 64 * 1024);
  if (!text.ok()) return false;
  Json doc = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("file") || !doc["file"].is_string()) return false;
  const Json& stored =
      doc.contains("stored_as") && doc["stored_as"].is_string() ? doc["stored_as"] : doc["file"];
  const std::string file = stored.get<std::string>();
  return RejectionErrorFile(file) == name && present.count(file) == 0;
}

}  // namespace

Intake::Repaired Intake::RepairRejected(TimePoint now) const {
  const SpoolPaths& paths = store_.Paths();
  auto names = ListDir(paths.Rejected());
  Repaired out;
  if (!names.ok()) return out;
  std::set<std::string> present(names->begin(), names->end());
  for (const auto& name : *names) {
    if (name.empty() || name[0] == '.') continue;
    if (name.ends_with(kErrorSuffix)) {
      // The file is still where it was dropped, and is refused again.
      if (IsOrphanErrorFile(paths, name, present) && ::unlink(paths.RejectedFile(name).c_str()) == 0) {
        ++out.orphans_removed;
      }
      continue;
    }
    if (present.count(RejectionErrorFile(name)) != 0) continue;
    // Check it again the way intake did; the first problem found is the error.
    Error error = MakeError("unrecorded",
                            "spoold stopped after moving this file here and before recording why; "
                            "it may have been a duplicate id or a full queue");
    auto file = ReadDroppedFile(paths.Rejected(), name, static_cast<size_t>(config_->max_job_file_size));
    if (!file.ok()) {
      if (file.error().code != "io_error" && file.error().code != "vanished") error = file.error();
    } else if (auto owner = CheckOwner(name, *file, config_->allow_root); !owner.ok()) {
      error = owner.error();
    } else if (auto doc = ParseDocument(file->bytes, file->format); !doc.ok()) {
      error = doc.error();
    } else if (doc->value.contains("action")) {
      // A control request (they are quarantined here too).
      if (auto request = ParseControlRequest(*doc); !request.ok()) error = request.error();
    } else if (auto checked = Check(*doc, file->stem); !checked.ok()) {
      error = checked.error();
    }
    Json doc = RejectionDocument(name, error, now);
    doc["recovered"] = true;
    if (WriteFileAtomic(paths.RejectedFile(RejectionErrorFile(name)), DumpJson(doc, 2) + "\n").ok())
      ++out.written;
  }
  return out;
}

IntakeOutcome Intake::Reject(const std::string& name, Error error, TimePoint now) const {
  IntakeOutcome out;
  out.name = name;
  auto stored = Quarantine(store_.Paths().Incoming(), name, error, now);
  if (!stored.ok() && stored.error().code == "vanished") {
    out.kind = IntakeKind::kVanished;
    return out;
  }
  if (!stored.ok()) {
    out.kind = IntakeKind::kFailed;
    out.error = stored.error();
    out.refusal = std::move(error);
    return out;
  }
  out.kind = IntakeKind::kRejected;
  out.error = std::move(error);
  out.stored_as = *stored;
  return out;
}

Intake::Owner Intake::OwnerOf(uid_t uid, gid_t file_gid, TimePoint now) {
  if (const Owner* known = owners_.Find(uid, now)) return *known;
  struct passwd pw {};
  struct passwd* found = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) != 0 || found == nullptr) {
    owners_.Erase(uid);
    return {std::to_string(uid), file_gid};
  }
  Owner owner{pw.pw_name, pw.pw_gid};
  owners_.Put(uid, owner, now);
  return owner;
}

Result<Intake::Checked> Intake::Check(const Document& doc, const std::string& id) const {
  auto ref = ParseRunRef(doc);
  if (!ref.ok()) return ref.error();
  if (!*ref) {
    auto spec = ValidateJobSpec(doc, id, *config_);
    if (!spec.ok()) return spec.error();
    return Checked{std::move(spec.value()), std::nullopt, std::nullopt};
  }
  auto found = definitions_
                   ? definitions_(**ref)
                   : Result<FoundDefinition>(MakeError(
                         "unknown_definition", "there is no definition " + (*ref)->name, "definition"));
  if (!found.ok()) {
    Error error = found.error();
    const SourcePos pos = doc.PositionOf("definition");
    error.field = "definition";
    error.line = pos.line;
    error.column = pos.column;
    return error;
  }
  auto run = ResolveRun(found->def, doc, id, *config_);
  if (!run.ok()) return run.error();
  JobSpec spec = std::move(run->spec);
  return Checked{std::move(spec), std::move(found.value()), std::move(run.value())};
}

JobStatus AcceptedStatus(const std::string& id, const JobSpec& spec, std::string owner, int64_t owner_uid,
                         Reason reason, TimePoint now) {
  JobStatus status;
  status.id = id;
  status.title = spec.title;
  status.pool = spec.pool;
  status.tags = spec.tags;
  status.priority = spec.priority;
  status.owner = std::move(owner);
  status.owner_uid = owner_uid;
  status.metadata = spec.metadata;
  status.state = JobState::kQueued;
  status.reason = reason;
  status.max_attempts = spec.retry.attempts + 1;
  status.created = now;
  status.updated = now;
  status.message = "accepted";
  // A job that waits for parents lists them all until the scheduler has looked
  // at each (it may find some ended already).
  status.after = spec.after;
  status.resources = spec.resources;
  if (spec.array) {
    TaskCounts counts;
    counts.total = counts.queued = spec.array->count;
    status.tasks = counts;
    status.failed_indexes = "";
    status.progress = 0;
  }
  if (reason == Reason::kDependency) {
    for (const auto& dep : spec.after) status.waiting_on.push_back(dep.job);
  }
  return status;
}

IntakeOutcome Intake::Process(const std::string& name, const AdmitFn& admit, TimePoint now) {
  IntakeOutcome out;
  out.name = name;
  if (!IsFinalName(name)) return out;  // kIgnored
  auto file = ReadDroppedFile(store_.Paths().Incoming(), name, static_cast<size_t>(config_->max_job_file_size));
  if (!file.ok()) {
    const std::string& code = file.error().code;
    if (code == "vanished") {
      out.kind = IntakeKind::kVanished;
    } else if (code == "io_error") {
      out.kind = IntakeKind::kFailed;
      out.error = file.error();
    } else {
      return Reject(name, file.error(), now);
    }
    return out;
  }
  SPOOLD_FAILPOINT("intake.after_read");
  const std::string id = file->stem;
  const DocFormat format = file->format;
  if (!IsValidJobId(id)) {
    return Reject(name,
                  MakeError("bad_id", "the job id (file name without .toml/.json) must be 1 to 128 "
                                      "letters, digits, '.', '_' or '-', starting with a letter or digit"),
                  now);
  }
  if (auto owner = CheckOwner(name, *file, config_->allow_root); !owner.ok()) {
    return Reject(name, owner.error(), now);
  }
  std::string& bytes = file->bytes;

  out.id = id;
  if (store_.Exists(id)) {
    auto existing = store_.ReadDroppedFile(id, 64 << 20);
    if (existing.ok() && existing->second == bytes) {
      out.kind = IntakeKind::kDuplicate;
      out.file = {file->dev, file->ino};
      return out;
    }
    return Reject(name, MakeError("duplicate_id", "a job with id " + id + " exists with different content"), now);
  }

  auto doc = ParseDocument(bytes, format);
  if (!doc.ok()) return Reject(name, doc.error(), now);
  auto checked = Check(*doc, id);
  if (!checked.ok() && checked.error().code == "io_error") {
    // A definition's revision could not be read now: the run waits in
    // incoming/ for the next scan rather than being refused for it.
    out.kind = IntakeKind::kFailed;
    out.error = checked.error();
    return out;
  }
  if (!checked.ok()) return Reject(name, checked.error(), now);
  JobSpec* spec = &checked->spec;
  const ResolvedRun* run = checked->run ? &*checked->run : nullptr;
  if (::geteuid() == 0 && file->uid != 0) {
    if (auto env = CheckEnvForUserSwitch(*spec, run != nullptr ? run->job : *doc); !env.ok()) {
      return Reject(name, env.error(), now);
    }
  }
  // A run is kept as the job it resolved to (job.json), which is what runs,
  // after a restart too; its file and the revision are kept beside it.
  spec->format = run != nullptr ? DocFormat::kJson : format;
  auto reason = admit(*spec);
  if (!reason.ok()) return Reject(name, reason.error(), now);

  const Owner owner = OwnerOf(file->uid, file->gid, now);
  JobStatus status = AcceptedStatus(id, *spec, owner.name, file->uid, *reason, now);

  NewJob job;
  job.id = id;
  job.format = spec->format;
  if (run != nullptr) {
    const FoundDefinition& def = *checked->definition;
    status.definition = {{"name", def.def.name}, {"revision", def.info.revision}, {"params", run->params}};
    job.extra_files = {
        {store_.Paths().RunFileName(format), std::move(bytes)},
        {"definition" + std::string(def.info.format == DocFormat::kJson ? ".json" : ".toml"), def.text}};
    bytes = DumpJson(run->job.value, 2) + "\n";
  }
  out.text = bytes;
  job.bytes = std::move(bytes);
  job.script = spec->script;
  job.owner_uid = file->uid;
  job.owner_gid = owner.gid;
  job.array = spec->array != nullptr;
  Event accepted{Level::kInfo, "accepted", 0, "accepted from incoming/" + SanitizeUtf8(name),
                 {{"state", StateName(status.state)},
                  {"reason", ReasonName(status.reason) ? Json(ReasonName(status.reason)) : Json(nullptr)},
                  {"pool", status.pool}}};
  // The dropped file goes only once the job folder is durable (SPEC.md section
  // 9). If it cannot be removed, the next scan finds it again and sees a
  // byte-identical duplicate.
  auto published = [this, name, dropped = std::make_pair(file->dev, file->ino)] {
    SPOOLD_FAILPOINT("intake.after_commit");
    (void)RemoveIncoming(name, dropped);
  };
  if (auto commit = store_.Commit(job, status, accepted, published); !commit.ok()) {
    out.kind = IntakeKind::kFailed;
    out.error = commit.error();
    return out;
  }
  out.kind = IntakeKind::kAccepted;
  out.spec = std::move(*spec);
  out.status = std::move(status);
  return out;
}

}  // namespace spoold

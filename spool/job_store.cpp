#include "spool/job_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "config/toml_safety.h"
#include "spool/failpoint.h"
#include "spool/fileio.h"
#include "spool/job_array.h"

namespace spoold {
namespace {

// The last complete line of a file, read from its end (events.jsonl can be long).
std::optional<std::string> LastLine(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size == 0) {
    ::close(fd);
    return std::nullopt;
  }
  const off_t want = std::min<off_t>(st.st_size, 65536);
  std::string buf(static_cast<size_t>(want), '\0');
  ssize_t n = ::pread(fd, buf.data(), buf.size(), st.st_size - want);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buf.resize(static_cast<size_t>(n));
  while (!buf.empty() && buf.back() == '\n') buf.pop_back();
  auto nl = buf.rfind('\n');
  return nl == std::string::npos ? buf : buf.substr(nl + 1);
}

}  // namespace

Status JobStore::Commit(const NewJob& job, JobStatus& status, const Event& accepted,
                        std::function<void()> published) {
  const std::string final_dir = paths_.JobDir(job.id);
  // A task of an array accepted this turn is made in place inside the
  // array's folder, which nobody sees until its own rename.
  const bool in_place = job.task && IsUnpublished(job.id);
  if (PathExists(in_place ? Here(job.id, final_dir) : final_dir)) {
    return MakeError("duplicate_id", "job folder exists: " + final_dir);
  }
  const std::string tmp = in_place ? Here(job.id, final_dir) : paths_.JobTmpDir(job.id);
  // A folder left half-made by a crash is not a job; start it again.
  if (auto st = RemoveTree(tmp); !st.ok()) return st;
  if (::mkdir(tmp.c_str(), 0755) != 0) return MakeError("io_error", ErrnoMessage("create folder", tmp, errno));

  auto fail = [&](const Status& st) {
    (void)RemoveTree(tmp);
    return st;
  };
  if (!job.task) {
    if (auto st = WriteNewFile(tmp + "/" + paths_.JobFileName(job.format), job.bytes, 0644, batch_);
        !st.ok()) {
      return fail(st);
    }
  }
  if (job.script && !job.task) {
    if (auto st = WriteNewFile(tmp + "/script", *job.script, 0555, batch_); !st.ok()) return fail(st);
  }
  for (const auto& [name, content] : job.extra_files) {
    if (auto st = WriteNewFile(tmp + "/" + name, content, 0644, batch_); !st.ok()) return fail(st);
  }
  for (const char* sub : {"/attempts", "/results", "/tasks"}) {
    if (std::string_view(sub) == "/tasks" && !job.array) continue;
    std::string dir = tmp + sub;
    if (::mkdir(dir.c_str(), 0755) != 0) return fail(MakeError("io_error", ErrnoMessage("create folder", dir, errno)));
  }
  if (geteuid() == 0 && job.owner_uid != 0) {
    // The job runs as its owner (SPEC.md section 5): it may write results/ and
    // its progress file, read the rest, and change nothing else.
    if (auto st = WriteNewFile(tmp + "/progress", "", 0644, batch_); !st.ok()) return fail(st);
    for (const char* mine : {"/results", "/progress"}) {
      std::string path = tmp + mine;
      if (::chown(path.c_str(), job.owner_uid, job.owner_gid) != 0) {
        return fail(MakeError("io_error", ErrnoMessage("chown", path, errno)));
      }
    }
    if (::chown(tmp.c_str(), 0, job.owner_gid) != 0 || ::chmod(tmp.c_str(), 0750) != 0) {
      return fail(MakeError("io_error", ErrnoMessage("chown", tmp, errno)));
    }
  }
  ++status.seq;
  if (auto st = WriteNewFile(tmp + "/events.jsonl",
                             EventLine(accepted, status.seq, job.accepted_at.value_or(status.created)), 0644,
                             batch_);
      !st.ok()) {
    return fail(st);
  }
  ++status.seq;
  if (auto st = WriteNewFile(tmp + "/status.json", DumpJson(StatusToJson(status)) + "\n", 0644, batch_);
      !st.ok()) {
    return fail(st);
  }
  if (in_place) return OkStatus();  // published with its array
  if (batch_ != nullptr) {
    // The flush syncs the folder's files, renames it into place, syncs again,
    // and only then runs `published`.
    unpublished_[job.id] = tmp;
    batch_->Rename(tmp, final_dir, std::move(published), [this, id = job.id] { unpublished_.erase(id); });
    return OkStatus();
  }
  if (auto st = FsyncPath(tmp); !st.ok()) return fail(st);
  SPOOLD_FAILPOINT("commit.before_rename");
  if (::rename(tmp.c_str(), final_dir.c_str()) != 0) {
    return fail(MakeError("io_error", ErrnoMessage("rename", tmp, errno)));
  }
  SPOOLD_FAILPOINT("commit.after_rename");
  if (auto st = FsyncPath(final_dir.substr(0, final_dir.rfind('/'))); !st.ok()) return st;
  if (published) published();
  return OkStatus();
}

std::map<std::string, std::string>::const_iterator JobStore::Unpublished(const std::string& id) const {
  if (unpublished_.empty()) return unpublished_.end();
  auto it = unpublished_.find(id);
  if (it != unpublished_.end()) return it;
  const size_t colon = id.find(':');
  return colon == std::string::npos ? unpublished_.end() : unpublished_.find(id.substr(0, colon));
}

Result<std::vector<int64_t>> JobStore::ListTasks(const std::string& array) const {
  auto names = ListDir(paths_.TasksDir(array));
  if (!names.ok()) return names.error();
  std::vector<int64_t> out;
  out.reserve(names->size());
  for (const auto& name : *names) {
    if (auto task = ParseTaskId(array + ":" + name)) out.push_back(task->index);
  }
  return out;
}

std::string JobStore::Here(const std::string& id, const std::string& path) const {
  auto it = Unpublished(id);
  if (it == unpublished_.end()) return path;
  const std::string dir = paths_.JobDir(it->first);
  SPOOLD_CHECK(path.compare(0, dir.size(), dir) == 0);
  return it->second + path.substr(dir.size());
}

Status JobStore::Replace(const std::string& id, const std::string& path, std::string_view text) const {
  // In a folder nobody sees yet, in place; else atomically, by the batch.
  if (IsUnpublished(id)) return OverwriteUnpublished(Here(id, path), text, batch_);
  return WriteFileAtomic(path, text, 0644, batch_);
}

Status JobStore::WriteStatus(JobStatus& status) {
  ++status.seq;
  SPOOLD_FAILPOINT("status.before_write");
  if (SPOOLD_FAILPOINT_FAILS("status.write_fails")) {
    return MakeError("io_error", "write " + paths_.StatusFile(status.id) + ": failure injected by a failpoint");
  }
  Status st = Replace(status.id, paths_.StatusFile(status.id), DumpJson(StatusToJson(status)) + "\n");
  SPOOLD_FAILPOINT("status.after_write");
  return st;
}

Status JobStore::AppendEvent(JobStatus& status, const Event& event) {
  ++status.seq;
  Status st = AppendDurable(Here(status.id, paths_.Events(status.id)), EventLine(event, status.seq, Now()), batch_);
  SPOOLD_FAILPOINT("events.after_append");
  return st;
}

Result<JobStatus> JobStore::Load(const std::string& id) const {
  auto text = ReadSmallFile(paths_.StatusFile(id), 64 << 20);
  if (!text.ok()) return text.error();
  // metadata is the only nested part, and it was bounded when the job was
  // accepted: anything deeper was not written by us.
  if (!JsonDepthWithin(*text, kMaxNesting + 4)) {
    return MakeError("io_error", paths_.StatusFile(id) + " is nested too deep");
  }
  Json json = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return MakeError("io_error", paths_.StatusFile(id) + " is not valid JSON");
  auto status = StatusFromJson(json);
  if (!status.ok()) return MakeError("io_error", paths_.StatusFile(id) + ": " + status.error().message);
  if (status->id != id) return MakeError("io_error", paths_.StatusFile(id) + " names another job");
  if (auto line = LastLine(paths_.Events(id))) {
    Json event = Json::parse(*line, nullptr, false);
    if (event.is_object() && event.contains("seq") && event["seq"].is_number_unsigned()) {
      status->seq = std::max(status->seq, event["seq"].get<uint64_t>());
    }
  }
  return status;
}

namespace {

// The first of job `id`'s files named by `name_of` (in TOML, then JSON) that exists.
Result<std::pair<DocFormat, std::string>> ReadFirst(const SpoolPaths& paths, const std::string& id,
                                                    size_t max_size,
                                                    std::string (SpoolPaths::*name_of)(DocFormat) const) {
  for (DocFormat format : {DocFormat::kToml, DocFormat::kJson}) {
    std::string path = paths.JobDir(id) + "/" + (paths.*name_of)(format);
    if (!PathExists(path)) continue;
    auto bytes = ReadSmallFile(path, max_size);
    if (!bytes.ok()) return bytes.error();
    return std::make_pair(format, std::move(bytes.value()));
  }
  return MakeError("io_error", "no job file in " + paths.JobDir(id));
}

}  // namespace

Result<std::pair<DocFormat, std::string>> JobStore::ReadJobFile(const std::string& id,
                                                                size_t max_size) const {
  return ReadFirst(paths_, id, max_size, &SpoolPaths::JobFileName);
}

Result<std::pair<DocFormat, std::string>> JobStore::ReadDroppedFile(const std::string& id,
                                                                    size_t max_size) const {
  auto run = ReadFirst(paths_, id, max_size, &SpoolPaths::RunFileName);
  return run.ok() ? run : ReadJobFile(id, max_size);
}

Result<std::vector<std::string>> JobStore::ListJobs(size_t expect) const {
  auto names = ListDir(paths_.Jobs(), expect);
  if (!names.ok()) return names.error();
  // Filtered in place: with 100,000 jobs a second vector of their names was
  // the largest block of the daemon's peak memory at start (6 MB).
  std::erase_if(*names, [](const std::string& name) { return name.empty() || name[0] == '.'; });
  return std::move(names.value());
}

Result<int> JobStore::CleanTemp() const {
  auto names = ListDir(paths_.Jobs());
  if (!names.ok()) return names.error();
  int removed = 0;
  for (const auto& name : *names) {
    if (name.size() > 5 && name[0] == '.' && name.ends_with(".tmp")) {
      if (auto st = RemoveTree(paths_.Jobs() + "/" + name); !st.ok()) return st.error();
      ++removed;
    }
  }
  return removed;
}

bool JobStore::Exists(const std::string& id) const { return PathExists(paths_.JobDir(id)); }

Status JobStore::Remove(const std::string& id) const {
  // Renamed out of the way first, so that a crash half-way leaves a temp folder
  // (cleaned at start) rather than a half-deleted job.
  const std::string doomed = paths_.JobTmpDir(id);
  if (::rename(paths_.JobDir(id).c_str(), doomed.c_str()) != 0) {
    return MakeError("io_error", ErrnoMessage("rename", paths_.JobDir(id), errno));
  }
  if (auto st = FsyncPath(paths_.Jobs()); !st.ok()) return st;
  return RemoveTree(doomed);
}

Result<AttemptLogs> JobStore::OpenAttemptLogs(const std::string& id, int attempt) const {
  if (auto st = EnsureDir(Here(id, paths_.AttemptsDir(id))); !st.ok()) return st.error();
  if (auto st = EnsureDir(Here(id, paths_.AttemptDir(id, attempt))); !st.ok()) return st.error();
  const std::string out = Here(id, paths_.StdoutLog(id, attempt));
  const std::string err = Here(id, paths_.StderrLog(id, attempt));
  AttemptLogs logs;
  logs.stdout_fd = ::open(out.c_str(),
                          O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (logs.stdout_fd < 0) {
    return MakeError("io_error", ErrnoMessage("create", out, errno));
  }
  logs.stderr_fd = ::open(err.c_str(),
                          O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (logs.stderr_fd < 0) {
    int error = errno;
    ::close(logs.stdout_fd);
    return MakeError("io_error", ErrnoMessage("create", err, error));
  }
  return logs;
}

Status JobStore::WriteResults(const std::string& id, const Json& item) const {
  SPOOLD_FAILPOINT("results.before_write");
  Status st = Replace(id, paths_.ResultsJson(id), DumpJson(item, 2) + "\n");
  SPOOLD_FAILPOINT("results.after_write");
  return st;
}

}  // namespace spoold

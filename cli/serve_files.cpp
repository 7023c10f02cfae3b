// Reading the spool beneath its root for spoolctl serve: RootFs opens every
// file relative to the root's descriptor and never follows a link, so a link
// planted in a job's folder or results (a job may write there) gives 404, not
// its target. On top of it, the readers the routes share: a job's folder from
// its id, and the index (index.json merged with index.active.json).
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "cli/serve.h"
#include "spool/fileio.h"
#include "spool/job_array.h"

namespace spoold::cli::serve {
namespace {

// Whether the kernel has openat2 (Linux 5.6); learnt at the first call.
std::atomic<bool> g_no_openat2{false};

// One component at a time, each with O_NOFOLLOW: the fallback without openat2.
int OpenByComponents(int root_fd, const std::string& rel, int flags) {
  int dir = ::dup(root_fd);
  if (dir < 0) return -errno;
  size_t start = 0;
  for (;;) {
    const size_t slash = rel.find('/', start);
    const std::string part =
        rel.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    const bool last = slash == std::string::npos;
    const int fd = ::openat(dir, part.c_str(),
                            last ? flags | O_NOFOLLOW : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    const int err = errno;
    ::close(dir);
    if (fd < 0) return -err;
    if (last) return fd;
    dir = fd;
    start = slash + 1;
  }
}

}  // namespace

bool IsPlainRelativePath(const std::string& rel) {
  if (rel.empty() || rel.size() > 4096) return false;
  size_t start = 0;
  for (;;) {
    const size_t slash = rel.find('/', start);
    const std::string_view part =
        std::string_view(rel).substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return rel.find('\0') == std::string::npos && rel.find('\\') == std::string::npos;
}

RootFs::~RootFs() {
  if (fd_ >= 0) ::close(fd_);
}

int RootFs::Open(const std::string& rel, bool directory) const {
  if (!IsPlainRelativePath(rel)) return -ENOENT;
  const int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (directory ? O_DIRECTORY : 0);
  int fd = -1;
  if (!g_no_openat2.load()) {
    struct open_how how;
    std::memset(&how, 0, sizeof how);
    how.flags = static_cast<uint64_t>(flags);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    fd = static_cast<int>(::syscall(SYS_openat2, fd_, rel.c_str(), &how, sizeof how));
    if (fd < 0 && errno == ENOSYS) g_no_openat2 = true;
    if (fd < 0 && errno != ENOSYS) return errno == ELOOP || errno == EXDEV ? -ENOENT : -errno;
  }
  if (fd < 0) {
    fd = OpenByComponents(fd_, rel, flags);
    if (fd < 0) return fd == -ELOOP || fd == -ENOTDIR ? -ENOENT : fd;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || (directory ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
    ::close(fd);
    return -ENOENT;
  }
  return fd;
}

Result<std::string> RootFs::Read(const std::string& rel, size_t max) const {
  NoteFileRead(rel);
  const int fd = Open(rel);
  if (fd < 0) {
    return MakeError(fd == -ENOENT || fd == -ENOTDIR ? "not_found" : "io_error",
                     ErrnoMessage("open", rel, -fd));
  }
  return ReadOpenFile(fd, rel, max);
}

Result<std::vector<std::string>> RootFs::List(const std::string& rel) const {
  const int fd = Open(rel, /*directory=*/true);
  if (fd < 0) return MakeError(fd == -ENOENT ? "not_found" : "io_error", ErrnoMessage("open", rel, -fd));
  // ListDir takes a path: /proc/self/fd/N names the folder opened beneath the root.
  auto names = ListDir("/proc/self/fd/" + std::to_string(fd));
  ::close(fd);
  return names;
}

bool RootFs::Exists(const std::string& rel, bool directory) const {
  const int fd = Open(rel, directory);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

std::string JobFolderOr404(const State& state, const std::string& id, httplib::Response& res) {
  if (!IsValidJobRef(id)) {
    SendError(res, 400, "bad_id", NotAJobMessage(id));
    return "";
  }
  std::string rel = state.ctx.Paths().JobDir(id).substr(state.ctx.Root().size() + 1);
  if (!state.fs->Exists(rel, /*directory=*/true)) {
    SendError(res, 404, "unknown_job", "no job " + id);
    return "";
  }
  return rel;
}

namespace {

// What identifies a version of a file the daemon replaces by rename.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = -1;
  int64_t mtime_ns = 0;
  bool operator==(const FileId&) const = default;
};

FileId Identify(const RootFs& fs, const std::string& rel) {
  FileId id;
  const int fd = fs.Open(rel);
  if (fd < 0) return id;
  struct stat st;
  if (::fstat(fd, &st) == 0) {
    id = FileId{st.st_dev, st.st_ino, st.st_size,
                int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
  }
  ::close(fd);
  return id;
}

Json ParseIndexFile(const RootFs& fs, const std::string& rel) {
  auto text = fs.Read(rel, size_t{1} << 30);
  if (!text.ok()) return nullptr;
  Json doc = Json::parse(*text, nullptr, false);
  return doc.is_object() && doc.contains("jobs") && doc["jobs"].is_object() ? doc : Json(nullptr);
}

// An index entry made from a job's status.json (SPEC.md section 7's fields).
Json EntryFromStatus(const Json& status) {
  Json entry = Json::object();
  for (const char* key : {"state", "reason", "pool", "title", "priority", "owner", "tags", "attempt",
                          "exit_code", "progress", "created", "started", "finished", "updated", "tasks"}) {
    if (status.contains(key)) entry[key] = status[key];
  }
  // after: [{"job", "on"}] as the ids (an entry of another shape is left out).
  if (auto after = status.find("after"); after != status.end() && after->is_array() && !after->empty()) {
    entry["after"] = Json::array();
    for (const auto& parent : *after) {
      if (const std::string job = JsonString(parent, "job"); !job.empty()) entry["after"].push_back(job);
    }
  }
  return entry;
}

struct IndexCache {
  std::mutex mu;
  FileId whole, active;
  Json merged;
};

}  // namespace

Result<Json> LoadIndex(State& state) {
  static IndexCache cache;
  const RootFs& fs = *state.fs;
  const FileId whole_id = Identify(fs, "index.json");
  const FileId active_id = Identify(fs, "index.active.json");
  std::lock_guard lock(cache.mu);
  if (!cache.merged.is_null() && whole_id == cache.whole && active_id == cache.active) return cache.merged;
  Json whole = ParseIndexFile(fs, "index.json");
  Json active = ParseIndexFile(fs, "index.active.json");
  if (whole.is_null() && active.is_null()) {
    return MakeError("no_index", "neither index.json nor index.active.json can be read in " +
                                     state.ctx.Root() + " (spoold writes them once it runs)");
  }
  const bool active_newer =
      !active.is_null() && (whole.is_null() || JsonString(active, "updated") >= JsonString(whole, "updated"));
  Json merged = active_newer ? active : whole;
  merged["schema"] = "spoold/index/v1";
  merged["jobs"] = whole.is_null() ? Json::object() : std::move(whole["jobs"]);
  if (active_newer) {
    Json& jobs = merged["jobs"];
    const Json& now_active = active["jobs"];
    for (const auto& [id, entry] : now_active.items()) jobs[id] = entry;
    // Active in index.json, gone from the newer active list: ended since.
    for (auto& [id, entry] : jobs.items()) {
      if (now_active.contains(id) || IsTerminalStateName(JsonString(entry, "state")) || !IsValidJobRef(id)) {
        continue;
      }
      auto text = fs.Read(state.ctx.Paths().StatusFile(id).substr(state.ctx.Root().size() + 1));
      Json status = text.ok() ? Json::parse(*text, nullptr, false) : Json(nullptr);
      if (status.is_object()) entry = EntryFromStatus(status);
    }
  }
  cache.whole = whole_id;
  cache.active = active_id;
  cache.merged = merged;
  return merged;
}

}  // namespace spoold::cli::serve

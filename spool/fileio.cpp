#include "spool/fileio.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "spool/failpoint.h"
#include "spool/sha256.h"
#include "spool/sync_batch.h"

namespace spoold {
namespace {

std::string DirName(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Error IoError(const std::string& what, const std::string& path, int err) {
  return MakeError("io_error", ErrnoMessage(what, path, err));
}

Status WriteAndSync(const std::string& path, std::string_view content, mode_t mode, int flags,
                    bool sync = true) {
  int fd = ::open(path.c_str(), flags | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return IoError("create", path, errno);
  if (!WriteAll(fd, content) || (sync && ::fsync(fd) != 0)) {
    int err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return IoError("write", path, err);
  }
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(path.c_str());
    return IoError("close", path, err);
  }
  return OkStatus();
}

}  // namespace

// Writes all of `data`, retrying short writes and EINTR.
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string ErrnoMessage(const std::string& what, const std::string& path, int err) {
  return what + " " + path + ": " + std::strerror(err);
}

Status FsyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return IoError("open", path, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return IoError("fsync", path, err);
  return OkStatus();
}

std::string FitName(const std::string& name, size_t max) {
  if (name.size() <= max) return name;
  std::string hash = Sha256Hex(name).substr(0, 12);
  return name.substr(0, max - hash.size() - 1) + "~" + hash;
}

Status WriteFileAtomic(const std::string& path, std::string_view content, mode_t mode, SyncBatch* batch) {
  std::string dir = DirName(path);
  // Derived from the name, so a temp file left by a crash is replaced by the
  // next write of the same file; shortened where ".<name>.tmp" would not fit.
  std::string tmp = dir + "/." + FitName(BaseName(path), kNameMax - 5) + ".tmp";
  // A temp file left by a crash (or an earlier write of this turn) is replaced.
  ::unlink(tmp.c_str());
  if (auto st = WriteAndSync(tmp, content, mode, O_CREAT | O_EXCL, batch == nullptr); !st.ok()) return st;
  if (batch != nullptr) {
    batch->Rename(tmp, path);
    return OkStatus();
  }
  SPOOLD_FAILPOINT("atomic.before_rename");
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return IoError("rename", path, err);
  }
  return FsyncPath(dir);
}

Status ReplaceFileNoSync(const std::string& path, std::string_view content, mode_t mode) {
  const std::string tmp = DirName(path) + "/." + FitName(BaseName(path), kNameMax - 5) + ".tmp";
  ::unlink(tmp.c_str());
  if (auto st = WriteAndSync(tmp, content, mode, O_CREAT | O_EXCL, /*sync=*/false); !st.ok()) return st;
  // The mode as asked, whatever the umask (a report is read by other users:
  // the node exporter runs as prometheus).
  if (::chmod(tmp.c_str(), mode) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return IoError("rename", path, err);
  }
  return OkStatus();
}

Status OverwriteUnpublished(const std::string& path, std::string_view content, SyncBatch* batch) {
  if (batch != nullptr) batch->MarkDirty();
  return WriteAndSync(path, content, 0644, O_CREAT | O_TRUNC, batch == nullptr);
}

Status WriteNewFile(const std::string& path, std::string_view content, mode_t mode, SyncBatch* batch) {
  return WriteAndSync(path, content, mode, O_CREAT | O_EXCL, batch == nullptr);
}

Status AppendDurable(const std::string& path, std::string_view data, SyncBatch* batch) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return IoError("open", path, errno);
  bool ok = WriteAll(fd, data) && (batch != nullptr || ::fdatasync(fd) == 0);
  if (batch != nullptr) batch->MarkDirty();
  int err = errno;
  ::close(fd);
  if (!ok) return IoError("append to", path, err);
  return OkStatus();
}

Result<std::string> ReadOpenFile(int fd, const std::string& path, size_t max_size) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return IoError("read", path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_size) {
      ::close(fd);
      return MakeError("too_large", path + " is larger than " + std::to_string(max_size) + " bytes");
    }
  }
  ::close(fd);
  return out;
}

Result<std::string> ReadSmallFile(const std::string& path, size_t max_size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return IoError("open", path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return MakeError("io_error", "not a regular file: " + path);
  }
  return ReadOpenFile(fd, path, max_size);
}

Status EnsureDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0 || errno == EEXIST) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return OkStatus();
    return MakeError("io_error", "not a folder: " + path);
  }
  return IoError("create folder", path, errno);
}

Status RemoveTree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return OkStatus();
    return IoError("stat", path, errno);
  }
  if (S_ISDIR(st.st_mode)) {
    auto names = ListDir(path);
    if (!names.ok()) return names.error();
    for (const auto& name : *names) {
      if (auto r = RemoveTree(path + "/" + name); !r.ok()) return r;
    }
    if (::rmdir(path.c_str()) != 0) return IoError("remove folder", path, errno);
    return OkStatus();
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return IoError("remove", path, errno);
  return OkStatus();
}

Result<std::vector<std::string>> ListDir(const std::string& path, size_t expect) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return IoError("open folder", path, errno);
  std::vector<std::string> names;
  names.reserve(expect);
  errno = 0;
  while (struct dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return IoError("read folder", path, err);
  std::sort(names.begin(), names.end());
  return names;
}

bool PathExists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace spoold

#include "spool/dropped_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "spool/fileio.h"
#include "spool/json_util.h"

namespace spoold {
namespace {

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

bool IsFinalName(const std::string& name) {
  return !name.empty() && name[0] != '.' && !EndsWith(name, ".tmp") && !EndsWith(name, ".part");
}

Result<DroppedFile> ReadDroppedFile(const std::string& dir, const std::string& name, size_t max_size) {
  const std::string path = dir + "/" + name;
  const std::string shown = PrintableName(name);
  // Look before opening: opening a device or a FIFO can block or have effects.
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return MakeError("vanished", path + " is gone");
    return MakeError("io_error", ErrnoMessage("stat", path, errno));
  }
  if (!S_ISREG(st.st_mode)) {
    const char* what = S_ISLNK(st.st_mode)    ? "a symbolic link"
                       : S_ISDIR(st.st_mode)  ? "a folder"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                                              : "not a regular file";
    return MakeError("not_regular_file", shown + " is " + what + "; drop a regular file");
  }
  DroppedFile file;
  if (EndsWith(name, ".toml")) {
    file.format = DocFormat::kToml;
  } else if (EndsWith(name, ".json")) {
    file.format = DocFormat::kJson;
  } else {
    return MakeError("unsupported_type", shown + " is neither .toml nor .json");
  }
  file.stem = name.substr(0, name.size() - 5);

  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return MakeError("vanished", path + " is gone");
    if (err == ELOOP || err == ENXIO) return MakeError("not_regular_file", shown + " is not a regular file");
    return MakeError("io_error", ErrnoMessage("open", path, err));
  }
  // From here on every fact comes from the open descriptor, not the name.
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return MakeError("not_regular_file", shown + " is not a regular file");
  }
  if (static_cast<size_t>(st.st_size) > max_size) {
    return MakeError("too_large", shown + " has " + std::to_string(st.st_size) +
                                      " bytes; spool.max_job_file_size is " + std::to_string(max_size));
  }
  file.uid = st.st_uid;
  file.gid = st.st_gid;
  file.links = st.st_nlink;
  file.dev = st.st_dev;
  file.ino = st.st_ino;
  file.bytes.reserve(static_cast<size_t>(st.st_size));
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return MakeError("io_error", ErrnoMessage("read", path, errno));
    }
    if (n == 0) break;
    file.bytes.append(buf, static_cast<size_t>(n));
    if (file.bytes.size() > max_size) {
      return MakeError("too_large", shown + " grew past spool.max_job_file_size while it was read");
    }
  }
  return file;
}

Status CheckSingleLink(const std::string& name, const DroppedFile& file) {
  if (file.links == 1) return OkStatus();
  return MakeError("not_permitted", PrintableName(name) + " has " + std::to_string(file.links) +
                                        " hard links; a dropped file must have exactly one");
}

Status CheckOwner(const std::string& name, const DroppedFile& file, bool allow_root) {
  const std::string shown = PrintableName(name);
  if (auto single = CheckSingleLink(name, file); !single.ok()) return single;
  const uid_t me = ::geteuid();
  if (me == 0) {
    if (file.uid == 0 && !allow_root) {
      return MakeError("not_permitted", shown + " is owned by root and security.allow_root is false");
    }
    return OkStatus();
  }
  if (file.uid != me) {
    return MakeError("not_permitted", shown + " is owned by uid " + std::to_string(file.uid) + ", but spoold (uid " +
                                          std::to_string(me) + ") is not root and runs jobs only as itself");
  }
  return OkStatus();
}

}  // namespace spoold

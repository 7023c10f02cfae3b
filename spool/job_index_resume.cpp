// JobIndex across a clean restart (job_index.h): the manifest a stop leaves,
// and the entries a start takes back from it.
//
// The manifest, <segment>.keys, is text: a header line
// "spoold-index-ended 2 SEGMENT_SIZE COUNT", then per ended entry
// "ID POOL OFFSET LENGTH STATE FINISHED_MS INO SIZE MTIME_NS", then "end"
// (version 1 had no POOL: it is not read, and the start reads every job). It is
// written under a temporary name and renamed, without fsync (a cache); one
// that does not read whole, or does not fit the segment, is ignored.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "spool/fileio.h"
#include "spool/job_index.h"

namespace spoold {
namespace {

constexpr const char* kMagic = "spoold-index-ended";
constexpr size_t kMaxManifest = size_t{1} << 31;

}  // namespace

std::optional<FileId> StatFileId(const std::string& path, int dir_fd) {
  struct stat st {};
  if (::fstatat(dir_fd, path.c_str(), &st, 0) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return FileId{static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size),
                static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

bool JobIndex::LoadManifest() {
  const std::string path = ManifestPath();
  const int manifest = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  // Read once: from now on the segment changes, and the manifest with it
  // would lie after a crash.
  ::unlink(path.c_str());
  if (manifest < 0) return false;
  // Read a megabyte at a time (the whole is 7 MB at 100,000 jobs: at a start
  // that would be a fifth of the daemon's peak memory), and parsed by hand:
  // 100,000 lines through an istringstream took most of a second.
  constexpr size_t kChunk = 1 << 20, kLongestLine = 4096;
  std::string buffer;
  size_t pos = 0;
  bool at_end = false;
  uint64_t total = 0;
  // Keeps at least a whole line ahead of `pos`, unless the file ends first.
  auto refill = [&]() {
    if (at_end || buffer.size() - pos >= kLongestLine) return;
    buffer.erase(0, pos);
    pos = 0;
    while (!at_end && buffer.size() < kChunk) {
      const size_t had = buffer.size();
      buffer.resize(kChunk);
      const ssize_t n = ::read(manifest, buffer.data() + had, kChunk - had);
      buffer.resize(had + static_cast<size_t>(std::max<ssize_t>(n, 0)));
      if (n < 0 && errno == EINTR) continue;
      at_end = n <= 0;
      total += static_cast<uint64_t>(std::max<ssize_t>(n, 0));
      if (total > kMaxManifest) at_end = true;
    }
  };
  auto word = [&]() -> std::string_view {
    refill();
    while (pos < buffer.size() && (buffer[pos] == ' ' || buffer[pos] == '\n')) ++pos;
    const size_t start = pos;
    while (pos < buffer.size() && buffer[pos] != ' ' && buffer[pos] != '\n') ++pos;
    return std::string_view(buffer).substr(start, pos - start);
  };
  auto number = [&word](auto& out) {
    const std::string_view w = word();
    return std::from_chars(w.data(), w.data() + w.size(), out).ec == std::errc() && !w.empty();
  };
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{manifest};
  int version = 0;
  uint64_t size = 0, count = 0;
  if (word() != kMagic || !number(version) || version != 2 || !number(size) || !number(count)) return false;
  std::unordered_map<std::string, Ended> carried;
  carried.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    const std::string id(word());  // the next word may refill the buffer
    const std::string pool(word());
    Ended e;
    int state = 0;
    FileId file;
    if (id.empty() || pool.empty() || !number(e.offset) || !number(e.length) || !number(state) ||
        !number(e.finished_ms) || !number(file.ino) || !number(file.size) || !number(file.mtime_ns)) {
      return false;
    }
    if (state < 0 || state > static_cast<int>(JobState::kCancelled) ||
        !IsTerminal(static_cast<JobState>(state)) || e.offset + e.length > size || e.length == 0) {
      return false;
    }
    e.state = static_cast<JobState>(state);
    e.pool = PoolIndex(pool);
    e.file = file;
    carried.emplace(std::move(id), e);
  }
  if (word() != "end") return false;
  int fd = ::open(segment_path_.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) != size) {
    if (fd >= 0) ::close(fd);
    return false;
  }
  fd_ = fd;
  segment_size_ = size;
  dead_bytes_ = size;  // until taken back
  carried_ = std::move(carried);
  return true;
}

bool JobIndex::Resume(const std::string& id, const FileId& file) {
  auto it = carried_.find(id);
  if (it == carried_.end() || it->second.file != file) return false;
  dead_bytes_ -= it->second.length;
  ended_.emplace(id, it->second);
  Count(it->second.pool, it->second.state, 1);
  carried_.erase(it);
  return true;
}

void JobIndex::EndResume() {
  // Holes, from entries not taken back, are squeezed out at the next Write.
  carried_.clear();
}

void JobIndex::SetFileId(const std::string& id, const FileId& file) {
  if (auto it = ended_.find(id); it != ended_.end()) it->second.file = file;
}

Status JobIndex::SaveManifest(const std::function<std::optional<FileId>(const std::string&)>& stat) {
  if (auto st = FlushPending(); !st.ok()) return st;
  const std::string path = ManifestPath();
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return MakeError("io_error", ErrnoMessage("create", tmp, errno));
  // Written a megabyte at a time; the header, whose count is known at the
  // end, is written over its place then (the count padded to a fixed width).
  auto header = [this](size_t count) {
    char line[96];
    std::snprintf(line, sizeof line, "%s 2 %20" PRIu64 " %20zu\n", kMagic, segment_size_, count);
    return std::string(line);
  };
  std::string out = header(0);
  bool ok = true;
  size_t count = 0;
  char line[256];
  for (auto& [id, e] : ended_) {
    if (!e.file) e.file = stat(id);
    if (!e.file) continue;  // gone: the next start finds nothing to take back
    std::snprintf(line, sizeof line,
                  " %" PRIu64 " %" PRIu32 " %d %" PRId64 " %" PRIu64 " %" PRIu64 " %" PRId64 "\n", e.offset,
                  e.length, static_cast<int>(e.state), e.finished_ms, e.file->ino, e.file->size,
                  e.file->mtime_ns);
    out += id;
    out += ' ';
    out += pools_[e.pool];
    out += line;
    ++count;
    if (out.size() >= (1 << 20)) {
      ok = ok && WriteAll(fd, out);
      out.clear();
    }
  }
  out += "end\n";
  ok = ok && WriteAll(fd, out);
  const std::string head = header(count);
  ok = ok && ::pwrite(fd, head.data(), head.size(), 0) == static_cast<ssize_t>(head.size());
  int err = errno;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) err = errno;
    ::unlink(tmp.c_str());
    return MakeError("io_error", ErrnoMessage("write", path, err));
  }
  return OkStatus();
}

}  // namespace spoold

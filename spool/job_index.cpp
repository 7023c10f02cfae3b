#include "spool/job_index.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>

#include "spool/fileio.h"
#include "spool/json_util.h"

namespace spoold {
namespace {

constexpr size_t kAppendChunk = 64 * 1024;  // entries are buffered up to this much
constexpr int64_t kUnknownFinish = INT64_MIN;

// Copies `length` bytes at `offset` of `in` to the current position of `out`,
// in the kernel where the file system allows it.
bool CopyRange(int in, uint64_t offset, uint64_t length, int out) {
  auto off = static_cast<loff_t>(offset);
  while (length > 0) {
    ssize_t n = ::copy_file_range(in, &off, out, nullptr, length, 0);
    if (n > 0) {
      length -= static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)) return false;
    // No in-kernel copy here: through a buffer.
    std::string buf(std::min<uint64_t>(length, 1 << 20), '\0');
    while (length > 0) {
      ssize_t r = ::pread(in, buf.data(), std::min<uint64_t>(length, buf.size()), off);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      if (!WriteAll(out, std::string_view(buf.data(), static_cast<size_t>(r)))) return false;
      off += r;
      length -= static_cast<uint64_t>(r);
    }
  }
  return true;
}

std::string EntryText(const std::string& id, const JobStatus& status) {
  // Job ids are ASCII letters, digits, '.', '_' and '-': quoting needs no escapes.
  // Sized exactly: the text of every active job stays in memory (about 300
  // bytes each; appending would leave half as much again unused).
  const std::string entry = DumpJson(IndexEntry(status));
  std::string text;
  text.reserve(id.size() + 3 + entry.size());
  text.append(1, '"').append(id).append("\":").append(entry);
  return text;
}

}  // namespace

JobIndex::JobIndex(std::string segment_path) : segment_path_(std::move(segment_path)) {}

JobIndex::~JobIndex() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

// The name a replaced index is kept under until it is deleted: beside it.
std::string ReplacedIndexPath(const std::string& sibling) {
  return sibling.substr(0, sibling.rfind('/') + 1) + ".index.json.old";
}

}  // namespace

Status JobIndex::Open() {
  ::unlink(ReplacedIndexPath(segment_path_).c_str());
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  segment_size_ = dead_bytes_ = 0;
  pending_.clear();
  active_.clear();
  ended_.clear();
  carried_.clear();
  counts_.clear();
  if (LoadManifest()) return OkStatus();
  fd_ = ::open(segment_path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0) return MakeError("io_error", ErrnoMessage("create", segment_path_, errno));
  return OkStatus();
}

uint16_t JobIndex::PoolIndex(const std::string& pool) {
  for (size_t i = 0; i < pools_.size(); ++i) {
    if (pools_[i] == pool) return static_cast<uint16_t>(i);
  }
  // More pools than this have no place in a configuration; the rest share
  // the last slot rather than overflow.
  if (pools_.size() == UINT16_MAX) return UINT16_MAX - 1;
  pools_.push_back(pool);
  return static_cast<uint16_t>(pools_.size() - 1);
}

std::vector<JobIndex::PoolStateCount> JobIndex::Counts() const {
  std::vector<PoolStateCount> out;
  for (const auto& [key, count] : counts_) {
    if (count != 0) out.push_back({pools_[key.first], key.second, count});
  }
  return out;
}

void JobIndex::Set(const std::string& id, const JobStatus& status) {
  if (auto old = ended_.find(id); old != ended_.end()) {
    dead_bytes_ += old->second.length;
    Count(old->second.pool, old->second.state, -1);
    ended_.erase(old);
  }
  const uint16_t pool = PoolIndex(status.pool);
  Count(pool, status.state, 1);
  if (!IsTerminal(status.state)) {
    auto [it, added] = active_.try_emplace(id);
    if (!added) Count(it->second.pool, it->second.state, -1);
    it->second = Active{EntryText(id, status), status.state, pool};
    return;
  }
  if (auto it = active_.find(id); it != active_.end()) {
    Count(it->second.pool, it->second.state, -1);
    active_.erase(it);
  }
  std::string text(1, ',');
  text += EntryText(id, status);
  Ended entry;
  entry.offset = segment_size_ + pending_.size();
  entry.length = static_cast<uint32_t>(text.size());
  entry.state = status.state;
  entry.pool = pool;
  entry.finished_ms = status.finished ? status.finished->time_since_epoch().count() : kUnknownFinish;
  ended_[id] = entry;
  pending_ += text;
  // A failed write is retried at the next one (and at Write, which reports it).
  if (pending_.size() >= kAppendChunk) (void)FlushPending();
}

bool JobIndex::Erase(const std::string& id) {
  if (auto active = active_.find(id); active != active_.end()) {
    Count(active->second.pool, active->second.state, -1);
    active_.erase(active);
    return true;
  }
  auto it = ended_.find(id);
  if (it == ended_.end()) return false;
  dead_bytes_ += it->second.length;
  Count(it->second.pool, it->second.state, -1);
  ended_.erase(it);
  return true;
}

bool JobIndex::Contains(const std::string& id) const { return active_.count(id) != 0 || ended_.count(id) != 0; }

std::vector<std::string> JobIndex::NotIn(const std::vector<std::string>& listed) const {
  std::vector<std::string> out;
  auto check = [&](const std::string& id) {
    if (!std::binary_search(listed.begin(), listed.end(), id)) out.push_back(id);
  };
  for (const auto& [id, entry] : active_) check(id);
  for (const auto& [id, entry] : ended_) check(id);
  return out;
}

std::optional<JobState> JobIndex::StateOf(const std::string& id) const {
  if (auto it = active_.find(id); it != active_.end()) return it->second.state;
  if (auto it = ended_.find(id); it != ended_.end()) return it->second.state;
  return std::nullopt;
}

std::optional<TimePoint> JobIndex::FinishedOf(const std::string& id) const {
  auto it = ended_.find(id);
  if (it == ended_.end() || it->second.finished_ms == kUnknownFinish) return std::nullopt;
  return TimePoint(std::chrono::milliseconds(it->second.finished_ms));
}

std::vector<std::string> JobIndex::EndedBefore(TimePoint cutoff) const {
  std::vector<std::string> out;
  const int64_t limit = cutoff.time_since_epoch().count();
  for (const auto& [id, entry] : ended_) {
    if (entry.finished_ms != kUnknownFinish && entry.finished_ms < limit) out.push_back(id);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status JobIndex::FlushPending() {
  if (fd_ < 0) return MakeError("io_error", segment_path_ + " is not open");
  while (!pending_.empty()) {
    ssize_t n = ::pwrite(fd_, pending_.data(), pending_.size(), static_cast<off_t>(segment_size_));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return MakeError("io_error", ErrnoMessage("write", segment_path_, n < 0 ? errno : ENOSPC));
    segment_size_ += static_cast<uint64_t>(n);
    pending_.erase(0, static_cast<size_t>(n));
  }
  return OkStatus();
}

// Rewrites the segment without the holes: the live entries in file order,
// copied in runs of neighbours.
Status JobIndex::Compact() {
  std::vector<Ended*> live;
  live.reserve(ended_.size());
  for (auto& [id, entry] : ended_) live.push_back(&entry);
  std::sort(live.begin(), live.end(), [](const Ended* a, const Ended* b) { return a->offset < b->offset; });
  const std::string tmp = segment_path_ + ".tmp";
  int out = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (out < 0) return MakeError("io_error", ErrnoMessage("create", tmp, errno));
  // The new offsets are applied only once the new file is in place.
  std::vector<uint64_t> moved(live.size());
  uint64_t written = 0;
  size_t i = 0;
  while (i < live.size()) {
    const uint64_t start = live[i]->offset;
    uint64_t end = start;
    size_t j = i;
    for (; j < live.size() && live[j]->offset == end; ++j) {
      moved[j] = written + (end - start);
      end += live[j]->length;
    }
    if (!CopyRange(fd_, start, end - start, out)) {
      int err = errno;
      ::close(out);
      ::unlink(tmp.c_str());
      return MakeError("io_error", ErrnoMessage("copy into", tmp, err));
    }
    written += end - start;
    i = j;
  }
  if (::rename(tmp.c_str(), segment_path_.c_str()) != 0) {
    int err = errno;
    ::close(out);
    ::unlink(tmp.c_str());
    return MakeError("io_error", ErrnoMessage("rename", tmp, err));
  }
  for (size_t k = 0; k < live.size(); ++k) live[k]->offset = moved[k];
  ::close(fd_);
  fd_ = out;
  segment_size_ = written;
  dead_bytes_ = 0;
  return OkStatus();
}

Status JobIndex::Write(const std::string& path, std::string header, std::string* replaced) {
  if (replaced != nullptr) replaced->clear();
  if (auto st = FlushPending(); !st.ok()) return st;
  if (dead_bytes_ > 0) {
    if (auto st = Compact(); !st.ok()) return st;
  }
  return WriteDocument(path, std::move(header), /*with_ended=*/true, replaced);
}

Status JobIndex::WriteActive(const std::string& path, std::string header) {
  return WriteDocument(path, std::move(header), /*with_ended=*/false, nullptr);
}

Status JobIndex::WriteDocument(const std::string& path, std::string header, bool with_ended,
                               std::string* replaced) {
  SPOOLD_CHECK(!header.empty() && header.back() == '}');
  header.pop_back();
  header += ",\"jobs\":{";
  const size_t slash = path.rfind('/') + 1;
  const std::string tmp = path.substr(0, slash) + "." + path.substr(slash) + ".tmp";
  ::unlink(tmp.c_str());
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (out < 0) return MakeError("io_error", ErrnoMessage("create", tmp, errno));
  // The active entries go out 256 KB at a time: with 20,000 queued jobs, all
  // of them in one string would be 6 MB more at the daemon's peak.
  bool ok = true;
  bool first = true;
  for (const auto& [id, entry] : active_) {
    if (!first) header += ',';
    first = false;
    header += entry.json;
    if (header.size() >= (256 << 10)) {
      ok = ok && WriteAll(out, header);
      header.clear();
    }
  }
  // Every segment entry starts with its comma: with no active entry before
  // them, the first one's is skipped.
  const uint64_t ended = with_ended ? segment_size_ : 0;
  const uint64_t skip = first && ended > 0 ? 1 : 0;
  ok = ok && WriteAll(out, header) && CopyRange(fd_, skip, ended - skip, out) && WriteAll(out, "}}\n");
  int err = errno;
  if (::close(out) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return MakeError("io_error", ErrnoMessage("write", tmp, err));
  }
  // The new file and the old are swapped (RENAME_EXCHANGE), not renamed over:
  // ext4 starts writing out a file renamed over another at once
  // (auto_da_alloc), which at 100,000 jobs is 30 MB at every write, on the
  // disk the jobs' syncs wait for; swapped, it is written back like any file,
  // or never if it is replaced first. The old one, now named `tmp`, becomes
  // the kept replaced file when there is none still being deleted, else it is
  // freed here.
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_EXCHANGE) == 0) {
    const std::string old = ReplacedIndexPath(path);
    if (replaced != nullptr &&
        ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, old.c_str(), RENAME_NOREPLACE) == 0) {
      *replaced = old;
    } else {
      ::unlink(tmp.c_str());
    }
    return OkStatus();
  }
  // No index yet (or a file system without the exchange): renamed over. A
  // second link keeps the replaced file's blocks from being freed by the
  // rename. It fails when there is no index yet, or the previous replaced one
  // is still there: then the rename frees it, as without `replaced`.
  std::string kept;
  if (replaced != nullptr && ::link(path.c_str(), ReplacedIndexPath(path).c_str()) == 0) {
    kept = ReplacedIndexPath(path);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    if (!kept.empty()) ::unlink(kept.c_str());
    return MakeError("io_error", ErrnoMessage("rename", tmp, err));
  }
  if (replaced != nullptr) *replaced = std::move(kept);
  return OkStatus();
}

}  // namespace spoold

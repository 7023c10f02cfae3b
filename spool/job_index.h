// The entries of index.json (SPEC.md section 7), kept so that neither memory nor
// the cost of a write grows with the number of jobs that have ended.
//
// A job's entry is serialised once per change. Entries of jobs still queued or
// running live in memory. An ended job's entry is appended once to a segment
// file (<root>/.index.ended, the daemon's own cache, rebuilt at every start) and
// memory keeps only where it is, the job's state and its finish time: what
// retention and control requests need. Writing index.json copies the segment
// inside the kernel (copy_file_range), so 100,000 ended jobs cost no memory of
// ours and no serialisation. Removing ended entries (retention) leaves holes;
// they are squeezed out, in one sequential pass, before the next write.
//
// Owns the segment's descriptor. Not thread-safe (the daemon has one thread).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/result.h"
#include "spool/status.h"

namespace spoold {

class JobIndex {
 public:
  explicit JobIndex(std::string segment_path);
  ~JobIndex();
  JobIndex(const JobIndex&) = delete;
  JobIndex& operator=(const JobIndex&) = delete;

  // Starts an empty segment (truncating what a previous run left), and
  // removes a replaced index a previous run left (see Write).
  Status Open();

  // Sets a job's entry. An ended job's entry moves to the segment; if the
  // segment cannot be written (disk full), it stays in memory and is moved at a
  // later write.
  void Set(const std::string& id, const JobStatus& status);
  // Removes a job's entry; false if there was none.
  bool Erase(const std::string& id);

  bool Contains(const std::string& id) const;
  // The ids with an entry that `listed` (sorted) does not hold.
  std::vector<std::string> NotIn(const std::vector<std::string>& listed) const;
  // The recorded state of a job with an entry.
  std::optional<JobState> StateOf(const std::string& id) const;
  size_t size() const { return active_.size() + ended_.size(); }
  // Jobs that ended before `cutoff` (for retention).
  std::vector<std::string> EndedBefore(TimePoint cutoff) const;

  // Replaces `path` (atomically, without fsync: a cache) with `header` (a JSON
  // object, the document without "jobs") plus "jobs" holding every entry.
  // With `replaced`, the replaced file is not freed by the rename (30 MB at
  // 100,000 jobs: half the cost of a write): it is kept under another name,
  // returned there for the caller to delete, say in a thread. Empty when there
  // was none, or the previous one is not deleted yet (then the rename frees it).
  Status Write(const std::string& path, std::string header, std::string* replaced = nullptr);

  // Bytes of ended entries on disk, holes included (for tests and sizing).
  uint64_t segment_bytes() const { return segment_size_ + pending_.size(); }

 private:
  struct Active {
    std::string json;  // "id":{...}
    JobState state = JobState::kQueued;
  };
  struct Ended {
    uint64_t offset = 0;  // of its ",\"id\":{...}" in the segment
    uint32_t length = 0;
    JobState state = JobState::kSucceeded;
    int64_t finished_ms = 0;
  };
  Status FlushPending();
  Status Compact();

  std::string segment_path_;
  int fd_ = -1;
  uint64_t segment_size_ = 0;  // bytes written to the file
  uint64_t dead_bytes_ = 0;    // of entries since removed or replaced
  std::string pending_;        // appended entries not yet written
  std::map<std::string, Active> active_;
  std::unordered_map<std::string, Ended> ended_;
};

}  // namespace spoold

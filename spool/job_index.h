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
// A clean stop leaves a manifest beside the segment (SaveManifest): where each
// ended entry is, and which status.json it was made from (inode, size,
// modification time). The next start keeps the segment and takes an entry
// back (Resume) when its job's status.json is still that file, without
// reading it: a restart with 100,000 ended jobs stats them instead of parsing
// them. Every status.json is replaced by a rename, so any change to one is a
// new inode and is read again. After a crash there is no manifest, and every
// job is read.
//
// Owns the segment's descriptor. Not thread-safe (the daemon has one thread).
#pragma once

#include <fcntl.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/result.h"
#include "spool/status.h"

namespace spoold {

// Which status.json an ended entry was made from.
struct FileId {
  uint64_t ino = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileId&) const = default;
};

// The FileId of `path` (relative to `dir_fd`, if given) now, or nullopt if
// it is no regular file.
std::optional<FileId> StatFileId(const std::string& path, int dir_fd = AT_FDCWD);

class JobIndex {
 public:
  explicit JobIndex(std::string segment_path);
  ~JobIndex();
  JobIndex(const JobIndex&) = delete;
  JobIndex& operator=(const JobIndex&) = delete;

  // Starts the segment: the one a clean stop left with its manifest, whose
  // entries wait for Resume, or else an empty one (truncating what a crashed
  // run left). Removes a replaced index a previous run left (see Write) and
  // the manifest (it describes the segment only until it changes).
  Status Open();

  // At start, before any Set: takes back the ended entry of `id` that the
  // last clean stop left, if its status.json is still `file`. False if there
  // is none or the file changed: the caller reads the job.
  bool Resume(const std::string& id, const FileId& file);
  // Ends the start: entries not taken back are dropped.
  void EndResume();
  // The status.json an ended entry was made from, when the caller knows it
  // (it read the file); SaveManifest stats the others.
  void SetFileId(const std::string& id, const FileId& file);

  // At a clean stop, after the last Write: the manifest for the next start.
  // `stat` gives a job's status.json as it is now, or nullopt. A failure
  // only costs the next start its shortcut.
  Status SaveManifest(const std::function<std::optional<FileId>(const std::string&)>& stat);

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
  // How many entries each pool has in each state (the metrics' spoold_jobs),
  // kept as entries change: reading it costs nothing per job.
  struct PoolStateCount {
    std::string pool;
    JobState state = JobState::kQueued;
    int64_t count = 0;
  };
  std::vector<PoolStateCount> Counts() const;
  // When an ended job finished, as its entry records it.
  std::optional<TimePoint> FinishedOf(const std::string& id) const;
  // Jobs that ended before `cutoff` (for retention).
  std::vector<std::string> EndedBefore(TimePoint cutoff) const;

  // Replaces `path` (atomically, without fsync: a cache) with `header` (a JSON
  // object, the document without "jobs") plus "jobs" holding every entry.
  // With `replaced`, the replaced file is not freed by the rename (30 MB at
  // 100,000 jobs: half the cost of a write): it is kept under another name,
  // returned there for the caller to delete, say in a thread. Empty when there
  // was none, or the previous one is not deleted yet (then the rename frees it).
  Status Write(const std::string& path, std::string header, std::string* replaced = nullptr);

  // Replaces `path` as Write does, with the active entries only (queued and
  // running jobs): index.active.json, a few kilobytes where index.json is
  // tens of megabytes of ended jobs.
  Status WriteActive(const std::string& path, std::string header);

  // Bytes of ended entries on disk, holes included (for tests and sizing).
  uint64_t segment_bytes() const { return segment_size_ + pending_.size(); }

 private:
  struct Active {
    std::string json;  // "id":{...}
    JobState state = JobState::kQueued;
    uint16_t pool = 0;  // in pools_
  };
  struct Ended {
    uint64_t offset = 0;  // of its ",\"id\":{...}" in the segment
    uint32_t length = 0;
    JobState state = JobState::kSucceeded;
    uint16_t pool = 0;  // in pools_
    int64_t finished_ms = 0;
    std::optional<FileId> file;  // the status.json it was made from, if known
  };
  Status WriteDocument(const std::string& path, std::string header, bool with_ended, std::string* replaced);
  Status FlushPending();
  Status Compact();
  bool LoadManifest();  // job_index_resume.cpp
  std::string ManifestPath() const { return segment_path_ + ".keys"; }

  // Pool names, each once (an entry keeps its pool's position), and the
  // entries per (pool, state).
  uint16_t PoolIndex(const std::string& pool);
  void Count(uint16_t pool, JobState state, int64_t delta) { counts_[{pool, state}] += delta; }
  std::vector<std::string> pools_;
  std::map<std::pair<uint16_t, JobState>, int64_t> counts_;

  std::string segment_path_;
  int fd_ = -1;
  uint64_t segment_size_ = 0;  // bytes written to the file
  uint64_t dead_bytes_ = 0;    // of entries since removed or replaced
  std::string pending_;        // appended entries not yet written
  std::map<std::string, Active> active_;
  std::unordered_map<std::string, Ended> ended_;
  std::unordered_map<std::string, Ended> carried_;  // from the last clean stop, until Resume
};

}  // namespace spoold

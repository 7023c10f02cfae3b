// How jobs removed by retention ended (SPEC.md section 5, "Dependencies"): one
// line per removed job in <root>/.tombstones, {"id", "state", "reason",
// "finished"}, so
// that a job naming a removed parent in `after` is decided by the parent's
// real end instead of waiting for it as if it had never been submitted. A
// tombstone is kept `keep` after the job finished (0: for ever); the file is
// rewritten without the expired ones when they are the larger part. A job
// submitted later under the same id shadows its tombstone (the daemon asks the
// living jobs first). Owns the file; no other state.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/duration.h"
#include "config/result.h"
#include "spool/status.h"

namespace spoold {

class Tombstones {
 public:
  struct Entry {
    std::string id;
    JobState state = JobState::kSucceeded;
    Reason reason = Reason::kNone;
    TimePoint finished{};
  };

  Tombstones(std::string path, Millis keep) : path_(std::move(path)), keep_(keep) {}

  // Reads the file (a missing one is empty), dropping expired entries and
  // lines that are not ours (a torn last line after a crash); rewrites it if
  // it dropped any.
  Status Open(TimePoint now);

  // Records `entries`, durably (one write, one fdatasync), before their
  // folders are removed.
  Status Bury(const std::vector<Entry>& entries, TimePoint now);

  // How a removed job ended, if it is remembered and not expired at `now`.
  std::optional<Entry> Find(const std::string& id, TimePoint now) const;

  size_t size() const { return live_.size(); }
  void SetKeep(Millis keep) { keep_ = keep; }  // a reloaded configuration

 private:
  struct Kept {
    JobState state;
    Reason reason;
    int64_t finished_ms;
  };
  void Expire(TimePoint now);
  Status Rewrite();

  std::string path_;
  Millis keep_;
  std::unordered_map<std::string, Kept> live_;
  size_t lines_ = 0;  // in the file, expired ones included
};

}  // namespace spoold

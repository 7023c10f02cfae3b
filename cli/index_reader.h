// index.json (SPEC.md section 7) read for spoolctl. With 100,000 jobs it is
// 30 MB: nlohmann::json took over a second and 250 MB to parse it, simdjson's
// DOM a third of a second and 120 MB, for a command that must answer in a
// fraction of a second. So the file is mapped, not copied, and walked once with
// simdjson's On-Demand parser, which builds no tree: a job entry becomes a
// JobSummary of views into the mapping and the parser's string buffer, with no
// allocation per field. Commands that need only the pools read the head, which
// ends where "jobs" begins.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/result.h"
#include "spool/json_util.h"

namespace spoold::cli {

// What `list` shows and filters on, from an index entry or a status.json. The
// views point into the SummaryStore that made it, and live as long as it.
struct JobSummary {
  std::string_view id;
  std::string_view state, pool, title, owner, created, problem;
  std::optional<std::string_view> reason;  // null when none
  std::optional<int64_t> attempt;
  std::vector<std::string_view> tags;
  std::vector<std::string_view> after;  // the parents it names (`after`), if any
  // An array's "tasks" (its tasks by state) as JSON text; empty for any other
  // job. Kept as text: only arrays pay for reading it, when shown.
  std::string_view tasks;
  // An index entry's JSON text, as index.json has it; empty otherwise.
  std::string_view raw;
  // The whole status.json (or damaged folder's entry); null for an index
  // entry, whose other fields stay in the file.
  Json json;
};

// Holds the text that summaries point into: index.json, mapped, and the
// strings of summaries made from status.json files.
class SummaryStore {
 public:
  SummaryStore();
  ~SummaryStore();
  SummaryStore(const SummaryStore&) = delete;
  SummaryStore& operator=(const SummaryStore&) = delete;

  // The job entries of index.json, sorted by id, and its "damaged" member
  // into `damaged`, from the same read; an error names the file and the
  // problem. Called once per store.
  Result<std::vector<JobSummary>> ReadIndexJobs(const std::string& path, Json& damaged);

  // The summary of a status.json or index entry held as JSON.
  JobSummary SummaryOf(std::string id, Json json);

 private:
  std::string_view Keep(std::string text);

  struct Index;  // the mapping and the parser; simdjson stays in the .cpp
  std::unique_ptr<Index> index_;
  std::deque<std::string> strings_;  // a deque: a kept string never moves
};

// The head of index.json alone (without "jobs"), read only up to "jobs":
// SPEC.md section 7 makes it the last member. With 100,000 jobs that is a few
// kilobytes of a 30 MB file, so pools, submit, pause and resume answer at once.
Result<Json> ReadIndexHead(const std::string& path);

}  // namespace spoold::cli

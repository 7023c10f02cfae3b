// index.json (SPEC.md section 7) read for spoolctl. With 100,000 jobs it is
// 30 MB: nlohmann::json took over a second and 250 MB to parse it, for a
// command that must answer in a fraction of a second. simdjson parses it in
// tens of milliseconds; the small parts (daemon, pools, damaged) are then
// handed on as nlohmann::json like everything else, and the job entries are
// read field by field, only as far as a command needs them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/result.h"
#include "spool/json_util.h"

namespace spoold::cli {

// What `list` shows and filters on, from an index entry or a status.json.
struct JobSummary {
  std::string id;
  std::string state, pool, title, owner, created, problem;
  std::optional<std::string> reason;  // null when none
  std::optional<int64_t> attempt;
  std::vector<std::string> tags;
  // The whole status.json (or damaged folder's entry); null for an index
  // entry, whose other fields stay in the file.
  Json json;
};

// The summary of a status.json or index entry held as JSON.
JobSummary SummaryOf(const std::string& id, Json json);

struct IndexContent {
  Json head = Json::object();    // the document without "jobs": schema, updated, daemon, pools, damaged
  std::vector<JobSummary> jobs;  // with `with_jobs`: the entries, sorted by id
};

// Reads and parses `path` in one pass; an error names the file and the
// problem. Without `with_jobs` the entries are skipped over, unread.
Result<IndexContent> ReadIndexFile(const std::string& path, bool with_jobs);

}  // namespace spoold::cli

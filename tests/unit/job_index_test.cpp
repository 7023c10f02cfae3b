// Tests of spool/job_index: index.json assembled from entries in memory (active
// jobs) and in the segment file (ended jobs), read back as JSON and compared
// with what was set, through changes, removals (holes squeezed out), an empty
// index, and a segment that cannot be written.
#include "spool/job_index.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include "spool/fileio.h"
#include "spool/json_util.h"
#include "test_files.h"

using namespace spoold;
using namespace testfiles;

namespace {

JobStatus JobAt(const std::string& id, JobState state, int64_t finished_s = 0) {
  JobStatus s;
  s.id = id;
  s.title = "title of " + id;
  s.pool = "default";
  s.state = state;
  s.created = TimePoint(std::chrono::seconds(1'700'000'000));
  s.updated = s.created;
  if (IsTerminal(state)) s.finished = TimePoint(std::chrono::seconds(finished_s));
  return s;
}

Json ReadJobs(const std::string& path) {
  Json doc = Json::parse(ReadFile(path), nullptr, /*allow_exceptions=*/false);
  REQUIRE_FALSE(doc.is_discarded());
  CHECK(doc["schema"] == "spoold/index/v1");
  REQUIRE(doc["jobs"].is_object());
  return doc["jobs"];
}

const std::string kHeader = R"({"schema":"spoold/index/v1","pools":{}})";

}  // namespace

TEST_CASE("job index: ended entries come from the segment, active ones from memory") {
  TempDir dir;
  JobIndex index(dir / ".index.ended");
  REQUIRE(index.Open().ok());

  SUBCASE("empty") {
    REQUIRE(index.Write(dir / "index.json", kHeader).ok());
    CHECK(ReadJobs(dir / "index.json").empty());
  }
  SUBCASE("only ended jobs: the segment's leading comma is skipped") {
    index.Set("a", JobAt("a", JobState::kSucceeded, 10));
    index.Set("b", JobAt("b", JobState::kFailed, 20));
    REQUIRE(index.Write(dir / "index.json", kHeader).ok());
    Json jobs = ReadJobs(dir / "index.json");
    CHECK(jobs.size() == 2);
    CHECK(jobs["a"]["state"] == "succeeded");
    CHECK(jobs["b"]["state"] == "failed");
    CHECK(jobs["b"]["title"] == "title of b");
  }
  SUBCASE("a job moves from memory to the segment when it ends") {
    index.Set("a", JobAt("a", JobState::kQueued));
    index.Set("b", JobAt("b", JobState::kRunning));
    index.Set("c", JobAt("c", JobState::kSucceeded, 5));
    REQUIRE(index.Write(dir / "index.json", kHeader).ok());
    Json jobs = ReadJobs(dir / "index.json");
    CHECK(jobs.size() == 3);
    CHECK(jobs["a"]["state"] == "queued");
    const uint64_t before = index.segment_bytes();
    index.Set("a", JobAt("a", JobState::kCancelled, 6));
    CHECK(index.segment_bytes() > before);
    REQUIRE(index.Write(dir / "index.json", kHeader).ok());
    jobs = ReadJobs(dir / "index.json");
    CHECK(jobs.size() == 3);
    CHECK(jobs["a"]["state"] == "cancelled");
    CHECK(index.StateOf("a") == JobState::kCancelled);
    CHECK(index.StateOf("b") == JobState::kRunning);
    CHECK_FALSE(index.StateOf("zz").has_value());
  }
  SUBCASE("index.active.json: the active jobs only, beside a whole index left as it was") {
    index.Set("a", JobAt("a", JobState::kQueued));
    index.Set("b", JobAt("b", JobState::kSucceeded, 5));
    REQUIRE(index.Write(dir / "index.json", kHeader).ok());
    index.Set("c", JobAt("c", JobState::kRunning));
    index.Set("d", JobAt("d", JobState::kFailed, 7));
    REQUIRE(index.WriteActive(dir / "index.active.json", kHeader).ok());
    Json active = ReadJobs(dir / "index.active.json");
    CHECK(active.size() == 2);
    CHECK(active["a"]["state"] == "queued");
    CHECK(active["c"]["state"] == "running");
    CHECK(ReadJobs(dir / "index.json").size() == 2);  // not written again
    CHECK_FALSE(std::filesystem::exists(dir / ".index.active.json.tmp"));
    // With no active job: an empty "jobs", though the segment has entries.
    index.Set("a", JobAt("a", JobState::kCancelled, 8));
    index.Set("c", JobAt("c", JobState::kSucceeded, 9));
    REQUIRE(index.WriteActive(dir / "index.active.json", kHeader).ok());
    CHECK(ReadJobs(dir / "index.active.json").empty());
    REQUIRE(index.Write(dir / "index.json", kHeader).ok());
    CHECK(ReadJobs(dir / "index.json").size() == 4);
  }
}

TEST_CASE("job index: removed entries leave the file, and their holes are squeezed out") {
  TempDir dir;
  JobIndex index(dir / ".index.ended");
  REQUIRE(index.Open().ok());
  for (int i = 0; i < 500; ++i) {
    std::string id = "job-" + std::to_string(i);
    index.Set(id, JobAt(id, JobState::kSucceeded, i));
  }
  index.Set("live", JobAt("live", JobState::kRunning));
  REQUIRE(index.Write(dir / "index.json", kHeader).ok());
  CHECK(ReadJobs(dir / "index.json").size() == 501);
  const uint64_t full = index.segment_bytes();

  // Retention: everything that ended before t=300 s.
  auto old = index.EndedBefore(TimePoint(std::chrono::seconds(300)));
  CHECK(old.size() == 300);
  for (const auto& id : old) CHECK(index.Erase(id));
  CHECK_FALSE(index.Erase("job-0"));
  // One in the middle changes too (a re-set ended job leaves a hole).
  index.Set("job-400", JobAt("job-400", JobState::kFailed, 400));
  REQUIRE(index.Write(dir / "index.json", kHeader).ok());
  Json jobs = ReadJobs(dir / "index.json");
  CHECK(jobs.size() == 201);
  CHECK_FALSE(jobs.contains("job-0"));
  CHECK_FALSE(jobs.contains("job-299"));
  CHECK(jobs["job-300"]["state"] == "succeeded");
  CHECK(jobs["job-400"]["state"] == "failed");
  CHECK(jobs["live"]["state"] == "running");
  CHECK(index.size() == 201);
  CHECK(index.segment_bytes() < full / 2);
  struct stat st {};
  REQUIRE(::stat((dir / ".index.ended").c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == index.segment_bytes());

  // Entries added after the squeeze land after the moved ones.
  index.Set("late", JobAt("late", JobState::kSucceeded, 1000));
  REQUIRE(index.Write(dir / "index.json", kHeader).ok());
  jobs = ReadJobs(dir / "index.json");
  CHECK(jobs.size() == 202);
  CHECK(jobs["late"]["state"] == "succeeded");
  CHECK(jobs["job-499"]["state"] == "succeeded");
}

TEST_CASE("job index: a job that ended without a finish time is never expired") {
  TempDir dir;
  JobIndex index(dir / ".index.ended");
  REQUIRE(index.Open().ok());
  JobStatus s = JobAt("odd", JobState::kFailed, 1);
  s.finished.reset();
  index.Set("odd", s);
  CHECK(index.EndedBefore(TimePoint(std::chrono::seconds(2'000'000'000))).empty());
  CHECK(index.Contains("odd"));
}

TEST_CASE("job index: a failed write says so and keeps the old index") {
  TempDir dir;
  JobIndex index(dir / ".index.ended");
  REQUIRE(index.Open().ok());
  index.Set("a", JobAt("a", JobState::kSucceeded, 1));
  REQUIRE(index.Write(dir / "index.json", kHeader).ok());
  // The folder of index.json is gone: the write fails with the path named.
  auto st = index.Write(dir / "missing/index.json", kHeader);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("missing") != std::string::npos);
  CHECK(ReadJobs(dir / "index.json").size() == 1);
}

TEST_CASE("job index: the replaced index is handed over for deletion, not freed by the rename") {
  TempDir dir;
  JobIndex index(dir / ".index.ended");
  REQUIRE(index.Open().ok());
  index.Set("a", JobAt("a", JobState::kQueued));
  std::string replaced = "not cleared";
  REQUIRE(index.Write(dir / "index.json", kHeader, &replaced).ok());
  CHECK(replaced.empty());  // there was no index before

  struct stat first {};
  REQUIRE(::stat((dir / "index.json").c_str(), &first) == 0);
  index.Set("b", JobAt("b", JobState::kSucceeded, 10));
  REQUIRE(index.Write(dir / "index.json", kHeader, &replaced).ok());
  CHECK(replaced == dir / ".index.json.old");
  struct stat kept {};
  REQUIRE(::stat(replaced.c_str(), &kept) == 0);
  CHECK(kept.st_ino == first.st_ino);  // the previous index itself, still whole
  CHECK(ReadJobs(replaced).size() == 1);
  CHECK(ReadJobs(dir / "index.json").size() == 2);

  // Not deleted yet: the next write frees the one it replaces itself.
  index.Set("c", JobAt("c", JobState::kQueued));
  REQUIRE(index.Write(dir / "index.json", kHeader, &replaced).ok());
  CHECK(replaced.empty());
  CHECK(ReadJobs(dir / ".index.json.old").size() == 1);
  CHECK(ReadJobs(dir / "index.json").size() == 3);

  // One left behind by a crash is removed when the index is opened again.
  JobIndex next(dir / ".index.ended");
  REQUIRE(next.Open().ok());
  CHECK_FALSE(std::filesystem::exists(dir / ".index.json.old"));
}

TEST_CASE("job index: a clean stop's ended entries are taken back at the next start while their files are unchanged") {
  TempDir dir;
  const FileId file_a{11, 100, 1'000}, file_b{12, 200, 2'000};
  std::map<std::string, FileId> on_disk = {{"a", file_a}, {"b", file_b}, {"c", FileId{13, 300, 3'000}}};
  auto stat = [&on_disk](const std::string& id) -> std::optional<FileId> {
    auto it = on_disk.find(id);
    if (it == on_disk.end()) return std::nullopt;
    return it->second;
  };
  {
    JobIndex index(dir / ".index.ended");
    REQUIRE(index.Open().ok());
    index.Set("a", JobAt("a", JobState::kSucceeded, 10));
    index.Set("b", JobAt("b", JobState::kFailed, 20));
    index.Set("c", JobAt("c", JobState::kCancelled, 30));
    index.Set("q", JobAt("q", JobState::kQueued));  // active: never carried over
    index.SetFileId("a", file_a);                   // known from reading it; b and c are stat'ed
    REQUIRE(index.Write(dir / "index.json", kHeader).ok());
    REQUIRE(index.SaveManifest(stat).ok());
  }
  REQUIRE(PathExists(dir / ".index.ended.keys"));

  JobIndex index(dir / ".index.ended");
  REQUIRE(index.Open().ok());
  CHECK_FALSE(PathExists(dir / ".index.ended.keys"));  // read once: a crash after this reads every job
  CHECK(index.Resume("a", file_a));
  CHECK_FALSE(index.Resume("b", FileId{99, 200, 2'000}));  // rewritten since (a new inode): read again
  CHECK_FALSE(index.Resume("q", FileId{}));
  CHECK_FALSE(index.Resume("zz", file_a));
  index.EndResume();
  CHECK_FALSE(index.Resume("c", on_disk["c"]));  // not asked for before the end: dropped
  CHECK(index.StateOf("a") == JobState::kSucceeded);
  CHECK_FALSE(index.StateOf("b").has_value());
  CHECK(index.EndedBefore(TimePoint(std::chrono::seconds(15))) == std::vector<std::string>{"a"});
  // b, read again by the caller, comes back with what it says now.
  index.Set("b", JobAt("b", JobState::kSucceeded, 40));
  REQUIRE(index.Write(dir / "index.json", kHeader).ok());
  Json jobs = ReadJobs(dir / "index.json");
  CHECK(jobs.size() == 2);
  CHECK(jobs["a"]["state"] == "succeeded");
  CHECK(jobs["a"]["title"] == "title of a");
  CHECK(jobs["b"]["state"] == "succeeded");
  // The counts by pool and state (the metrics' spoold_jobs) hold the entries
  // taken back: a and b, both succeeded now, in the pool the manifest named.
  const auto counts = index.Counts();
  REQUIRE(counts.size() == 1);
  CHECK(counts[0].pool == "default");
  CHECK(counts[0].state == JobState::kSucceeded);
  CHECK(counts[0].count == 2);
}

TEST_CASE("job index: a manifest that does not fit its segment is ignored, and the segment starts empty") {
  TempDir dir;
  auto stat = [](const std::string&) -> std::optional<FileId> { return FileId{1, 2, 3}; };
  {
    JobIndex index(dir / ".index.ended");
    REQUIRE(index.Open().ok());
    index.Set("a", JobAt("a", JobState::kSucceeded, 10));
    REQUIRE(index.Write(dir / "index.json", kHeader).ok());
    REQUIRE(index.SaveManifest(stat).ok());
  }
  SUBCASE("the segment grew after the manifest (a crashed run appended to it)") {
    std::ofstream(dir / ".index.ended", std::ios::app) << ",\"x\":{}";
  }
  SUBCASE("the manifest was cut short") {
    const std::string text = ReadFile(dir / ".index.ended.keys");
    std::ofstream(dir / ".index.ended.keys", std::ios::trunc) << text.substr(0, text.size() - 4);
  }
  JobIndex index(dir / ".index.ended");
  REQUIRE(index.Open().ok());
  CHECK_FALSE(index.Resume("a", FileId{1, 2, 3}));
  index.EndResume();
  CHECK(index.segment_bytes() == 0);
  REQUIRE(index.Write(dir / "index.json", kHeader).ok());
  CHECK(ReadJobs(dir / "index.json").empty());
}

TEST_CASE("job index: a manifest of many megabytes is read a piece at a time, and every entry comes back") {
  // 30,000 entries make a manifest of about 2 MB: lines cross the pieces it is read in.
  TempDir dir;
  constexpr int kJobs = 30'000;
  auto id_of = [](int n) { return "job-with-a-longer-name-" + std::to_string(n); };
  auto file_of = [](const std::string& id) {
    return FileId{std::hash<std::string>{}(id) % 1'000'000, id.size() * 7,
                  static_cast<int64_t>(id.size()) * 1'000};
  };
  {
    JobIndex index(dir / ".index.ended");
    REQUIRE(index.Open().ok());
    for (int n = 0; n < kJobs; ++n) index.Set(id_of(n), JobAt(id_of(n), JobState::kSucceeded, n));
    REQUIRE(index.Write(dir / "index.json", kHeader).ok());
    REQUIRE(
        index.SaveManifest([&](const std::string& id) { return std::optional<FileId>(file_of(id)); }).ok());
  }
  CHECK(std::filesystem::file_size(dir / ".index.ended.keys") > (1 << 20));  // more than one piece
  JobIndex index(dir / ".index.ended");
  REQUIRE(index.Open().ok());
  int taken = 0;
  for (int n = 0; n < kJobs; ++n) taken += index.Resume(id_of(n), file_of(id_of(n))) ? 1 : 0;
  index.EndResume();
  CHECK(taken == kJobs);
  REQUIRE(index.Write(dir / "index.json", kHeader).ok());
  Json jobs = ReadJobs(dir / "index.json");
  CHECK(jobs.size() == static_cast<size_t>(kJobs));
  CHECK(jobs[id_of(kJobs - 1)]["title"] == "title of " + id_of(kJobs - 1));
}

TEST_CASE(
    "job index: active entries of more than a write's piece come out whole, with the ended ones after them") {
  TempDir dir;
  JobIndex index(dir / ".index.ended");
  REQUIRE(index.Open().ok());
  constexpr int kActive = 3'000;  // about 600 KB of entries: written in three pieces
  for (int n = 0; n < kActive; ++n)
    index.Set("q" + std::to_string(n), JobAt("q" + std::to_string(n), JobState::kQueued));
  index.Set("done", JobAt("done", JobState::kSucceeded, 10));
  REQUIRE(index.Write(dir / "index.json", kHeader).ok());
  CHECK(std::filesystem::file_size(dir / "index.json") > (512 << 10));
  Json jobs = ReadJobs(dir / "index.json");
  CHECK(jobs.size() == static_cast<size_t>(kActive + 1));
  CHECK(jobs["q0"]["state"] == "queued");
  CHECK(jobs["q" + std::to_string(kActive - 1)]["title"] == "title of q" + std::to_string(kActive - 1));
  CHECK(jobs["done"]["state"] == "succeeded");
}

// Tests of spool/sync_batch: the group commit's renames and after-actions on
// real files: a file staged twice in a turn is renamed once, a rename that
// fails stays staged (its after-action waits) and succeeds at a later flush,
// and a rename whose source is gone is dropped.
#include "spool/sync_batch.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_files.h"

using namespace spoold;
using namespace testfiles;

TEST_CASE("sync batch: the same file staged twice in a turn is renamed once, with its newest content") {
  TempDir dir;
  SyncBatch batch(dir.path());
  int afters = 0;
  WriteFile(dir / ".status.tmp", "first");
  batch.Rename(dir / ".status.tmp", dir / "status", [&] { ++afters; });
  WriteFile(dir / ".status.tmp", "second");
  batch.Rename(dir / ".status.tmp", dir / "status", [&] { ++afters; });
  CHECK(batch.Staged(dir / "status"));
  bool synced = false;
  auto st = batch.Flush(&synced);
  CHECK(st.ok());
  CHECK(synced);
  CHECK(ReadFile(dir / "status") == "second");
  CHECK(afters == 2);
  CHECK_FALSE(batch.Staged(dir / "status"));
  CHECK(batch.Empty());
}

TEST_CASE("sync batch: a failed rename stays staged, its after-action waits, and a later flush does it") {
  TempDir dir;
  SyncBatch batch(dir.path());
  // A folder cannot replace a folder that is not empty: the rename fails.
  REQUIRE(::mkdir((dir / ".job.tmp").c_str(), 0755) == 0);
  WriteFile(dir / ".job.tmp/status.json", "{}");
  REQUIRE(::mkdir((dir / "job").c_str(), 0755) == 0);
  WriteFile(dir / "job/obstacle", "x");
  bool published = false, renamed = false, other = false;
  batch.Rename(dir / ".job.tmp", dir / "job", [&] { published = true; }, [&] { renamed = true; });
  batch.After([&] { other = true; });
  bool synced = false;
  auto st = batch.Flush(&synced);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find(".job.tmp") != std::string::npos);
  CHECK(synced);             // the syncs worked: only the rename did not
  CHECK(other);              // actions that do not depend on it ran
  CHECK_FALSE(published);
  CHECK_FALSE(renamed);
  CHECK(batch.Staged(dir / "job"));
  CHECK(ReadFile(dir / ".job.tmp/status.json") == "{}");

  // The obstacle goes: the next flush publishes the folder.
  std::filesystem::remove_all(dir / "job");
  st = batch.Flush(&synced);
  CHECK(st.ok());
  CHECK(renamed);
  CHECK(published);
  CHECK(ReadFile(dir / "job/status.json") == "{}");
  CHECK(batch.Empty());
}

TEST_CASE("sync batch: a rename whose source is gone is dropped, not retried forever") {
  TempDir dir;
  SyncBatch batch(dir.path());
  bool published = false;
  batch.Rename(dir / ".gone.tmp", dir / "gone", [&] { published = true; });
  auto st = batch.Flush();
  CHECK_FALSE(st.ok());
  CHECK_FALSE(published);
  CHECK_FALSE(batch.Staged(dir / "gone"));
  CHECK(batch.Empty());
  CHECK(batch.Flush().ok());
}

TEST_CASE("sync batch: `first` runs once the renames are durable, before the after-actions") {
  TempDir dir;
  SyncBatch batch(dir.path());
  std::vector<std::string> order;
  WriteFile(dir / ".status.tmp", "running");
  batch.Rename(
      dir / ".status.tmp", dir / "status", [&] { order.push_back("after"); },
      [&] { order.push_back("renamed"); });
  batch.After([&] { order.push_back("other after"); });
  auto st = batch.Flush(nullptr, [&] {
    // What `first` acts on (a child to release) must already be published.
    CHECK(ReadFile(dir / "status") == "running");
    order.push_back("first");
  });
  CHECK(st.ok());
  REQUIRE(order.size() == 4);
  CHECK(order[0] == "renamed");
  CHECK(order[1] == "first");  // then both after-actions, in either order

  // With nothing staged, `first` still runs: there is nothing to wait for.
  bool ran = false;
  CHECK(batch.Flush(nullptr, [&] { ran = true; }).ok());
  CHECK(ran);
}

TEST_CASE("sync batch: `visible` runs once the renames are done, before `first`") {
  TempDir dir;
  SyncBatch batch(dir.path());
  std::vector<std::string> order;
  WriteFile(dir / ".status.tmp", "running");
  batch.Rename(dir / ".status.tmp", dir / "status", {}, [&] { order.push_back("renamed"); });
  auto st = batch.Flush(
      nullptr, [&] { order.push_back("first"); },
      [&] {
        // What `visible` acts on (a local job to let run) is seen by everyone.
        CHECK(ReadFile(dir / "status") == "running");
        CHECK_FALSE(batch.Staged(dir / "status"));
        order.push_back("visible");
      });
  CHECK(st.ok());
  CHECK(order == std::vector<std::string>{"renamed", "visible", "first"});
  // A rename that fails is not visible: what waits on it waits too (the
  // caller checks Staged()), and `visible` still runs for the rest.
  REQUIRE(::mkdir((dir / ".job.tmp").c_str(), 0755) == 0);
  REQUIRE(::mkdir((dir / "job").c_str(), 0755) == 0);
  WriteFile(dir / "job/obstacle", "x");
  batch.Rename(dir / ".job.tmp", dir / "job");
  bool saw_staged = false;
  st = batch.Flush(nullptr, nullptr, [&] { saw_staged = batch.Staged(dir / "job"); });
  CHECK_FALSE(st.ok());
  CHECK(saw_staged);
}

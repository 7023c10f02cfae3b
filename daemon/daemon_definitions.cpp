// Daemon (daemon.h): the definitions of definitions/ (SPEC.md section 2,
// "Definitions"), read when their folder changes and at every scan, and
// looked up by intake for the runs dropped into incoming/.
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "daemon/daemon.h"

namespace spoold {
namespace {

// How long definitions/ must be quiet before a changed file is read: an
// editor that writes in place is done by then (a rename is taken at once
// too, just as late).
constexpr uint64_t kDefinitionsSettleMs = 200;

}  // namespace

void Daemon::LoadDefinitions() {
  definitions_.Load();
  intake_.SetDefinitions([this](const RunRef& ref) { return definitions_.Find(ref); });
}

void Daemon::StartDefinitions(TimePoint now) {
  for (const auto& file : definitions_.Scan()) definitions_.Process(file, now);
  definitions_timer_ = std::make_unique<Timer>(&loop_);
  definitions_timer_->SetCallback([this] { definitions_due_ = true; });
  definitions_watch_ = WatchFolder(paths_.Definitions(), &pending_definitions_);
  if (definitions_.size() > 0) spdlog::info("{} job definitions", definitions_.size());
}

// A changed file is read once definitions/ has been quiet for a moment, and
// no sooner than that after its last write (an editor writing in place).
void Daemon::ProcessDefinitions(TimePoint now) {
  if (pending_definitions_.empty() || !definitions_timer_) return;
  if (!definitions_due_) {
    if (!definitions_timer_->Active()) definitions_timer_->Start(kDefinitionsSettleMs);
    return;
  }
  definitions_due_ = false;
  std::set<std::string> names;
  names.swap(pending_definitions_);
  bool changed = false;
  for (const auto& name : names) {
    struct stat st {};
    if (::lstat(paths_.DefinitionFile(name).c_str(), &st) == 0) {
      const auto mtime =
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec);
      const auto age = now.time_since_epoch() - mtime;
      // (A time in the future is a clock's doing, not a write under way.)
      if (age >= std::chrono::milliseconds(0) && age < std::chrono::milliseconds(kDefinitionsSettleMs)) {
        pending_definitions_.insert(name);
        continue;
      }
    }
    changed = definitions_.Process(name, now) || changed;
  }
  if (!pending_definitions_.empty()) definitions_timer_->Start(kDefinitionsSettleMs);
  if (changed) MarkIndexDirty();
}

}  // namespace spoold

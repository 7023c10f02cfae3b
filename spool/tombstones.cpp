#include "spool/tombstones.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "config/config.h"
#include "spool/fileio.h"
#include "spool/json_util.h"
#include "spool/time_util.h"

namespace spoold {
namespace {

// One remembered job a line; far above any line we write.
constexpr size_t kMaxFileSize = size_t{1} << 30;

std::string Line(const std::string& id, JobState state, Reason reason, int64_t finished_ms) {
  return DumpJson(Json{{"id", id},
                       {"state", StateName(state)},
                       {"reason", ReasonName(reason) ? Json(ReasonName(reason)) : Json(nullptr)},
                       {"finished", FormatTime(TimePoint(std::chrono::milliseconds(finished_ms)))}}) +
         "\n";
}

int64_t Ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

Status Tombstones::Open(TimePoint now) {
  live_.clear();
  lines_ = 0;
  auto text = ReadSmallFile(path_, kMaxFileSize);
  if (!text.ok()) {
    if (!PathExists(path_)) return OkStatus();
    return text.error();
  }
  size_t dropped = 0;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    std::string_view line(text->data() + pos, end - pos);
    pos = end + 1;
    if (line.empty()) continue;
    ++lines_;
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    std::optional<JobState> state;
    std::optional<TimePoint> finished;
    auto text_of = [&j](const char* key) -> std::string {
      auto it = j.find(key);
      return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    if (j.is_object() && IsValidName(text_of("id"))) {
      state = ParseState(text_of("state"));
      finished = ParseTime(text_of("finished"));
    }
    if (!state || !IsTerminal(*state) || !finished) {
      ++dropped;  // not a line of ours: a torn append, or an edit
      continue;
    }
    const Reason reason = ParseReason(text_of("reason")).value_or(Reason::kNone);
    live_[text_of("id")] = Kept{*state, reason, Ms(*finished)};
  }
  const size_t before = live_.size();
  Expire(now);
  if (dropped > 0 || live_.size() < before || lines_ > live_.size()) return Rewrite();
  return OkStatus();
}

void Tombstones::Expire(TimePoint now) {
  if (keep_.count() == 0) return;
  const int64_t cutoff = Ms(now) - keep_.count();
  std::erase_if(live_, [cutoff](const auto& item) { return item.second.finished_ms < cutoff; });
}

Status Tombstones::Rewrite() {
  std::string out;
  for (const auto& [id, kept] : live_) out += Line(id, kept.state, kept.reason, kept.finished_ms);
  if (auto st = WriteFileAtomic(path_, out, 0644); !st.ok()) return st;
  lines_ = live_.size();
  return OkStatus();
}

Status Tombstones::Bury(const std::vector<Entry>& entries, TimePoint now) {
  if (entries.empty()) return OkStatus();
  Expire(now);
  const bool created = !PathExists(path_);
  std::string out = "\n";  // ends what a failed append may have left torn
  for (const auto& e : entries) out += Line(e.id, e.state, e.reason, Ms(e.finished));
  if (lines_ + entries.size() > 2 * (live_.size() + entries.size()) + 1000) {
    // Mostly expired lines: the file is written again, the new entries with it.
    auto before = live_;
    for (const auto& e : entries) live_[e.id] = Kept{e.state, e.reason, Ms(e.finished)};
    if (auto st = Rewrite(); !st.ok()) {
      live_ = std::move(before);
      return st;
    }
    return OkStatus();
  }
  if (auto st = AppendDurable(path_, out); !st.ok()) return st;
  // A new file is durable once its folder is: before any job folder goes.
  if (created) {
    if (auto st = FsyncPath(path_.substr(0, path_.rfind('/'))); !st.ok()) return st;
  }
  for (const auto& e : entries) live_[e.id] = Kept{e.state, e.reason, Ms(e.finished)};
  lines_ += entries.size();
  return OkStatus();
}

std::optional<Tombstones::Entry> Tombstones::Find(const std::string& id, TimePoint now) const {
  auto it = live_.find(id);
  if (it == live_.end()) return std::nullopt;
  if (keep_.count() > 0 && it->second.finished_ms < Ms(now) - keep_.count()) return std::nullopt;
  return Entry{id, it->second.state, it->second.reason,
               TimePoint(std::chrono::milliseconds(it->second.finished_ms))};
}

}  // namespace spoold

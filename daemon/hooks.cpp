#include "daemon/hooks.h"

#include <algorithm>

namespace spoold {

Millis HookBackoff(int n) {
  // 2^(n-1) seconds, computed without overflow for any n.
  constexpr Millis kCap = std::chrono::minutes(1);
  if (n <= 1) return std::chrono::seconds(1);
  if (n > 7) return kCap;
  return std::min<Millis>(kCap, std::chrono::seconds(int64_t{1} << (n - 1)));
}

void Hooks::Track(const std::string& job, const std::string& key, const HookSpec& spec, uint64_t cursor) {
  Job& j = jobs_[job];
  SPOOLD_CHECK(j.tracks.count(key) == 0);
  TrackState& t = j.tracks[key];
  t.spec = spec;
  t.cursor = cursor;
  to_look_.insert({job, key});
}

void Hooks::Poke(const std::string& job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return;
  for (auto& [key, track] : it->second.tracks) {
    // A track with a delivery under way looks again once it is done.
    if (!track.running && !track.queued) to_look_.insert({job, key});
  }
}

void Hooks::JobEnded(const std::string& job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return;
  it->second.ended = true;
  check_ended_.insert(job);
}

void Hooks::Forget(const std::string& job) {
  // What refers to it in the queues is skipped when it comes up.
  jobs_.erase(job);
  check_ended_.erase(job);
}

void Hooks::Load(const Ref& ref, TrackState& track) {
  if (track.running || track.queued) return;
  if (!track.next) track.next = host_.NextEvent(ref.first, track.cursor, track.spec);
  if (track.next) {
    track.queued = true;
    ready_.push_back(ref);
  } else {
    check_ended_.insert(ref.first);
  }
}

void Hooks::Advance(const Ref& ref, TrackState& track, const HookOutcome& outcome) {
  HookRun run{ref.first, ref.second, track.spec, *track.next,
              std::max(1, track.failures + (outcome.ok() ? 1 : 0))};
  // The cursor moves past the event only once the host has recorded the
  // outcome and written the cursor (HookHost::Done).
  host_.Done(run, outcome);
  track.cursor = track.next->seq;
  track.next.reset();
  track.failures = 0;
  to_look_.insert(ref);
}

void Hooks::Finished(const std::string& job, const std::string& key, const HookOutcome& outcome,
                     TimePoint now) {
  const Ref ref{job, key};
  running_.erase(ref);
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return;  // forgotten meanwhile
  auto t = it->second.tracks.find(key);
  if (t == it->second.tracks.end() || !t->second.running) return;
  TrackState& track = t->second;
  track.running = false;
  if (outcome.ok()) {
    Advance(ref, track, outcome);
    return;
  }
  ++track.failures;
  if (track.failures <= track.spec.retries) {
    track.queued = true;
    retries_.emplace(now + HookBackoff(track.failures), ref);
    return;
  }
  // Given up: at least once means at least one try per event, and a hook that
  // keeps failing must not hold back every later event of the job for ever.
  Advance(ref, track, outcome);
}

void Hooks::Tick(TimePoint now) {
  while (!retries_.empty() && retries_.begin()->first <= now) {
    ready_.push_back(retries_.begin()->second);
    retries_.erase(retries_.begin());
  }
  std::set<Ref> look;
  look.swap(to_look_);
  for (const Ref& ref : look) {
    auto it = jobs_.find(ref.first);
    if (it == jobs_.end()) continue;
    auto t = it->second.tracks.find(ref.second);
    if (t != it->second.tracks.end()) Load(ref, t->second);
  }
  while (static_cast<int>(running_.size()) < max_running_ && !ready_.empty()) {
    const Ref ref = ready_.front();
    ready_.pop_front();
    auto it = jobs_.find(ref.first);
    if (it == jobs_.end()) continue;
    auto t = it->second.tracks.find(ref.second);
    if (t == it->second.tracks.end() || !t->second.next || t->second.running) continue;
    TrackState& track = t->second;
    track.queued = false;
    track.running = true;
    running_.insert(ref);
    host_.Start(HookRun{ref.first, ref.second, track.spec, *track.next, track.failures + 1});
  }
  std::set<std::string> check;
  check.swap(check_ended_);
  for (const auto& job : check) CheckCaughtUp(job);
}

void Hooks::CheckCaughtUp(const std::string& job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end() || !it->second.ended) return;
  for (const auto& [key, track] : it->second.tracks) {
    if (track.running || track.queued || track.next || to_look_.count({job, key}) != 0) return;
  }
  jobs_.erase(it);
  host_.CaughtUp(job);
}

std::optional<TimePoint> Hooks::NextWakeup() const {
  if (retries_.empty()) return std::nullopt;
  return retries_.begin()->first;
}

}  // namespace spoold

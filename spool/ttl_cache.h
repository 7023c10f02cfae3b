// A small map whose entries are trusted for a fixed time: the passwd and group
// lookups of job owners, which cost a dozen system calls each, are read again
// only when an entry is older than its time to live. A clock set back ends an
// entry too. At `kMaxEntries` the map starts over (a few users submit most jobs).
#pragma once

#include <unordered_map>
#include <utility>

#include "config/duration.h"
#include "spool/time_util.h"

namespace spoold {

template <class Key, class Value>
class TtlCache {
 public:
  static constexpr size_t kMaxEntries = 256;

  explicit TtlCache(Millis ttl) : ttl_(ttl) {}

  // The entry for `key` if it was put within the time to live, else null.
  const Value* Find(const Key& key, TimePoint now) const {
    auto it = entries_.find(key);
    if (it == entries_.end() || now < it->second.since || now >= it->second.since + ttl_) return nullptr;
    return &it->second.value;
  }
  void Put(const Key& key, Value value, TimePoint now) {
    if (entries_.size() >= kMaxEntries && entries_.count(key) == 0) entries_.clear();
    entries_[key] = Entry{std::move(value), now};
  }
  void Erase(const Key& key) { entries_.erase(key); }

 private:
  struct Entry {
    Value value;
    TimePoint since;
  };
  Millis ttl_;
  std::unordered_map<Key, Entry> entries_;
};

}  // namespace spoold

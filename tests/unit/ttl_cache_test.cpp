// Tests of spool/ttl_cache: the cache of passwd and group lookups kept by the
// daemon (job owners) and by intake (submitters). An entry is served for its
// time to live and not after; a clock set back ends it; a full cache starts over.
#include "spool/ttl_cache.h"

#include <doctest/doctest.h>

#include <string>

using namespace spoold;

namespace {
const TimePoint kT0 = TimePoint(std::chrono::seconds(1'700'000'000));
}

TEST_CASE("ttl cache: served within its time, then looked up again") {
  TtlCache<int, std::string> cache(std::chrono::seconds(5));
  CHECK(cache.Find(1, kT0) == nullptr);
  cache.Put(1, "alice", kT0);
  REQUIRE(cache.Find(1, kT0 + std::chrono::seconds(4)) != nullptr);
  CHECK(*cache.Find(1, kT0 + std::chrono::seconds(4)) == "alice");
  CHECK(cache.Find(1, kT0 + std::chrono::seconds(5)) == nullptr);  // expired
  CHECK(cache.Find(1, kT0 - std::chrono::seconds(1)) == nullptr);  // the clock went back
  cache.Put(1, "alice2", kT0 + std::chrono::seconds(6));
  CHECK(*cache.Find(1, kT0 + std::chrono::seconds(7)) == "alice2");
  cache.Erase(1);
  CHECK(cache.Find(1, kT0 + std::chrono::seconds(7)) == nullptr);
}

TEST_CASE("ttl cache: a full cache starts over instead of growing") {
  TtlCache<int, int> cache(std::chrono::seconds(5));
  for (int i = 0; i < static_cast<int>(TtlCache<int, int>::kMaxEntries); ++i) cache.Put(i, i, kT0);
  CHECK(cache.Find(0, kT0) != nullptr);
  cache.Put(0, 7, kT0);  // an existing key does not clear it
  CHECK(cache.Find(1, kT0) != nullptr);
  cache.Put(100000, 1, kT0);  // a new one does
  CHECK(cache.Find(1, kT0) == nullptr);
  REQUIRE(cache.Find(100000, kT0) != nullptr);
}

// Shared by the scheduler's unit tests (scheduler_test.cpp,
// scheduler_deps_test.cpp): the fake clock's start, attempt ends, and a job's
// status by id. Header-only.
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "daemon/scheduler.h"

namespace schedtest {

inline const spoold::TimePoint kT0 = spoold::TimePoint(std::chrono::milliseconds(1'800'000'000'000));

// Two pools, "default" and "other", alike.
inline spoold::Config TestConfig(int workers = 1, int queue_limit = 100) {
  spoold::Config config;
  spoold::PoolConfig pool;
  pool.name = "default";
  pool.workers = workers;
  pool.queue_limit = queue_limit;
  config.pools["default"] = pool;
  spoold::PoolConfig other = pool;
  other.name = "other";
  config.pools["other"] = other;
  return config;
}

inline spoold::AttemptEnd Exit(int code) {
  spoold::AttemptEnd end;
  end.exit_code = code;
  return end;
}

// An attempt the daemon ended for `cause` (its process died by SIGTERM).
inline spoold::AttemptEnd Cause(spoold::Reason cause) {
  spoold::AttemptEnd end;
  end.cause = cause;
  end.signal = 15;
  return end;
}

// A job of `true` waiting for `after`.
inline spoold::JobSpec PlainJob(const std::string& id, std::vector<spoold::Dependency> after = {}) {
  spoold::JobSpec spec;
  spec.id = id;
  spec.title = id;
  spec.command = {"true"};
  spec.after = std::move(after);
  return spec;
}

inline const spoold::JobStatus& St(spoold::Scheduler& s, const std::string& id) {
  REQUIRE(s.Find(id) != nullptr);
  return s.Find(id)->status();
}

}  // namespace schedtest

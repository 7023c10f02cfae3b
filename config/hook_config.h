// Hooks (SPEC-hooks: `[[hooks]]` of a job file, `[[pools.<name>.hooks]]` and
// `[hooks]` of the configuration): what one hook is, the limits on it and the
// event names it may follow. Kept here, below spool/, because both a job file
// (spool/hook_spec.h validates it) and the configuration (config/config_hooks.cpp)
// hold hooks. Pure data and constants: no I/O.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "config/duration.h"

namespace spoold {

// One hook: the events it follows, the program it runs (argv, no shell, no
// template expansion), how long one run may take and how often a failed
// delivery is tried again.
struct HookSpec {
  std::vector<std::string> on;       // event names of events.jsonl; "*" for every one
  std::vector<std::string> command;  // argv; argv[0] looked up in job_environment.path
  Millis timeout = std::chrono::seconds(30);
  int retries = 3;  // runs after the first one for one event
  bool operator==(const HookSpec&) const = default;
};

// The [hooks] section: what holds for every hook of the daemon.
struct HooksConfig {
  int max_running = 4;                            // hook processes at once, across the daemon
  std::string user = "nobody";                    // pool hooks run as this user when spoold is root
  bool allow_root = false;                        // whether `user` may be root
  Millis retention_wait = std::chrono::hours(1);  // extra time retention gives undelivered events
};

// The keys of one hook table, and of the [hooks] section.
inline constexpr std::string_view kHookKeys[] = {"on", "command", "timeout", "retries"};
inline constexpr std::string_view kHooksSectionKeys[] = {"max_running", "user", "allow_root",
                                                         "retention_wait"};

inline constexpr size_t kMaxHooks = 8;  // a job's, a pool's
inline constexpr Millis kMinHookTimeout = std::chrono::seconds(1);
inline constexpr Millis kMaxHookTimeout = std::chrono::hours(1);
inline constexpr int kMaxHookRetries = 100;
inline constexpr int kMaxHooksRunning = 1024;

// The events of events.jsonl a hook may name (SPEC.md section 4). hook_ok and
// hook_failed are left out: they are never delivered to hooks, or a "*" hook
// would feed itself.
inline constexpr std::string_view kHookEvents[] = {"accepted",
                                                   "started",
                                                   "exited",
                                                   "timeout",
                                                   "kill_sent",
                                                   "retry_scheduled",
                                                   "cancel_requested",
                                                   "succeeded",
                                                   "failed",
                                                   "cancelled",
                                                   "recovered",
                                                   "adopted",
                                                   "supervisor_lost",
                                                   "duplicate_ignored",
                                                   "queued",
                                                   "requeued",
                                                   "held",
                                                   "pool_paused",
                                                   "deadline",
                                                   "start_requested",
                                                   "dependencies_met",
                                                   "submitted",
                                                   "waiting_resources",
                                                   "resources_not_enforced"};

inline bool IsHookEvent(std::string_view name) {
  return std::find(std::begin(kHookEvents), std::end(kHookEvents), name) != std::end(kHookEvents);
}

// Whether `spec` follows event `name` (hook_ok and hook_failed: never).
inline bool HookFollows(const HookSpec& spec, std::string_view name) {
  if (name == "hook_ok" || name == "hook_failed") return false;
  return std::any_of(spec.on.begin(), spec.on.end(),
                     [name](const std::string& on) { return on == "*" || on == name; });
}

// "accepted, started, ...": for messages.
inline std::string HookEventList() {
  std::string out;
  for (std::string_view name : kHookEvents) out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

}  // namespace spoold

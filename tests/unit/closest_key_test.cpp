#include "config/closest_key.h"

#include <doctest/doctest.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>

using namespace spoold;

TEST_CASE("closest key: optimal string alignment distance") {
  struct {
    std::string_view a, b;
    size_t distance;
  } cases[] = {
      {"", "", 0},
      {"", "abc", 3},
      {"abc", "", 3},
      {"command", "command", 0},
      {"comand", "command", 1},    // deletion
      {"commands", "command", 1},  // insertion
      {"commend", "command", 1},   // substitution
      {"cmomand", "command", 1},   // swap of neighbours
      {"ca", "abc", 3},            // OSA, not full Damerau-Levenshtein (2)
      {"priorty", "priority", 1},
      {"max-delay", "max_delay", 1},  // no normalisation at this level
      {"workers", "queue_limit", 10},
  };
  for (const auto& c : cases) {
    CAPTURE(c.a);
    CAPTURE(c.b);
    CHECK(KeyDistance(c.a, c.b) == c.distance);
    CHECK(KeyDistance(c.b, c.a) == c.distance);
  }
}

TEST_CASE("closest key: suggests one close key of the schema, and nothing else") {
  constexpr std::string_view kJob[] = {"command", "script",   "shell", "title",   "description", "tags",
                                       "pool",    "priority", "cwd",   "env",     "timeout",     "deadline",
                                       "retry",   "kill",     "hold",  "metadata"};
  constexpr std::string_view kRetry[] = {"attempts",  "delay",      "backoff",
                                         "max_delay", "on_timeout", "exit_codes"};
  constexpr std::string_view kSections[] = {"spool",     "defaults", "job_environment",
                                            "retention", "security", "pools"};
  constexpr std::string_view kRequest[] = {"action", "job"};
  constexpr std::string_view kTwins[] = {"delay", "relay"};
  struct {
    std::span<const std::string_view> known;
    std::string_view key;
    std::optional<std::string_view> expected;
  } cases[] = {
      // One edit, in a long key or a short one.
      {kJob, "comand", "command"},
      {kJob, "scirpt", "script"},
      {kJob, "titel", "title"},
      {kJob, "priorty", "priority"},
      {kJob, "cdw", "cwd"},
      {kJob, "evn", "env"},
      {kJob, "tag", "tags"},
      // The rule knows spelling, not meaning: one substitution from cwd.
      {kJob, "cmd", "cwd"},
      {kRequest, "jbo", "job"},
      {kRequest, "acton", "action"},
      // Two edits in a key of more than 4 characters.
      {kJob, "comnd", "command"},
      {kJob, "descripton", "description"},
      {kRetry, "attmpts", "attempts"},
      // Case and '-' against '_' are free.
      {kJob, "Command", "command"},
      {kJob, "COMMAND", "command"},
      {kRetry, "max-delay", "max_delay"},
      {kRetry, "Max-Delay", "max_delay"},
      {kRetry, "on-timeout", "on_timeout"},
      {kRetry, "maxdelay", "max_delay"},
      {kSections, "job-environment", "job_environment"},
      // Not close enough: nothing.
      {kJob, "colour", std::nullopt},
      {kJob, "aaa", std::nullopt},
      {kJob, "x", std::nullopt},
      {kJob, "", std::nullopt},
      {kJob, "args", std::nullopt},
      {kJob, "commandline", std::nullopt},
      {kRequest, "force", std::nullopt},
      {kRequest, "pool", std::nullopt},  // a key of another request
      {kRetry, "when", std::nullopt},
      {kRetry, "max_delay_seconds", std::nullopt},
      // A tie for the closest: nothing.
      {kSections, "pool", std::nullopt},  // spool and pools, one edit each
      {kTwins, "xelay", std::nullopt},
      {kTwins, "delays", "delay"},  // one edit against two: not a tie
      // Only the keys given count: "delay" is a retry key, not a job key.
      {kJob, "dealy", std::nullopt},
      {kRetry, "dealy", "delay"},
      // A long key costs a length comparison, not a table.
      {kJob, std::string_view("command_________________________________________________"), std::nullopt},
  };
  for (const auto& c : cases) {
    CAPTURE(c.key);
    CHECK(ClosestKey(c.key, c.known) == c.expected);
  }
}

TEST_CASE("closest key: the message names the key as shown and the suggestion with its prefix") {
  constexpr std::string_view kRetry[] = {"attempts",  "delay",      "backoff",
                                         "max_delay", "on_timeout", "exit_codes"};
  CHECK(DidYouMean("retry.dealy", "dealy", "retry.", kRetry) ==
        std::optional<std::string>("unknown key 'retry.dealy'; did you mean 'retry.delay'?"));
  CHECK(DidYouMean("retry.\\x01dealy",
                   "\x01"
                   "dealy",
                   "retry.", kRetry) ==
        std::optional<std::string>("unknown key 'retry.\\x01dealy'; did you mean 'retry.delay'?"));
  CHECK_FALSE(DidYouMean("retry.when", "when", "retry.", kRetry).has_value());
}

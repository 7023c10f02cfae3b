// Job specs that validate: every field read from TOML and JSON, the defaults,
// the boundary values, job ids and signal names (spool/job_spec.cpp). What is
// refused, and how it is reported, is in job_spec_errors_test.cpp.
#include "spool/job_spec.h"

#include <doctest/doctest.h>

#include <csignal>
#include <string>

#include "job_spec_test_helpers.h"
#include "spool/document.h"

using namespace spoold;
using namespace jobspectest;
using namespace std::chrono_literals;

namespace {

// Every field of a spec except `format`, which the caller sets.
void CheckSameSpec(const JobSpec& a, const JobSpec& b) {
  CHECK(a.id == b.id);
  CHECK(a.command == b.command);
  CHECK(a.script == b.script);
  CHECK(a.shell == b.shell);
  CHECK(a.title == b.title);
  CHECK(a.description == b.description);
  CHECK(a.tags == b.tags);
  CHECK(a.pool == b.pool);
  CHECK(a.priority == b.priority);
  CHECK(a.cwd == b.cwd);
  CHECK(a.env == b.env);
  CHECK(a.timeout == b.timeout);
  CHECK(a.deadline == b.deadline);
  CHECK(a.retry.attempts == b.retry.attempts);
  CHECK(a.retry.delay == b.retry.delay);
  CHECK(a.retry.backoff == b.retry.backoff);
  CHECK(a.retry.max_delay == b.retry.max_delay);
  CHECK(a.retry.on_timeout == b.retry.on_timeout);
  CHECK(a.retry.exit_codes == b.retry.exit_codes);
  CHECK(a.kill.signal_name == b.kill.signal_name);
  CHECK(a.kill.signal == b.kill.signal);
  CHECK(a.kill.grace == b.kill.grace);
  CHECK(a.hold == b.hold);
  CHECK(a.metadata == b.metadata);
}

constexpr const char* kFullToml = R"(command = ["/usr/bin/env", "python3", "etl.py"]
shell = ["/bin/bash", "-euo", "pipefail"]
title = "Nightly ETL"
description = "loads the tiles"
tags = ["etl", "nightly"]
pool = "gpu"
priority = -5
cwd = "/srv/etl"
timeout = "2h"
deadline = 86400
hold = true

[env]
TZ = "UTC"
_PRIVATE_1 = ""

[retry]
attempts = 3
delay = "30s"
backoff = 2.5
max_delay = 600
on_timeout = true
exit_codes = [3, 75]

[kill]
signal = "SIGINT"
grace = "1m30s"

[metadata]
owner = "team-a"
tile = { x = 3, y = 4.5 }
list = [1, "two", true]
)";

constexpr const char* kFullJson = R"({
  "command": ["/usr/bin/env", "python3", "etl.py"],
  "shell": ["/bin/bash", "-euo", "pipefail"],
  "title": "Nightly ETL",
  "description": "loads the tiles",
  "tags": ["etl", "nightly"],
  "pool": "gpu",
  "priority": -5,
  "cwd": "/srv/etl",
  "timeout": "2h",
  "deadline": 86400,
  "hold": true,
  "env": {"TZ": "UTC", "_PRIVATE_1": ""},
  "retry": {"attempts": 3, "delay": "30s", "backoff": 2.5, "max_delay": 600,
            "on_timeout": true, "exit_codes": [3, 75]},
  "kill": {"signal": "SIGINT", "grace": "1m30s"},
  "metadata": {"owner": "team-a", "tile": {"x": 3, "y": 4.5}, "list": [1, "two", true]}
})";

}  // namespace

TEST_CASE("job spec: a full job in TOML and in JSON gives the same spec") {
  auto from_toml = Validate(kFullToml, DocFormat::kToml, "nightly");
  REQUIRE_MESSAGE(from_toml.ok(), from_toml.error().message);
  auto from_json = Validate(kFullJson, DocFormat::kJson, "nightly");
  REQUIRE_MESSAGE(from_json.ok(), from_json.error().message);
  CheckSameSpec(*from_toml, *from_json);

  const JobSpec& spec = *from_toml;
  CHECK(spec.id == "nightly");
  CHECK(spec.command == std::vector<std::string>{"/usr/bin/env", "python3", "etl.py"});
  CHECK_FALSE(spec.script.has_value());
  CHECK(spec.shell == std::vector<std::string>{"/bin/bash", "-euo", "pipefail"});
  CHECK(spec.title == "Nightly ETL");
  CHECK(spec.description == "loads the tiles");
  CHECK(spec.tags == std::vector<std::string>{"etl", "nightly"});
  CHECK(spec.pool == "gpu");
  CHECK(spec.priority == -5);
  CHECK(spec.cwd == "/srv/etl");
  CHECK(spec.env == std::map<std::string, std::string>{{"TZ", "UTC"}, {"_PRIVATE_1", ""}});
  CHECK(spec.timeout == std::optional<Millis>(2h));
  CHECK(spec.deadline == std::optional<Millis>(24h));
  CHECK(spec.retry.attempts == 3);
  CHECK(spec.retry.delay == 30s);
  CHECK(spec.retry.backoff == 2.5);
  CHECK(spec.retry.max_delay == 10min);
  CHECK(spec.retry.on_timeout);
  CHECK(spec.retry.exit_codes == std::vector<int>{3, 75});
  CHECK(spec.kill.signal_name == "INT");
  CHECK(spec.kill.signal == SIGINT);
  CHECK(spec.kill.grace == 90s);
  CHECK(spec.hold);
  CHECK(
      spec.metadata ==
      Json::parse(R"({"owner": "team-a", "tile": {"x": 3, "y": 4.5}, "list": [1, "two", true]})"));
}

TEST_CASE("job spec: a minimal job gets the documented defaults") {
  for (auto [format, text] : {std::pair{DocFormat::kToml, "command = [\"true\"]\n"},
                              std::pair{DocFormat::kJson, "{\"command\": [\"true\"]}"}}) {
    CAPTURE(FormatName(format));
    auto spec = Validate(text, format, "minimal.1");
    REQUIRE_MESSAGE(spec.ok(), spec.error().message);
    CHECK(spec->id == "minimal.1");
    CHECK(spec->command == std::vector<std::string>{"true"});
    CHECK_FALSE(spec->script.has_value());
    CHECK(spec->shell == std::vector<std::string>{"/bin/sh", "-eu"});
    CHECK(spec->title == "minimal.1");
    CHECK(spec->description.empty());
    CHECK(spec->tags.empty());
    CHECK(spec->pool == "default");
    CHECK(spec->priority == 0);
    CHECK(spec->cwd.empty());
    CHECK(spec->env.empty());
    CHECK_FALSE(spec->timeout.has_value());
    CHECK_FALSE(spec->deadline.has_value());
    CHECK(spec->retry.attempts == 0);
    CHECK(spec->retry.delay == 1min);
    CHECK(spec->retry.backoff == 1.0);
    CHECK(spec->retry.max_delay == 1h);
    CHECK_FALSE(spec->retry.on_timeout);
    CHECK(spec->retry.exit_codes.empty());
    CHECK(spec->kill.signal_name == "TERM");
    CHECK(spec->kill.signal == SIGTERM);
    CHECK(spec->kill.grace == 10s);
    CHECK_FALSE(spec->hold);
    CHECK(spec->metadata == Json::object());
  }
}

TEST_CASE("job spec: a script job keeps its script and the default shell") {
  auto spec = Validate("script = \"echo hi\\nexit 3\\n\"\n", DocFormat::kToml);
  REQUIRE_MESSAGE(spec.ok(), spec.error().message);
  CHECK(spec->command.empty());
  REQUIRE(spec->script.has_value());
  CHECK(*spec->script == "echo hi\nexit 3\n");
  CHECK(spec->shell == std::vector<std::string>{"/bin/sh", "-eu"});
}

TEST_CASE("job spec: zero timeout means no limit, zero deadline means none") {
  struct {
    const char* text;
    std::optional<Millis> timeout;
    std::optional<Millis> deadline;
  } cases[] = {
      {"command = [\"true\"]\ntimeout = 0\n", 0ms, std::nullopt},
      {"command = [\"true\"]\ntimeout = \"0\"\n", 0ms, std::nullopt},
      {"command = [\"true\"]\ntimeout = 1.5\n", 1500ms, std::nullopt},
      {"command = [\"true\"]\ndeadline = 0\n", std::nullopt, std::nullopt},
      {"command = [\"true\"]\ndeadline = \"0s\"\n", std::nullopt, std::nullopt},
      {"command = [\"true\"]\ndeadline = \"1d\"\n", std::nullopt, 24h},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto spec = Validate(c.text, DocFormat::kToml);
    REQUIRE_MESSAGE(spec.ok(), spec.error().message);
    CHECK(spec->timeout == c.timeout);
    CHECK(spec->deadline == c.deadline);
  }
  // Durations other than timeout and deadline keep a zero as a zero.
  auto spec =
      Validate("command = [\"true\"]\nretry.delay = 0\nkill.grace = \"0\"\n", DocFormat::kToml);
  REQUIRE_MESSAGE(spec.ok(), spec.error().message);
  CHECK(spec->retry.delay == 0ms);
  CHECK(spec->kill.grace == 0ms);
}

TEST_CASE("job spec: boundary values are accepted") {
  // metadata.a.a...a: the top-level table, metadata and 62 more, 64 levels.
  std::string deepest = "command = [\"true\"]\nmetadata";
  for (int i = 0; i < 62; ++i) deepest += ".a";
  deepest += " = 1\n";
  const std::string cases[] = {
      deepest,
      "command = [\"true\"]\ntimeout = \"36500d\"\ndeadline = 3153600000\nkill.grace = \"5214w2d\"\n",
      "command = [\"true\"]\nretry.delay = \"36500 days\"\nretry.max_delay = 3153600000.0\n",
      "command = [\"true\"]\npriority = 1000000\n",
      "command = [\"true\"]\npriority = -1000000\n",
      "command = [\"true\"]\nretry.attempts = 100\n",
      "command = [\"true\"]\nretry.backoff = 100\n",
      "command = [\"true\"]\nretry.backoff = 1\n",
      "command = [\"true\"]\nretry.exit_codes = [1, 255]\n",
      "command = [\"true\"]\nkill.signal = \"KILL\"\n",
      "command = [\"true\"]\ncwd = \"/\"\n",
      "command = [\"true\"]\nenv.a_B_9 = \"x\"\n",
      "command = [\"true\"]\nenv.spoold_lower = \"x\"\n",
      "command = [\"true\"]\ntags = []\nmetadata = {}\n",
  };
  for (const std::string& text : cases) {
    CAPTURE(text);
    auto spec = Validate(text, DocFormat::kToml);
    CHECK_MESSAGE(spec.ok(), (spec.ok() ? std::string() : spec.error().message));
  }
}

TEST_CASE("job spec: a job id must match the SPEC pattern") {
  struct {
    std::string id;
    bool valid;
  } cases[] = {
      {"a", true},
      {"Z9", true},
      {"nightly-etl_2026.11.21", true},
      {"0.-_", true},
      {"a" + std::string(127, 'b'), true},   // 128 characters
      {"a" + std::string(128, 'b'), false},  // 129 characters
      {"", false},
      {".hidden", false},
      {"-flag", false},
      {"_x", false},
      {"a/b", false},
      {"..", false},
      {"a b", false},
      {"a\nb", false},
      {std::string("a\0b", 3), false},
      {"caf\xc3\xa9", false},  // valid UTF-8, but not ASCII
      {"a\xff", false},        // invalid UTF-8
      {"job.toml", true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.id);
    CHECK(IsValidJobId(c.id) == c.valid);
  }
}

TEST_CASE("job spec: signal names with and without SIG") {
  struct {
    const char* name;
    std::optional<int> number;
  } cases[] = {
      {"TERM", SIGTERM},      {"SIGTERM", SIGTERM},
      {"INT", SIGINT},        {"SIGINT", SIGINT},
      {"HUP", SIGHUP},        {"QUIT", SIGQUIT},
      {"KILL", SIGKILL},      {"SIGKILL", SIGKILL},
      {"USR1", SIGUSR1},      {"USR2", SIGUSR2},
      {"ALRM", SIGALRM},      {"SIGALRM", SIGALRM},
      {"", std::nullopt},     {"SIG", std::nullopt},
      {"term", std::nullopt}, {"SIGSIGTERM", std::nullopt},
      {"STOP", std::nullopt}, {"15", std::nullopt},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(SignalFromName(c.name) == c.number);
  }
  auto spec = Validate("command = [\"true\"]\nkill.signal = \"SIGUSR1\"\n", DocFormat::kToml);
  REQUIRE_MESSAGE(spec.ok(), spec.error().message);
  CHECK(spec->kill.signal_name == "USR1");
  CHECK(spec->kill.signal == SIGUSR1);
}

// Hooks in job files (spool/hook_spec.cpp, through ValidateJobSpec) and in the
// configuration (config/config_hooks.cpp): values, defaults, and every refusal
// with its code, field, line and message.
#include "spool/hook_spec.h"

#include <doctest/doctest.h>

#include <string>

#include "config/config.h"
#include "job_spec_test_helpers.h"
#include "spool/job_spec.h"

using namespace spoold;
using namespace jobspectest;
using namespace std::chrono_literals;

namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("hook spec: a job's hooks are read with their defaults") {
  auto spec = Validate(
      "command = [\"true\"]\n"
      "[[hooks]]\n"
      "on = [\"succeeded\", \"failed\"]\n"
      "command = [\"notify\", \"--to\", \"ops\"]\n"
      "[[hooks]]\n"
      "on = \"*\"\n"
      "command = [\"/usr/bin/logger\"]\n"
      "timeout = \"5s\"\n"
      "retries = 0\n",
      DocFormat::kToml);
  REQUIRE_MESSAGE(spec.ok(), spec.error().message);
  REQUIRE(spec->hooks.size() == 2);
  CHECK(spec->hooks[0].on == std::vector<std::string>{"succeeded", "failed"});
  CHECK(spec->hooks[0].command == std::vector<std::string>{"notify", "--to", "ops"});
  CHECK(spec->hooks[0].timeout == 30s);
  CHECK(spec->hooks[0].retries == 3);
  CHECK(spec->hooks[1].on == std::vector<std::string>{"*"});
  CHECK(spec->hooks[1].timeout == 5s);
  CHECK(spec->hooks[1].retries == 0);

  auto json =
      Validate(R"({"command": ["true"], "hooks": [{"on": ["exited"], "command": ["x"], "timeout": 1}]})",
               DocFormat::kJson);
  REQUIRE_MESSAGE(json.ok(), json.error().message);
  CHECK(json->hooks.at(0).timeout == 1s);

  auto none = Validate("command = [\"true\"]\n", DocFormat::kToml);
  REQUIRE(none.ok());
  CHECK(none->hooks.empty());
}

TEST_CASE("hook spec: every invalid hook is refused with code, field, line and reason") {
  struct {
    std::string text;
    const char* code;
    const char* field;
    int line;
    const char* fragment;
  } cases[] = {
      {"hooks = 3\n", "invalid_field", "hooks", 2, "hooks must be an array of tables"},
      {"hooks = [1]\n", "invalid_field", "hooks[0]", 2,
       "hooks[0] must be a table with on and command, got 1"},
      {"[[hooks]]\ncommand = [\"x\"]\n", "missing_field", "hooks[0].on", 0, "hooks[0].on is missing"},
      {"[[hooks]]\non = \"*\"\n", "missing_field", "hooks[0].command", 0, "hooks[0].command is missing"},
      {"[[hooks]]\non = \"finished\"\ncommand = [\"x\"]\n", "invalid_field", "hooks[0].on", 3,
       "hooks[0].on is not an event of events.jsonl; known events: accepted, started"},
      {"[[hooks]]\non = [\"succeeded\", \"hook_ok\"]\ncommand = [\"x\"]\n", "invalid_field", "hooks[0].on[1]",
       3, "names a hook's own outcome, which is never delivered to hooks"},
      {"[[hooks]]\non = []\ncommand = [\"x\"]\n", "invalid_field", "hooks[0].on", 3, "got an empty array"},
      {"[[hooks]]\non = [3]\ncommand = [\"x\"]\n", "invalid_field", "hooks[0].on[0]", 3, "got 3"},
      {"[[hooks]]\non = \"*\"\ncommand = \"notify ops\"\n", "invalid_field", "hooks[0].command", 4,
       "hooks[0].command must be a non-empty array of strings (argv; no shell), got a string"},
      {"[[hooks]]\non = \"*\"\ncommand = []\n", "invalid_field", "hooks[0].command", 4, "got an empty array"},
      {"[[hooks]]\non = \"*\"\ncommand = [\"\"]\n", "invalid_field", "hooks[0].command[0]", 4,
       "must not be empty"},
      {"[[hooks]]\non = \"*\"\ncommand = [\"x\", 2]\n", "invalid_field", "hooks[0].command[1]", 4, "got 2"},
      {"[[hooks]]\non = \"*\"\ncommand = [\"x\"]\ntimeout = \"500ms\"\n", "invalid_field", "hooks[0].timeout",
       5, "hooks[0].timeout must be a duration from 1s to 1h, got 500ms"},
      {"[[hooks]]\non = \"*\"\ncommand = [\"x\"]\ntimeout = \"2h\"\n", "invalid_field", "hooks[0].timeout", 5,
       "from 1s to 1h, got 2h"},
      {"[[hooks]]\non = \"*\"\ncommand = [\"x\"]\ntimeout = true\n", "invalid_field", "hooks[0].timeout", 5,
       "must be a duration"},
      {"[[hooks]]\non = \"*\"\ncommand = [\"x\"]\nretries = 101\n", "invalid_field", "hooks[0].retries", 5,
       "hooks[0].retries must be an integer from 0 to 100, got 101"},
      {"[[hooks]]\non = \"*\"\ncommand = [\"x\"]\nretries = -1\n", "invalid_field", "hooks[0].retries", 5,
       "got -1"},
      {"[[hooks]]\non = \"*\"\ncommand = [\"x\"]\nretries = 1.5\n", "invalid_field", "hooks[0].retries", 5,
       "got 1.5"},
      {"[[hooks]]\non = \"*\"\ncommand = [\"x\"]\n[[hooks]]\non = \"*\"\ncomand = [\"x\"]\n", "unknown_field",
       "hooks[1].comand", 7, "did you mean 'hooks[1].command'"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto spec = Validate("command = [\"true\"]\n" + c.text, DocFormat::kToml);
    REQUIRE_FALSE(spec.ok());
    CHECK(spec.error().code == c.code);
    CHECK(spec.error().field == c.field);
    if (c.line > 0) CHECK(spec.error().line == c.line);
    CHECK_MESSAGE(Contains(spec.error().message, c.fragment), spec.error().message);
  }
}

TEST_CASE("hook spec: at most 8 hooks a job") {
  std::string text = "command = [\"true\"]\n";
  for (int i = 0; i < 9; ++i) text += "[[hooks]]\non = \"*\"\ncommand = [\"x\"]\n";
  auto spec = Validate(text, DocFormat::kToml);
  REQUIRE_FALSE(spec.ok());
  CHECK(spec.error().field == "hooks");
  CHECK(spec.error().message == "hooks has 9 hooks; at most 8 are allowed");
}

TEST_CASE("hook spec: an unknown key of a hook comes before any other error") {
  auto spec = Validate("command = 5\n[[hooks]]\non = \"nope\"\ncommand = [\"x\"]\ntimout = \"5s\"\n",
                       DocFormat::kToml);
  REQUIRE_FALSE(spec.ok());
  CHECK(spec.error().code == "unknown_field");
  CHECK(spec.error().field == "hooks[0].timout");
  CHECK(spec.error().line == 5);
  CHECK(Contains(spec.error().message, "did you mean 'hooks[0].timeout'"));
}

TEST_CASE("hook config: pool hooks and the hooks section are read") {
  auto config = ParseConfig(
      "[hooks]\nmax_running = 2\nuser = \"spoolhooks\"\nretention_wait = \"10m\"\n"
      "[pools.default]\nworkers = 1\n"
      "[[pools.default.hooks]]\non = [\"failed\"]\ncommand = [\"page\", \"ops\"]\nretries = 5\n"
      "[[pools.default.hooks]]\non = \"*\"\ncommand = [\"audit\"]\ntimeout = \"1m\"\n",
      "spoold.toml");
  REQUIRE_MESSAGE(config.ok(), config.error().message);
  CHECK(config->hooks.max_running == 2);
  CHECK(config->hooks.user == "spoolhooks");
  CHECK_FALSE(config->hooks.allow_root);
  CHECK(config->hooks.retention_wait == 10min);
  const auto& hooks = config->pools.at("default").hooks;
  REQUIRE(hooks.size() == 2);
  CHECK(hooks[0].on == std::vector<std::string>{"failed"});
  CHECK(hooks[0].command == std::vector<std::string>{"page", "ops"});
  CHECK(hooks[0].retries == 5);
  CHECK(hooks[0].timeout == 30s);
  CHECK(hooks[1].on == std::vector<std::string>{"*"});
  CHECK(hooks[1].timeout == 1min);

  auto defaults = ParseConfig("", "spoold.toml");
  REQUIRE(defaults.ok());
  CHECK(defaults->hooks.max_running == 4);
  CHECK(defaults->hooks.user == "nobody");
  CHECK(defaults->hooks.retention_wait == 1h);
  CHECK(defaults->pools.at("default").hooks.empty());
}

TEST_CASE("hook config: every invalid value is refused naming its key and line") {
  struct {
    std::string text;
    const char* field;
    int line;
    const char* fragment;
  } cases[] = {
      {"[hooks]\nmax_running = 0\n", "hooks.max_running", 2, "from 1 to 1024, got 0"},
      {"[hooks]\nuser = \"root\"\n", "hooks.user", 2, "root only with hooks.allow_root = true"},
      {"[hooks]\nuser = \"a b\"\n", "hooks.user", 2, "must be a user name"},
      {"[hooks]\nretention_wait = \"soon\"\n", "hooks.retention_wait", 2, "must be a duration"},
      {"[hooks]\nmax_runing = 3\n", "hooks.max_runing", 2, "did you mean 'hooks.max_running'"},
      {"[pools.a]\nhooks = 3\n", "pools.a.hooks", 2, "must be an array of tables"},
      {"[[pools.a.hooks]]\ncommand = [\"x\"]\n", "pools.a.hooks[0].on", 1, "is missing"},
      {"[[pools.a.hooks]]\non = \"done\"\ncommand = [\"x\"]\n", "pools.a.hooks[0].on", 2,
       "not an event hooks follow"},
      {"[[pools.a.hooks]]\non = \"*\"\ncommand = []\n", "pools.a.hooks[0].command", 3, "non-empty array"},
      {"[[pools.a.hooks]]\non = \"*\"\ncommand = [\"x\"]\ntimeout = \"0.5s\"\n", "pools.a.hooks[0].timeout",
       4, "from 1s to 1h"},
      {"[[pools.a.hooks]]\non = \"*\"\ncommand = [\"x\"]\nretries = 200\n", "pools.a.hooks[0].retries", 4,
       "from 0 to 100"},
      {"[[pools.a.hooks]]\non = \"*\"\ncomand = [\"x\"]\n", "pools.a.hooks[0].comand", 3,
       "did you mean 'pools.a.hooks[0].command'"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto config = ParseConfig(c.text, "spoold.toml");
    REQUIRE_FALSE(config.ok());
    CHECK(config.error().field == c.field);
    CHECK(config.error().line == c.line);
    CHECK_MESSAGE(Contains(config.error().message, c.fragment), config.error().message);
  }
  auto root = ParseConfig("[hooks]\nuser = \"root\"\nallow_root = true\n", "spoold.toml");
  REQUIRE(root.ok());
  CHECK(root->hooks.user == "root");
}

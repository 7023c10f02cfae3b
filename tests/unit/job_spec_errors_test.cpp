// Job specs that are refused (spool/job_spec.cpp): every invalid value with
// its code, field, position and message, the order in which errors are
// reported, unknown keys, non-finite numbers, hostile strings and invalid ids.
#include "spool/job_spec.h"

#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "config/config.h"
#include "job_spec_test_helpers.h"
#include "spool/document.h"

using namespace spoold;
using namespace jobspectest;

namespace {

// The whole error: code, field, position and message.
void CheckError(const Result<JobSpec>& spec, std::string_view code, std::string_view field, int line,
                int column, std::string_view message) {
  REQUIRE_FALSE(spec.ok());
  CHECK(spec.error().code == code);
  CHECK(spec.error().field == field);
  CHECK(spec.error().line == line);
  CHECK(spec.error().column == column);
  CHECK(spec.error().message == message);
}

}  // namespace

TEST_CASE("job spec: every invalid value is refused with code, field, line and reason") {
  struct {
    DocFormat format;
    std::string text;
    const char* code;
    const char* field;
    int line;  // where the value was written; 0 when the key is absent
    const char* fragment;
  } cases[] = {
      // command and script
      {DocFormat::kToml, "title = \"x\"\n", "missing_field", "command", 0,
       "exactly one of command and script"},
      {DocFormat::kToml, "command = [\"true\"]\nscript = \"echo\"\n", "invalid_field", "script", 2,
       "exactly one"},
      {DocFormat::kToml, "command = []\n", "invalid_field", "command", 1,
       "command must be a non-empty array of strings, got an empty array"},
      {DocFormat::kToml, "command = \"ls -l\"\n", "invalid_field", "command", 1, "got a string"},
      {DocFormat::kToml, "command = [\n  \"ls\",\n  5,\n]\n", "invalid_field", "command[1]", 3,
       "command[1] must be a string, got 5"},
      {DocFormat::kToml, "command = [\"\", \"x\"]\n", "invalid_field", "command[0]", 1,
       "must not be empty"},
      {DocFormat::kJson, R"({"command": ["ls", "a\u0000b"]})", "invalid_field", "command[1]", 1,
       "NUL"},
      {DocFormat::kToml, "script = [\"echo\"]\n", "invalid_field", "script", 1,
       "script must be a string, got an array"},
      {DocFormat::kJson, R"({"script": "echo\u0000"})", "invalid_field", "script", 1, "NUL"},
      // shell
      {DocFormat::kToml, "script = \"x\"\nshell = []\n", "invalid_field", "shell", 2,
       "non-empty array of strings"},
      {DocFormat::kToml, "script = \"x\"\nshell = [\"/bin/sh\", 1]\n", "invalid_field", "shell[1]",
       2, "got 1"},
      {DocFormat::kJson, R"({"script": "x", "shell": ["/bin/sh\u0000"]})", "invalid_field",
       "shell[0]", 1, "NUL"},
      // title, description, tags
      {DocFormat::kToml, "command = [\"true\"]\ntitle = 5\n", "invalid_field", "title", 2,
       "title must be a string, got 5"},
      {DocFormat::kToml, "command = [\"true\"]\ndescription = true\n", "invalid_field",
       "description", 2, "got true"},
      {DocFormat::kToml, "command = [\"true\"]\ntags = \"a\"\n", "invalid_field", "tags", 2,
       "tags must be an array of strings, got a string"},
      {DocFormat::kToml, "command = [\"true\"]\ntags = [\"a\", 1.5]\n", "invalid_field", "tags[1]",
       2, "got 1.5"},
      // pool
      {DocFormat::kToml, "command = [\"true\"]\npool = 1\n", "invalid_field", "pool", 2, "got 1"},
      {DocFormat::kToml, "command = [\"true\"]\npool = \"cpu\"\n", "unknown_pool", "pool", 2,
       "(default, gpu)"},
      // priority
      {DocFormat::kToml, "command = [\"true\"]\npriority = 1.5\n", "invalid_field", "priority", 2,
       "priority must be an integer from -1000000 to 1000000, got 1.5"},
      {DocFormat::kToml, "command = [\"true\"]\npriority = \"high\"\n", "invalid_field", "priority",
       2, "got a string"},
      {DocFormat::kToml, "command = [\"true\"]\npriority = 1000001\n", "invalid_field", "priority",
       2, "got 1000001"},
      {DocFormat::kToml, "command = [\"true\"]\npriority = -1000001\n", "invalid_field", "priority",
       2, "got -1000001"},
      {DocFormat::kJson, R"({"command": ["true"], "priority": 18446744073709551615})",
       "invalid_field", "priority", 1, "got 18446744073709551615"},
      {DocFormat::kJson, R"({"command": ["true"], "priority": 5.0})", "invalid_field", "priority",
       1, "got 5.0"},
      // cwd
      {DocFormat::kToml, "command = [\"true\"]\ncwd = \"tmp/x\"\n", "invalid_field", "cwd", 2,
       "absolute path"},
      {DocFormat::kToml, "command = [\"true\"]\ncwd = \"\"\n", "invalid_field", "cwd", 2,
       "absolute path"},
      {DocFormat::kToml, "command = [\"true\"]\ncwd = 7\n", "invalid_field", "cwd", 2, "got 7"},
      {DocFormat::kJson, R"({"command": ["true"], "cwd": "/tmp\u0000/x"})", "invalid_field", "cwd",
       1, "NUL"},
      // env
      {DocFormat::kToml, "command = [\"true\"]\nenv = \"A=1\"\n", "invalid_field", "env", 2,
       "env must be a table, got a string"},
      {DocFormat::kToml, "command = [\"true\"]\n[env]\n\"BAD-KEY\" = \"x\"\n", "invalid_field",
       "env.BAD-KEY", 3, "not a valid variable name"},
      {DocFormat::kToml, "command = [\"true\"]\n[env]\n1A = \"x\"\n", "invalid_field", "env.1A", 3,
       "not a valid variable name"},
      {DocFormat::kToml, "command = [\"true\"]\n[env]\n\"\" = \"x\"\n", "invalid_field", "env.", 3,
       "not a valid variable name"},
      {DocFormat::kToml, "command = [\"true\"]\n[env]\nSPOOLD_JOB_ID = \"x\"\n", "invalid_field",
       "env.SPOOLD_JOB_ID", 3, "reserved"},
      {DocFormat::kToml, "command = [\"true\"]\n[env]\nA = 1\n", "invalid_field", "env.A", 3,
       "env.A must be a string, got 1"},
      {DocFormat::kJson, R"({"command": ["true"], "env": {"A": "x\u0000y"}})", "invalid_field",
       "env.A", 1, "NUL"},
      // timeout and deadline
      {DocFormat::kToml, "command = [\"true\"]\ntimeout = \"5x\"\n", "invalid_field", "timeout", 2,
       "timeout must be a duration"},
      {DocFormat::kToml, "command = [\"true\"]\ntimeout = -1\n", "invalid_field", "timeout", 2,
       "negative"},
      {DocFormat::kToml, "command = [\"true\"]\ntimeout = true\n", "invalid_field", "timeout", 2,
       "got true"},
      {DocFormat::kToml, "command = [\"true\"]\ntimeout = \"99999999999d\"\n", "invalid_field",
       "timeout", 2, "too long"},
      {DocFormat::kToml, "command = [\"true\"]\ndeadline = \"soon\"\n", "invalid_field", "deadline",
       2, "deadline must be a duration"},
      // Every duration key: at most 100 years of 365 days.
      {DocFormat::kToml, "command = [\"true\"]\ndeadline = 3153600001\n", "invalid_field", "deadline", 2,
       "deadline must be a duration such as \"250ms\", \"1.5s\", \"5m\", \"1h 30m\", \"1d\" or a number of "
       "seconds (too long: at most 100 years, 36500d)"},
      {DocFormat::kToml, "command = [\"true\"]\nretry.delay = \"36501d\"\n", "invalid_field", "retry.delay",
       2, "(too long: at most 100 years, 36500d)"},
      {DocFormat::kToml, "command = [\"true\"]\nretry.max_delay = \"5215w\"\n", "invalid_field",
       "retry.max_delay", 2, "(too long: at most 100 years, 36500d)"},
      {DocFormat::kToml, "command = [\"true\"]\nkill.grace = \"36500d 1ms\"\n", "invalid_field", "kill.grace",
       2, "(too long: at most 100 years, 36500d)"},
      {DocFormat::kToml, "command = [\"true\"]\ntimeout = \"1.5.5s\"\n", "invalid_field", "timeout", 2,
       "(a number has more than one decimal point)"},
      // Hundreds of digits: out of range either way, never an exception.
      {DocFormat::kToml, "command = [\"true\"]\ntimeout = \"1" + std::string(400, '0') + "\"\n",
       "invalid_field", "timeout", 2, "timeout must be a duration"},
      {DocFormat::kToml, "command = [\"true\"]\ntimeout = \"0." + std::string(400, '0') + "1\"\n",
       "invalid_field", "timeout", 2, "timeout must be a duration"},
      {DocFormat::kToml, "command = [\"true\"]\ndeadline = [1]\n", "invalid_field", "deadline", 2,
       "got an array"},
      // retry
      {DocFormat::kToml, "command = [\"true\"]\nretry = 3\n", "invalid_field", "retry", 2,
       "retry must be a table, got 3"},
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\nattempts = 101\n", "invalid_field",
       "retry.attempts", 3, "got 101"},
      {DocFormat::kToml, "command = [\"true\"]\nretry.attempts = \"3\"\n", "invalid_field",
       "retry.attempts", 2, "got a string"},
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\ndelay = \"1x\"\n", "invalid_field",
       "retry.delay", 3, "retry.delay must be a duration"},
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\nmax_delay = -5\n", "invalid_field",
       "retry.max_delay", 3, "negative"},
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\nbackoff = 0.5\n", "invalid_field",
       "retry.backoff", 3, "retry.backoff must be a number from 1.0 to 100.0, got 0.5"},
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\nbackoff = 101\n", "invalid_field",
       "retry.backoff", 3, "got 101"},
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\nbackoff = \"2\"\n", "invalid_field",
       "retry.backoff", 3, "got a string"},
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\non_timeout = \"yes\"\n", "invalid_field",
       "retry.on_timeout", 3, "retry.on_timeout must be a boolean, got a string"},
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\non_timeout = 1\n", "invalid_field",
       "retry.on_timeout", 3, "got 1"},
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\nexit_codes = 3\n", "invalid_field",
       "retry.exit_codes", 3, "array of integers from 1 to 255, got 3"},
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\nexit_codes = [0]\n", "invalid_field",
       "retry.exit_codes[0]", 3, "retry.exit_codes[0] must be an integer from 1 to 255, got 0"},
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\nexit_codes = [\n  1,\n  256,\n]\n",
       "invalid_field", "retry.exit_codes[1]", 5, "got 256"},
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\nexit_codes = [1, \"2\"]\n",
       "invalid_field", "retry.exit_codes[1]", 3, "got a string"},
      // kill
      {DocFormat::kToml, "command = [\"true\"]\nkill = \"TERM\"\n", "invalid_field", "kill", 2,
       "kill must be a table, got a string"},
      {DocFormat::kToml, "command = [\"true\"]\n[kill]\nsignal = \"TERMINATE\"\n", "invalid_field",
       "kill.signal", 3, "kill.signal must be a signal name"},
      {DocFormat::kToml, "command = [\"true\"]\n[kill]\nsignal = \"sigterm\"\n", "invalid_field",
       "kill.signal", 3, "got another string"},
      {DocFormat::kToml, "command = [\"true\"]\n[kill]\nsignal = \"SIG\"\n", "invalid_field",
       "kill.signal", 3, "signal name"},
      {DocFormat::kToml, "command = [\"true\"]\n[kill]\nsignal = 15\n", "invalid_field",
       "kill.signal", 3, "got 15"},
      {DocFormat::kToml, "command = [\"true\"]\n[kill]\ngrace = \"x\"\n", "invalid_field",
       "kill.grace", 3, "kill.grace must be a duration"},
      // hold, metadata
      {DocFormat::kToml, "command = [\"true\"]\nhold = \"yes\"\n", "invalid_field", "hold", 2,
       "hold must be a boolean, got a string"},
      {DocFormat::kToml, "command = [\"true\"]\nmetadata = \"x\"\n", "invalid_field", "metadata", 2,
       "metadata must be a table, got a string"},
      {DocFormat::kJson, R"({"command": ["true"], "metadata": []})", "invalid_field", "metadata", 1,
       "got an empty array"},
      // unknown keys
      {DocFormat::kToml, "command = [\"true\"]\ntitel = \"x\"\n", "unknown_field", "titel", 2,
       "unknown key 'titel'; did you mean 'title'?"},
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\nattemps = 3\n", "unknown_field",
       "retry.attemps", 3, "unknown key 'retry.attemps'; did you mean 'retry.attempts'?"},
      {DocFormat::kToml, "command = [\"true\"]\nkill.signals = \"TERM\"\n", "unknown_field",
       "kill.signals", 2, "unknown key 'kill.signals'; did you mean 'kill.signal'?"},
      {DocFormat::kToml, "command = [\"true\"]\ncolour = 1\n", "unknown_field", "colour", 2,
       "colour is not a known key of a job file"},
      {DocFormat::kJson,
       "{\n  \"command\": [\"true\"],\n  \"retry\": {\n    \"attempts\": -3\n  }\n}\n",
       "invalid_field", "retry.attempts", 4, "got -3"},
      {DocFormat::kJson, R"({"command": ["true"], "retry": {"attempts": 1, "when": 2}})",
       "unknown_field", "retry.when", 1, "not a known key"},
      {DocFormat::kJson, R"({"command": ["true"], "Command": ["true"]})", "unknown_field",
       "Command", 1, "unknown key 'Command'; did you mean 'command'?"},
  };
  for (const auto& c : cases) {
    CAPTURE(FormatName(c.format));
    CAPTURE(c.text);
    auto spec = Validate(c.text, c.format);
    REQUIRE_FALSE(spec.ok());
    const Error& e = spec.error();
    CHECK(e.code == c.code);
    CHECK(e.field == c.field);
    CHECK(e.line == c.line);
    if (c.line > 0) CHECK(e.column > 0);
    CHECK_MESSAGE(e.message.find(c.fragment) != std::string::npos, e.message);
  }
}

TEST_CASE("job spec: the error of SPEC section 3 reads as documented") {
  auto spec = Validate("command = [\"true\"]\n[retry]\nattempts = -3\n", DocFormat::kToml);
  // Column 12: where the value starts, as in the SPEC's example.
  CheckError(spec, "invalid_field", "retry.attempts", 3, 12,
             "retry.attempts must be an integer from 0 to 100, got -3");
}

// Unknown keys used to come last; they come first now, because a misspelt key
// is the user's mistake and a missing or wrong value often only follows from it.
TEST_CASE("job spec: unknown keys come first in file order, then errors in SPEC table order") {
  struct {
    DocFormat format;
    const char* text;
    const char* field;
  } cases[] = {
      // priority precedes timeout in the table, though not in this file.
      {DocFormat::kToml, "timeout = \"x\"\ncommand = [\"true\"]\npriority = \"x\"\n", "priority"},
      // An unknown key wins over a bad known key, wherever it is written.
      {DocFormat::kToml, "aaa = 1\ncommand = [\"true\"]\nhold = 1\n", "aaa"},
      {DocFormat::kToml, "command = [\"true\"]\nhold = 1\naaa = 1\n", "aaa"},
      {DocFormat::kToml, "command = []\n[retry]\nattempts = -1\nzzz = 1\n", "retry.zzz"},
      // ... and over the missing command its typo causes.
      {DocFormat::kToml, "comand = [\"true\"]\n", "comand"},
      // A [retry] that is no table is reported by its own check.
      {DocFormat::kToml, "command = [\"true\"]\nretry = 3\n", "retry"},
      // A bad command is reported before the missing/duplicate rule.
      {DocFormat::kToml, "command = []\nscript = \"x\"\n", "command"},
      // Unknown keys: the first written in the file, nested ones included.
      {DocFormat::kToml, "command = [\"true\"]\nretry.zzz = 1\nyyy = 1\naaa = 1\n", "retry.zzz"},
      {DocFormat::kToml, "command = [\"true\"]\nzzz = 1\naaa = 1\n", "zzz"},
      {DocFormat::kJson, R"({"command": ["true"], "zz": 1, "kill": {"a": 1}, "aa": 1})", "zz"},
      {DocFormat::kJson, R"({"command": ["true"], "kill": {"a": 1}, "retry": {"b": 1}})", "kill.a"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto spec = Validate(c.text, c.format);
    REQUIRE_FALSE(spec.ok());
    CHECK(spec.error().field == c.field);
  }
}

TEST_CASE("job spec: a misspelt key is reported as unknown, naming the key it is close to") {
  struct {
    DocFormat format;
    const char* text;
    const char* field;
    int line;
    int column;
    const char* message;
  } cases[] = {
      // The issue's example: not "missing_field: command".
      {DocFormat::kToml, "comand = [\"true\"]\n", "comand", 1, 10,
       "unknown key 'comand'; did you mean 'command'?"},
      {DocFormat::kJson, "{\n  \"comand\": [\"true\"]\n}\n", "comand", 2, 13,
       "unknown key 'comand'; did you mean 'command'?"},
      // Nested keys are compared with the keys of their own table.
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\nmax-delay = \"1m\"\n", "retry.max-delay", 3, 13,
       "unknown key 'retry.max-delay'; did you mean 'retry.max_delay'?"},
      {DocFormat::kToml, "command = [\"true\"]\n[retry]\ndealy = \"1m\"\n", "retry.dealy", 3, 9,
       "unknown key 'retry.dealy'; did you mean 'retry.delay'?"},
      {DocFormat::kToml, "command = [\"true\"]\ndealy = \"1m\"\n", "dealy", 2, 9,
       "dealy is not a known key of a job file"},
      {DocFormat::kJson, R"({"command": ["true"], "kill": {"Grace": "1s"}})", "kill.Grace", 1, 41,
       "unknown key 'kill.Grace'; did you mean 'kill.grace'?"},
      // A hostile name is shown escaped and cut, in the suggestion as elsewhere.
      {DocFormat::kJson, R"({"command": ["true"], "scrip\u0007t": "x"})", "scrip\\x07t", 1, 39,
       "unknown key 'scrip\\x07t'; did you mean 'script'?"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    CheckError(Validate(c.text, c.format), "unknown_field", c.field, c.line, c.column, c.message);
  }
}

TEST_CASE("job spec: without positions, unknown keys come top level, then retry, then kill") {
  // A Document built in code has no positions; the order must still be fixed.
  struct {
    Json value;
    const char* field;
  } cases[] = {
      {Json::parse(R"({"command": ["true"], "kill": {"a": 1}, "retry": {"a": 1}, "zz": 1})"), "zz"},
      {Json::parse(R"({"command": ["true"], "kill": {"a": 1}, "retry": {"b": 1}})"), "retry.b"},
      {Json::parse(R"({"command": ["true"], "kill": {"b": 1, "a": 1}})"), "kill.a"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.field);
    Document doc;
    doc.value = c.value;
    auto spec = ValidateJobSpec(doc, "job-1", TestConfig());
    REQUIRE_FALSE(spec.ok());
    CHECK(spec.error().field == c.field);
    CHECK(spec.error().line == 0);
  }
}

TEST_CASE("job spec: an empty TOML file lacks command, like any file without one") {
  for (const char* text : {"", "\n", "# a job, one day\n", "title = \"no command\"\n"}) {
    CAPTURE(text);
    auto spec = Validate(text, DocFormat::kToml);
    REQUIRE_FALSE(spec.ok());
    CHECK(spec.error().code == "missing_field");
    CHECK(spec.error().field == "command");
    CHECK(spec.error().message == "command is missing: a job needs exactly one of command and script");
  }
  // Empty JSON is not JSON.
  Result<Document> json = ParseDocument("", DocFormat::kJson);
  REQUIRE_FALSE(json.ok());
  CHECK(json.error().code == "parse_error");
}

TEST_CASE("job spec: TOML nan and inf are invalid values of the field that holds them") {
  // Valid TOML, so not parse_error: invalid_field, named, with its position.
  struct {
    std::string text;
    const char* field;
    int line;
    int column;
    const char* message;
  } cases[] = {
      {"timeout = nan", "timeout", 2, 11,
       "timeout must be a duration (a string such as \"30s\" or a number of seconds), got nan"},
      {"deadline = inf", "deadline", 2, 12,
       "deadline must be a duration (a string such as \"30s\" or a number of seconds), got inf"},
      {"kill.grace = -inf", "kill.grace", 2, 14,
       "kill.grace must be a duration (a string such as \"30s\" or a number of seconds), got -inf"},
      {"[retry]\ndelay = +inf", "retry.delay", 3, 9,
       "retry.delay must be a duration (a string such as \"30s\" or a number of seconds), got inf"},
      {"priority = nan", "priority", 2, 12, "priority must be an integer from -1000000 to 1000000, got nan"},
      {"priority = -inf", "priority", 2, 12,
       "priority must be an integer from -1000000 to 1000000, got -inf"},
      {"retry.backoff = inf", "retry.backoff", 2, 17,
       "retry.backoff must be a number from 1.0 to 100.0, got inf"},
      {"retry.backoff = nan", "retry.backoff", 2, 17,
       "retry.backoff must be a number from 1.0 to 100.0, got nan"},
      {"retry.attempts = nan", "retry.attempts", 2, 18,
       "retry.attempts must be an integer from 0 to 100, got nan"},
      {"retry.exit_codes = [1, inf]", "retry.exit_codes[1]", 2, 24,
       "retry.exit_codes[1] must be an integer from 1 to 255, got inf"},
      {"hold = nan", "hold", 2, 8, "hold must be a boolean, got nan"},
      {"title = inf", "title", 2, 9, "title must be a string, got inf"},
      {"[metadata]\nok = 1.5\nloss = [0.5, nan]", "metadata.loss[1]", 4, 14,
       "metadata.loss[1] must not be nan or infinite: status.json shows metadata as JSON, which has neither"},
      {"metadata.a.b = -inf", "metadata.a.b", 2, 16,
       "metadata.a.b must not be nan or infinite: status.json shows metadata as JSON, which has neither"},
  };
  for (const auto& c : cases) {
    const std::string text = "command = [\"true\"]\n" + c.text + "\n";
    CAPTURE(text);
    CheckError(Validate(text, DocFormat::kToml), "invalid_field", c.field, c.line, c.column, c.message);
  }
}

TEST_CASE("job spec: non-finite numbers in a document built in code are refused too") {
  // JSON has no nan or inf, but a Document may be built in code.
  struct {
    const char* key;
    const char* subkey;
    const char* field;
    const char* fragment;
  } cases[] = {
      {"retry", "backoff", "retry.backoff", "retry.backoff must be a number from 1.0 to 100.0, got "},
      {"timeout", nullptr, "timeout", "timeout must be a duration"},
      {"priority", nullptr, "priority", "priority must be an integer"},
      {"metadata", "x", "metadata.x", "metadata.x must not be nan or infinite"},
  };
  for (double bad : {std::nan(""), HUGE_VAL, -HUGE_VAL}) {
    for (const auto& c : cases) {
      CAPTURE(c.field);
      CAPTURE(bad);
      Document doc;
      doc.value = {{"command", {"true"}}};
      if (c.subkey != nullptr) {
        doc.value[c.key][c.subkey] = bad;
      } else {
        doc.value[c.key] = bad;
      }
      auto spec = ValidateJobSpec(doc, "job-1", TestConfig());
      REQUIRE_FALSE(spec.ok());
      CHECK(spec.error().field == c.field);
      CHECK(spec.error().message.find(c.fragment) != std::string::npos);
      if (std::string_view(c.key) != "metadata") {
        CHECK(spec.error().message.ends_with(std::isnan(bad) ? "got nan" : bad > 0 ? "got inf" : "got -inf"));
      }
    }
  }
}

TEST_CASE("job spec: no error message quotes a string from the file") {
  // Each value is a string the validator refuses; its text must not come back.
  const char* kHostile = "EVIL\\u001b[2J\\u0007payload";
  const std::string cases[] = {
      R"({"command": "EVIL"})",
      R"({"command": ["", "EVIL"]})",
      R"({"command": ["EVIL\u0000"]})",
      R"({"script": "EVIL\u0000"})",
      R"({"command": ["true"], "script": "EVIL"})",
      R"({"command": ["true"], "shell": "EVIL"})",
      R"({"command": ["true"], "tags": "EVIL"})",
      R"({"command": ["true"], "pool": "EVIL"})",
      R"({"command": ["true"], "priority": "EVIL"})",
      R"({"command": ["true"], "cwd": "EVIL"})",
      R"({"command": ["true"], "env": "EVIL"})",
      R"({"command": ["true"], "env": {"A": "EVIL\u0000"}})",
      R"({"command": ["true"], "timeout": "EVIL"})",
      R"({"command": ["true"], "timeout": "5EVIL"})",
      R"({"command": ["true"], "deadline": "1hEVIL"})",
      R"({"command": ["true"], "retry": "EVIL"})",
      R"({"command": ["true"], "retry": {"attempts": "EVIL"}})",
      R"({"command": ["true"], "retry": {"delay": "EVIL"}})",
      R"({"command": ["true"], "retry": {"backoff": "EVIL"}})",
      R"({"command": ["true"], "retry": {"on_timeout": "EVIL"}})",
      R"({"command": ["true"], "retry": {"exit_codes": ["EVIL"]}})",
      R"({"command": ["true"], "kill": {"signal": "EVIL"}})",
      R"({"command": ["true"], "kill": {"signal": "SIGEVIL"}})",
      R"({"command": ["true"], "kill": {"grace": "EVIL"}})",
      R"({"command": ["true"], "hold": "EVIL"})",
      R"({"command": ["true"], "metadata": "EVIL"})",
      R"({"command": ["true"], "title": ["EVIL"]})",
  };
  for (std::string text : cases) {
    for (size_t at = text.find("EVIL"); at != std::string::npos; at = text.find("EVIL", at + 1)) {
      text.replace(at, 4, kHostile);
      at += std::string_view(kHostile).size() - 1;
    }
    CAPTURE(text);
    auto spec = Validate(text, DocFormat::kJson);
    REQUIRE_FALSE(spec.ok());
    CHECK(spec.error().message.find("EVIL") == std::string::npos);
    CHECK(spec.error().message.find("payload") == std::string::npos);
    CHECK(spec.error().field.find("EVIL") == std::string::npos);
  }
}

TEST_CASE("job spec: unknown and bad key names are shown only in printable, bounded form") {
  std::string long_key(200, 'k');
  struct {
    std::string text;
    std::string field;
  } cases[] = {
      {R"({"command": ["true"], "x\u001b[2Jy": 1})", "x\\x1b[2Jy"},
      {R"({"command": ["true"], "retry": {"a\u0000b": 1}})", "retry.a\\x00b"},
      {R"({"command": ["true"], "env": {"A\nB": "x"}})", "env.A\\x0aB"},
      {"{\"command\": [\"true\"], \"" + long_key + "\": 1}", std::string(64, 'k') + "..."},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto spec = Validate(c.text, DocFormat::kJson);
    REQUIRE_FALSE(spec.ok());
    CHECK(spec.error().field == c.field);
    CHECK(spec.error().message.find(c.field) != std::string::npos);
    CHECK(spec.error().message.find(long_key) == std::string::npos);
    for (char ch : spec.error().message) {
      CHECK(static_cast<unsigned char>(ch) >= 0x20);
    }
  }
}

TEST_CASE("job spec: an invalid id is refused even when the file is valid") {
  auto doc = ParseDocument("command = [\"true\"]\n", DocFormat::kToml);
  REQUIRE(doc.ok());
  auto spec = ValidateJobSpec(*doc, "../etc", TestConfig());
  REQUIRE_FALSE(spec.ok());
  CHECK(spec.error().code == "bad_id");
}

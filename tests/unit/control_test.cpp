#include "spool/control.h"

#include <doctest/doctest.h>

#include <span>
#include <string>

#include "spool/document.h"

using namespace spoold;

namespace {

Result<ControlRequest> Parse(std::string_view text, DocFormat format) {
  auto doc = ParseDocument(text, format);
  REQUIRE_MESSAGE(doc.ok(), doc.error().message);
  return ParseControlRequest(*doc);
}

struct Refusal {
  DocFormat format;
  const char* text;
  const char* code;
  const char* field;
  int line;
  const char* message;
  int column = 0;  // of the value, as for every field; 0: not checked
};

void CheckRefusals(std::span<const Refusal> cases) {
  for (const auto& c : cases) {
    CAPTURE(std::string(c.text));
    auto request = Parse(c.text, c.format);
    REQUIRE_FALSE(request.ok());
    CHECK(request.error().code == c.code);
    CHECK(request.error().field == c.field);
    CHECK(request.error().line == c.line);
    CHECK(request.error().message == c.message);
    if (c.column != 0) CHECK(request.error().column == c.column);
  }
}

}  // namespace

TEST_CASE("control: a misspelt key is reported first, naming the key it is close to") {
  const Refusal cases[] = {
      // Not "missing_field: job".
      {DocFormat::kJson, R"({"action": "cancel", "jbo": "x"})", "unknown_field", "jbo", 1,
       "unknown key 'jbo'; did you mean 'job'?"},
      {DocFormat::kToml, "action = \"pause\"\npol = \"gpu\"\n", "unknown_field", "pol", 2,
       "unknown key 'pol'; did you mean 'pool'?"},
      // Not "missing_field: action"; without a known action, any request's keys count.
      {DocFormat::kToml, "acton = \"cancel\"\njob = \"x\"\n", "unknown_field", "acton", 1,
       "unknown key 'acton'; did you mean 'action'?"},
      {DocFormat::kJson, R"({"Action": "resume", "pool": "gpu"})", "unknown_field", "Action", 1,
       "unknown key 'Action'; did you mean 'action'?"},
      // Before an action that is not one.
      {DocFormat::kJson, R"({"action": "frobnicate", "jobb": "x"})", "unknown_field", "jobb", 1,
       "unknown key 'jobb'; did you mean 'job'?"},
      // Keys of another request are unknown, with no suggestion.
      {DocFormat::kJson, R"({"action": "cancel", "job": "x", "pool": "gpu"})", "unknown_field", "pool", 1,
       "unknown key pool in a cancel request; it takes action and job"},
      {DocFormat::kJson, R"({"action": "cancel", "job": "x", "force": true})", "unknown_field", "force", 1,
       "unknown key force in a cancel request; it takes action and job"},
      {DocFormat::kJson, R"({"force": true})", "unknown_field", "force", 1,
       "unknown key force in a request; it takes action and job, pool or stop_jobs"},
      // Without unknown keys, the other errors as before.
      {DocFormat::kJson, R"({"job": "x"})", "missing_field", "action", 0,
       "action is required: cancel, start, pause, resume or shutdown"},
      {DocFormat::kJson, R"({"action": "frobnicate", "job": "x"})", "invalid_field", "action", 1,
       "action must be cancel, start, pause, resume or shutdown"},
      {DocFormat::kJson, R"({"action": "cancel"})", "missing_field", "job", 0, "a cancel request needs job"},
      // TOML's nan and inf are values like others: not parse errors.
      {DocFormat::kToml, "action = nan\njob = \"x\"\n", "invalid_field", "action", 1,
       "action must be a string: cancel, start, pause, resume or shutdown"},
      {DocFormat::kToml, "action = \"cancel\"\njob = inf\n", "invalid_field", "job", 2,
       "job must be a string"},
  };
  CheckRefusals(cases);
  auto ok = Parse(R"({"action": "start", "job": "x"})", DocFormat::kJson);
  REQUIRE(ok.ok());
  CHECK(ok->job == "x");
}

TEST_CASE("control: shutdown takes an optional boolean stop_jobs and nothing else") {
  struct {
    DocFormat format;
    const char* text;
    bool stop_jobs;
  } valid[] = {
      // Without stop_jobs the jobs keep running, as after SIGTERM.
      {DocFormat::kJson, R"({"action": "shutdown"})", false},
      {DocFormat::kJson, R"({"action": "shutdown", "stop_jobs": false})", false},
      {DocFormat::kJson, R"({"action": "shutdown", "stop_jobs": true})", true},
      {DocFormat::kToml, "action = \"shutdown\"\n", false},
      {DocFormat::kToml, "action = \"shutdown\"\nstop_jobs = true\n", true},
  };
  for (const auto& c : valid) {
    CAPTURE(std::string(c.text));
    auto request = Parse(c.text, c.format);
    REQUIRE_MESSAGE(request.ok(), request.error().message);
    CHECK(request->action == ControlAction::kShutdown);
    CHECK(request->stop_jobs == c.stop_jobs);
    CHECK(request->job.empty());
    CHECK(request->pool.empty());
  }
  CHECK(std::string(ControlActionName(ControlAction::kShutdown)) == "shutdown");

  const Refusal invalid[] = {
      // Only shutdown takes stop_jobs.
      {DocFormat::kJson, R"({"action": "cancel", "job": "x", "stop_jobs": true})", "unknown_field",
       "stop_jobs", 1, "unknown key stop_jobs in a cancel request; it takes action and job", 47},
      {DocFormat::kToml, "action = \"pause\"\npool = \"gpu\"\nstop_jobs = false\n", "unknown_field",
       "stop_jobs", 3, "unknown key stop_jobs in a pause request; it takes action and pool", 13},
      // And shutdown takes no job or pool: it stops the whole daemon.
      {DocFormat::kJson, R"({"action": "shutdown", "job": "x"})", "unknown_field", "job", 1,
       "unknown key job in a shutdown request; it takes action and stop_jobs", 31},
      {DocFormat::kToml, "action = \"shutdown\"\npool = \"gpu\"\n", "unknown_field", "pool", 2,
       "unknown key pool in a shutdown request; it takes action and stop_jobs", 8},
      {DocFormat::kToml, "action = \"shutdown\"\nstop_job = true\n", "unknown_field", "stop_job", 2,
       "unknown key 'stop_job'; did you mean 'stop_jobs'?", 12},
      // Without a known action, any request's keys count: stop_jobs too.
      {DocFormat::kJson, R"({"stopjobs": true})", "unknown_field", "stopjobs", 1,
       "unknown key 'stopjobs'; did you mean 'stop_jobs'?", 14},
      // A boolean, not what reads like one.
      {DocFormat::kJson, R"({"action": "shutdown", "stop_jobs": "true"})", "invalid_field", "stop_jobs", 1,
       "stop_jobs must be true or false", 37},
      {DocFormat::kJson, R"({"action": "shutdown", "stop_jobs": 1})", "invalid_field", "stop_jobs", 1,
       "stop_jobs must be true or false", 37},
      {DocFormat::kToml, "action = \"shutdown\"\nstop_jobs = \"yes\"\n", "invalid_field", "stop_jobs", 2,
       "stop_jobs must be true or false", 13},
      {DocFormat::kToml, "action = \"shutdown\"\nstop_jobs = 0\n", "invalid_field", "stop_jobs", 2,
       "stop_jobs must be true or false", 13},
  };
  CheckRefusals(invalid);
}

#include "spool/control.h"

#include <doctest/doctest.h>

#include <string>

#include "spool/document.h"

using namespace spoold;

namespace {

Result<ControlRequest> Parse(std::string_view text, DocFormat format) {
  auto doc = ParseDocument(text, format);
  REQUIRE_MESSAGE(doc.ok(), doc.error().message);
  return ParseControlRequest(*doc);
}

}  // namespace

TEST_CASE("control: a misspelt key is reported first, naming the key it is close to") {
  struct {
    DocFormat format;
    const char* text;
    const char* code;
    const char* field;
    int line;
    const char* message;
  } cases[] = {
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
       "unknown key force in a request; it takes action and job or pool"},
      // Without unknown keys, the other errors as before.
      {DocFormat::kJson, R"({"job": "x"})", "missing_field", "action", 0,
       "action is required: cancel, start, pause or resume"},
      {DocFormat::kJson, R"({"action": "frobnicate", "job": "x"})", "invalid_field", "action", 1,
       "action must be cancel, start, pause or resume"},
      {DocFormat::kJson, R"({"action": "cancel"})", "missing_field", "job", 0, "a cancel request needs job"},
      // TOML's nan and inf are values like others: not parse errors.
      {DocFormat::kToml, "action = nan\njob = \"x\"\n", "invalid_field", "action", 1,
       "action must be a string: cancel, start, pause or resume"},
      {DocFormat::kToml, "action = \"cancel\"\njob = inf\n", "invalid_field", "job", 2,
       "job must be a string"},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.text));
    auto request = Parse(c.text, c.format);
    REQUIRE_FALSE(request.ok());
    CHECK(request.error().code == c.code);
    CHECK(request.error().field == c.field);
    CHECK(request.error().line == c.line);
    CHECK(request.error().message == c.message);
  }
  auto ok = Parse(R"({"action": "start", "job": "x"})", DocFormat::kJson);
  REQUIRE(ok.ok());
  CHECK(ok->job == "x");
}

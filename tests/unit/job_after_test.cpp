// A job file's `after` (spool/job_after.cpp through ValidateJobSpec): both
// forms, the conditions, and every way a list is refused, with code, field and
// line.
#include "spool/job_after.h"

#include <doctest/doctest.h>

#include <string>

#include "job_spec_test_helpers.h"
#include "spool/job_spec.h"

using namespace spoold;
using namespace jobspectest;

TEST_CASE("after: ids and tables, success by default, in file order") {
  auto spec = Validate(
      "command = [\"true\"]\n"
      "after = [\"prep\", {job = \"clean\", on = \"any\"}, {job = \"probe\", on = \"failure\"}, {job = "
      "\"x.1\"}]\n",
      DocFormat::kToml);
  REQUIRE(spec.ok());
  REQUIRE(spec->after.size() == 4);
  CHECK(spec->after[0] == Dependency{"prep", AfterOn::kSuccess});
  CHECK(spec->after[1] == Dependency{"clean", AfterOn::kAny});
  CHECK(spec->after[2] == Dependency{"probe", AfterOn::kFailure});
  CHECK(spec->after[3] == Dependency{"x.1", AfterOn::kSuccess});

  auto json =
      Validate(R"({"command": ["true"], "after": [{"job": "a", "on": "success"}, "b"]})", DocFormat::kJson);
  REQUIRE(json.ok());
  CHECK(json->after == std::vector<Dependency>{{"a", AfterOn::kSuccess}, {"b", AfterOn::kSuccess}});
}

TEST_CASE("after: what each condition accepts of a parent's end") {
  CHECK(AfterHolds(AfterOn::kSuccess, JobState::kSucceeded));
  CHECK_FALSE(AfterHolds(AfterOn::kSuccess, JobState::kFailed));
  CHECK_FALSE(AfterHolds(AfterOn::kSuccess, JobState::kCancelled));
  CHECK(AfterHolds(AfterOn::kFailure, JobState::kFailed));
  CHECK_FALSE(AfterHolds(AfterOn::kFailure, JobState::kSucceeded));
  CHECK_FALSE(AfterHolds(AfterOn::kFailure, JobState::kCancelled));
  CHECK(AfterHolds(AfterOn::kAny, JobState::kSucceeded));
  CHECK(AfterHolds(AfterOn::kAny, JobState::kFailed));
  CHECK(AfterHolds(AfterOn::kAny, JobState::kCancelled));
}

TEST_CASE("after: refused lists name the element, its line and the rule") {
  struct {
    std::string text;
    const char* code;
    const char* field;
    int line;
    const char* fragment;
  } cases[] = {
      {"after = \"prep\"\n", "invalid_field", "after", 2, "write [\"...\"] for one job"},
      {"after = [\"prep\", 3]\n", "invalid_field", "after[1]", 2,
       "must be a job id or a {job, on} table, got number"},
      {"after = [\"../etc\"]\n", "invalid_field", "after[0]", 2, "must be a job id"},
      {"after = [\"\"]\n", "invalid_field", "after[0]", 2, "must be a job id"},
      {"after = [\"job-1\"]\n", "dependency_cycle", "after[0]", 2, "names the job itself"},
      {"after = [{job = \"job-1\", on = \"any\"}]\n", "dependency_cycle", "after[0].job", 2,
       "names the job itself"},
      {"after = [\"a\", \"b\", \"a\"]\n", "invalid_field", "after[2]", 2, "names a a second time"},
      {"after = [{on = \"any\"}]\n", "missing_field", "after[0].job", 2, "names no job"},
      {"after = [{job = \"a\", on = \"done\"}]\n", "invalid_field", "after[0].on", 2,
       "must be \"success\", \"failure\" or \"any\", got another string"},
      {"after = [{job = \"a\", on = true}]\n", "invalid_field", "after[0].on", 2, "got boolean"},
      {"after = [{job = \"a\", colour = \"any\"}]\n", "unknown_field", "after[0].colour", 2,
       "after[0].colour is not a known key"},
      {"after = [{job = \"a\", one = \"any\"}]\n", "unknown_field", "after[0].one", 2,
       "did you mean 'after[0].on'?"},
      {"after = [{jobb = \"a\"}]\n", "unknown_field", "after[0].jobb", 2, "job"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto spec = Validate("command = [\"true\"]\n" + c.text, DocFormat::kToml);
    REQUIRE_FALSE(spec.ok());
    CHECK(spec.error().code == c.code);
    CHECK(spec.error().field == c.field);
    CHECK(spec.error().line == c.line);
    CHECK(spec.error().message.find(c.fragment) != std::string::npos);
  }
}

TEST_CASE("after: a list longer than dependencies.max_after is refused before it is read") {
  Config config = TestConfig();
  config.max_after = 3;
  auto doc = ParseDocument(R"({"command": ["true"], "after": ["a", "b", "c", "d"]})", DocFormat::kJson);
  REQUIRE(doc.ok());
  auto spec = ValidateJobSpec(*doc, "job-1", config);
  REQUIRE_FALSE(spec.ok());
  CHECK(spec.error().code == "invalid_field");
  CHECK(spec.error().field == "after");
  CHECK(spec.error().message == "after names 4 jobs; at most 3 are allowed (dependencies.max_after)");

  // 10,000 parents (the largest bound the configuration allows) validate.
  config.max_after = 10000;
  Json many = Json::array();
  for (int i = 0; i < 10000; ++i) many.push_back("p" + std::to_string(i));
  Document big;
  big.value = Json{{"command", {"true"}}, {"after", many}};
  auto ok = ValidateJobSpec(big, "job-1", config);
  REQUIRE(ok.ok());
  CHECK(ok->after.size() == 10000);
}

TEST_CASE("after: an unknown key of a table comes before the errors of earlier keys") {
  auto spec = Validate("command = [\"true\"]\npriority = \"high\"\nafter = [{job = \"a\", onn = \"any\"}]\n",
                       DocFormat::kToml);
  REQUIRE_FALSE(spec.ok());
  CHECK(spec.error().code == "unknown_field");
  CHECK(spec.error().field == "after[0].onn");
  CHECK(spec.error().message.find("on") != std::string::npos);
}

TEST_CASE("after: a job accepted before max_after was lowered still reads when recovered") {
  Config config = TestConfig();
  config.max_after = 2;
  auto doc = ParseDocument(R"({"command": ["true"], "after": ["a", "b", "c"]})", DocFormat::kJson);
  REQUIRE(doc.ok());
  CHECK_FALSE(ValidateJobSpec(*doc, "job-1", config).ok());
  auto kept = RevalidateJobSpec(*doc, "job-1", config);
  REQUIRE(kept.ok());
  CHECK(kept->after.size() == 3);
}

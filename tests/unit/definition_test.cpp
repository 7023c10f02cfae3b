// Definitions and runs (spool/definition.h): parsing a definition, and
// resolving a run against it, each rejection code with its field.
#include "spool/definition.h"

#include <doctest/doctest.h>

#include <string>

#include "job_spec_test_helpers.h"

using namespace spoold;

namespace {

Definition Def(std::string_view text) {
  auto def = ParseDefinition("etl", text, DocFormat::kToml, jobspectest::TestConfig());
  REQUIRE_MESSAGE(def.ok(), def.error().message);
  return *def;
}

Error DefError(std::string_view text) {
  auto def = ParseDefinition("etl", text, DocFormat::kToml, jobspectest::TestConfig());
  REQUIRE(!def.ok());
  return def.error();
}

Result<ResolvedRun> Run(const Definition& def, std::string_view text, DocFormat format = DocFormat::kToml) {
  auto doc = ParseDocument(text, format);
  REQUIRE_MESSAGE(doc.ok(), doc.error().message);
  return ResolveRun(def, *doc, "etl-1", jobspectest::TestConfig());
}

constexpr std::string_view kEtl = R"(
title = "ETL of {{day}}"
command = ["etl", "--day={{day}}", "--n", "{{n}}", "{{.Id}}"]
script_note = 1
)";

constexpr std::string_view kDef = R"(
title = "ETL of {{day}}"
command = ["etl", "--day={{day}}", "--n", "{{n}}", "{{.Id}}"]
env = { DAY = "{{day}}", FIXED = "x" }
cwd = "/data/{{day}}"
allow_override = ["priority", "env"]

[params.day]
pattern = "[0-9]{4}-[0-9]{2}-[0-9]{2}"

[params.n]
type = "integer"
default = 2

[params.dry]
type = "boolean"
default = false
)";

}  // namespace

TEST_CASE("a definition: its params, overrides and job keys") {
  Definition def = Def(kDef);
  CHECK(def.params.size() == 3);
  CHECK(def.params.at("n").type == ParamSpec::Type::kInteger);
  CHECK(*def.params.at("n").default_value == 2);
  CHECK(!def.params.at("day").default_value);
  CHECK(def.allow_override == std::set<std::string>{"priority", "env"});
  CHECK(!def.job.contains("params"));
  CHECK(!def.job.contains("allow_override"));
  CHECK(def.job["command"][1] == "--day={{day}}");
}

TEST_CASE("a definition with an error names its field and line") {
  CHECK(DefError(kEtl).code == "unknown_field");
  Error e = DefError("command = [\"x\", \"{{dya}}\"]\n[params.day]\n");
  CHECK(e.code == "invalid_field");
  CHECK(e.field == "command[1]");
  CHECK(e.line == 1);
  CHECK(e.message.find("{{dya}}") != std::string::npos);
  e = DefError("command = [\"x\"]\n[params.n]\ntype = \"integer\"\ndefault = \"3\"\n");
  CHECK(e.field == "params.n.default");
  CHECK(e.line == 4);
  e = DefError("command = [\"x\"]\n[params.day]\npattern = \"[0-9\"\n");
  CHECK(e.field == "params.day.pattern");
  e = DefError("command = [\"x\"]\n[params.Day]\n");
  CHECK(e.field == "params.Day");
  e = DefError("command = [\"x\"]\n[params.day]\ntyp = \"string\"\n");
  CHECK(e.code == "unknown_field");
  CHECK(e.field == "params.day.typ");
  e = DefError("command = [\"x\"]\nallow_override = [\"comand\"]\n");
  CHECK(e.field == "allow_override[0]");
  e = DefError("command = [\"x\"]\npool = \"nope\"\n");
  CHECK(e.code == "unknown_pool");
  e = DefError("command = [\"x\"]\ndefinition = \"other\"\n");
  CHECK(e.field == "definition");
  // A default that breaks its own pattern.
  e = DefError("command = [\"x\"]\n[params.day]\npattern = \"[0-9]+\"\ndefault = \"today\"\n");
  CHECK(e.field == "params.day.default");
  // The job keys are checked with the defaults: a relative cwd is caught.
  e = DefError("command = [\"x\"]\ncwd = \"{{dir}}\"\n[params.dir]\ndefault = \"rel\"\n");
  CHECK(e.field == "cwd");
}

TEST_CASE("a placeholder without a default passes every check as a sample value") {
  Def("command = [\"x\"]\ncwd = \"{{dir}}\"\ntitle = \"{{t}}\"\n[params.dir]\n[params.t]\n");
}

TEST_CASE("a run resolves params into command, env, cwd and title, never twice") {
  Definition def = Def(kDef);
  auto run = Run(def, "definition = \"etl\"\n[params]\nday = \"2026-12-01\"\n");
  REQUIRE_MESSAGE(run.ok(), run.error().message);
  const Json& job = run->job.value;
  CHECK(job["title"] == "ETL of 2026-12-01");
  CHECK(job["command"] == Json::array({"etl", "--day=2026-12-01", "--n", "2", "{{.Id}}"}));
  CHECK(job["env"]["DAY"] == "2026-12-01");
  CHECK(job["cwd"] == "/data/2026-12-01");
  CHECK(!job.contains("definition"));
  CHECK(!job.contains("params"));
  CHECK(run->params == Json{{"day", "2026-12-01"}, {"n", 2}, {"dry", false}});
  CHECK(run->spec.command[3] == "2");
  // Values with quotes, newlines and placeholders of their own stay as given.
  Definition any = Def("command = [\"echo\", \"{{a}}\", \"{{b}}\"]\n[params.a]\n[params.b]\n");
  auto tricky = Run(any, R"J({"definition": "etl", "params": {"a": "it's \"{{b}}\"\n$(id)", "b": "{{a}}"}})J",
                    DocFormat::kJson);
  REQUIRE_MESSAGE(tricky.ok(), tricky.error().message);
  CHECK(tricky->job.value["command"][1] == "it's \"{{b}}\"\n$(id)");
  CHECK(tricky->job.value["command"][2] == "{{a}}");
}

TEST_CASE("a run's values are typed, and strings of them are taken") {
  Definition def = Def(kDef);
  auto run = Run(def, "definition = \"etl\"\n[params]\nday = \"2026-12-01\"\nn = \"7\"\ndry = \"true\"\n");
  REQUIRE(run.ok());
  CHECK(run->params["n"] == 7);
  CHECK(run->params["dry"] == true);
  CHECK(ParamText(run->params["dry"]) == "true");
  CHECK(ParamVariable("day") == "SPOOLD_PARAM_DAY");
}

TEST_CASE("each rejection of a run names its param or key") {
  Definition def = Def(kDef);
  auto check = [&](std::string_view text, const char* code, const char* field) {
    auto run = Run(def, text);
    REQUIRE(!run.ok());
    CHECK(run.error().code == code);
    CHECK(run.error().field == field);
  };
  check("definition = \"etl\"\n", "missing_param", "params.day");
  check("definition = \"etl\"\n[params]\nday = \"2026-12-01\"\nmonth = \"x\"\n", "unknown_param",
        "params.month");
  check("definition = \"etl\"\n[params]\nday = \"yesterday\"\n", "invalid_param", "params.day");
  check("definition = \"etl\"\n[params]\nday = 20261201\n", "invalid_param", "params.day");
  check("definition = \"etl\"\n[params]\nday = \"2026-12-01\"\nn = \"7x\"\n", "invalid_param", "params.n");
  check("definition = \"etl\"\n[params]\nday = \"2026-12-01\"\ndry = 1\n", "invalid_param", "params.dry");
  check("definition = \"etl\"\ncommand = [\"rm\"]\n[params]\nday = \"2026-12-01\"\n", "override_not_allowed",
        "command");
  check("definition = \"etl\"\ncomand = [\"rm\"]\n[params]\nday = \"2026-12-01\"\n", "unknown_field",
        "comand");
  // An allowed override that breaks the job is the job's error.
  check("definition = \"etl\"\npriority = \"high\"\n[params]\nday = \"2026-12-01\"\n", "invalid_field",
        "priority");
  auto nul =
      Run(def, R"({"definition": "etl", "params": {"day": "2026-12-01", "n": "1\u0000"}})", DocFormat::kJson);
  CHECK(nul.error().code == "invalid_param");
}

TEST_CASE("a run overrides what it may: tables merge, values replace, hold and metadata always") {
  Definition def = Def(kDef);
  auto run = Run(def,
                 "definition = \"etl\"\npriority = 5\nhold = true\nenv = { EXTRA = \"{{day}}\" }\n"
                 "metadata = { by = \"cron\" }\n[params]\nday = \"2026-12-01\"\n");
  REQUIRE_MESSAGE(run.ok(), run.error().message);
  CHECK(run->spec.priority == 5);
  CHECK(run->spec.hold);
  CHECK(run->spec.env.at("FIXED") == "x");
  CHECK(run->spec.env.at("DAY") == "2026-12-01");
  CHECK(run->spec.env.at("EXTRA") == "{{day}}");  // the run's own values are taken as written
  CHECK(run->spec.metadata["by"] == "cron");
  // Its positions are the run file's.
  auto bad = Run(def, "definition = \"etl\"\n\npriority = \"x\"\n[params]\nday = \"2026-12-01\"\n");
  CHECK(bad.error().line == 3);
}

TEST_CASE("what a run names") {
  auto ref = [](std::string_view text) {
    auto doc = ParseDocument(text, DocFormat::kToml);
    REQUIRE(doc.ok());
    return ParseRunRef(*doc);
  };
  CHECK(!ref("command = [\"x\"]\n")->has_value());
  CHECK((*ref("definition = \"etl\"\n"))->name == "etl");
  CHECK(!(*ref("definition = \"etl\"\n"))->revision);
  CHECK((*ref("definition = \"etl:12\"\n"))->revision == 12);
  for (const char* bad : {"definition = \"etl:0\"\n", "definition = \"etl:\"\n", "definition = \"etl:x\"\n",
                          "definition = \"../etl\"\n", "definition = 3\n", "definition = \"a.b\"\n"}) {
    CAPTURE(bad);
    auto r = ref(bad);
    REQUIRE(!r.ok());
    CHECK(r.error().field == "definition");
  }
  CHECK(IsValidDefinitionName("etl_2-x"));
  CHECK(!IsValidDefinitionName("etl.toml"));
  CHECK(!IsValidDefinitionName("-etl"));
}

TEST_CASE("an alternation cannot escape the whole-value rule") {
  // Once wrapped in "^(...)$" this pattern would have matched anything.
  CHECK(DefError("command = [\"x\", \"{{p}}\"]\n[params.p]\npattern = \"abc)|(.*\"\n").field ==
        "params.p.pattern");
}

TEST_CASE("pattern checks") {
  auto run = [](const char* pattern, const char* value) {
    Definition def =
        Def(std::string("command = [\"x\", \"{{p}}\"]\n[params.p]\npattern = '") + pattern + "'\n");
    return Run(def, std::string("definition = \"etl\"\n[params]\np = '") + value + "'\n").ok();
  };
  CHECK(run("a|b", "a"));
  CHECK(run("a|b", "b"));
  CHECK(!run("a|b", "ab"));
  CHECK(run("[0-9]{4}-[0-9]{2}", "2026-12"));
  CHECK(!run("[0-9]{4}", "20261"));
  CHECK(!run("[0-9]{4}", "x2026"));
  CHECK(run("(ab)+", "abab"));
  // Refused when the definition is read: a back-reference, a bound on a
  // group (nested bounds take seconds and gigabytes to compile), too long.
  for (const char* bad : {"(a)\\1", "((a{1,100}){1,100}){1,100}", "(ab){2}"}) {
    CAPTURE(bad);
    Error e = DefError(std::string("command = [\"x\"]\n[params.p]\npattern = '") + bad + "'\n");
    CHECK(e.field == "params.p.pattern");
  }
  Error e = DefError("command = [\"x\"]\n[params.p]\npattern = '" + std::string(300, 'a') + "'\n");
  CHECK(e.field == "params.p.pattern");
  // The message never quotes the value or the pattern.
  Definition def = Def("command = [\"x\", \"{{p}}\"]\n[params.p]\npattern = 'SECRETPATTERN'\n");
  auto refused = Run(def, "definition = \"etl\"\n[params]\np = 'SECRETVALUE'\n");
  REQUIRE(!refused.ok());
  CHECK(refused.error().message.find("SECRET") == std::string::npos);
}

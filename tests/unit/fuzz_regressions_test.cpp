// The fuzz targets' inputs, replayed in the main test binary: every seed of
// tests/fuzz/corpus/ and every saved crash of tests/fuzz/regressions/ goes
// through the same function its fuzzer calls (tests/fuzz/fuzz_targets.cpp), so
// the g++ build under ASan and UBSan checks them on every `make test`. Inputs a
// fuzzer found to break something also get a case of their own below that states
// what should have happened. A broken property aborts the binary: that case fails
// alone, since ctest runs each case by itself.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

// The bodies are compiled into this binary: the main build does not look into
// tests/fuzz/, and the fuzz build is a separate clang project.
#include "tests/fuzz/fuzz_targets.cpp"

namespace spoold {
namespace {

namespace fs = std::filesystem;

const fs::path kFuzzDir = fs::path(SPOOLD_SOURCE_DIR) / "tests" / "fuzz";

std::string ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Files of `folder` in name order; an absent folder has none.
std::vector<fs::path> FilesIn(const fs::path& folder) {
  std::vector<fs::path> files;
  if (!fs::is_directory(folder)) return files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

using Target = void (*)(const uint8_t*, size_t);

// Runs every input of <kind>/<name>/ ("corpus" or "regressions") through
// `target`. Names each file on stderr first: if it aborts, the last name is the
// culprit.
size_t Replay(const char* kind, const char* name, Target target) {
  size_t count = 0;
  for (const fs::path& file : FilesIn(kFuzzDir / kind / name)) {
    std::fprintf(stderr, "replaying %s\n", file.c_str());
    const std::string bytes = ReadBytes(file);
    target(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ++count;
  }
  return count;
}

Result<Document> ParseFile(const char* relative, DocFormat format) {
  return ParseDocument(ReadBytes(kFuzzDir / relative), format);
}

constexpr struct {
  const char* name;
  Target target;
  size_t min_seeds;
} kTargets[] = {{"job_toml", fuzz::FuzzJobToml, 30},
                {"job_json", fuzz::FuzzJobJson, 30},
                {"config", fuzz::FuzzConfigFile, 20},
                {"control", fuzz::FuzzControl, 20},
                {"status", fuzz::FuzzStatus, 20}};

TEST_CASE("fuzz corpus: every seed goes through its target") {
  for (const auto& t : kTargets) {
    CAPTURE(t.name);
    CHECK(Replay("corpus", t.name, t.target) >= t.min_seeds);
  }
}

// Saved crashes stay here after the fix, so that they cannot come back.
TEST_CASE("fuzz regressions: every saved input goes through its target") {
  size_t count = 0;
  for (const auto& t : kTargets) count += Replay("regressions", t.name, t.target);
  CHECK(count >= 1);
}

// The seeds that are meant to be valid are: a seed corpus of refusals only would
// teach the fuzzers little.
TEST_CASE("fuzz corpus: the full examples are accepted") {
  const Config& config = fuzz::FuzzConfig();
  for (const auto& [file, format] : {std::pair{"corpus/job_toml/full.toml", DocFormat::kToml},
                                     std::pair{"corpus/job_json/full.json", DocFormat::kJson}}) {
    CAPTURE(file);
    Result<Document> doc = ParseFile(file, format);
    REQUIRE(doc.ok());
    Result<JobSpec> spec = ValidateJobSpec(*doc, "full", config);
    CHECK_MESSAGE(spec.ok(), (spec.ok() ? "" : spec.error().message));
  }
  Result<Config> parsed =
      ParseConfig(ReadBytes(kFuzzDir / "corpus/config/full.toml"), "/etc/spoold/spoold.toml");
  CHECK_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.error().message));
  for (const char* file : {"corpus/control/cancel.json", "corpus/control/pause.toml"}) {
    CAPTURE(file);
    Result<Document> doc =
        ParseFile(file, std::string_view(file).ends_with(".toml") ? DocFormat::kToml : DocFormat::kJson);
    REQUIRE(doc.ok());
    CHECK(ParseControlRequest(*doc).ok());
  }
  Json status = Json::parse(ReadBytes(kFuzzDir / "corpus/status/queued.json"));
  CHECK(StatusFromJson(status).ok());
}

// fuzz_control: an unknown key is named in the error's field as it was written,
// control characters and all, and at any length; job files show such a key
// through PrintableName (escaped, cut to 64 bytes), and so should requests.
TEST_CASE("fuzz regression: a control request's unknown key is shown printable in the field") {
  Result<Document> doc =
      ParseFile("regressions/control/unknown_key_with_control_character.toml", DocFormat::kToml);
  REQUIRE(doc.ok());
  Result<ControlRequest> request = ParseControlRequest(*doc);
  REQUIRE_FALSE(request.ok());
  CHECK(request.error().code == "unknown_field");
  CHECK(fuzz::IsCleanMessage(request.error().message));
  CHECK(fuzz::IsCleanMessage(request.error().field));
}

// fuzz_status: ParseTime accepts second 60 on 9999-12-31, which normalises into
// the year 10000; FormatTime writes that as "10000-01-01T...", which ParseTime
// refuses, so a status.json that loaded once fails to load after it is rewritten.
TEST_CASE("fuzz regression: a time status.json accepts is written back readable") {
  const std::string text = ReadBytes(kFuzzDir / "regressions/status/leap_second_past_year_9999.json");
  // The fix chosen: the leap second past 9999 is refused when read.
  CHECK_FALSE(StatusFromJson(Json::parse(text)).ok());
  // The latest time that is accepted is written back readable and equal.
  Result<JobStatus> status = StatusFromJson(Json::parse(
      R"({"schema":"spoold/status/v1","id":"x","state":"queued","created":"9999-12-31T23:59:59Z"})"));
  REQUIRE(status.ok());
  const std::string written = DumpJson(StatusToJson(*status));
  Result<JobStatus> again = StatusFromJson(Json::parse(written));
  REQUIRE_MESSAGE(again.ok(), written);
  CHECK(again->created == status->created);
}

// fuzz_status: StatusFromJson checks the schema with json.value("schema", ""),
// which throws type_error 302 when "schema" is there but not a string, so one
// status.json with {"schema": 1} stops the daemon at restart (JobStore::Load
// does not catch) instead of being reported as corrupt.
TEST_CASE("fuzz regression: a status.json whose schema is not a string is refused, not thrown") {
  const std::string text = ReadBytes(kFuzzDir / "regressions/status/schema_not_a_string_throws.json");
  const Json json = Json::parse(text);
  CHECK_NOTHROW((void)StatusFromJson(json));
  Result<JobStatus> status = StatusFromJson(json);
  REQUIRE_FALSE(status.ok());
  CHECK(status.error().code == "io_error");
}

// fuzz_status: an integer field holding a float out of the integer's range
// ("attempt": 1e300) is converted with a plain cast inside nlohmann-json's get<int>(),
// which is undefined behaviour (UBSan: "1e+300 is outside the range of
// representable values of type 'int'"). A corrupt field is a wrong type.
TEST_CASE("fuzz regression: status.json integer fields refuse floats out of range") {
  const std::string text = ReadBytes(kFuzzDir / "regressions/status/float_too_large_for_int_field.json");
  Result<JobStatus> status = StatusFromJson(Json::parse(text));
  CHECK_FALSE(status.ok());
}

// fuzz_status: status.json is read with Json::parse, which nests as deep as the
// file does (JobStore::Load allows 64 MiB), and StatusFromJson copies metadata
// recursively: 30,000 nested arrays overflow the stack under ASan (a release
// build needs more, but far less than 64 MiB allows). Job files are bounded at
// kMaxNesting; a status.json deeper than that is corrupt.
TEST_CASE("fuzz regression: a status.json nested too deep is refused, not a crash") {
  const std::string text = ReadBytes(kFuzzDir / "regressions/status/deep_metadata_overflows_stack.json");
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return;  // refusing it before parsing is a fix too
  Result<JobStatus> status = StatusFromJson(json);
  CHECK_FALSE(status.ok());
}

}  // namespace
}  // namespace spoold

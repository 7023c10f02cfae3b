// A job file's `[array]` (spool/job_array.cpp through ValidateJobSpec): index
// lists, items, limits, every way one is refused (code, field, line), task ids,
// and the range form of failed_indexes.
#include "spool/job_array.h"

#include <doctest/doctest.h>

#include <string>

#include "job_spec_test_helpers.h"
#include "spool/job_spec.h"

using namespace spoold;
using namespace jobspectest;

TEST_CASE("array: indexes with ranges and steps, in start order") {
  auto spec = Validate(
      "command = [\"true\"]\n[array]\nindexes = \"1,3,5-9:2, 20-21\"\nparallel = 4\nmax_failed = 2\n",
      DocFormat::kToml);
  REQUIRE(spec.ok());
  REQUIRE(spec->array);
  const ArraySpec& a = *spec->array;
  CHECK(a.count == 7);
  CHECK(a.parallel == 4);
  CHECK(a.max_failed == 2);
  std::vector<int64_t> order;
  for (uint64_t p = 0; p < a.count; ++p) order.push_back(a.IndexAt(p));
  CHECK(order == std::vector<int64_t>{1, 3, 5, 7, 9, 20, 21});
  CHECK(a.PositionOf(9) == 4);
  CHECK(a.PositionOf(21) == 6);
  CHECK_FALSE(a.PositionOf(6));  // off the step
  CHECK_FALSE(a.PositionOf(2));
  CHECK_FALSE(a.PositionOf(22));
  // A range whose end is off its step stops at the last index it reaches.
  auto ranges = ParseIndexes("0-10:4");
  REQUIRE(ranges.ok());
  CHECK(ranges->front() == IndexRange{0, 8, 4});
}

TEST_CASE("array: items, and indexes that pick items") {
  auto spec =
      Validate(R"({"command": ["true"], "array": {"items": ["a.tif", "b.tif", "c.tif"]}})", DocFormat::kJson);
  REQUIRE(spec.ok());
  CHECK(spec->array->count == 3);
  CHECK(*spec->array->ItemOf(2) == "c.tif");
  auto picked = Validate("command = [\"true\"]\n[array]\nitems = [\"a\", \"b\", \"c\"]\nindexes = \"0,2\"\n",
                         DocFormat::kToml);
  REQUIRE(picked.ok());
  CHECK(picked->array->count == 2);
  CHECK(picked->array->IndexAt(1) == 2);
  CHECK(*picked->array->ItemOf(picked->array->IndexAt(1)) == "c");
}

TEST_CASE("array: every refusal names the field and the rule") {
  struct Case {
    const char* table;
    const char* code;
    const char* field;
    const char* says;
  };
  const Case cases[] = {
      {"indexes = \"3,1\"", "invalid_field", "array.indexes", "does not come after 3"},
      {"indexes = \"1-3,3\"", "invalid_field", "array.indexes", "indexes ascend, each once"},
      {"indexes = \"5-2\"", "invalid_field", "array.indexes", "ends before it begins"},
      {"indexes = \"1,,2\"", "invalid_field", "array.indexes", "empty element"},
      {"indexes = \"-1\"", "invalid_field", "array.indexes", "not a range"},
      {"indexes = \"1000000000\"", "invalid_field", "array.indexes", "from 0 to 999999999"},
      {"indexes = \"0-5:0\"", "invalid_field", "array.indexes", "step of 1 or more"},
      {"indexes = \"4:2\"", "invalid_field", "array.indexes", "has a step but is no range"},
      {"indexes = \"0-1000000\"", "invalid_field", "array.indexes", "more than 1000000 tasks"},
      {"indexes = 5", "invalid_field", "array.indexes", "must be a string"},
      {"items = []", "invalid_field", "array.items", "an empty array"},
      {"items = [1]", "invalid_field", "array.items[0]", "must be a string"},
      {"items = [\"a\"]\nindexes = \"0-1\"", "invalid_field", "array.indexes",
       "picks item 1, but array.items has 1"},
      {"indexes = \"0\"\nparallel = -1", "invalid_field", "array.parallel", "from 0 to 1000000"},
      {"indexes = \"0\"\nmax_failed = 1.5", "invalid_field", "array.max_failed", "from 0 to 1000000"},
      {"parallel = 2", "missing_field", "array.indexes", "needs indexes"},
      {"paralel = 2\nindexes = \"0\"", "unknown_field", "array.paralel", "array.parallel"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.table);
    auto spec = Validate(std::string("command = [\"true\"]\n[array]\n") + c.table + "\n", DocFormat::kToml);
    REQUIRE_FALSE(spec.ok());
    CHECK(spec.error().code == c.code);
    CHECK(spec.error().field == c.field);
    CHECK(spec.error().message.find(c.says) != std::string::npos);
    CHECK(spec.error().line >= 2);  // [array] is line 2
  }
  auto not_table = Validate("command = [\"true\"]\narray = \"0-9\"\n", DocFormat::kToml);
  REQUIRE_FALSE(not_table.ok());
  CHECK(not_table.error().field == "array");
  auto nul = Validate(R"({"command": ["true"], "array": {"items": ["a\u0000b"]}})", DocFormat::kJson);
  REQUIRE_FALSE(nul.ok());
  CHECK(nul.error().field == "array.items[0]");
}

TEST_CASE("array: task ids, and failed indexes as ranges") {
  CHECK(TaskId("sweep", 7) == "sweep:7");
  auto ref = ParseTaskId("sweep:7");
  REQUIRE(ref);
  CHECK(ref->array == "sweep");
  CHECK(ref->index == 7);
  for (const char* bad : {"sweep", "sweep:", "sweep:07", "sweep:-1", ":3", "a/b:1", "sweep:1:2", "sweep:x"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseTaskId(bad));
  }
  CHECK(IsValidJobRef("sweep"));
  CHECK(IsValidJobRef("sweep:0"));
  CHECK_FALSE(IsValidJobRef("../x:1"));
  CHECK(FormatIndexes({}) == "");
  CHECK(FormatIndexes({3, 7, 8, 9, 11}) == "3,7-9,11");
  auto back = ParseIndexes(FormatIndexes({0, 1, 2, 5}));
  REQUIRE(back.ok());
  CHECK(back->size() == 2);
  // after names tasks too.
  auto child = Validate("command = [\"true\"]\nafter = [\"sweep:3\", \"sweep\"]\n", DocFormat::kToml);
  REQUIRE(child.ok());
  CHECK(child->after[0].job == "sweep:3");
}

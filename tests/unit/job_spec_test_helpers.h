// Shared by the job spec unit tests (job_spec_test.cpp, job_spec_errors_test.cpp):
// a config with the pools "default" and "gpu", and validation of a document's
// text against it. Header-only.
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "config/config.h"
#include "spool/document.h"
#include "spool/job_spec.h"

namespace jobspectest {

inline spoold::Config TestConfig() {
  auto config =
      spoold::ParseConfig("[pools.default]\nworkers = 2\n[pools.gpu]\nworkers = 1\n", "test.toml");
  REQUIRE(config.ok());
  return *config;
}

inline spoold::Result<spoold::JobSpec> Validate(std::string_view text, spoold::DocFormat format,
                                                const std::string& id = "job-1") {
  auto doc = spoold::ParseDocument(text, format);
  REQUIRE_MESSAGE(doc.ok(), doc.error().message);
  return spoold::ValidateJobSpec(*doc, id, TestConfig());
}

inline std::string_view FormatName(spoold::DocFormat format) {
  return format == spoold::DocFormat::kToml ? "toml" : "json";
}

}  // namespace jobspectest

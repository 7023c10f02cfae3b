// Shared by the Slurm unit tests (slurm_pure_test.cpp, slurm_run_test.cpp,
// slurm_live_test.cpp): a temporary folder other users can enter, a scoped
// environment variable, hostile values and a captured squeue answer.
// Header-only.
#pragma once

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "daemon/slurm.h"
#include "spool/status.h"
#include "test_files.h"

namespace slurmtest {

// Slurm jobs of other users must reach it.
struct TempDir : testfiles::TempDir {
  TempDir() : testfiles::TempDir(std::filesystem::temp_directory_path().string(), 0755) {}
};

// Sets (or unsets) an environment variable for one scope.
struct EnvGuard {
  std::string name;
  std::optional<std::string> old;
  EnvGuard(std::string n, const char* value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) old = v;
    if (value) {
      ::setenv(name.c_str(), value, 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }
  ~EnvGuard() {
    if (old) {
      ::setenv(name.c_str(), old->c_str(), 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }
};

template <class T>
std::string Why(const spoold::Result<T>& r) {
  return r.ok() ? std::string() : r.error().code + ": " + r.error().message;
}

inline void WriteExecutable(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  ::chmod(path.c_str(), 0755);
}

inline std::vector<std::string> SplitNul(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\0') {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

// Values that break naive quoting: every one must reach the job byte for byte.
inline const std::vector<std::string> kNastyValues = {
    "a,b,c",
    "two words",
    "it's",
    "say \"hi\"",
    "line1\nline2\n",
    "$HOME and ${PATH} and $(id) and `id`",
    "back\\slash\\n",
    "'\\''",
    "",
    "-leading-dash",
    "x=y=z",
    "tab\there",
    "\xff\xfe not utf-8 \xc3\x28",
    "*?[glob]",
    "; rm -rf / #",
    "\nSLURM_FAKE_INJECTED=1",
};

inline spoold::SlurmSubmit BaseSubmit(const TempDir& dir) {
  spoold::SlurmSubmit s;
  s.job_name = "spoold-test";
  s.chdir = dir.path();
  s.stdout_path = dir / "stdout.log";
  s.stderr_path = dir / "stderr.log";
  s.exit_code_path = dir / "exit_code";
  s.script_path = dir / "slurm.sh";
  s.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/nonexistent", "LANG=C.UTF-8"};
  return s;
}

// Captured from squeue 22.05.8 on the local cluster (PollArgv's format).
inline const char* const kSqueueSample =
    "4|CANCELLED|None|15|\n"
    "2|COMPLETED|None|0|\n"
    "3|FAILED|NonZeroExitCode|768|\n"
    "6|FAILED|JobLaunchFailure|9|\n"
    "5|PENDING|BeginTime|0|\n"
    "7|RUNNING|None|0|\n"
    "8|COMPLETING|None|0|\n"
    "garbage line\n"
    "\n";

}  // namespace slurmtest

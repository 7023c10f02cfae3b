// Placing a job file into incoming/ under a free id, and telling what the
// daemon made of it: accepted (the job folder exists), rejected (with the
// daemon's error file), still waiting, or no daemon running. Shared by
// submit, run, rerun, duplicate (submit.cpp) and the runs of definitions
// (definition_run.cpp). Writes only through DropFile (cli/drop.h).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "cli/common.h"
#include "spool/document.h"

namespace spoold::cli {

inline constexpr size_t kMaxIdLength = 128;

// ".toml" or ".json".
std::string Extension(DocFormat format);

// Prints an error of local validation (the daemon's words) for `file`, and
// its JSON form with --json; returns kExitError.
int ReportInvalid(const Context& ctx, const std::string& file, const Error& error);

// Whether jobs/<id>/ exists or incoming/<id>.toml|json waits.
bool IdTaken(const Context& ctx, const std::string& id);

// `base` + `suffix`, `base` shortened so that the id stays within 128 bytes.
std::string WithSuffix(const std::string& base, const std::string& suffix);

// The n-th id to try (n from 1).
using Candidate = std::function<std::string(int)>;

enum class Intake { kAccepted, kRejected, kWaiting, kNotRunning };

struct IntakeReport {
  Intake kind = Intake::kWaiting;
  Json error;  // the rejection's error file, when rejected
};

struct Placed {
  std::string id;
  std::string file;  // its name in incoming/
  IntakeReport report;
};

// Drops `bytes` as the first free candidate id, n from *n up to `last` (*n
// is left at the number used; a name taken between the check and the rename
// moves on to the next), and waits briefly for the daemon's intake.
Result<Placed> Place(const Context& ctx, std::string_view bytes, DocFormat format, const Candidate& candidate,
                     int* n, int last);

// What happened to one submitted job, as --json prints it: {"id", "file",
// "outcome", "error" when rejected}.
Json IntakeJson(const std::string& id, const std::string& file, const IntakeReport& report);

// Prints what happened to one submitted job (the id, or --json's object;
// nothing when `quiet`, but errors and notes); returns the exit code.
int ReportIntake(const Context& ctx, const std::string& id, const std::string& file,
                 const IntakeReport& report, bool quiet);

// Place, then ReportIntake; the id used goes to *id_out when given.
int PlaceAndReport(const Context& ctx, std::string_view bytes, DocFormat format, const Candidate& candidate,
                   int* n, int last, std::string* id_out, bool quiet);

}  // namespace spoold::cli

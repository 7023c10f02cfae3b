#include "cli/placing.h"

#include "cli/drop.h"
#include "spool/fileio.h"

namespace spoold::cli {
namespace {

constexpr const char* kIntakeNames[] = {"accepted", "rejected", "waiting", "daemon_not_running"};

// Drops the file under the first free id `candidate(n)`, n from *n upward.
Result<std::string> DropFirstFree(const Context& ctx, std::string_view bytes, DocFormat format,
                                  const Candidate& candidate, int* n, int last) {
  for (; *n <= last; ++*n) {
    std::string id = candidate(*n);
    if (IdTaken(ctx, id)) continue;
    auto st = DropFile(ctx.Paths(), ctx.Paths().Incoming(), id + Extension(format), bytes);
    if (st.ok()) return id;
    if (st.error().code != "exists") return st.error();
  }
  return MakeError("io_error", "no free job id like " + candidate(1) + " was found");
}

// Waits briefly for the daemon to take incoming/<file> in: accepted when the
// job folder exists (it is committed before the file goes), else rejected.
IntakeReport AwaitIntake(const Context& ctx, const std::string& id, const std::string& file) {
  if (!DetectDaemon(ctx.Paths()).running) return {Intake::kNotRunning, nullptr};
  const std::string path = ctx.Paths().IncomingFile(file);
  if (!WaitUntil([&] { return !PathExists(path); }, kActTimeout)) return {Intake::kWaiting, nullptr};
  if (PathExists(ctx.Paths().JobDir(id))) return {Intake::kAccepted, nullptr};
  Json error = nullptr;
  WaitUntil([&] { return (error = FindRejection(ctx, file).value_or(nullptr)) != nullptr; }, Millis(1000));
  if (error.is_null())
    error = {{"file", file}, {"error", "incoming/" + file + " vanished without a job folder"}};
  return {Intake::kRejected, error};
}

}  // namespace

std::string Extension(DocFormat format) { return format == DocFormat::kToml ? ".toml" : ".json"; }

int ReportInvalid(const Context& ctx, const std::string& file, const Error& error) {
  Json e = ErrorJson(file, error);
  if (ctx.json) OutJson(ctx, Json{{"file", e["file"]}, {"valid", false}, {"error", e}});
  PrintError(FormatErrorJson(e));
  return kExitError;
}

bool IdTaken(const Context& ctx, const std::string& id) {
  return PathExists(ctx.Paths().JobDir(id)) || !IncomingFileOf(ctx, id).empty();
}

std::string WithSuffix(const std::string& base, const std::string& suffix) {
  return base.substr(0, std::min(base.size(), kMaxIdLength - suffix.size())) + suffix;
}

Result<Placed> Place(const Context& ctx, std::string_view bytes, DocFormat format, const Candidate& candidate,
                     int* n, int last) {
  auto id = DropFirstFree(ctx, bytes, format, candidate, n, last);
  if (!id.ok()) return MakeError(id.error().code, "cannot submit: " + id.error().message);
  const std::string file = *id + Extension(format);
  return Placed{*id, file, AwaitIntake(ctx, *id, file)};
}

Json IntakeJson(const std::string& id, const std::string& file, const IntakeReport& report) {
  Json out = {
      {"id", id}, {"file", "incoming/" + file}, {"outcome", kIntakeNames[static_cast<int>(report.kind)]}};
  if (report.kind == Intake::kRejected) out["error"] = report.error;
  return out;
}

int ReportIntake(const Context& ctx, const std::string& id, const std::string& file,
                 const IntakeReport& report, bool quiet) {
  if (ctx.json && !quiet) {
    OutJson(ctx, IntakeJson(id, file, report));
  } else if (!quiet && report.kind != Intake::kRejected) {
    Out(id + "\n");
  }
  switch (report.kind) {
    case Intake::kAccepted:
      return kExitOk;
    case Intake::kRejected:
      return Fail("spoold rejected " + id + ": " + FormatErrorJson(report.error));
    case Intake::kWaiting:
      PrintNote("queued as incoming/" + file + "; spoold has not taken it in yet");
      return kExitOk;
    case Intake::kNotRunning:
      PrintNote("queued as incoming/" + file + "; " + NotRunningMessage(ctx));
      return kExitOk;
  }
  return kExitOk;
}

int PlaceAndReport(const Context& ctx, std::string_view bytes, DocFormat format, const Candidate& candidate,
                   int* n, int last, std::string* id_out, bool quiet) {
  auto placed = Place(ctx, bytes, format, candidate, n, last);
  if (!placed.ok()) return Fail(placed.error().message);
  if (id_out) *id_out = placed->id;
  return ReportIntake(ctx, placed->id, placed->file, placed->report, quiet);
}

}  // namespace spoold::cli

// cancel, start, pause, resume: control requests (SPEC.md section 6), written
// under tmp/ and renamed into control/ with a name of their own. Then up to 3 s
// of waiting for the daemon: a deleted request was acted on (the job's events
// say how), one moved to rejected/ was refused (its error file says why; exit
// 1), one still there is reported as queued.
#include "spool/control.h"

#include <unistd.h>

#include <atomic>

#include "cli/commands.h"
#include "cli/drop.h"
#include "spool/fileio.h"

namespace spoold::cli {
namespace {

struct Request {
  ControlAction action;
  std::string target;  // job id or pool name
  std::string name;    // its file name in control/
  std::string outcome;
  Json error;
};

bool ForJob(ControlAction action) {
  return action == ControlAction::kCancel || action == ControlAction::kStart;
}

Json RequestJson(const Request& r) {
  return Json{{"action", ControlActionName(r.action)}, {ForJob(r.action) ? "job" : "pool", r.target}};
}

std::string RequestName(const Request& r) {
  static std::atomic<int> counter{0};
  return std::string(ControlActionName(r.action)) + "-" + r.target + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(Now().time_since_epoch().count()) + "-" + std::to_string(++counter) + ".json";
}

// The daemon's own check of a request, so a bad one is refused before it is
// written.
Status CheckRequest(const Context& ctx, const Request& r) {
  auto doc = ParseDocument(DumpJson(RequestJson(r)), DocFormat::kJson);
  if (!doc.ok()) return doc.error();
  if (auto parsed = ParseControlRequest(*doc); !parsed.ok()) return parsed.error();
  if (ForJob(r.action) && !PathExists(ctx.Paths().JobDir(r.target))) {
    return MakeError("unknown_job", MissingJobMessage(ctx, r.target));
  }
  return OkStatus();
}

// The line of the job's history that records the request, if there is one.
std::string EventMessage(const Context& ctx, const Request& r) {
  const char* wanted = r.action == ControlAction::kCancel ? "cancel_requested" : "start_requested";
  auto text = ReadSmallFile(ctx.Paths().Events(r.target), 64 << 20);
  if (!text.ok()) return "";
  std::string found;
  for (std::string_view line : SplitLines(*text, /*partial_last=*/false)) {
    Json ev = Json::parse(line, nullptr, false);
    if (JsonString(ev, "event") == wanted && JsonString(ev, "message").find(r.name) != std::string::npos) {
      found = JsonString(ev, "message");
    }
  }
  return found;
}

// Fills in r.outcome (and r.error) from what the daemon did with the request.
void Settle(const Context& ctx, Request& r, bool running) {
  const std::string path = ctx.Paths().ControlFile(r.name);
  if (PathExists(path)) {
    r.outcome = running ? "not_yet_acted_on" : "daemon_not_running";
    return;
  }
  if (PathExists(ctx.Paths().RejectedFile(r.name))) {
    r.outcome = "rejected";
    WaitUntil([&] { return (r.error = FindRejection(ctx, r.name).value_or(nullptr)) != nullptr; },
              kActTimeout);
    return;
  }
  r.outcome = "done";
  if (!ForJob(r.action)) {
    // index.json follows within a second; waiting for it lets the next
    // command (pools) show the change.
    const bool paused = r.action == ControlAction::kPause;
    WaitUntil(
        [&] {
          auto index = ReadIndex(ctx);
          return index.ok() && index->value("pools", Json::object())
                                       .value(r.target, Json::object())
                                       .value("paused", !paused) == paused;
        },
        Millis(1500), 50);
  }
}

void Report(const Context& ctx, const Request& r) {
  const std::string what = std::string(ControlActionName(r.action)) + " " + r.target;
  if (ctx.json) {
    Json out = RequestJson(r);
    out["request"] = "control/" + r.name;
    out["outcome"] = r.outcome;
    if (!r.error.is_null()) out["error"] = r.error;
    OutJson(ctx, out);
  }
  if (r.outcome == "rejected") {
    PrintError(what +
               ": refused: " + (r.error.is_null() ? "see rejected/" + r.name : JsonString(r.error, "error")));
  } else if (r.outcome == "daemon_not_running") {
    PrintNote(what + ": queued; " + NotRunningMessage(ctx));
  } else if (r.outcome == "not_yet_acted_on") {
    PrintNote(what + ": queued as control/" + r.name + "; spoold has not acted on it yet");
  } else if (!ctx.json) {
    std::string detail = ForJob(r.action) ? EventMessage(ctx, r) : "";
    Out(what + ": done" + (detail.empty() ? "" : " (" + detail + ")") + "\n");
  }
}

int SendRequests(Context& ctx, const Args& args, ControlAction action) {
  if (args.positional.empty())
    return UsageError(ForJob(action) ? "give one or more job ids" : "give one or more pools");
  std::vector<Request> requests;
  for (const auto& target : args.positional) {
    Request r{action, target, "", "", nullptr};
    if (auto st = CheckRequest(ctx, r); !st.ok()) return Fail(st.error().message);
    r.name = RequestName(r);
    requests.push_back(std::move(r));
  }
  for (auto& r : requests) {
    auto st = DropFile(ctx.Paths(), ctx.Paths().Control(), r.name, DumpJson(RequestJson(r)) + "\n");
    if (!st.ok()) return Fail("cannot write the request: " + st.error().message);
  }
  const bool running = DetectDaemon(ctx.Paths()).running;
  if (running) {
    WaitUntil(
        [&] {
          for (const auto& r : requests) {
            if (PathExists(ctx.Paths().ControlFile(r.name))) return false;
          }
          return true;
        },
        kActTimeout);
  }
  int code = kExitOk;
  for (auto& r : requests) {
    Settle(ctx, r, running);
    Report(ctx, r);
    if (r.outcome == "rejected") code = kExitError;
  }
  return code;
}

}  // namespace

int CmdCancel(Context& ctx, const Args& args) { return SendRequests(ctx, args, ControlAction::kCancel); }
int CmdStart(Context& ctx, const Args& args) { return SendRequests(ctx, args, ControlAction::kStart); }
int CmdPause(Context& ctx, const Args& args) { return SendRequests(ctx, args, ControlAction::kPause); }
int CmdResume(Context& ctx, const Args& args) { return SendRequests(ctx, args, ControlAction::kResume); }

}  // namespace spoold::cli

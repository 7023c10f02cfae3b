// cancel, start, pause, resume, shutdown: control requests (SPEC.md section 6),
// written under tmp/ and renamed into control/ with a name of their own. Then
// up to 3 s of waiting for the daemon: a deleted request was acted on (the job's
// events say how), one moved to rejected/ was refused (its error file says why;
// exit 1), one still there is reported as queued. shutdown differs (below): it
// is only sent to a running daemon, and --wait waits for that daemon's end.
#include "spool/control.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>

#include "cli/actions.h"
#include "cli/array_cli.h"
#include "cli/commands.h"
#include "cli/drop.h"
#include "spool/fileio.h"

namespace spoold::cli {
namespace {

struct Request {
  ControlAction action;
  std::string target;      // job id or pool name; empty for shutdown
  bool stop_jobs = false;  // shutdown only
  std::string name;        // its file name in control/
  std::string outcome;
  Json error;
};

bool ForJob(ControlAction action) {
  return action == ControlAction::kCancel || action == ControlAction::kStart;
}

Json RequestJson(const Request& r) {
  if (r.action == ControlAction::kShutdown) {
    return Json{{"action", ControlActionName(r.action)}, {"stop_jobs", r.stop_jobs}};
  }
  return Json{{"action", ControlActionName(r.action)}, {ForJob(r.action) ? "job" : "pool", r.target}};
}

std::string RequestName(const Request& r) {
  static std::atomic<int> counter{0};
  const std::string target = r.target.empty() ? "" : r.target + "-";
  return std::string(ControlActionName(r.action)) + "-" + target + std::to_string(::getpid()) + "-" +
         std::to_string(Now().time_since_epoch().count()) + "-" + std::to_string(++counter) + ".json";
}

// The daemon's own check of a request, so a bad one is refused before it is
// written.
Status CheckRequest(const Context& ctx, const Request& r) {
  if (ForJob(r.action) && !IsValidJobRef(r.target)) return MakeError("bad_id", NotAJobMessage(r.target));
  auto doc = ParseDocument(DumpJson(RequestJson(r)), DocFormat::kJson);
  if (!doc.ok()) return doc.error();
  if (auto parsed = ParseControlRequest(*doc); !parsed.ok()) return parsed.error();
  if (ForJob(r.action) && !PathExists(ctx.Paths().JobDir(r.target))) {
    // A task has no folder until it starts, and may be cancelled before
    // (SPEC.md section 5); its array says whether it will start.
    auto task = ParseTaskId(r.target);
    const bool waiting_task =
        task && r.action == ControlAction::kCancel && LookUpTask(ctx, *task).place == TaskPlace::kNotStarted;
    if (!waiting_task) return MakeError("unknown_job", MissingJobMessage(ctx, r.target));
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

// The outcome of a request gone from control/: "rejected" (with the daemon's
// error, once its error file is written) or "done".
void SettleGone(const Context& ctx, Request& r) {
  if (!PathExists(ctx.Paths().RejectedFile(r.name))) {
    r.outcome = "done";
    return;
  }
  r.outcome = "rejected";
  WaitUntil([&] { return (r.error = FindRejection(ctx, r.name).value_or(nullptr)) != nullptr; }, kActTimeout);
}

// Fills in r.outcome (and r.error) from what the daemon did with the request.
void Settle(const Context& ctx, Request& r, bool running) {
  const std::string path = ctx.Paths().ControlFile(r.name);
  if (PathExists(path)) {
    r.outcome = running ? "not_yet_acted_on" : "daemon_not_running";
    return;
  }
  SettleGone(ctx, r);
  if (r.outcome == "done" && !ForJob(r.action)) {
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

// What happened to a request, as `--json` prints it and the web view answers.
Json OutcomeJson(const Request& r) {
  Json out = RequestJson(r);
  out["request"] = "control/" + r.name;
  out["outcome"] = r.outcome;
  if (!r.error.is_null()) out["error"] = r.error;
  return out;
}

void Report(const Context& ctx, const Request& r) {
  const std::string what = std::string(ControlActionName(r.action)) + " " + r.target;
  if (ctx.json) OutJson(ctx, OutcomeJson(r));
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

// Checks the requests, all of them before any is written, and names them.
Result<std::vector<Request>> MakeRequests(const Context& ctx, ControlAction action,
                                          const std::vector<std::string>& targets) {
  std::vector<Request> requests;
  for (const auto& target : targets) {
    Request r{action, target, false, "", "", nullptr};
    if (auto st = CheckRequest(ctx, r); !st.ok()) return st.error();
    r.name = RequestName(r);
    requests.push_back(std::move(r));
  }
  return requests;
}

// Drops the requests, waits for the daemon to act on them (up to 3 s) and
// settles each one's outcome.
Status SendAndSettle(const Context& ctx, std::vector<Request>& requests) {
  for (auto& r : requests) {
    auto st = DropFile(ctx.Paths(), ctx.Paths().Control(), r.name, DumpJson(RequestJson(r)) + "\n");
    if (!st.ok()) return MakeError("io_error", "cannot write the request: " + st.error().message);
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
  for (auto& r : requests) Settle(ctx, r, running);
  return OkStatus();
}

int SendRequests(Context& ctx, const Args& args, ControlAction action) {
  if (args.positional.empty())
    return UsageError(ForJob(action) ? "give one or more job ids" : "give one or more pools");
  auto requests = MakeRequests(ctx, action, args.positional);
  if (!requests.ok()) return Fail(requests.error().message);
  if (auto st = SendAndSettle(ctx, *requests); !st.ok()) return Fail(st.error().message);
  int code = kExitOk;
  for (auto& r : *requests) {
    Report(ctx, r);
    if (r.outcome == "rejected") code = kExitError;
  }
  return code;
}

// As long as the systemd unit's TimeoutStopSec: a stop that takes the jobs'
// kill.grace fits in it.
constexpr int64_t kShutdownWaitSeconds = 90;

// shutdown is only sent to a running daemon: a request left in control/ with
// no daemon to read it would stop the next daemon as soon as it starts. For
// the same reason one that a daemon never read (it stopped first) is taken
// back. That reading relies on the daemon deleting a request it acted on
// before it lets go of the root's lock.
struct Shutdown {
  Request request;
  DaemonInfo daemon;           // the daemon asked to stop
  std::optional<Millis> wait;  // --wait: how long to wait for its end
  DaemonInfo now;              // who holds the lock at the end
  bool stopped = false;        // the daemon asked has let go of the lock
};

// Whether the daemon `asked` no longer holds the root's lock; a daemon of
// another pid in its place (a service manager restarting it) counts as its end.
bool Stopped(const DaemonInfo& asked, const DaemonInfo& now) {
  return !now.running || (asked.pid != 0 && now.pid != 0 && now.pid != asked.pid);
}

// Drops the request and waits: for the daemon to act on it (3 s, or --wait's
// time), then with --wait for the daemon to let go of the lock.
void SendShutdown(const Context& ctx, Shutdown& s) {
  Request& r = s.request;
  const Millis deadline = MonotonicNow() + s.wait.value_or(kActTimeout);
  const std::string path = ctx.Paths().ControlFile(r.name);
  WaitUntil(
      [&] {
        // The lock first, then the file: a daemon deletes what it acted on
        // before it lets go of the lock, so a file still there after a stop
        // was never read.
        s.now = DetectDaemon(ctx.Paths());
        s.stopped = Stopped(s.daemon, s.now);
        return s.stopped || !PathExists(path);
      },
      deadline - MonotonicNow());
  if (PathExists(path)) {
    if (!s.stopped) {
      r.outcome = "not_yet_acted_on";
    } else if (::unlink(path.c_str()) == 0) {
      r.outcome = "withdrawn";
    } else if (errno == ENOENT) {
      r.outcome = "done";  // read at the last moment
    } else {
      r.outcome = "left";
      r.error = Json{{"error", std::string("cannot remove it: ") + std::strerror(errno)}};
    }
    return;
  }
  SettleGone(ctx, r);
  if (r.outcome == "done" && s.wait && !s.stopped) {
    WaitUntil(
        [&] {
          s.now = DetectDaemon(ctx.Paths());
          s.stopped = Stopped(s.daemon, s.now);
          return s.stopped;
        },
        std::max(deadline - MonotonicNow(), Millis(0)), 50);
  }
}

// Exit codes: 0 done (and with --wait: stopped); 1 refused, or --stop-jobs to
// a daemon that stopped without reading it (its jobs run on); 124 --wait's time
// ran out. A daemon that was not running is reported before (exit 0).
int ReportShutdown(const Context& ctx, const Shutdown& s, int64_t wait_seconds) {
  const Request& r = s.request;
  const std::string daemon = "spoold (pid " + std::to_string(s.daemon.pid) + ")";
  const std::string jobs =
      r.stop_jobs ? "stops its running local jobs, then itself" : "stops; its jobs keep running";
  if (ctx.json) {
    Json out = OutcomeJson(r);
    out["pid"] = s.daemon.pid;
    if (s.wait) out["stopped"] = s.stopped;
    OutJson(ctx, out);
  }
  const std::string late = " after " + std::to_string(wait_seconds) + " s";
  if (r.outcome == "rejected") {
    PrintError("shutdown: refused: " +
               (r.error.is_null() ? "see rejected/" + r.name : JsonString(r.error, "error")));
    return kExitError;
  }
  if (r.outcome == "left") {
    PrintError("shutdown: " + daemon + " stopped before it read control/" + r.name + ", " +
               JsonString(r.error, "error") + "; remove it, or the next spoold stops as it starts");
    return kExitError;
  }
  if (r.outcome == "withdrawn") {
    PrintNote("shutdown: " + daemon + " stopped before it read the request (withdrawn)" +
              (r.stop_jobs ? "; its jobs were not stopped" : ""));
    return r.stop_jobs ? kExitError : kExitOk;
  }
  if (r.outcome == "not_yet_acted_on") {
    PrintNote("shutdown: queued as control/" + r.name + "; " + daemon + " has not acted on it yet" +
              (s.wait ? late : ""));
    return s.wait ? kExitTimedOut : kExitOk;
  }
  if (!s.wait) {
    if (!ctx.json) Out("shutdown: done: " + daemon + " " + jobs + "\n");
    return kExitOk;
  }
  if (!s.stopped) {
    PrintError("shutdown: " + daemon + " still runs" + late);
    return kExitTimedOut;
  }
  if (!ctx.json) {
    Out("shutdown: " + daemon + " stopped; " +
        (r.stop_jobs ? "so did its local jobs (they run again at the next start)" : "its jobs keep running") +
        "\n");
  }
  if (s.now.running) {
    PrintNote("another spoold (pid " + std::to_string(s.now.pid) + ") runs on " + ctx.Root() + " now");
  }
  return kExitOk;
}

}  // namespace

int CmdShutdown(Context& ctx, const Args& args) {
  if (!args.positional.empty()) return UsageError("shutdown takes no arguments");
  Shutdown s;
  s.request = Request{ControlAction::kShutdown, "", args.Flag("stop-jobs"), "", "", nullptr};
  int64_t wait_seconds = kShutdownWaitSeconds;
  if (auto text = args.Value("wait")) {
    if (!text->empty()) {
      auto seconds = ParseIntArg("--wait", *text, 0, 365 * 86400);
      if (!seconds.ok()) return UsageError(seconds.error().message);
      wait_seconds = *seconds;
    }
    s.wait = Millis(wait_seconds * 1000);
  }
  if (auto st = CheckRequest(ctx, s.request); !st.ok()) return Fail(st.error().message);
  s.daemon = DetectDaemon(ctx.Paths());
  if (!s.daemon.running) {
    if (ctx.json) {
      Json out = RequestJson(s.request);
      out["outcome"] = "daemon_not_running";
      OutJson(ctx, out);
    }
    PrintNote("shutdown: " + NotRunningMessage(ctx) + "; nothing to stop");
    return kExitOk;
  }
  s.request.name = RequestName(s.request);
  auto st =
      DropFile(ctx.Paths(), ctx.Paths().Control(), s.request.name, DumpJson(RequestJson(s.request)) + "\n");
  if (!st.ok()) return Fail("cannot write the request: " + st.error().message);
  SendShutdown(ctx, s);
  return ReportShutdown(ctx, s, wait_seconds);
}

Result<Json> SendControlRequest(const Context& ctx, ControlAction action, const std::string& target) {
  auto requests = MakeRequests(ctx, action, {target});
  if (!requests.ok()) return requests.error();
  if (auto st = SendAndSettle(ctx, *requests); !st.ok()) return st.error();
  return OutcomeJson(requests->front());
}

int CmdCancel(Context& ctx, const Args& args) { return SendRequests(ctx, args, ControlAction::kCancel); }
int CmdStart(Context& ctx, const Args& args) { return SendRequests(ctx, args, ControlAction::kStart); }
int CmdPause(Context& ctx, const Args& args) { return SendRequests(ctx, args, ControlAction::kPause); }
int CmdResume(Context& ctx, const Args& args) { return SendRequests(ctx, args, ControlAction::kResume); }

}  // namespace spoold::cli

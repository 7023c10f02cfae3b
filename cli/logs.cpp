// logs: an attempt's stdout.log or stderr.log, or the job's events.jsonl.
// --follow streams what is appended until the job is terminal, then prints the
// rest and exits; without --attempt it moves on to each new attempt. The job's
// state is read before the last read of the file, and the daemon writes the
// terminal state only after the attempt's whole process group is gone, so
// nothing written by the job is missed. A task not started yet is waited for.
#include <fcntl.h>
#include <unistd.h>

#include "cli/array_cli.h"
#include "cli/commands.h"
#include "spool/fileio.h"
#include "spool/job_array.h"

namespace spoold::cli {
namespace {

constexpr int kFollowPollMs = 100;

// Sends what `path` holds from *offset on to `sink`, advancing *offset.
void CopyFrom(const std::string& path, off_t* offset, const std::function<void(std::string_view)>& sink) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return;
  char buf[65536];
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, *offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sink(std::string_view(buf, static_cast<size_t>(n)));
    *offset += n;
  }
  ::close(fd);
}

// events.jsonl for people: "TIME  LEVEL  EVENT  [attempt N]  message".
class EventPrinter {
 public:
  explicit EventPrinter(const Context& ctx) : ctx_(ctx) {}

  void Feed(std::string_view bytes) {
    pending_.append(bytes);
    size_t nl;
    while ((nl = pending_.find('\n')) != std::string::npos) {
      Line(pending_.substr(0, nl));
      pending_.erase(0, nl + 1);
    }
  }

 private:
  void Line(const std::string& line) {
    if (ctx_.json) {
      Out(line + "\n");
      return;
    }
    Json ev = Json::parse(line, nullptr, false);
    if (!ev.is_object()) return;
    const std::string level = JsonString(ev, "level");
    Color color = level == "error" ? Color::kRed : level == "warning" ? Color::kYellow : Color::kNone;
    std::string out = JsonString(ev, "time") + "  " + Paint(ctx_, JsonString(ev, "event"), color);
    const Json& attempt = ev.value("attempt", Json(0));
    if (attempt.is_number_integer() && attempt.get<int>() > 0) out += "  [attempt " + JsonText(attempt) + "]";
    Out(out + "  " + JsonString(ev, "message") + "\n");
  }

  const Context& ctx_;
  std::string pending_;
};

struct LogTarget {
  bool events = false;
  bool stderr_log = false;
  std::optional<int> pinned_attempt;
};

std::string TargetPath(const Context& ctx, const std::string& id, const LogTarget& t, int attempt) {
  if (t.events) return ctx.Paths().Events(id);
  return t.stderr_log ? ctx.Paths().StderrLog(id, attempt) : ctx.Paths().StdoutLog(id, attempt);
}

int CurrentAttempt(const Json& status) {
  const Json& a = status.value("attempt", Json(0));
  return a.is_number_integer() ? a.get<int>() : 0;
}

int Follow(const Context& ctx, const std::string& id, const LogTarget& target,
           const std::function<void(std::string_view)>& sink) {
  int attempt = target.pinned_attempt.value_or(0);
  off_t offset = 0;
  for (;;) {
    auto status = LoadStatusJson(ctx, id);
    if (!status.ok()) return Fail(status.error().message);
    const bool terminal = IsTerminalStateName(JsonString(*status, "state"));
    const int current = CurrentAttempt(*status);
    if (!target.pinned_attempt && !target.events && current > attempt) {
      if (attempt > 0) {
        CopyFrom(TargetPath(ctx, id, target, attempt), &offset, sink);
        std::fflush(stdout);
        PrintNote("--- attempt " + std::to_string(current) + " ---");
      }
      attempt = current;
      offset = 0;
    }
    if (target.events || attempt > 0) CopyFrom(TargetPath(ctx, id, target, attempt), &offset, sink);
    std::fflush(stdout);
    if (terminal) return kExitOk;
    SleepMs(kFollowPollMs);
  }
}

// --follow of a task not started yet (its folder is made when it starts,
// SPEC.md section 5): waits for the folder while its array may still start
// it. kExitOk once there; else the exit code, the reason printed.
int WaitForTaskFolder(const Context& ctx, const std::string& id) {
  const auto task = ParseTaskId(id);
  if (!task) return kExitOk;  // no task: LoadStatusJson says what it is
  bool announced = false;
  while (!PathExists(ctx.Paths().JobDir(id))) {
    const TaskLookup where = LookUpTask(ctx, *task);
    if (where.place != TaskPlace::kNotStarted && where.place != TaskPlace::kArrayWaiting) {
      if (PathExists(ctx.Paths().JobDir(id))) break;  // started meanwhile
      PrintError(where.message);
      // One its array ended without starting never will, as wait says.
      return where.place == TaskPlace::kNeverStarted ? kExitOtherFailure : kExitError;
    }
    if (!announced) PrintNote(where.message + "; waiting for it to start");
    announced = true;
    SleepMs(kFollowPollMs);
  }
  return kExitOk;
}

}  // namespace

int CmdLogs(Context& ctx, const Args& args) {
  if (args.positional.size() != 1) return UsageError("give one job id");
  const std::string& id = args.positional[0];
  LogTarget target;
  target.events = args.Flag("events");
  target.stderr_log = args.Flag("stderr");
  if (auto text = args.Value("attempt")) {
    auto n = ParseIntArg("--attempt", *text, 1, 1'000'000);
    if (!n.ok()) return UsageError(n.error().message);
    target.pinned_attempt = static_cast<int>(*n);
  }
  if (args.Flag("follow")) {
    if (int code = WaitForTaskFolder(ctx, id); code != kExitOk) return code;
  }
  auto status = LoadStatusJson(ctx, id);
  if (!status.ok()) return Fail(status.error().message);
  EventPrinter events(ctx);
  std::function<void(std::string_view)> sink = [&](std::string_view bytes) {
    if (target.events) {
      events.Feed(bytes);
    } else {
      Out(bytes);
    }
  };
  if (args.Flag("follow")) return Follow(ctx, id, target, sink);
  const int attempt = target.pinned_attempt.value_or(CurrentAttempt(*status));
  if (!target.events && attempt == 0 && status->value("tasks", Json(nullptr)).is_object()) {
    PrintNote("job " + id + " is an array: its tasks have the logs (spoolctl logs " + id + ":INDEX)");
    return kExitOk;
  }
  if (!target.events && attempt == 0) {
    PrintNote("job " + id + " has not started yet; no logs (use --follow to wait for them)");
    return kExitOk;
  }
  const std::string path = TargetPath(ctx, id, target, attempt);
  if (!PathExists(path)) return Fail("job " + id + " has no " + path);
  off_t offset = 0;
  CopyFrom(path, &offset, sink);
  return kExitOk;
}

}  // namespace spoold::cli

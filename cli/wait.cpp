// wait (and the waiting half of run): polls each job's status.json every 100 ms
// and prints a line per change: elapsed time, id, state, reason, attempt and
// progress. On a terminal (one job) the line is live: progress rewrites it in
// place and a new state starts a new line. With --json only the final
// status.json of each job is printed, one per line. An array's line counts
// its tasks; a task (ID:INDEX) that has not started yet is waited for.
//
// Exit code per job: 0 succeeded; the job's exit code when it failed with
// nonzero_exit; 124 timeout or deadline; 125 cancelled or any other failure; 1
// when the job is unknown or its file was rejected. For several jobs the worst
// wins, in this order: 1, 125, 124, a job's own exit code (the first one in
// argument order), 0.
#include <unistd.h>

#include "cli/array_cli.h"
#include "cli/commands.h"
#include "spool/fileio.h"

namespace spoold::cli {
namespace {

constexpr int kPollMs = 100;
constexpr size_t kStderrTail = 10;

struct Watch {
  std::string id;
  std::string shown;       // the last line printed for it (without the elapsed time)
  std::string state_part;  // state, reason and attempt of that line
  bool announced_waiting = false;
  bool done = false;
  int code = kExitOk;
  Json status;
};

// The run/wait exit code of a terminal job.
int ExitCodeFor(const Json& status) {
  const std::string state = JsonString(status, "state");
  const std::string reason = JsonString(status, "reason");
  if (state == "succeeded") return kExitOk;
  if (state == "failed" && reason == "nonzero_exit") {
    const Json& code = status.value("exit_code", Json(nullptr));
    if (code.is_number_integer() && code.get<int64_t>() > 0 && code.get<int64_t>() < 256) {
      return static_cast<int>(code.get<int64_t>());
    }
  }
  if (state == "failed" && (reason == "timeout" || reason == "deadline")) return kExitTimedOut;
  return kExitOtherFailure;
}

int Severity(int code) {
  if (code == kExitOk) return 0;
  if (code == kExitError) return 4;
  if (code == kExitOtherFailure) return 3;
  if (code == kExitTimedOut) return 2;
  return 1;
}

std::string StatePart(const Context& ctx, const Json& st) {
  const std::string state = JsonString(st, "state", "?");
  std::string out = Paint(ctx, state, StateColor(state));
  if (std::string reason = JsonString(st, "reason"); !reason.empty()) out += " (" + reason + ")";
  const Json& attempt = st.value("attempt", Json(0));
  if (attempt.is_number_integer() && attempt.get<int>() > 0) {
    out +=
        "  attempt " + std::to_string(attempt.get<int>()) + "/" + JsonText(st.value("max_attempts", Json(1)));
  }
  if (IsTerminalStateName(state) && st.value("exit_code", Json(nullptr)).is_number()) {
    out += "  exit code " + JsonText(st["exit_code"]);
  }
  return out;
}

std::string ProgressPart(const Json& st) {
  // An array's progress is its tasks ending.
  if (auto tasks = TaskCountsOf(st.value("tasks", Json(nullptr)))) return "  " + TaskCountsText(*tasks);
  const Json& progress = st.value("progress", Json(nullptr));
  if (!progress.is_number()) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "  %.0f%%", progress.get<double>());
  std::string out = buf;
  if (std::string message = JsonString(st, "progress_message"); !message.empty()) out += " " + message;
  return out;
}

class Waiter {
 public:
  Waiter(const Context& ctx, const std::vector<std::string>& ids) : ctx_(ctx), start_(MonotonicNow()) {
    for (const auto& id : ids) watches_.push_back(Watch{id, "", "", false, false, kExitOk, nullptr});
    live_ = ctx.tty && !ctx.json && ids.size() == 1;
  }

  int Run() {
    for (;;) {
      bool all_done = true;
      for (auto& w : watches_) {
        if (!w.done) Poll(w);
        all_done = all_done && w.done;
      }
      if (all_done) break;
      SleepMs(kPollMs);
    }
    EndLiveLine();
    return Finish();
  }

 private:
  void Poll(Watch& w) {
    auto status = ReadJsonFile(ctx_.Paths().StatusFile(w.id), 64 << 20);
    if (!status.ok() || !status->is_object()) return NotThereYet(w);
    w.status = std::move(status.value());
    const std::string state_part = StatePart(ctx_, w.status);
    const std::string line = state_part + ProgressPart(w.status);
    // On a terminal the live line's clock ticks every second even when nothing
    // else changes.
    const int64_t second = (MonotonicNow() - start_).count() / 1000;
    if (line != w.shown || (live_ && second != shown_second_)) Show(w, line, state_part != w.state_part);
    shown_second_ = second;
    w.shown = line;
    w.state_part = state_part;
    if (IsTerminalStateName(JsonString(w.status, "state"))) {
      w.done = true;
      w.code = ExitCodeFor(w.status);
    }
  }

  // No status.json: the file may still wait in incoming/, or have been rejected.
  void NotThereYet(Watch& w) {
    if (PathExists(ctx_.Paths().JobDir(w.id))) return;  // being written
    if (auto task = ParseTaskId(w.id)) return TaskNotThereYet(w, *task);
    if (std::string file = IncomingFileOf(ctx_, w.id); !file.empty()) {
      if (!w.announced_waiting && !ctx_.json) {
        const bool running = DetectDaemon(ctx_.Paths()).running;
        Show(w, "waiting in incoming/" + file + (running ? "" : "; " + NotRunningMessage(ctx_)), true);
      }
      w.announced_waiting = true;
      return;
    }
    if (PathExists(ctx_.Paths().JobDir(w.id))) return;  // accepted meanwhile
    EndLiveLine();
    PrintError(MissingJobMessage(ctx_, w.id));
    w.done = true;
    w.code = kExitError;
  }

  // A task's folder appears when it starts; until then its array tells.
  void TaskNotThereYet(Watch& w, const TaskRef& task) {
    TaskLookup where = LookUpTask(ctx_, task);
    if (where.place == TaskPlace::kNotStarted || where.place == TaskPlace::kArrayWaiting) {
      if (!w.announced_waiting && !ctx_.json) Show(w, where.message, true);
      w.announced_waiting = true;
      return;
    }
    if (PathExists(ctx_.Paths().JobDir(w.id))) return;  // started meanwhile
    EndLiveLine();
    PrintError(where.message);
    w.done = true;
    // One its array ended without starting never will: as good as cancelled.
    w.code = where.place == TaskPlace::kNeverStarted ? kExitOtherFailure : kExitError;
  }

  void Show(const Watch& w, const std::string& text, bool new_line) {
    if (ctx_.json) return;
    std::string line = Paint(ctx_, "[" + FormatElapsed(MonotonicNow() - start_) + "]", Color::kDim) + " " +
                       w.id + "  " + text;
    if (!live_) {
      Out(line + "\n");
    } else {
      if (new_line) EndLiveLine();
      Out("\r\033[K" + line);
      live_open_ = true;
    }
    std::fflush(stdout);
  }

  void EndLiveLine() {
    if (live_open_) Out("\n");
    live_open_ = false;
  }

  // The last lines of the last attempt's stderr, and where the logs are.
  void ExplainFailure(const Watch& w) {
    if (w.status.is_null()) return;  // a task that never started: said so already
    const Json& attempt = w.status.value("attempt", Json(0));
    std::fprintf(stderr, "%s: %s\n", w.id.c_str(), JsonString(w.status, "message").c_str());
    if (std::string failed = JsonString(w.status, "failed_indexes"); !failed.empty()) {
      std::fprintf(stderr, "failed tasks: %s (spoolctl status %s:INDEX; spoolctl rerun %s --failed)\n",
                   failed.c_str(), w.id.c_str(), w.id.c_str());
    }
    if (!attempt.is_number_integer() || attempt.get<int>() < 1) return;
    const int n = attempt.get<int>();
    auto text = ReadSmallFile(ctx_.Paths().StderrLog(w.id, n), 64 << 20);
    if (text.ok() && !text->empty()) {
      const auto lines = SplitLines(*text);
      std::fprintf(stderr, "--- last lines of stderr (attempt %d) ---\n", n);
      for (size_t i = lines.size() > kStderrTail ? lines.size() - kStderrTail : 0; i < lines.size(); ++i) {
        std::fprintf(stderr, "%s\n", SanitizeUtf8(lines[i]).c_str());
      }
      std::fprintf(stderr, "---\n");
    }
    std::fprintf(stderr, "logs: %s/stdout.log and stderr.log\n", ctx_.Paths().AttemptDir(w.id, n).c_str());
  }

  int Finish() {
    int worst = kExitOk;
    for (const auto& w : watches_) {
      if (ctx_.json && !w.status.is_null()) OutJson(ctx_, w.status);
      if (w.code != kExitOk && w.code != kExitError) ExplainFailure(w);
      if (Severity(w.code) > Severity(worst)) worst = w.code;
    }
    return worst;
  }

  const Context& ctx_;
  Millis start_;
  std::vector<Watch> watches_;
  bool live_ = false;
  bool live_open_ = false;
  int64_t shown_second_ = 0;
};

}  // namespace

int WaitForJobs(const Context& ctx, const std::vector<std::string>& ids) { return Waiter(ctx, ids).Run(); }

int CmdWait(Context& ctx, const Args& args) {
  if (args.positional.empty()) return UsageError("give one or more job ids");
  // Unknown ids fail at once; ids still in incoming/, and tasks that have not
  // started, are waited for.
  for (const auto& id : args.positional) {
    if (!IsValidJobRef(id)) return Fail(NotAJobMessage(id));
    if (PathExists(ctx.Paths().JobDir(id))) continue;
    if (auto task = ParseTaskId(id)) {
      if (LookUpTask(ctx, *task).place != TaskPlace::kUnknown) continue;
    } else if (!IncomingFileOf(ctx, id).empty()) {
      continue;
    }
    return Fail(MissingJobMessage(ctx, id));
  }
  return WaitForJobs(ctx, args.positional);
}

}  // namespace spoold::cli

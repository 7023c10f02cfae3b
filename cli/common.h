// What every spoolctl command shares: the context of one invocation (the spool
// root and where it came from, the configuration when known, output modes), exit
// codes, messages, colors, and small readers of the spool's JSON files. spoolctl
// talks to no socket: everything here reads and writes the files of SPEC.md
// through spool/. Owns nothing beyond the Context value; never takes the
// daemon's lock.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/result.h"
#include "spool/json_util.h"
#include "spool/paths.h"
#include "spool/time_util.h"

namespace spoold::cli {

// Exit codes (see `spoolctl --help`). run and wait also exit with a job's own
// exit code, or kTimedOut / kOtherFailure.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // an error about the request: unknown id, bad file
inline constexpr int kExitUsage = 2;
inline constexpr int kExitTimedOut = 124;      // timeout or deadline
inline constexpr int kExitOtherFailure = 125;  // cancelled, or any other failure

// Whether a daemon holds the root's lock (SPEC.md section 1).
struct DaemonInfo {
  bool running = false;
  long pid = 0;  // from spoold.lock; 0 when unknown
};

struct Context {
  std::optional<SpoolPaths> paths;  // the spool root, once discovered
  std::optional<Config> config;     // the configuration, when known
  std::string root_origin;          // how the root was found ("--root", "SPOOLD_ROOT", ...)
  bool json = false;                // --json: machine-readable output
  bool tty = false;                 // stdout is a terminal
  bool color = false;               // tty and NO_COLOR unset and no --no-color

  const SpoolPaths& Paths() const { return *paths; }
  std::string Root() const { return paths ? paths->Root() : std::string(); }
};

// "spoolctl: <message>" on stderr.
void PrintError(const std::string& message);
// "spoolctl: <message>" on stderr, as a notice (no error implied).
void PrintNote(const std::string& message);
// Prints the error and returns kExitError.
int Fail(const std::string& message);
// Prints "spoolctl: <message>" and the hint to see --help; returns kExitUsage.
int UsageError(const std::string& message);

// Writes `text` to stdout as is (binary safe).
void Out(std::string_view text);
// One JSON value and a newline on stdout (indented when stdout is a terminal).
void OutJson(const Context& ctx, const Json& value);

enum class Color { kNone, kRed, kGreen, kYellow, kBlue, kMagenta, kCyan, kDim, kBold };
// `text` in `color` when ctx.color, else unchanged.
std::string Paint(const Context& ctx, std::string_view text, Color color);
// The color a state is shown in.
Color StateColor(std::string_view state);

// Whether a state name from status.json is terminal (succeeded, failed, cancelled).
bool IsTerminalStateName(std::string_view state);

// "12s", "5m", "3h", "2d": a coarse age.
std::string FormatAge(Millis age);
// "0.4s", "12.3s", "2m05s", "1h02m": elapsed time for progress lines.
std::string FormatElapsed(Millis elapsed);
// "1.2 KiB"-style sizes.
std::string FormatSize(int64_t bytes);

// A table: the header row and rows of cells, columns padded; the last column is
// never padded. The cells are kept in one string, so 100,000 rows cost two
// allocations, not 700,000.
class Table {
 public:
  explicit Table(std::vector<std::string_view> header);
  void Add(std::initializer_list<std::string_view> row) { Add(row.begin(), row.size()); }
  void Add(const std::vector<std::string>& row);
  void Print() const;

 private:
  void Add(const std::string_view* row, size_t n);
  void AddCell(std::string_view cell, size_t column);

  size_t columns_;
  std::string cells_;           // every cell, one after another
  std::vector<uint32_t> ends_;  // where each cell ends in cells_
  std::vector<size_t> width_;
};
void PrintTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

// Reads and parses a JSON file the spool wrote (status.json, index.json,
// results.json, error files). Errors are io_error / parse_error with the path.
Result<Json> ReadJsonFile(const std::string& path, size_t max_size = size_t{1} << 30);

// The lines of `text`, without their newlines; a last line without one counts
// only when `partial_last` is true.
std::vector<std::string_view> SplitLines(std::string_view text, bool partial_last = true);

// A string member of a JSON object, or `fallback` when absent or not a string.
std::string JsonString(const Json& object, const char* key, const std::string& fallback = "");
// A JSON scalar as text: strings bare, null as "-", numbers and booleans dumped.
std::string JsonText(const Json& value);

// The status.json of job or task `id` (SPEC.md section 5: `<array>:<index>`),
// parsed. When it has no folder, the error says where it is instead: still
// waiting in incoming/, rejected, unknown, or a task not started yet.
Result<Json> LoadStatusJson(const Context& ctx, const std::string& id);
// Why `id` has no folder, as a sentence ("no job X in ROOT", "X waits in
// incoming/ ...", "X was rejected: ...", "task X:7 has not started yet ...").
std::string MissingJobMessage(const Context& ctx, const std::string& id);
// "X is not a job id (...) nor a task id (ID:INDEX)".
std::string NotAJobMessage(const std::string& id);

// The newest error file under rejected/ for a dropped file named `file_name`
// (stored as the name itself, or "<name>~2", "<name>~3", ...), parsed.
std::optional<Json> FindRejection(const Context& ctx, const std::string& file_name);
// incoming/<id>.toml or incoming/<id>.json when one waits there ("" if none).
std::string IncomingFileOf(const Context& ctx, const std::string& id);

// The index's head without its job entries (cli/index_reader.h reads those):
// of index.json or index.active.json, whichever is newer; an error when
// neither reads.
Result<Json> ReadIndex(const Context& ctx);

// Whether a daemon holds spoold.lock: the pid in the file, and a lock (POSIX
// record lock or flock) in /proc/locks on the file's inode; F_GETLK where
// /proc/locks cannot be read. Never takes the lock itself (that would race
// with a daemon starting).
DaemonInfo DetectDaemon(const SpoolPaths& paths);
// "spoold is not running on ROOT".
std::string NotRunningMessage(const Context& ctx);

// Milliseconds on a monotonic clock, for deadlines and elapsed times.
Millis MonotonicNow();
// Sleeps `ms` (polling loops only; each loop has a deadline or an end state).
void SleepMs(int ms);

// The error of a rejected/ error file or of local validation, in the form the
// daemon writes it ({"file", "code", "field", "line", "column", "error"}).
Json ErrorJson(const std::string& file, const Error& error);
// "FILE:LINE:COLUMN: CODE (FIELD): message" from that JSON form.
std::string FormatErrorJson(const Json& error);

}  // namespace spoold::cli

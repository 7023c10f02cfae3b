#include "cli/common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <ctime>
#include <fstream>
#include <sstream>

#include "cli/array_cli.h"
#include "cli/index_reader.h"
#include "spool/fileio.h"
#include "spool/intake.h"
#include "spool/status.h"

namespace spoold::cli {

void PrintError(const std::string& message) {
  std::fflush(stdout);  // keeps the order of lines when both go to one terminal
  std::fprintf(stderr, "spoolctl: %s\n", message.c_str());
}

void PrintNote(const std::string& message) { PrintError(message); }

int Fail(const std::string& message) {
  PrintError(message);
  return kExitError;
}

int UsageError(const std::string& message) {
  PrintError(message + " (see spoolctl --help)");
  return kExitUsage;
}

void Out(std::string_view text) { std::fwrite(text.data(), 1, text.size(), stdout); }

void OutJson(const Context& ctx, const Json& value) { Out(DumpJson(value, ctx.tty ? 2 : -1) + "\n"); }

std::string Paint(const Context& ctx, std::string_view text, Color color) {
  if (!ctx.color || color == Color::kNone) return std::string(text);
  static constexpr const char* kCodes[] = {"", "31", "32", "33", "34", "35", "36", "2", "1"};
  return std::string("\033[") + kCodes[static_cast<int>(color)] + "m" + std::string(text) + "\033[0m";
}

Color StateColor(std::string_view state) {
  if (state == "succeeded") return Color::kGreen;
  if (state == "failed") return Color::kRed;
  if (state == "cancelled") return Color::kMagenta;
  if (state == "running") return Color::kCyan;
  if (state == "queued") return Color::kYellow;
  return Color::kNone;
}

bool IsTerminalStateName(std::string_view state) {
  auto parsed = ParseState(state);
  return parsed && IsTerminal(*parsed);
}

std::string FormatAge(Millis age) {
  int64_t s = std::max<int64_t>(0, age.count() / 1000);
  if (s < 120) return std::to_string(s) + "s";
  if (s < 7200) return std::to_string(s / 60) + "m";
  if (s < 2 * 86400) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::string FormatElapsed(Millis elapsed) {
  int64_t ms = std::max<int64_t>(0, elapsed.count());
  char buf[32];
  if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%" PRId64 "m%02" PRId64 "s", ms / 60'000, ms / 1000 % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%" PRId64 "h%02" PRId64 "m", ms / 3'600'000, ms / 60'000 % 60);
  }
  return buf;
}

std::string FormatSize(int64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  if (unit == 0) {
    std::snprintf(buf, sizeof buf, "%" PRId64 " B", bytes);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", value, kUnits[unit]);
  }
  return buf;
}

namespace {

// Columns a cell takes on a terminal: color sequences take none, and a UTF-8
// character one.
size_t VisibleWidth(std::string_view text) {
  size_t width = 0;
  bool escape = false;
  for (unsigned char c : text) {
    if (escape) {
      escape = c != 'm';
    } else if (c == '\033') {
      escape = true;
    } else if ((c & 0xC0) != 0x80) {
      ++width;
    }
  }
  return width;
}

}  // namespace

Table::Table(std::vector<std::string_view> header) : columns_(header.size()), width_(header.size()) {
  for (size_t i = 0; i < header.size(); ++i) AddCell(header[i], i);
}

void Table::AddCell(std::string_view cell, size_t column) {
  cells_.append(cell);
  SPOOLD_CHECK(cells_.size() <= UINT32_MAX);
  ends_.push_back(static_cast<uint32_t>(cells_.size()));
  width_[column] = std::max(width_[column], VisibleWidth(cell));
}

void Table::Add(const std::string_view* row, size_t n) {
  SPOOLD_CHECK(n == columns_);
  for (size_t i = 0; i < n; ++i) AddCell(row[i], i);
}

void Table::Add(const std::vector<std::string>& row) {
  SPOOLD_CHECK(row.size() == columns_);
  for (size_t i = 0; i < row.size(); ++i) AddCell(row[i], i);
}

void Table::Print() const {
  std::string out;
  size_t start = 0;
  for (size_t cell = 0; cell < ends_.size(); ++cell) {
    const std::string_view text(cells_.data() + start, ends_[cell] - start);
    start = ends_[cell];
    out.append(text);
    const size_t column = cell % columns_;
    if (column + 1 < columns_) {
      out.append(width_[column] - VisibleWidth(text) + 2, ' ');
    } else {
      while (!out.empty() && out.back() == ' ') out.pop_back();
      out.push_back('\n');
      if (out.size() >= (1 << 16)) {
        Out(out);
        out.clear();
      }
    }
  }
  Out(out);
}

void PrintTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  Table table(std::vector<std::string_view>(header.begin(), header.end()));
  for (const auto& row : rows) table.Add(row);
  table.Print();
}

Result<Json> ReadJsonFile(const std::string& path, size_t max_size) {
  auto text = ReadSmallFile(path, max_size);
  if (!text.ok()) return text.error();
  Json value = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return MakeError("parse_error", path + " is not valid JSON");
  return value;
}

std::vector<std::string_view> SplitLines(std::string_view text, bool partial_last) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos && !partial_last) break;
    if (nl == std::string_view::npos) nl = text.size();
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

std::string JsonString(const Json& object, const char* key, const std::string& fallback) {
  if (!object.is_object()) return fallback;
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : fallback;
}

std::string JsonText(const Json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.get<std::string>();
  return DumpJson(value);
}

std::optional<Json> FindRejection(const Context& ctx, const std::string& file_name) {
  std::optional<Json> newest;
  for (int n = 1; n < 10000; ++n) {
    const std::string stored = RejectedName(file_name, n);
    if (!PathExists(ctx.Paths().RejectedFile(stored))) {
      if (n > 1) break;
      continue;
    }
    if (auto doc = ReadJsonFile(ctx.Paths().RejectedFile(RejectionErrorFile(stored)), 1 << 20); doc.ok()) {
      newest = *doc;
    }
  }
  return newest;
}

std::string IncomingFileOf(const Context& ctx, const std::string& id) {
  for (const char* ext : {".toml", ".json"}) {
    if (PathExists(ctx.Paths().IncomingFile(id + ext))) return id + ext;
  }
  return "";
}

std::string MissingJobMessage(const Context& ctx, const std::string& id) {
  // A task's folder is made when it starts: its array says whether it will.
  if (auto task = ParseTaskId(id)) return LookUpTask(ctx, *task).message;
  if (std::string waiting = IncomingFileOf(ctx, id); !waiting.empty()) {
    std::string why =
        DetectDaemon(ctx.Paths()).running ? "spoold has not taken it in yet" : NotRunningMessage(ctx);
    return "job " + id + " is not accepted yet: incoming/" + waiting + " waits (" + why + ")";
  }
  for (const char* ext : {".toml", ".json"}) {
    if (auto rejection = FindRejection(ctx, id + ext)) {
      return "job " + id + " was rejected: " + FormatErrorJson(*rejection);
    }
  }
  return "no job " + PrintableName(id) + " in " + ctx.Root();
}

std::string NotAJobMessage(const std::string& id) {
  return PrintableName(id) +
         " is not a job id (1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit) "
         "nor a task id (ID:INDEX)";
}

Result<Json> LoadStatusJson(const Context& ctx, const std::string& id) {
  // The id becomes a path under jobs/: nothing but a job or task id may.
  if (!IsValidJobRef(id)) return MakeError("bad_id", NotAJobMessage(id));
  if (!PathExists(ctx.Paths().JobDir(id))) return MakeError("unknown_job", MissingJobMessage(ctx, id));
  auto status = ReadJsonFile(ctx.Paths().StatusFile(id), 64 << 20);
  if (!status.ok()) return status.error();
  if (!status->is_object()) return MakeError("parse_error", ctx.Paths().StatusFile(id) + " is not an object");
  return status;
}

// index.active.json has the same head as index.json and is written at every
// write of the index; a large index.json lags by up to spool.large_index_lag.
// The newer of the two heads is taken (both are a few kilobytes read).
Result<Json> ReadIndex(const Context& ctx) {
  auto whole = ReadIndexHead(ctx.Paths().Index());
  auto active = ReadIndexHead(ctx.Paths().IndexActive());
  if (!active.ok() || !active->is_object()) return whole;
  if (!whole.ok() || !whole->is_object()) return active;
  return JsonString(*active, "updated") >= JsonString(*whole, "updated") ? active : whole;
}

namespace {

// The fields of one /proc/locks line: "1: FLOCK  ADVISORY  WRITE 4242 fe:00:1234 0 EOF".
struct LockLine {
  std::string kind;
  long pid = 0;
  std::string device_inode;  // "fe:00:1234"
};

std::optional<LockLine> ParseLockLine(const std::string& line) {
  std::istringstream in(line);
  std::string number, mode, access;
  LockLine out;
  if (!(in >> number >> out.kind)) return std::nullopt;
  if (out.kind == "->") return std::nullopt;  // a waiter, not a holder
  if (!(in >> mode >> access >> out.pid >> out.device_inode)) return std::nullopt;
  return out;
}

// Without /proc/locks: F_GETLK asks who holds a record lock and never takes
// one. Opening and closing the file is harmless here: this process holds no
// lock on it.
DaemonInfo DetectByRecordLock(const SpoolPaths& paths, DaemonInfo info) {
  int fd = ::open(paths.Lock().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return info;
  struct flock query {};
  query.l_type = F_WRLCK;
  query.l_whence = SEEK_SET;
  if (::fcntl(fd, F_GETLK, &query) == 0 && query.l_type != F_UNLCK) {
    info.running = true;
    info.pid = query.l_pid;
  }
  ::close(fd);
  return info;
}

}  // namespace

namespace {

// How /proc/locks names a file: "fe:00:1234" (major:minor:inode).
std::string DevInode(const struct stat& st) {
  char text[64];
  std::snprintf(text, sizeof text, "%02x:%02x:%lu", major(st.st_dev), minor(st.st_dev),
                static_cast<unsigned long>(st.st_ino));
  return text;
}

// Whether a /proc/locks entry is on the file `st`. Some file systems (overlays)
// report another device there than stat does: the inode with the expected pid
// is enough then.
bool LockIsOn(const LockLine& lock, const struct stat& st, long pid) {
  const std::string& di = lock.device_inode;
  const std::string inode_suffix = ":" + std::to_string(st.st_ino);
  const bool same_inode = di.size() > inode_suffix.size() &&
                          di.compare(di.size() - inode_suffix.size(), inode_suffix.size(), inode_suffix) == 0;
  return di == DevInode(st) || (same_inode && pid != 0 && lock.pid == pid);
}

}  // namespace

DaemonInfo DetectDaemon(const SpoolPaths& paths) {
  DaemonInfo info;
  if (auto text = ReadSmallFile(paths.Lock(), 64); text.ok()) info.pid = std::atol(text->c_str());
  struct stat file {};
  struct stat root {};
  const bool have_file = ::stat(paths.Lock().c_str(), &file) == 0;
  const bool have_root = ::stat(paths.Root().c_str(), &root) == 0;
  std::ifstream locks("/proc/locks");
  if (!locks) return have_file ? DetectByRecordLock(paths, info) : info;
  for (std::string line; std::getline(locks, line);) {
    auto lock = ParseLockLine(line);
    if (!lock || (lock->kind != "FLOCK" && lock->kind != "POSIX" && lock->kind != "OFDLCK")) continue;
    // spoold flocks the root folder and record-locks spoold.lock (docs/SPEC.md
    // section 1); older ones locked only the file. Either means a daemon runs.
    if (have_root && lock->kind == "FLOCK" && LockIsOn(*lock, root, info.pid)) {
      info.running = true;
      if (info.pid == 0) info.pid = lock->pid;
      return info;
    }
    if (have_file && LockIsOn(*lock, file, info.pid)) {
      info.running = true;
      return info;
    }
  }
  return info;
}

std::string NotRunningMessage(const Context& ctx) { return "spoold is not running on " + ctx.Root(); }

Millis MonotonicNow() {
  return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now().time_since_epoch());
}

void SleepMs(int ms) {
  struct timespec ts {
    ms / 1000, static_cast<long>(ms % 1000) * 1'000'000
  };
  while (::nanosleep(&ts, &ts) != 0) {
  }
}

Json ErrorJson(const std::string& file, const Error& error) { return RejectionDocument(file, error, Now()); }

std::string FormatErrorJson(const Json& error) {
  std::string out = JsonString(error, "file", "?");
  for (const char* key : {"line", "column"}) {
    auto it = error.find(key);
    if (it == error.end() || !it->is_number_integer()) break;
    out += ":" + std::to_string(it->get<int64_t>());
  }
  out += ": " + JsonString(error, "code", "error");
  if (std::string field = JsonString(error, "field"); !field.empty()) out += " (" + field + ")";
  return out + ": " + JsonString(error, "error");
}

}  // namespace spoold::cli

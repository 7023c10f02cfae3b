#include "daemon/supervisor_files.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/exec_protocol.h"
#include "daemon/local_executor.h"
#include "spool/fileio.h"

namespace spoold {
namespace {

namespace ep = exec_protocol;

TimePoint FromUnixMs(int64_t ms) { return TimePoint{std::chrono::milliseconds(ms)}; }

Reason CauseReason(const std::string& cause) {
  if (cause == "timeout") return Reason::kTimeout;
  if (cause == "deadline") return Reason::kDeadline;
  if (cause == "cancelled") return Reason::kCancelledByUser;
  if (cause == "interrupted") return Reason::kInterrupted;
  return Reason::kNone;
}

}  // namespace

Result<Outcome> ParseOutcome(const std::string& text) {
  Json doc = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return MakeError("io_error", "outcome.json is not a JSON object");
  Outcome out;
  try {
    out.protocol = doc.at("protocol").get<int>();
    if (out.protocol != ep::kProtocol) {
      return MakeError("unknown_protocol", "outcome.json is of protocol " + std::to_string(out.protocol) +
                                               ", this spoold knows " + std::to_string(ep::kProtocol));
    }
    const Json& code = doc.at("exit_code");
    const Json& sig = doc.at("signal");
    if (code.is_number_integer()) out.end.exit_code = code.get<int>();
    if (sig.is_number_integer()) out.end.signal = sig.get<int>();
    out.end.cause = CauseReason(doc.at("cause").get<std::string>());
    out.end.cpu_user_s = doc.at("cpu_user_s").get<double>();
    out.end.cpu_sys_s = doc.at("cpu_sys_s").get<double>();
    out.end.max_rss_kb = doc.at("max_rss_kb").get<int64_t>();
    if (const Json& e = doc.at("spawn_error"); e.is_object()) {
      out.spawn_error = std::make_pair(e.at("stage").get<int>(), e.at("errno").get<int>());
    }
    for (const Json& k : doc.at("kills")) {
      out.kills.push_back({k.at("signal").get<int>(), FromUnixMs(k.at("unix_ms").get<int64_t>()),
                           k.at("leftovers").get<bool>()});
    }
    out.survivors = doc.at("survivors").get<bool>();
    out.ended = FromUnixMs(doc.at("ended_unix_ms").get<int64_t>());
  } catch (const Json::exception& e) {
    return MakeError("io_error", std::string("outcome.json: ") + e.what());
  }
  if (!out.end.exit_code && !out.end.signal)
    return MakeError("io_error", "outcome.json has no exit code nor signal");
  return out;
}

std::optional<Result<Outcome>> ReadOutcome(const std::string& attempt_dir) {
  auto text = ReadSmallFile(attempt_dir + "/" + ep::kOutcomeFile, 64 << 10);
  if (!text.ok()) {
    if (!PathExists(attempt_dir + "/" + ep::kOutcomeFile)) return std::nullopt;
    return Result<Outcome>(text.error());
  }
  return ParseOutcome(*text);
}

std::optional<pid_t> LockHolder(const std::string& attempt_dir) {
  const std::string path = attempt_dir + "/" + ep::kLockFile;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  const bool asked = ::fcntl(fd, F_GETLK, &lock) == 0;
  ::close(fd);
  if (!asked || lock.l_type == F_UNLCK || lock.l_pid <= 0) return std::nullopt;
  return lock.l_pid;
}

std::string BootId() {
  auto text = ReadSmallFile("/proc/sys/kernel/random/boot_id", 128);
  if (!text.ok()) return "";
  std::string id = *text;
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

int OpenSupervisor(pid_t pid, const std::string& attempt_dir) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return -1;
  // The pidfd names whatever process had `pid` when it was opened; if the
  // lock is still held by `pid` now, that process is the supervisor (it held
  // the lock before and after, and a pid is not reused while its process lives).
  if (LockHolder(attempt_dir) != pid) {
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
}

std::string StopOrphanedJob(pid_t job_pid, std::optional<uint64_t> job_start) {
  if (job_pid <= 1) return "no process of it was left";
  if (auto start = ProcessStartTicks(job_pid); start && start != job_start) {
    // The number now belongs to another process: the job's session ended
    // before it was reused, and nothing of the job is left under it.
    return "its pid " + std::to_string(job_pid) + " now belongs to another process, which was left alone";
  }
  size_t killed = 0;
  for (int round = 0; round < 200; ++round) {
    auto left = LiveProcesses([job_pid](const ProcStat& st) { return st.session == job_pid; });
    if (left.empty()) break;
    for (pid_t pid : left) ::kill(pid, SIGKILL);
    if (round == 0) killed = left.size();
    ::usleep(25'000);
  }
  if (killed == 0) return "no process of it was left";
  return std::to_string(killed) + " processes of its session " + std::to_string(job_pid) +
         " were still running and were killed";
}

}  // namespace spoold

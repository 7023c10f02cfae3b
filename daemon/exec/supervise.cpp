// The supervisor's watch over a running job (daemon/exec_protocol.h, steps 4
// and 5): limits, cancel and stop requests, the kill sequence, the leftovers,
// and the outcome file. One thread, no handlers: every signal is blocked and
// taken with sigtimedwait, so that the state below is only touched here.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <initializer_list>

#include "daemon/exec/descendants.h"
#include "daemon/exec/job_process.h"
#include "daemon/exec/supervisor.h"
#include "daemon/exec_protocol.h"

namespace spoold::exec {
namespace {

namespace ep = exec_protocol;

constexpr long long kGiveUpAfterKillMs = 5000;  // processes that survive SIGKILL (D state)
constexpr long long kRekillEveryMs = 50;        // after SIGKILL: orphans that just came to us
constexpr int kMaxKills = 16;

long long ClockMs(clockid_t clock) {
  struct timespec ts {};
  clock_gettime(clock, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

enum Cause { kNone, kTimeout, kDeadline, kCancelled, kInterrupted };
const char* CauseName(Cause c) {
  static const char* const names[] = {"none", "timeout", "deadline", "cancelled", "interrupted"};
  return names[c];
}

struct Kill {
  int signal;
  long long unix_ms;
  bool leftovers;  // the main process had ended: what it left behind
};

struct State {
  // The job's process got the go (it stamps the time, job_process.h), or
  // ended without one. The timeout counts from then.
  bool started = false;
  long long started_mono = 0, started_ms = 0;
  bool child_failed = false;  // it wrote a ChildError before its exec
  ChildError child_error{};
  bool leader_done = false;
  int leader_status = 0;
  double user_s = 0, sys_s = 0;
  long max_rss_kb = 0;
  Cause cause = kNone;
  int kill_stage = 0;     // 0 none, 1 kill_signal sent, 2 SIGKILL sent
  long long kill_at = 0;  // monotonic: when the next step is due
  Kill kills[kMaxKills];
  int kill_count = 0;
  bool survived = false;  // something survived SIGKILL for kGiveUpAfterKillMs
};

void SignalJob(const Job& job, const State& st, int sig) {
  // The descendants first: a member of the group killed before the walk read
  // its children would hand them to us unseen. Then the process group, for
  // what forked during the walk; only while its leader is not reaped: after
  // that its number may be reused by an unrelated group.
  SignalDescendants(sig);
  if (!st.leader_done) kill(-job.pid, sig);
}

void StartKill(const Job& job, State& st, int sig, long long now) {
  if (st.kill_count < kMaxKills) st.kills[st.kill_count++] = {sig, ClockMs(CLOCK_REALTIME), st.leader_done};
  SignalJob(job, st, sig);
  st.kill_stage = sig == SIGKILL ? 2 : 1;
  st.kill_at = now + (sig == SIGKILL ? kGiveUpAfterKillMs : job.grace_ms);
}

// Reaps every child that ended; false when we have none left at all.
bool Reap(const Job& job, State& st) {
  for (;;) {
    int status = 0;
    struct rusage ru {};
    pid_t p = wait4(-1, &status, WNOHANG, &ru);
    if (p == 0) return true;
    if (p < 0) {
      if (errno == EINTR) continue;
      return false;  // ECHILD
    }
    // The job's main process reports its own waited-for children in its
    // usage; orphans we reaped add theirs.
    st.user_s += static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) / 1e6;
    st.sys_s += static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) / 1e6;
    if (ru.ru_maxrss > st.max_rss_kb) st.max_rss_kb = ru.ru_maxrss;
    if (p == job.pid) {
      st.leader_done = true;
      st.leader_status = status;
    }
  }
}

// Appends to `buf` (of `size`) at `*len`; snprintf's truncation is harmless:
// the outcome is a few hundred bytes.
void Append(char* buf, size_t size, size_t* len, const char* fmt, ...) __attribute__((format(printf, 4, 5)));
void Append(char* buf, size_t size, size_t* len, const char* fmt, ...) {
  if (*len >= size) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *len, size - *len, fmt, ap);
  va_end(ap);
  if (n > 0) *len += static_cast<size_t>(n);
}

// Writes the outcome (temporary name, then rename); durable at once when the
// daemon that started us is gone, else at its next round of syncs. False if
// it could not be written (the daemon then records the attempt interrupted).
bool WriteOutcome(const Job& job, const State& st) {
  const bool spawn_failed = st.child_failed;
  const ChildError& child_error = st.child_error;

  char buf[4096];
  size_t len = 0;
  Append(buf, sizeof buf, &len, "{\"protocol\": %d, \"supervisor_pid\": %d, \"job_pid\": %d", ep::kProtocol,
         static_cast<int>(getpid()), static_cast<int>(job.pid));
  Append(buf, sizeof buf, &len, ", \"started_unix_ms\": %lld, \"ended_unix_ms\": %lld", st.started_ms,
         ClockMs(CLOCK_REALTIME));
  if (WIFEXITED(st.leader_status)) {
    Append(buf, sizeof buf, &len, ", \"exit_code\": %d, \"signal\": null", WEXITSTATUS(st.leader_status));
  } else {
    Append(buf, sizeof buf, &len, ", \"exit_code\": null, \"signal\": %d", WTERMSIG(st.leader_status));
  }
  Append(buf, sizeof buf, &len, ", \"cause\": \"%s\"", CauseName(st.cause));
  if (spawn_failed) {
    Append(buf, sizeof buf, &len, ", \"spawn_error\": {\"stage\": %d, \"errno\": %d}", child_error.stage,
           child_error.err);
  } else {
    Append(buf, sizeof buf, &len, ", \"spawn_error\": null");
  }
  Append(buf, sizeof buf, &len, ", \"kills\": [");
  for (int i = 0; i < st.kill_count; ++i) {
    Append(buf, sizeof buf, &len, "%s{\"signal\": %d, \"unix_ms\": %lld, \"leftovers\": %s}",
           i > 0 ? ", " : "", st.kills[i].signal, st.kills[i].unix_ms,
           st.kills[i].leftovers ? "true" : "false");
  }
  Append(buf, sizeof buf, &len, "], \"survivors\": %s", st.survived ? "true" : "false");
  Append(buf, sizeof buf, &len, ", \"cpu_user_s\": %.6f, \"cpu_sys_s\": %.6f, \"max_rss_kb\": %ld}\n",
         st.user_s, st.sys_s, st.max_rss_kb);
  if (len >= sizeof buf) return false;

  static const char kTemp[] = "outcome.json.tmp";
  int fd = openat(job.dir_fd, kTemp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, buf + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const bool alone = getppid() != job.daemon;
  bool ok = done == len && (!alone || fdatasync(fd) == 0);
  ok = close(fd) == 0 && ok;
  ok = ok && renameat(job.dir_fd, kTemp, job.dir_fd, ep::kOutcomeFile) == 0;
  if (ok && alone) ok = fsync(job.dir_fd) == 0;
  return ok;
}

// Whether the job's process got its go (it stamps the time itself, just
// before its exec: the supervisor is not woken for it). A process that ended
// without one (killed while it waited, or let go) started when it ended.
void CheckStarted(State& st) {
  if (st.started) return;
  if (StartedAt(st.started_mono, st.started_ms)) {
    st.started = true;
  } else if (st.leader_done) {
    st.started = true;
    st.started_mono = ClockMs(CLOCK_MONOTONIC);
    st.started_ms = ClockMs(CLOCK_REALTIME);
  }
}

// What the job's process wrote to its error pipe before its exec, if
// anything: read when it has ended, so the pipe is closed and this does not
// wait.
void ReadChildError(const Job& job, State& st) {
  ssize_t got;
  do {
    got = read(job.error_fd, &st.child_error, sizeof st.child_error);
  } while (got < 0 && errno == EINTR);
  st.child_failed = got == static_cast<ssize_t>(sizeof st.child_error);
}

}  // namespace

sigset_t SupervisedSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, ep::kCancelSignal}) sigaddset(&set, sig);
  return set;
}

int Supervise(const Job& job) {
  const sigset_t set = SupervisedSignals();
  State st;
  for (;;) {
    const bool children = Reap(job, st);
    CheckStarted(st);
    if (st.leader_done && !children) break;
    const long long now = ClockMs(CLOCK_MONOTONIC);
    long long wait_ms = -1;  // none: until a signal
    auto wait_until = [&](long long ms) {
      wait_ms = wait_ms < 0 || ms < wait_ms ? (ms < 0 ? 0 : ms) : wait_ms;
    };
    if (!st.leader_done && st.kill_stage == 0) {
      const long long unix_now = ClockMs(CLOCK_REALTIME);
      if (st.started && job.timeout_ms > 0 && now >= st.started_mono + job.timeout_ms) {
        st.cause = kTimeout;
      } else if (job.deadline_ms > 0 && unix_now >= job.deadline_ms) {
        st.cause = kDeadline;
      }
      if (st.cause != kNone) {
        StartKill(job, st, job.kill_signal, now);
      } else {
        // Before the go, a look again one timeout later: the go came after
        // this look, so its timeout ends after that one.
        if (job.timeout_ms > 0) {
          wait_until(st.started ? st.started_mono + job.timeout_ms - now : job.timeout_ms);
        }
        if (job.deadline_ms > 0) wait_until(job.deadline_ms - unix_now);
      }
    } else if (st.leader_done && st.kill_stage == 0) {
      // The main process ended and left others behind: a job is never
      // reported ended while anything of it runs.
      StartKill(job, st, job.kill_signal, now);
    } else if (st.kill_stage == 1 && now >= st.kill_at) {
      StartKill(job, st, SIGKILL, now);
    } else if (st.kill_stage == 2) {
      if (st.leader_done && now >= st.kill_at) {
        st.survived = true;
        break;
      }
      SignalJob(job, st, SIGKILL);
    }
    if (st.kill_stage == 1) wait_until(st.kill_at - now);
    if (st.kill_stage == 2) wait_until(kRekillEveryMs);

    siginfo_t info;
    struct timespec ts = {static_cast<time_t>(wait_ms / 1000), static_cast<long>(wait_ms % 1000) * 1'000'000};
    const int sig = sigtimedwait(&set, &info, wait_ms < 0 ? nullptr : &ts);
    if (sig <= 0 || sig == SIGCHLD || st.leader_done) continue;
    // A request that comes after the job ended by itself changes nothing.
    if (st.cause == kNone) st.cause = sig == ep::kCancelSignal ? kCancelled : kInterrupted;
    if (st.kill_stage == 0) StartKill(job, st, job.kill_signal, ClockMs(CLOCK_MONOTONIC));
  }
  ReadChildError(job, st);
  // The job's process saw EOF instead of the go: the daemon died or let this
  // attempt go before it was recorded. Nothing ran; there is no outcome.
  if (st.child_failed && st.child_error.stage == ep::kStageNoGo) return 127;
  return WriteOutcome(job, st) ? 0 : 3;
}

}  // namespace spoold::exec

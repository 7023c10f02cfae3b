#include "daemon/exec/job_process.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "daemon/exec/supervisor.h"
#include "daemon/exec_protocol.h"

namespace spoold::exec {
namespace {

namespace ep = exec_protocol;

// What runs in the job's process: not instrumented (a sanitizer's runtime
// would run on a stack it does not know, beside the supervisor's threads of
// its own), and always inlined into it.
#define JOB_CODE __attribute__((no_sanitize("address", "undefined"), always_inline)) inline

// A system call with no C library in between: the result, or -errno.
#if defined(__x86_64__)
JOB_CODE long Sys(long n, long a = 0, long b = 0, long c = 0, long d = 0) {
  register long r10 __asm__("r10") = d;
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
JOB_CODE long Sys(long n, long a = 0, long b = 0, long c = 0, long d = 0) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory", "cc");
  return x0;
}
#elif defined(__riscv) && __riscv_xlen == 64
JOB_CODE long Sys(long n, long a = 0, long b = 0, long c = 0, long d = 0) {
  register long a7 __asm__("a7") = n;
  register long a0 __asm__("a0") = a;
  register long a1 __asm__("a1") = b;
  register long a2 __asm__("a2") = c;
  register long a3 __asm__("a3") = d;
  __asm__ volatile("ecall" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2), "r"(a3) : "memory");
  return a0;
}
#else
#error "spoold-exec: the job's process makes raw system calls, written for x86_64, aarch64 and riscv64"
#endif

constexpr size_t kStackSize = 64 * 1024;

// Written before the process is created or before the launch is handed over;
// read by the job's process after.
Launch g_launch;
int g_feed_fd = -1;  // the job's process's end
// When the job's process got its go (milliseconds; the monotonic one plus 1,
// 0 until then): written by it, read by the supervisor.
long long g_start_mono_ms = 0;
long long g_start_real_ms = 0;
int g_error_fd = -1;  // its write end of the error pipe
pid_t g_supervisor = -1;

[[noreturn]] JOB_CODE void Exit(int code) {
  for (;;) Sys(SYS_exit, code);
}

[[noreturn]] JOB_CODE void Fail(int stage, long err) {
  ChildError e{stage, static_cast<int>(-err)};
  Sys(SYS_write, g_error_fd, reinterpret_cast<long>(&e), sizeof e);
  Exit(127);
}

// The job's start, for its timeout and its record: the go, microseconds
// before the exec (and before any step that may fail, so that a failure has
// its time too).
JOB_CODE void Stamp() {
  struct timespec real {};
  struct timespec mono {};
  Sys(SYS_clock_gettime, CLOCK_REALTIME, reinterpret_cast<long>(&real));
  Sys(SYS_clock_gettime, CLOCK_MONOTONIC, reinterpret_cast<long>(&mono));
  __atomic_store_n(&g_start_real_ms, real.tv_sec * 1000LL + real.tv_nsec / 1'000'000, __ATOMIC_RELAXED);
  // At least 1: 0 means "not yet".
  __atomic_store_n(&g_start_mono_ms, mono.tv_sec * 1000LL + mono.tv_nsec / 1'000'000 + 1, __ATOMIC_RELEASE);
}

JOB_CODE bool SupervisorAlive() {
  return Sys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL) == 0 && Sys(SYS_getppid) == g_supervisor;
}

// The job's process. Until its exec it shares the supervisor's memory.
__attribute__((no_sanitize("address", "undefined"))) int JobMain(void*) {
  // Should the supervisor die (SIGKILL) from here on, so does this process;
  // the user switch below clears this, and it is set again after it.
  if (!SupervisorAlive()) Exit(127);
  if (long r = Sys(SYS_setsid); r < 0) Fail(ep::kStageFork, r);
  // The launch: its stdout and stderr come with it. EOF: no job came.
  char byte = 0;
  alignas(struct cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];
  struct iovec iov = {&byte, 1};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  long got;
  do {
    got = Sys(SYS_recvmsg, g_feed_fd, reinterpret_cast<long>(&msg), 0);
  } while (got == -EINTR);
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (got != 1 || cmsg == nullptr || cmsg->cmsg_type != SCM_RIGHTS ||
      cmsg->cmsg_len != CMSG_LEN(2 * sizeof(int))) {
    Exit(127);
  }
  const int out = reinterpret_cast<int*>(CMSG_DATA(cmsg))[0];
  const int err = reinterpret_cast<int*>(CMSG_DATA(cmsg))[1];
  Sys(SYS_close, g_feed_fd);
  if (long r = Sys(SYS_dup3, out, 1, 0); r < 0) Fail(ep::kStageArguments, r);
  if (long r = Sys(SYS_dup3, err, 2, 0); r < 0) Fail(ep::kStageArguments, r);
  Sys(SYS_close, out);
  Sys(SYS_close, err);
  // The daemon's go. EOF: it died or let this attempt go; nothing runs.
  do {
    got = Sys(SYS_read, ep::kControlFd, reinterpret_cast<long>(&byte), 1);
  } while (got == -EINTR);
  if (got != 1) Fail(ep::kStageNoGo, 0);
  Stamp();
  Sys(SYS_close, ep::kControlFd);  // the only descriptor of ours without close-on-exec
  const Launch& l = g_launch;
  if (l.ids_malformed) Fail(ep::kStageArguments, -EINVAL);
  if (l.switch_user) {
    // Groups first, then the group id, then the user id (after setuid there
    // is no way back). Each step is checked, and so is the result.
    if (long r = Sys(SYS_setgroups, static_cast<long>(l.group_count), reinterpret_cast<long>(l.groups));
        r < 0)
      Fail(ep::kStageUser, r);
    if (long r = Sys(SYS_setgid, l.gid); r < 0) Fail(ep::kStageUser, r);
    if (long r = Sys(SYS_setuid, l.uid); r < 0) Fail(ep::kStageUser, r);
    if (Sys(SYS_getuid) != l.uid || Sys(SYS_geteuid) != l.uid || Sys(SYS_getgid) != l.gid ||
        Sys(SYS_getegid) != l.gid || (l.uid != 0 && Sys(SYS_setuid, 0) == 0)) {
      Fail(ep::kStageUser, -EPERM);
    }
  }
  if (!SupervisorAlive()) Exit(127);
  if (long r = Sys(SYS_chdir, reinterpret_cast<long>(l.cwd)); r < 0) Fail(ep::kStageChdir, r);
  const unsigned long none = 0;  // the kernel's signal set: 64 bits
  Sys(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&none), 0, sizeof none);
  long r = Sys(SYS_execve, reinterpret_cast<long>(l.exe), reinterpret_cast<long>(l.args),
               reinterpret_cast<long>(l.env));
  Fail(ep::kStageExec, r);
}

}  // namespace

Launch& TheLaunch() { return g_launch; }

bool StartedAt(long long& mono_ms, long long& real_ms) {
  const long long mono = __atomic_load_n(&g_start_mono_ms, __ATOMIC_ACQUIRE);
  if (mono == 0) return false;
  mono_ms = mono - 1;
  real_ms = __atomic_load_n(&g_start_real_ms, __ATOMIC_RELAXED);
  return true;
}

bool CreateJobProcess(JobProcess& job) {
  int feed[2], error[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, feed) != 0) return false;
  if (pipe2(error, O_CLOEXEC) != 0) return false;
  void* stack =
      mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return false;
  g_feed_fd = feed[1];
  g_error_fd = error[1];
  g_supervisor = getpid();
  // The stack is never unmapped: the job's process uses it until its exec,
  // and the supervisor has no way to know when that was but the error pipe.
  const pid_t pid = clone(JobMain, static_cast<char*>(stack) + kStackSize, CLONE_VM | SIGCHLD, nullptr);
  if (pid < 0) return false;
  close(feed[1]);
  close(error[1]);
  job.pid = pid;
  job.feed_fd = feed[0];
  job.error_fd = error[0];
  return true;
}

bool Hand(JobProcess& job, int stdout_fd, int stderr_fd) {
  int fds[2] = {stdout_fd, stderr_fd};
  char byte = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof fds)] = {};
  struct iovec iov = {&byte, 1};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ep::AttachRights(msg, control, sizeof control, fds, 2);
  ssize_t n;
  do {
    n = sendmsg(job.feed_fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  close(job.feed_fd);
  job.feed_fd = -1;
  return n == 1;
}

}  // namespace spoold::exec

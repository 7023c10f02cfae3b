#include "daemon/exec/descendants.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

namespace spoold::exec {
namespace {

// A growing array of pids (the C library only: spoold-exec is linked
// statically and uses no C++ library).
struct Pids {
  pid_t* at = nullptr;
  size_t count = 0, cap = 0;

  ~Pids() { free(at); }
  bool Add(pid_t pid) {
    if (count == cap) {
      const size_t more = cap == 0 ? 64 : cap * 2;
      pid_t* grown = static_cast<pid_t*>(realloc(at, more * sizeof(pid_t)));
      if (grown == nullptr) return false;
      at = grown;
      cap = more;
    }
    at[count++] = pid;
    return true;
  }
};

// Whether this kernel has /proc/<pid>/task/<tid>/children
// (CONFIG_PROC_CHILDREN; Debian's kernels do).
bool HaveChildrenFiles() {
  static const int have = [] {
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", static_cast<int>(getpid()),
             static_cast<int>(getpid()));
    return access(path, R_OK) == 0 ? 1 : 0;
  }();
  return have == 1;
}

// Adds the pids of one `children` file (space-separated) to `out`, read a
// piece at a time; a pid cut at a piece's end is finished with the next.
// False if memory ran out. A file that is gone (its thread ended) adds none.
bool AddPidsOf(const char* path, Pids& out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  bool ok = true;
  long pid = 0;
  bool in_pid = false;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] >= '0' && buf[i] <= '9') {
        pid = pid * 10 + (buf[i] - '0');
        in_pid = true;
      } else if (in_pid) {
        if (pid > 0 && !out.Add(static_cast<pid_t>(pid))) ok = false;
        pid = 0;
        in_pid = false;
      }
    }
  }
  if (in_pid && pid > 0 && !out.Add(static_cast<pid_t>(pid))) ok = false;
  close(fd);
  return ok;
}

// Adds the children of process `pid` to `out`, from the `children` file of
// each of its threads (a child belongs to the thread that forked it). A
// process that ended meanwhile has none. False if memory ran out.
bool AddChildren(pid_t pid, Pids& out) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", static_cast<int>(pid));
  DIR* tasks = opendir(path);
  if (tasks == nullptr) return true;
  bool ok = true;
  while (struct dirent* task = readdir(tasks)) {
    if (task->d_name[0] < '1' || task->d_name[0] > '9') continue;
    char file[300];
    snprintf(file, sizeof file, "/proc/%d/task/%s/children", static_cast<int>(pid), task->d_name);
    ok = AddPidsOf(file, out) && ok;
  }
  closedir(tasks);
  return ok;
}

// The same walk over every process's parent link read from /proc: for a
// kernel without `children` files. O(n log n) in the machine's processes.
struct Link {
  pid_t pid, parent;
};

int ByParent(const void* a, const void* b) {
  const pid_t pa = static_cast<const Link*>(a)->parent, pb = static_cast<const Link*>(b)->parent;
  return pa < pb ? -1 : pa > pb ? 1 : 0;
}

// Every process's parent, from /proc; nullptr if memory ran out. `*count` is
// the number of entries.
Link* ReadLinks(size_t* count) {
  *count = 0;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return nullptr;
  size_t cap = 256;
  Link* links = static_cast<Link*>(malloc(cap * sizeof(Link)));
  while (struct dirent* entry = readdir(proc)) {
    if (links == nullptr) break;
    if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", entry->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = '\0';
    // "pid (comm) S ppid ...": the command may hold spaces and ')'.
    const char* close_paren = strrchr(buf, ')');
    char state = 0;
    int ppid = 0;
    if (close_paren == nullptr || sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2) continue;
    if (*count == cap) {
      cap *= 2;
      Link* more = static_cast<Link*>(realloc(links, cap * sizeof(Link)));
      if (more == nullptr) break;
      links = more;
    }
    links[(*count)++] = {static_cast<pid_t>(atoi(entry->d_name)), static_cast<pid_t>(ppid)};
  }
  closedir(proc);
  return links;
}

// The parent links, sorted by parent, walked breadth first from us.
void SignalDescendantsByLinks(int sig) {
  size_t count = 0;
  Link* links = ReadLinks(&count);
  if (links == nullptr) return;
  qsort(links, count, sizeof(Link), ByParent);
  pid_t* queue = static_cast<pid_t*>(malloc((count + 1) * sizeof(pid_t)));
  if (queue != nullptr) {
    size_t head = 0, tail = 0;
    queue[tail++] = getpid();
    while (head < tail) {
      const pid_t parent = queue[head++];
      // The first link whose parent is `parent` (lower bound), then its run.
      size_t lo = 0, hi = count;
      while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (links[mid].parent < parent) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      for (size_t k = lo; k < count && links[k].parent == parent && tail <= count; ++k) {
        kill(links[k].pid, sig);
        queue[tail++] = links[k].pid;
      }
    }
    free(queue);
  }
  free(links);
}

}  // namespace

// The children files are walked breadth first from us: the cost is in the
// job's own processes. Reading every process's parent from /proc instead costs
// each supervisor O(the machine's processes): a thousand supervisors stopped
// at once (`shutdown --stop-jobs`) read 2,000 stat files each, and the stop
// took 45 s instead of 1.3.
//
// A process's children are read before it is signalled: a parent that dies of
// the signal at once hands its children to us (the subreaper), whose own list
// was read already, and a walk that read it after the kill would miss them.
void SignalDescendants(int sig) {
  Pids queue;
  if (!HaveChildrenFiles() || !queue.Add(getpid())) return SignalDescendantsByLinks(sig);
  for (size_t head = 0; head < queue.count; ++head) {
    const pid_t pid = queue.at[head];
    if (!AddChildren(pid, queue)) return SignalDescendantsByLinks(sig);
    if (head > 0) kill(pid, sig);
    // Pids reused while we walk could close a loop: never past the kernel's
    // largest pid count.
    if (queue.count > 4 * 1024 * 1024) break;
  }
}

}  // namespace spoold::exec

/* floor.c - the durable floor: the least any job runner must do on this machine
 * to keep spoold's two promises, and nothing else. It is a benchmark baseline,
 * not a job runner: no validation, no events, logs, results, index or recovery.
 *
 * The promises (SPEC.md section 9, README "Starting an attempt"):
 *   1. every state change is written to a temporary name, synced, renamed, and
 *      the rename synced, before anything acts on it;
 *   2. a job's program runs only once its `running` state is visible to every
 *      process and its content durable (the rename that shows it is made
 *      durable by the same round's second sync, after the program started: a
 *      machine crash takes the program with it).
 * The floor keeps both with spoold's own batching (one round of two syncfs per
 * loop turn, shared by every change of the turn), so the gap between spoold and
 * the floor is spoold's own cost, and the gap between the floor and a runner
 * that does not sync (Task Spooler) is what durability costs on this disk.
 *
 * Protocol, as spoold's (so bench/spoold_bench.py drives both alike): job files
 * `command = ["arg0", ...]` renamed into ROOT/incoming/<id>.toml; the job's
 * state in ROOT/jobs/<id>/status.json ({"state": "running"|"succeeded"|
 * "failed"}). READY=1 goes to $NOTIFY_SOCKET once the watch is set up.
 *
 * usage: floor --config FILE   (reads `root = "..."` and `workers = N`)
 *
 * Variants, for bench/README's analysis (not in the table):
 *   FLOOR_FORK=1    fork and exec the program directly instead of through
 *                   spoold-exec: the floor's memory is small, so a fork is
 *                   cheap, and the program starts one exec sooner (but the
 *                   fork is on the job's path; spoold's helper is started
 *                   ahead of it);
 *   FLOOR_LAYOUT=1  also write what SPEC.md section 4 puts in a job folder
 *                   (job.toml, events.jsonl, results/, attempts/1/ with both
 *                   logs, results.json at the end), in place.              */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_ARGS 64
#define MAX_QUEUE (1 << 20)

struct job { char id[128]; char *argv[MAX_ARGS + 1]; char *raw; ssize_t raw_len; };

static char root[PATH_MAX];
static int workers = 2, running = 0, root_fd = -1;
static struct job *queue[MAX_QUEUE];
static size_t q_head = 0, q_tail = 0;
static struct { pid_t pid; char id[128]; } slots[256];
/* What this turn staged: renames that wait for the first sync, then children
 * that wait for the second. */
static char staged[4096][2][PATH_MAX];
static int n_staged = 0;
static int n_waiting = 0, go_fds[256];

static void die(const char *what) { perror(what); exit(1); }

static int use_layout; /* FLOOR_LAYOUT=1: also the job folder of SPEC.md section 4 */

/* Writes `body` to <job dir>/.<name>.tmp and stages its rename to <name>. */
static void write_staged(const char *id, const char *name, const char *body, size_t len) {
  char dir[PATH_MAX], tmp[PATH_MAX], dst[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/jobs/%s", root, id);
  mkdir(dir, 0755);
  snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
  snprintf(dst, sizeof dst, "%s/%s", dir, name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die(tmp);
  if (write(fd, body, len) != (ssize_t)len) die("write");
  close(fd);
  strcpy(staged[n_staged][0], tmp);
  strcpy(staged[n_staged][1], dst);
  if (++n_staged == 4096) { fprintf(stderr, "floor: too many changes in one turn\n"); exit(1); }
}

/* Appends a line to a file of the job's folder (events.jsonl). */
static void append(const char *id, const char *name, const char *line) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/jobs/%s/%s", root, id, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) die(path);
  if (write(fd, line, strlen(line)) < 0) die("write");
  close(fd);
}

/* Writes `state` for job `id` to a temporary name and stages its rename. */
static void write_state(const char *id, const char *state) {
  char body[256];
  int len = snprintf(body, sizeof body, "{\"state\": \"%s\"}\n", state);
  write_staged(id, "status.json", body, (size_t)len);
  if (use_layout && strcmp(state, "running") != 0) {
    /* The end: two events and the results Item, as spoold writes them. */
    append(id, "events.jsonl", "{\"event\": \"exited\"}\n");
    append(id, "events.jsonl", "{\"event\": \"succeeded\"}\n");
    static const char item[] = "{\"type\": \"Feature\", \"assets\": {}}\n";
    write_staged(id, "results.json", item, sizeof item - 1);
  }
}

/* One round: sync the contents, rename, let the waiting programs run, sync
 * the renames, then act on the rest. */
static void flush(void) {
  if (n_staged == 0 && n_waiting == 0) return;
  if (syncfs(root_fd) != 0) die("syncfs");
  for (int i = 0; i < n_staged; i++)
    if (rename(staged[i][0], staged[i][1]) != 0) die("rename");
  for (int i = 0; i < n_waiting; i++) {
    if (write(go_fds[i], "g", 1) != 1) die("go");
    close(go_fds[i]);
  }
  n_waiting = 0;
  if (syncfs(root_fd) != 0) die("syncfs");
  n_staged = 0;
}

/* Parses `command = ["a", "b"]` (spool_submit's form) into argv. */
static struct job *read_job(const char *name) {
  char path[PATH_MAX], buf[4096];
  snprintf(path, sizeof path, "%s/incoming/%s", root, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return NULL;
  buf[n] = '\0';
  struct job *job = calloc(1, sizeof *job);
  job->raw = malloc((size_t)n);
  memcpy(job->raw, buf, (size_t)n);
  job->raw_len = n;
  snprintf(job->id, sizeof job->id, "%.*s", (int)(strrchr(name, '.') - name), name);
  int argc = 0;
  for (char *p = strchr(buf, '['); p && *p && argc < MAX_ARGS; p++) {
    if (*p != '"') continue;
    char *s = ++p, *out = s;
    for (; *p && *p != '"'; p++) *out++ = (*p == '\\' && p[1]) ? *++p : *p;
    *out = '\0';
    job->argv[argc++] = strdup(s);
  }
  job->argv[argc] = NULL;
  if (unlink(path) != 0) die(path); /* a real runner unlinks only after the flush */
  return job;
}

/* Programs start as spoold's do: through spoold-exec (FLOOR_HELPER), started
 * with posix_spawn ahead of time (one is kept idle), handed the job through its
 * socket (daemon/exec_protocol.h), and released with one byte. */
static const char *helper;
static int use_fork; /* FLOOR_FORK=1: fork and exec directly, no helper */
static pid_t spare_pid = 0;
static int spare_sock = -1;

static void start_spare(void) {
  if (use_fork || spare_pid > 0) return;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_adddup2(&fa, 0, 1);
  posix_spawn_file_actions_adddup2(&fa, 0, 2);
  posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
  char *argv[] = {"spoold-exec", root, NULL};
  char *no_env[] = {NULL};
  int err = posix_spawn(&spare_pid, helper, &fa, NULL, argv, no_env);
  if (err != 0) { errno = err; die("posix_spawn"); }
  posix_spawn_file_actions_destroy(&fa);
  close(sv[1]);
  spare_sock = sv[0];
}

/* Hands the job (program `exe`, argv, PATH as environment) to the spare, the
 * supervisor of the attempt (protocol 2): no limits, kill sequence TERM then
 * KILL after 10 s, its lock and outcome in `dir_fd`. Returns the job's pid
 * from its reply. */
static pid_t hand_over(const char *exe, char **args, int out_fd, int err_fd, int dir_fd) {
  static char buf[65536];
  size_t len = 8;
  int argc = 0;
  while (args[argc]) argc++;
  char argc_text[16];
  snprintf(argc_text, sizeof argc_text, "%d", argc);
  const char *path = getenv("PATH");
  char path_env[4096];
  snprintf(path_env, sizeof path_env, "PATH=%s", path ? path : "/usr/bin:/bin");
  const char *head[] = {exe, "/", "-", "0", "0", "15", "10000", argc_text};
  const int nhead = (int)(sizeof head / sizeof head[0]);
  for (int i = 0; i < nhead + argc + 1; i++) {
    const char *str = i < nhead ? head[i] : i < nhead + argc ? args[i - nhead] : path_env;
    size_t n = strlen(str) + 1;
    if (len + n > sizeof buf) die("request too long");
    memcpy(buf + len, str, n);
    len += n;
  }
  unsigned int header[2] = {0x73706532u, (unsigned int)(len - 8)};
  memcpy(buf, header, sizeof header);
  int fds[3] = {out_fd, err_fd, dir_fd};
  char control[CMSG_SPACE(sizeof fds)];
  struct iovec iov = {buf, len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(cmsg), fds, sizeof fds);
  if (sendmsg(spare_sock, &msg, MSG_NOSIGNAL) != (ssize_t)len) die("sendmsg");
  int reply[4]; /* magic, job pid, stage, errno */
  if (read(spare_sock, reply, sizeof reply) != (ssize_t)sizeof reply || reply[1] <= 0) die("the helper's reply");
  return reply[1];
}

/* The program's path, looked up in PATH as spoold does before starting it. */
static const char *resolve(const char *name, char *out, size_t size) {
  if (strchr(name, '/')) return name;
  const char *path = getenv("PATH");
  if (!path) path = "/usr/bin:/bin";
  for (const char *p = path; *p;) {
    size_t len = strcspn(p, ":");
    snprintf(out, size, "%.*s/%s", (int)len, p, name);
    if (access(out, X_OK) == 0) return out;
    p += len + (p[len] == ':');
  }
  return name;
}

static void start(struct job *job) {
  int out_fd = -1, err_fd = -1;
  if (use_layout) {
    /* What spoold puts in a job folder before the job runs (written in place
     * here, not assembled under another name and renamed: less than spoold). */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/jobs/%s", root, job->id);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/jobs/%s/job.toml", root, job->id);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, job->raw, (size_t)job->raw_len) != job->raw_len) die(path);
    close(fd);
    append(job->id, "events.jsonl", "{\"event\": \"accepted\"}\n");
    append(job->id, "events.jsonl", "{\"event\": \"started\"}\n");
    const char *dirs[] = {"results", "attempts", "attempts/1"};
    for (int d = 0; d < 3; d++) {
      snprintf(path, sizeof path, "%s/jobs/%s/%s", root, job->id, dirs[d]);
      if (mkdir(path, 0755) != 0) die(path);
    }
    snprintf(path, sizeof path, "%s/jobs/%s/attempts/1/stdout.log", root, job->id);
    out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    snprintf(path, sizeof path, "%s/jobs/%s/attempts/1/stderr.log", root, job->id);
    err_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out_fd < 0 || err_fd < 0) die(path);
  }
  char exe_buf[PATH_MAX];
  const char *exe = resolve(job->argv[0], exe_buf, sizeof exe_buf);
  pid_t pid;
  int go_fd;
  if (use_fork) {
    /* The floor's own memory is small: a forked child that waits for its go
     * byte, then execs the program itself, needs no helper. */
    int go[2];
    if (pipe2(go, O_CLOEXEC) != 0) die("pipe");
    pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      setsid();
      int null = open("/dev/null", O_RDONLY);
      dup2(null, 0);
      if (out_fd >= 0) {
        dup2(out_fd, 1);
        dup2(err_fd, 2);
      }
      char go_byte;
      if (read(go[0], &go_byte, 1) != 1) _exit(127);
      execv(exe, job->argv);
      _exit(127);
    }
    close(go[0]);
    go_fd = go[1];
  } else {
    start_spare();
    int null_fd = -1;
    if (out_fd < 0) null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    /* The supervisor's folder: the attempt's, or one of its own per job. */
    char dir[PATH_MAX];
    if (use_layout) {
      snprintf(dir, sizeof dir, "%s/jobs/%s/attempts/1", root, job->id);
    } else {
      snprintf(dir, sizeof dir, "%s/run", root);
      mkdir(dir, 0755);
      snprintf(dir, sizeof dir, "%s/run/%s", root, job->id);
      if (mkdir(dir, 0755) != 0 && errno != EEXIST) die(dir);
    }
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) die(dir);
    (void)hand_over(exe, job->argv, out_fd >= 0 ? out_fd : null_fd, err_fd >= 0 ? err_fd : null_fd, dir_fd);
    close(dir_fd);
    if (null_fd >= 0) close(null_fd);
    pid = spare_pid;
    go_fd = spare_sock;
    spare_pid = 0;
    spare_sock = -1;
  }
  if (out_fd >= 0) {
    close(out_fd);
    close(err_fd);
  }
  for (int s = 0; s < 256; s++) {
    if (slots[s].pid == 0) { slots[s].pid = pid; strcpy(slots[s].id, job->id); break; }
  }
  running++;
  write_state(job->id, "running");
  go_fds[n_waiting++] = go_fd;
  for (int i = 0; job->argv[i]; i++) free(job->argv[i]);
  free(job->raw);
  free(job);
}

static void notify_ready(void) {
  const char *sock = getenv("NOTIFY_SOCKET");
  if (!sock) return;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock);
  sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&addr, sizeof addr);
  close(fd);
}

int main(int argc, char **argv) {
  if (argc != 3 || strcmp(argv[1], "--config") != 0) {
    fprintf(stderr, "usage: floor --config FILE\n");
    return 2;
  }
  FILE *cfg = fopen(argv[2], "r");
  if (!cfg) die(argv[2]);
  char line[PATH_MAX + 64];
  while (fgets(line, sizeof line, cfg)) {
    if (sscanf(line, "root = \"%4000[^\"]\"", root) == 1) continue;
    sscanf(line, "workers = %d", &workers);
  }
  fclose(cfg);
  helper = getenv("FLOOR_HELPER");
  use_fork = getenv("FLOOR_FORK") != NULL && strcmp(getenv("FLOOR_FORK"), "1") == 0;
  use_layout = getenv("FLOOR_LAYOUT") != NULL && strcmp(getenv("FLOOR_LAYOUT"), "1") == 0;
  if (!root[0] || !helper) { fprintf(stderr, "floor: no root in %s, or FLOOR_HELPER unset\n", argv[2]); return 2; }
  char path[PATH_MAX];
  const char *dirs[] = {"tmp", "incoming", "jobs"};
  mkdir(root, 0755);
  for (int i = 0; i < 3; i++) { snprintf(path, sizeof path, "%s/%s", root, dirs[i]); mkdir(path, 0755); }
  root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) die(root);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  snprintf(path, sizeof path, "%s/incoming", root);
  if (sfd < 0 || ifd < 0 || inotify_add_watch(ifd, path, IN_MOVED_TO) < 0) die("watch");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = sfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
  ev.data.fd = ifd;
  epoll_ctl(ep, EPOLL_CTL_ADD, ifd, &ev);
  notify_ready();

  for (;;) {
    struct epoll_event events[4];
    int n = epoll_wait(ep, events, 4, -1);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    char buf[65536] __attribute__((aligned(8)));
    ssize_t len;
    while ((len = read(ifd, buf, sizeof buf)) > 0) {
      for (char *p = buf; p < buf + len;) {
        struct inotify_event *e = (struct inotify_event *)p;
        if (e->len && e->name[0] != '.') {
          struct job *job = read_job(e->name);
          if (job) queue[q_tail++ % MAX_QUEUE] = job;
        }
        p += sizeof *e + e->len;
      }
    }
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == sizeof si) {
      if (si.ssi_signo == SIGTERM) return 0;
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      for (int s = 0; s < 256; s++) {
        if (slots[s].pid != pid) continue;
        /* Through spoold-exec, `pid` is the attempt's supervisor, which exits 0
         * once it recorded the job's outcome; the floor does not read the
         * outcome (every benchmark job succeeds). */
        write_state(slots[s].id, WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "succeeded" : "failed");
        slots[s].pid = 0;
        running--;
      }
    }
    while (running < workers && q_head != q_tail) start(queue[q_head++ % MAX_QUEUE]);
    flush();
    start_spare(); /* as spoold: after this turn's children were released */
  }
}

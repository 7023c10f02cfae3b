// export and import: job folders in a .tar.gz, made and read by GNU tar (run by
// argv, never through a shell).
//
// import is all or nothing: the archive's member names are checked first (each
// under "<id>/", no absolute path, no ".."), it is unpacked into a fresh folder
// under tmp/ (same file system as jobs/), every folder is checked (a valid id,
// a status.json that parses and names that id, a job file, nothing but files,
// folders and links that stay inside the folder), ids that exist are refused,
// and only then is each folder renamed into jobs/. A running spoold takes in
// new job folders at its next scan (spool.rescan_interval), so imported jobs
// appear in index.json then (spoolctl list shows them at once).
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "cli/commands.h"
#include "spool/fileio.h"
#include "spool/job_array.h"
#include "spool/job_spec.h"
#include "spool/status.h"

extern char** environ;

namespace spoold::cli {
namespace {

// Runs `argv` (PATH lookup), stdout into *captured when given; returns the exit
// status, or an error if it could not run or was killed.
Result<int> RunProgram(const std::vector<std::string>& argv, std::string* captured) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int pipe_fds[2] = {-1, -1};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (captured) {
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return MakeError("io_error", ErrnoMessage("pipe", argv[0], errno));
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  }
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (captured) {
    ::close(pipe_fds[1]);
    char buf[65536];
    ssize_t n;
    while (rc == 0 && ((n = ::read(pipe_fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))) {
      if (n > 0) captured->append(buf, static_cast<size_t>(n));
    }
    ::close(pipe_fds[0]);
  }
  if (rc != 0) return MakeError("io_error", "cannot run " + argv[0] + ": " + std::strerror(rc));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status)) return MakeError("io_error", argv[0] + " was killed by a signal");
  return WEXITSTATUS(status);
}

Status RunTar(const std::vector<std::string>& argv, std::string* captured = nullptr) {
  auto code = RunProgram(argv, captured);
  if (!code.ok()) return code.error();
  if (*code != 0) return MakeError("io_error", "tar failed (exit code " + std::to_string(*code) + ")");
  return OkStatus();
}

// Member names must lie under "<valid id>/" with no absolute part and no "..".
Status CheckMemberNames(const std::string& listing) {
  for (std::string_view line : SplitLines(listing)) {
    const std::string name(line);
    if (name.empty()) continue;
    const std::string shown = PrintableName(name);
    if (name[0] == '/') return MakeError("bad_archive", "member " + shown + " has an absolute path");
    if (("/" + name + "/").find("/../") != std::string::npos) {
      return MakeError("bad_archive", "member " + shown + " has a .. in its path");
    }
    if (!IsValidJobId(name.substr(0, name.find('/')))) {
      return MakeError("bad_archive",
                       "member " + shown + " is not inside a job folder named by a valid job id");
    }
  }
  return OkStatus();
}

// `link`'s target, lexically resolved from `dir` (relative to the job folder),
// stays inside the job folder.
bool LinkStaysInside(const std::string& dir_rel, const std::string& target) {
  if (target.empty() || target[0] == '/') return false;
  int depth = 0;
  for (const std::string* part_source : {&dir_rel, &target}) {
    size_t start = 0;
    while (start <= part_source->size()) {
      size_t slash = part_source->find('/', start);
      if (slash == std::string::npos) slash = part_source->size();
      const std::string part = part_source->substr(start, slash - start);
      start = slash + 1;
      if (part.empty() || part == ".") continue;
      depth += part == ".." ? -1 : 1;
      if (depth < 0) return false;
    }
  }
  return true;
}

// Only files, folders and links that stay inside, all the way down.
Status CheckTree(const std::string& base, const std::string& rel) {
  auto names = ListDir(base + "/" + rel);
  if (!names.ok()) return names.error();
  for (const auto& name : *names) {
    const std::string child = rel + "/" + name;
    struct stat st {};
    if (::lstat((base + "/" + child).c_str(), &st) != 0)
      return MakeError("io_error", ErrnoMessage("stat", child, errno));
    if (S_ISDIR(st.st_mode)) {
      if (auto r = CheckTree(base, child); !r.ok()) return r;
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink((base + "/" + child).c_str(), target, sizeof target - 1);
      const std::string inside =
          rel.substr(rel.find('/') == std::string::npos ? rel.size() : rel.find('/') + 1);
      if (n < 0 || !LinkStaysInside(inside, std::string(target, static_cast<size_t>(n)))) {
        return MakeError("bad_archive", PrintableName(child) + " is a link that leaves its job folder");
      }
    } else if (!S_ISREG(st.st_mode)) {
      return MakeError("bad_archive", PrintableName(child) + " is neither a file, a folder nor a link");
    }
  }
  return OkStatus();
}

Status CheckJobFolder(const std::string& base, const std::string& id) {
  const std::string dir = base + "/" + id;
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return MakeError("bad_archive", PrintableName(id) + " is not a folder");
  }
  if (auto r = CheckTree(base, id); !r.ok()) return r;
  auto status_json = ReadJsonFile(dir + "/status.json", 64 << 20);
  if (!status_json.ok()) return MakeError("bad_archive", id + "/status.json: " + status_json.error().message);
  auto status = StatusFromJson(*status_json);
  if (!status.ok()) return MakeError("bad_archive", id + "/status.json: " + status.error().message);
  if (status->id != id) {
    return MakeError("bad_archive",
                     id + "/status.json names job " + PrintableName(status->id) + ", not " + id);
  }
  if (!PathExists(dir + "/job.toml") && !PathExists(dir + "/job.json")) {
    return MakeError("bad_archive", id + " has no job.toml or job.json");
  }
  return OkStatus();
}

// Checks the unpacked folders; the ids that exist already are refused.
Result<std::vector<std::string>> CheckUnpacked(const Context& ctx, const std::string& unpacked) {
  auto ids = ListDir(unpacked);
  if (!ids.ok()) return ids.error();
  if (ids->empty()) return MakeError("bad_archive", "the archive holds no job folders");
  std::vector<std::string> taken;
  for (const auto& id : *ids) {
    if (auto st = CheckJobFolder(unpacked, id); !st.ok()) return st.error();
    if (PathExists(ctx.Paths().JobDir(id))) taken.push_back(id);
  }
  if (!taken.empty()) {
    std::string list;
    for (const auto& id : taken) list += (list.empty() ? "" : ", ") + id;
    return MakeError("exists", "job ids that exist in " + ctx.Root() + " are refused: " + list +
                                   " (remove those jobs first); nothing was imported");
  }
  return ids;
}

Result<std::vector<std::string>> Unpack(const Context& ctx, const std::string& archive,
                                        const std::string& into) {
  std::string listing;
  if (auto st = RunTar({"tar", "-tzf", archive}, &listing); !st.ok()) {
    return MakeError("bad_archive", "cannot read " + archive + ": " + st.error().message);
  }
  if (auto st = CheckMemberNames(listing); !st.ok()) return st.error();
  if (auto st = RunTar({"tar", "-xzf", archive, "-C", into, "--no-same-owner"}); !st.ok()) return st.error();
  return CheckUnpacked(ctx, into);
}

// Renames each checked folder into jobs/ (never over an existing one).
Status MoveIntoJobs(const Context& ctx, const std::string& unpacked, const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    const std::string from = unpacked + "/" + id;
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, ctx.Paths().JobDir(id).c_str(), RENAME_NOREPLACE) !=
        0) {
      return MakeError("io_error", ErrnoMessage("move into jobs/", from, errno));
    }
  }
  return FsyncPath(ctx.Paths().Jobs());
}

}  // namespace

int CmdExport(Context& ctx, const Args& args) {
  auto out = args.Value("output");
  if (!out) return UsageError("give the archive to write with -o FILE.tar.gz");
  if (args.positional.empty()) return UsageError("give one or more job ids");
  std::vector<std::string> argv = {"tar", "-czf", *out, "-C", ctx.Paths().Jobs(), "--"};
  for (const auto& id : args.positional) {
    // A task's folder lies inside its array's, which is exported whole.
    if (auto task = ParseTaskId(id)) return Fail(id + " is a task: export its array, " + task->array);
    auto status = LoadStatusJson(ctx, id);
    if (!status.ok()) return Fail(status.error().message);
    if (!IsTerminalStateName(JsonString(*status, "state"))) {
      PrintNote("job " + id + " is " + JsonString(*status, "state") +
                ": its folder is exported as it is now");
    }
    argv.push_back(id);
  }
  if (auto st = RunTar(argv); !st.ok()) return Fail("cannot export: " + st.error().message);
  if (ctx.json) {
    OutJson(ctx, Json{{"archive", *out}, {"jobs", args.positional}});
  } else {
    Out("exported " + std::to_string(args.positional.size()) + " jobs to " + *out + "\n");
  }
  return kExitOk;
}

int CmdImport(Context& ctx, const Args& args) {
  if (args.positional.size() != 1) return UsageError("give one archive (FILE.tar.gz)");
  std::string unpacked = ctx.Paths().Tmp() + "/.import-XXXXXX";
  if (auto st = EnsureDir(ctx.Paths().Tmp()); !st.ok()) return Fail(st.error().message);
  if (::mkdtemp(unpacked.data()) == nullptr)
    return Fail(ErrnoMessage("create a folder in", ctx.Paths().Tmp(), errno));
  auto ids = Unpack(ctx, args.positional[0], unpacked);
  Status moved = ids.ok() ? MoveIntoJobs(ctx, unpacked, *ids) : Status(ids.error());
  (void)RemoveTree(unpacked);
  if (!moved.ok()) return Fail("cannot import " + args.positional[0] + ": " + moved.error().message);
  if (ctx.json) {
    OutJson(ctx, Json{{"imported", *ids}});
  } else {
    for (const auto& id : *ids) Out(id + "\n");
  }
  const DaemonInfo daemon = DetectDaemon(ctx.Paths());
  if (daemon.running) {
    PrintNote("spoold (pid " + std::to_string(daemon.pid) +
              ") takes in the imported jobs at its next scan of the spool");
  }
  return kExitOk;
}

}  // namespace spoold::cli

// spoolctl: the command-line client of spoold (issue 4). Parses the global
// options and the command, finds the spool root, sets the output modes, and
// hands over to the command. The command table below is the one list of
// commands, their options and their help.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/root.h"

namespace spoold::cli {
namespace {

const OptionSpec kJson = {"json", 0, nullptr, "machine-readable JSON output"};
const OptionSpec kPool = {"pool", 0, "POOL", "put the job into POOL (rewrites the job as JSON)"};
const OptionSpec kPriority = {"priority", 0, "N", "set the job's priority (rewrites the job as JSON)"};
const OptionSpec kHold = {"hold", 0, nullptr,
                          "accept but do not start until `spoolctl start` (rewrites as JSON)"};
const OptionSpec kAfter = {
    "after", 0, "ID,..",
    "start only once these jobs have succeeded (adds to the file's after; rewrites as JSON)"};
const OptionSpec kId = {"id", 0, "ID",
                        "submit under this id (an error when it is taken; for a definition's run, the same "
                        "run again is a no-op)"};
const OptionSpec kParam = {"param", 'p', "NAME=VALUE", "a param of the definition's run (repeat for each)"};
const OptionSpec kArray = {
    "array", 0, "INDEXES",
    "make the job an array of tasks ID:INDEX, e.g. 0-99 or 1,3,5-9:2 (rewrites as JSON)"};
const OptionSpec kParallel = {"parallel", 0, "N",
                              "with --array: at most N tasks at once (0: the pool's workers)"};
const OptionSpec kMaxFailed = {"max-failed", 0, "N",
                               "with --array: start no more tasks once N have failed (0: never stop)"};
const OptionSpec kCpus = {"cpus", 0, "N",
                          "the job runs on N CPUs of its own: [resources] cpus (rewrites as JSON)"};
const OptionSpec kMemory = {
    "memory", 0, "SIZE",
    "the most memory it may use, e.g. 512M or 4G: [resources] memory (rewrites as JSON)"};
const OptionSpec kGpus = {"gpus", 0, "N", "N GPUs of its own (0: none): [resources] gpus (rewrites as JSON)"};

const char* const kSubmitDetails =
    "The file is validated locally first, as the daemon would (pools and defaults from\n"
    "--config or the default configuration, else the pools of index.json); a bad file is\n"
    "reported as CODE (FIELD) with line and column, and not submitted (exit 1).\n"
    "The job id is the file name without .toml/.json (\"stdin\" for -). When it is taken,\n"
    "the first free ID-2, ID-3, ... is used, so the same file submitted twice makes two\n"
    "jobs. The file is written under tmp/ and renamed into incoming/; the id is printed.\n"
    "With --pool, --priority, --hold, --after, --array, --cpus, --memory or --gpus the job\n"
    "is written as JSON (ID.json).\n"
    "--array INDEXES writes the file's [array] indexes (SPEC.md section 5): each index runs\n"
    "as task ID:INDEX; with the file's items, the indexes pick items by position.\n"
    "--parallel and --max-failed set the array's limits.\n"
    "--cpus, --memory and --gpus set the keys of the file's [resources] (SPEC.md section 5,\n"
    "\"Resources\"): what the job holds while it runs; a key not given keeps the file's,\n"
    "else the pool's default. A request larger than the pool's capacity (from the\n"
    "configuration, else index.json) is refused here with the daemon's message\n"
    "(invalid_field), and nothing is dropped.\n"
    "\n"
    "NAME or NAME:REV instead of a file (no file by that name): a run of the definition\n"
    "NAME (definitions/NAME.toml|json; its latest revision, or revision REV), with a\n"
    "-p NAME=VALUE for each param. The run is checked locally with the daemon's rules:\n"
    "unknown_param, missing_param, invalid_param, override_not_allowed (the options above\n"
    "other than --hold and --after set job keys, which the definition's allow_override\n"
    "must name; --cpus, --memory and --gpus set \"resources\", merged into the definition's)\n"
    "and unknown_definition are reported and nothing is dropped. It is written\n"
    "as incoming/ID.json, {\"definition\": ..., \"params\": {...}}, every value a string.\n"
    "Its id is NAME-N (N counting on from the definition's runs), or --id ID: the same\n"
    "run submitted again with the same --id is not dropped again (exit 0); another job\n"
    "of that id is an error.";

const char* const kWaitDetails =
    "A line per change: elapsed time, state, reason, attempt and progress (a live line\n"
    "on a terminal). On failure the last lines of stderr and the log folder are shown.\n"
    "Exit code: 0 succeeded; the job's exit code when it exited non-zero; 124 timeout or\n"
    "deadline; 125 cancelled or another failure; 1 unknown or rejected. With several ids,\n"
    "the worst: 1, then 125, then 124, then the first job exit code, then 0.\n"
    "An array (and run --array) ends when all its tasks have: 0 when every task succeeded,\n"
    "125 when one failed or it was cancelled. A task id (ID:INDEX) not started yet is\n"
    "waited for.";

const char* const kDefinitionsDetails =
    "Job definitions are files in the spool's definitions/ folder (NAME.toml or NAME.json):\n"
    "a job file with declared [params.NAME] and the keys a run may override. spoold keeps\n"
    "every revision under revisions/NAME/ (SPEC.md section 4); runs are submitted with\n"
    "spoolctl submit NAME -p NAME=VALUE (or run, which waits).\n"
    "\n"
    "list (also `definitions` alone): a line per definition: its latest revision and\n"
    "when, its runs, the last run and its state; \"error: ...\" while its file has an\n"
    "error file beside it (definitions/FILE.error.json: the edit was refused, the last\n"
    "good revision stays in force), \"removed\" when its file is gone. --json: an\n"
    "object, name -> the entry index.json's \"definitions\" has; -q: names only.\n"
    "show NAME[:REV]: the revision's text byte for byte (the latest without :REV), so\n"
    "`show etl:3 > etl.toml` restores it; --params: its params instead (name, type,\n"
    "default, pattern, description) and the keys a run may set; --json: both as JSON.\n"
    "history NAME: the revisions, newest first (number, time, owner, sha256, file, runs);\n"
    "--runs: the runs instead, newest first (id, revision, time, the job's state now, or\n"
    "\"removed\" once its folder is gone).";

const char* const kControlDetails =
    "Writes a control request into control/ and waits up to 3 s for spoold: done (the\n"
    "request was acted on), refused (exit 1, with the daemon's reason), or queued\n"
    "(spoold is not running, or has not acted yet). A task id (ID:INDEX) cancels that task\n"
    "alone, also one not started yet; an array's id, all its tasks.";

const char* const kShutdownDetails =
    "Asks the running spoold to stop: it stops intake and exits 0. Its local jobs keep\n"
    "running and the next start adopts them, as after SIGTERM. With --stop-jobs it first\n"
    "stops every running local job with its kill sequence and records it interrupted (it\n"
    "runs again at the next start). Slurm jobs are left running either way. Only root and\n"
    "the daemon's own user may send it (else refused: not_permitted, exit 1).\n"
    "Without --wait: done once spoold has acted on the request (it waits up to 3 s).\n"
    "--wait then waits until spoold has let go of the spool root's lock: exit 0 once it\n"
    "has stopped, 124 when SECONDS (default 90) pass first. When spoold is not running,\n"
    "nothing is sent (exit 0): a request left behind would stop the next start.";

const char* const kServeDetails =
    "Serves the jobs, a job's status, attempts, events, logs (followed while running),\n"
    "results and dependencies, and the pools, with live updates (Server-Sent Events), and\n"
    "a JSON API under /api/ (SPEC.md section 12). It runs as the user who starts it: the\n"
    "actions (cancel, start, rerun, pause, resume) are control requests and job files\n"
    "written as that user, as the commands write them. The first line of output is the\n"
    "URL. Only the listen address, localhost, 127.0.0.1 and [::1] are answered (Host),\n"
    "and a POST needs the page's token (X-Spoold-Token) and no foreign Origin. Nothing\n"
    "outside the spool root is served, and no link is followed. SIGINT or SIGTERM stops it.";

std::vector<Command> Commands() {
  // run: submit (of a file or of a definition's run), then wait.
  static const std::string kRunDetails =
      std::string(
          "Submits as spoolctl submit does (see its --help: a job file, or NAME[:REV] -p\n"
          "NAME=VALUE for a run of a definition), then waits for the job's end.\n") +
      kWaitDetails;
  return {
      {"submit",
       "FILE|-|NAME[:REV] [-p NAME=VALUE...] [--id ID] [--pool P] [--priority N] [--hold] [--after ID,..] "
       "[--array INDEXES [--parallel N] [--max-failed N]] [--cpus N] [--memory SIZE] [--gpus N]",
       "submit a job file, or a run of a definition; prints the job id",
       kSubmitDetails,
       {kParam, kId, kPool, kPriority, kHold, kAfter, kArray, kParallel, kMaxFailed, kCpus, kMemory, kGpus,
        kJson},
       CmdSubmit},
      {"run",
       "FILE|-|NAME[:REV] [-p NAME=VALUE...] [--id ID] [--pool P] [--priority N] [--hold] [--after ID,..] "
       "[--array INDEXES [--parallel N] [--max-failed N]] [--cpus N] [--memory SIZE] [--gpus N]",
       "submit a job file or a definition's run, and wait for its end",
       kRunDetails.c_str(),
       {kParam, kId, kPool, kPriority, kHold, kAfter, kArray, kParallel, kMaxFailed, kCpus, kMemory, kGpus,
        kJson},
       CmdRun},
      {"wait", "ID...", "wait until jobs end", kWaitDetails, {kJson}, CmdWait},
      {"status",
       "ID",
       "a job's state (--json: status.json as it is)",
       "ID may be a task, ID:INDEX. An array shows its tasks by state, its progress and the\n"
       "indexes of its failed tasks; a task names its array.",
       {kJson},
       CmdStatus},
      {"list",
       "[--state S,..] [--pool P] [--tag T] [--since DURATION] [--owner U] [--tree]",
       "jobs: id, state, reason, pool, attempt, age, title",
       "Ended jobs come from index.json; active ones, and folders the index does not name\n"
       "yet, from their status.json (all of them when index.json is missing or unreadable).\n"
       "--since 2h: created in the last 2h. An array is one line; when one is listed, the\n"
       "TASKS column counts its tasks (12/100 tasks: 12 of 100 ended), and --json gives its\n"
       "\"tasks\" by state.",
       {{"state", 0, "STATES", "only these states (comma-separated)"},
        {"pool", 0, "POOL", "only jobs of POOL"},
        {"tag", 0, "TAG", "only jobs tagged TAG"},
        {"since", 0, "DURATION", "only jobs created within DURATION (30m, 2h, 1d)"},
        {"owner", 0, "USER", "only jobs submitted by USER"},
        {"quiet", 'q', nullptr, "ids only"},
        {"tree", 0, nullptr, "dependents (after) under their parents (an array's tasks' under the array)"},
        kJson},
       CmdList},
      {"logs",
       "ID [--attempt N] [--stderr] [--follow] [--events]",
       "an attempt's output, or the job's events",
       "Without --attempt: the last attempt. --follow prints what is appended until the job\n"
       "ends (moving on to new attempts). --events --json prints events.jsonl as it is.\n"
       "An array's output is its tasks': spoolctl logs ID:INDEX; --follow of a task not\n"
       "started yet waits for it to start (exit 125 if its array ended first).",
       {{"attempt", 0, "N", "attempt N (1-based)"},
        {"stderr", 0, nullptr, "stderr.log instead of stdout.log"},
        {"follow", 'f', nullptr, "keep printing until the job is terminal"},
        {"events", 0, nullptr, "the job's history (events.jsonl)"},
        kJson},
       CmdLogs},
      {"cancel", "ID...", "cancel queued or running jobs", kControlDetails, {kJson}, CmdCancel},
      {"start", "ID...", "start held jobs", kControlDetails, {kJson}, CmdStart},
      {"pause", "POOL...", "pause pools: they start nothing new", kControlDetails, {kJson}, CmdPause},
      {"resume", "POOL...", "resume paused pools", kControlDetails, {kJson}, CmdResume},
      {"shutdown",
       "[--stop-jobs] [--wait [SECONDS]]",
       "stop spoold; its jobs keep running unless --stop-jobs",
       kShutdownDetails,
       {{"stop-jobs", 0, nullptr, "stop the running local jobs too (recorded interrupted)"},
        {"wait", 0, "SECONDS", "wait until spoold has stopped (default 90 s)", true},
        kJson},
       CmdShutdown},
      {"definitions",
       "[list | show NAME[:REV] [--params] | history NAME [--runs]]",
       "job definitions: list them, show a revision, their history and runs",
       kDefinitionsDetails,
       {{"params", 0, nullptr, "show: the declared params instead of the text"},
        {"runs", 0, nullptr, "history: the runs instead of the revisions"},
        {"quiet", 'q', nullptr, "list: names only"},
        kJson},
       CmdDefinitions},
      {"pools",
       "",
       "pools: executor, workers, running, queued, queue limit, paused, CPUs, memory, GPUs",
       "From index.json (else the configuration). CPUS, MEMORY and GPUS are what the pool's\n"
       "running jobs hold of what it may hand out (used/capacity; SPEC.md section 5,\n"
       "\"Resources\"); a slurm pool's capacity is only the bound on one job's request (\"-\"\n"
       "for none). A last line, (machine), shows what the local pools share. \"-\" where\n"
       "index.json does not say (a daemon without resources). --json prints index.json's\n"
       "pools object as it is, with each pool's \"capacity\" and \"used\" (the machine's\n"
       "are index.json's \"machine\").",
       {{"quiet", 'q', nullptr, "names only"}, kJson},
       CmdPools},
      {"results",
       "ID [--name ASSET] [--cat ASSET] [--download DIR]",
       "a job's result files (results.json)",
       "--download copies the files (all, or the one --name names) into DIR and checks each\n"
       "copy against its sha256 in results.json.",
       {{"name", 0, "ASSET", "only this asset"},
        {"cat", 0, "ASSET", "write this asset's content to stdout"},
        {"download", 0, "DIR", "copy the files into DIR, checking their checksums"},
        kJson},
       CmdResults},
      {"rerun",
       "ID [--failed] [--pool P] [--priority N] [--hold]",
       "a new job from a job's file: ID.r2, ID.r3, ...",
       "The new job gets metadata.derived_from = ID and is written as JSON.\n"
       "--failed, for an array that has ended: the new array runs only the indexes that\n"
       "failed (status.json's failed_indexes), as its [array] indexes; items are kept, so\n"
       "the indexes pick the same items.",
       {{"failed", 0, nullptr, "an ended array's failed tasks only"}, kPool, kPriority, kHold, kJson},
       CmdRerun},
      {"duplicate",
       "ID [-n N] [--pool P] [--priority N] [--hold]",
       "N new jobs from a job's file: ID.d1, ID.d2, ...",
       "Each gets metadata.derived_from = ID and is written as JSON.",
       {{"count", 'n', "N", "how many (default 1)"}, kPool, kPriority, kHold, kJson},
       CmdDuplicate},
      {"export",
       "ID... -o FILE.tar.gz",
       "job folders into a .tar.gz",
       "",
       {{"output", 'o', "FILE", "the archive to write"}, kJson},
       CmdExport},
      {"import",
       "FILE.tar.gz",
       "job folders from an export",
       "All or nothing: ids that exist are refused. spoold loads job folders at start, so a\n"
       "running daemon lists imported jobs in index.json after its next start.",
       {kJson},
       CmdImport},
      {"serve",
       "[--listen HOST:PORT] [--read-only]",
       "a web view and JSON API of the spool (http://127.0.0.1:8642/)",
       kServeDetails,
       {{"listen", 0, "HOST:PORT",
         "listen there (default 127.0.0.1:8642; port 0: any free port; [::1]:PORT for IPv6)"},
        {"read-only", 0, nullptr, "offer no actions: the page has no buttons, every POST answers 403"}},
       CmdServe},
      {"validate",
       "FILE... [--explain]",
       "check job files offline, as the daemon would",
       "Pools and defaults come from --config (or the default configuration), else from\n"
       "index.json's pools; without either, the pool is not checked.",
       {{"explain", 0, nullptr, "print the effective settings after defaults"}, kJson},
       CmdValidate,
       RootUse::kOptional},
  };
}

const Command* FindCommand(const std::vector<Command>& commands, const std::string& name) {
  for (const auto& c : commands) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

Context MakeContext(const Args& args) {
  Context ctx;
  ctx.json = args.Flag("json");
  ctx.tty = ::isatty(STDOUT_FILENO) == 1;
  const char* no_color = std::getenv("NO_COLOR");
  ctx.color = ctx.tty && (no_color == nullptr || *no_color == '\0') && !args.Flag("no-color");
  return ctx;
}

int Main(int argc, char** argv) {
  const std::vector<Command> commands = Commands();
  std::vector<std::string> words(argv + 1, argv + argc);
  // Global options may come before the command; they are handed on to it.
  std::vector<std::string> leading;
  size_t i = 0;
  for (; i < words.size() && words[i].size() > 1 && words[i][0] == '-'; ++i) {
    if (words[i] == "--version") {
      std::printf("spoolctl %s\n", SPOOLD_VERSION);
      return kExitOk;
    }
    leading.push_back(words[i]);
    const bool takes_value = words[i] == "--root" || words[i] == "--config";
    if (takes_value && i + 1 < words.size()) leading.push_back(words[++i]);
  }
  if (i == words.size() || words[i] == "help") {
    const Command* topic = i + 1 < words.size() ? FindCommand(commands, words[i + 1]) : nullptr;
    topic ? PrintCommandHelp(*topic) : PrintProgramHelp(commands);
    return i == words.size() && leading.empty() ? kExitUsage : kExitOk;
  }
  const Command* command = FindCommand(commands, words[i]);
  if (command == nullptr) return UsageError("unknown command " + PrintableName(words[i]));
  leading.insert(leading.end(), words.begin() + static_cast<long>(i) + 1, words.end());
  auto args = ParseArgs(*command, leading);
  if (!args.ok()) return UsageError(args.error().message);
  if (args->Flag("help")) {
    PrintCommandHelp(*command);
    return kExitOk;
  }
  Context ctx = MakeContext(*args);
  if (auto st = SetupRoot(ctx, *args, command->root); !st.ok()) return Fail(st.error().message);
  return command->run(ctx, *args);
}

}  // namespace
}  // namespace spoold::cli

int main(int argc, char** argv) {
  // A reader that closes the pipe (spoolctl logs | head) ends us quietly.
  ::signal(SIGPIPE, SIG_DFL);
  return spoold::cli::Main(argc, argv);
}

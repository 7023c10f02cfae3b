// spoold: the job-runner daemon. Parses the command line, loads the
// configuration, and runs the Daemon in the foreground until SIGTERM.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "config/config.h"
#include "daemon/daemon.h"
#include "daemon/local_executor.h"
#include "daemon/logging.h"
#include "daemon/version.h"
#include "spool/failpoint.h"

namespace {

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: spoold [--config FILE] [--check]\n"
               "       spoold --version\n"
               "\n"
               "Runs the spool job runner in the foreground on the spool root named by the\n"
               "configuration (default %s).\n"
               "  --config FILE  the configuration file\n"
               "  --check        validate the configuration and find the exec helper\n"
               "                 (spoold-exec), then exit: 0 valid, 1 invalid\n"
               "\n"
               "The file interface (job files, status.json, index.json, the configuration) is\n"
               "specified in SPEC.md: docs/SPEC.md in the source, share/doc/spoold/SPEC.md where\n"
               "it is installed (/usr/share/doc/spoold/ from the .deb).\n",
               spoold::kDefaultConfigPath);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = spoold::kDefaultConfigPath;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = arg.substr(9);
    } else if (arg == "--check") {
      check = true;
    } else if (arg == "--version") {
      std::printf("spoold %s%s\n", spoold::Version(), spoold::FailpointsCompiledIn() ? " (failpoints)" : "");
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      Usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "spoold: unknown argument %s\n", spoold::EscapeForLog(arg).c_str());
      Usage(stderr);
      return 2;
    }
  }

  auto config = spoold::LoadConfig(config_path);
  if (!config.ok()) {
    // stderr is the journal under systemd: escaped like every log line (a key
    // of the file may hold a newline).
    std::fprintf(stderr, "spoold: invalid configuration: %s\n",
                 spoold::EscapeForLog(spoold::FormatConfigError(config.error(), config_path)).c_str());
    return 1;
  }
  if (check) {
    // Also what start would refuse for lack of a file of ours: the exec helper.
    auto helper = spoold::FindExecHelper(spoold::ExecHelperCandidates());
    if (!helper.ok()) {
      std::fprintf(stderr, "spoold: %s\n", spoold::EscapeForLog(helper.error().message).c_str());
      return 1;
    }
    std::printf("%s: valid (spool root %s, %zu pools; exec helper %s)\n", config_path.c_str(),
                config->root.c_str(), config->pools.size(), helper->c_str());
    return 0;
  }

  spoold::SetupLogging();

  // A job that dies while we write to its pipe must not kill the daemon; the
  // write fails with EPIPE instead.
  ::signal(SIGPIPE, SIG_IGN);

  spoold::Daemon daemon(std::move(config.value()), config_path);
  if (auto st = daemon.Start(); !st.ok()) {
    spdlog::critical("cannot start: {}", st.error().message);
    return 1;
  }
  return daemon.Run();
}

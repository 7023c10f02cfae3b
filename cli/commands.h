// The commands of spoolctl, one group per file: submit.cpp (submit, run,
// validate, rerun, duplicate), wait.cpp (wait, and run's waiting), query.cpp
// (status, list, pools), logs.cpp, control.cpp (cancel, start, pause, resume,
// shutdown), definitions.cpp (definitions list, show, history; the runs that
// submit and run make of a definition are definition_run.cpp's), results.cpp,
// archive.cpp (export, import), serve*.cpp (serve: the web view and HTTP API,
// see cli/serve.h). main.cpp holds the table that names them. Each returns
// the process's exit code.
#pragma once

#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/common.h"

namespace spoold::cli {

int CmdSubmit(Context& ctx, const Args& args);
int CmdRun(Context& ctx, const Args& args);
int CmdValidate(Context& ctx, const Args& args);
int CmdRerun(Context& ctx, const Args& args);
int CmdDuplicate(Context& ctx, const Args& args);
int CmdWait(Context& ctx, const Args& args);
int CmdStatus(Context& ctx, const Args& args);
int CmdList(Context& ctx, const Args& args);
int CmdPools(Context& ctx, const Args& args);
int CmdLogs(Context& ctx, const Args& args);
int CmdCancel(Context& ctx, const Args& args);
int CmdStart(Context& ctx, const Args& args);
int CmdPause(Context& ctx, const Args& args);
int CmdResume(Context& ctx, const Args& args);
int CmdShutdown(Context& ctx, const Args& args);
int CmdResults(Context& ctx, const Args& args);
int CmdExport(Context& ctx, const Args& args);
int CmdImport(Context& ctx, const Args& args);
int CmdServe(Context& ctx, const Args& args);
int CmdDefinitions(Context& ctx, const Args& args);

// Waits until every job is terminal, printing a line per change, and returns
// the exit code of run/wait for the worst outcome (see wait.cpp).
int WaitForJobs(const Context& ctx, const std::vector<std::string>& ids);

}  // namespace spoold::cli

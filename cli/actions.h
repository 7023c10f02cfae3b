// The actions that the commands and the web view (`spoolctl serve`) share, one
// code path each: a control request (control.cpp: cancel, start, pause,
// resume) and a rerun (submit.cpp). Both write files as the calling user and
// wait briefly for the daemon, so the file system and the daemon decide who
// may; they return what happened as data, which the commands print and the
// web view answers as JSON.
#pragma once

#include <string>

#include "cli/common.h"
#include "spool/control.h"

namespace spoold::cli {

// A control request for a job or task (cancel, start) or a pool (pause,
// resume): checked as the daemon would check it, dropped into control/, then
// waited for up to kActTimeout. The value: {"action", "job"|"pool",
// "request": "control/<name>", "outcome": "done" | "rejected" |
// "not_yet_acted_on" | "daemon_not_running", "error": the daemon's error file
// when rejected}. An error when nothing was written: bad_id, unknown_job, the
// daemon's validation of the request, or io_error.
Result<Json> SendControlRequest(const Context& ctx, ControlAction action, const std::string& target);

// `spoolctl rerun ID`: a new job ID.r2 (ID.r3, ...) from ID's job file with
// metadata.derived_from = ID, validated and dropped into incoming/, then
// waited for. The value: {"id", "file": "incoming/<file>", "outcome":
// "accepted" | "rejected" | "waiting" | "daemon_not_running", "error" when
// rejected}. An error when nothing was written: the job is unknown, a task
// (code invalid_state), or its file no longer validates.
Result<Json> RerunJob(const Context& ctx, const std::string& id);

}  // namespace spoold::cli

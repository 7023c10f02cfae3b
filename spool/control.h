// Control requests (SPEC.md section 6): files dropped into control/ that cancel
// or start a job, pause or resume a pool, or stop the daemon (shutdown). This
// module only validates one parsed request; the daemon acts on it. Pure.
#pragma once

#include <string>

#include "config/result.h"
#include "spool/document.h"

namespace spoold {

enum class ControlAction { kCancel, kStart, kPause, kResume, kShutdown };

struct ControlRequest {
  ControlAction action = ControlAction::kCancel;
  std::string job;   // for cancel and start
  std::string pool;  // for pause and resume
  // For shutdown: stop the running local jobs too (recorded interrupted),
  // rather than leave them running under their supervisors as SIGTERM does.
  bool stop_jobs = false;
};

const char* ControlActionName(ControlAction action);

// Errors: missing_field, invalid_field, unknown_field, bad_id, with the field
// and (TOML) line and column; messages never quote string values. An unknown
// key comes before any other error, naming the close key if one is.
Result<ControlRequest> ParseControlRequest(const Document& doc);

}  // namespace spoold

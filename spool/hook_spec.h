// A job file's `[[hooks]]` (SPEC-hooks): each hook's events, program, timeout
// and retries, validated with the field, line and column of every error, the
// way the other job keys are (spool/job_spec.cpp calls this). The HookSpec
// type and its bounds are in config/hook_config.h, since pools of the
// configuration have hooks too. Pure: no state, no I/O.
#pragma once

#include <vector>

#include "config/hook_config.h"
#include "config/result.h"
#include "spool/document.h"

namespace spoold {

// Validates `value`, the `hooks` of the job file `doc`: an array of at most
// kMaxHooks tables with `on` (an event name, "*", or an array of them) and
// `command` (argv) required, `timeout` (1 s .. 1 h, default 30 s) and
// `retries` (0 .. 100, default 3). Errors name the element (hooks[1].on[0]):
// invalid_field and missing_field. A key of a hook table that is not one is
// reported before, by ValidateJobSpec (kHookKeys), like every unknown key.
Result<std::vector<HookSpec>> ValidateHooks(const Document& doc, const Json& value);

}  // namespace spoold

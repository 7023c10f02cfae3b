// Handing files to the daemon the way SPEC.md section 2 asks: the whole file is
// written under tmp/, fsynced, then renamed into incoming/ or control/ without
// replacing anything there. And waiting, with a deadline, for the daemon to act
// on what was dropped. Owns nothing.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "cli/common.h"

namespace spoold::cli {

// Writes `bytes` to tmp/ and renames it to `folder`/`name`. Fails with code
// "exists" when that name is taken (nothing is replaced).
Status DropFile(const SpoolPaths& paths, const std::string& folder, const std::string& name,
                std::string_view bytes);

// Polls `done` every `poll_ms` until it returns true (then true) or `timeout`
// passes (then false).
bool WaitUntil(const std::function<bool()>& done, Millis timeout, int poll_ms = 20);

// How long a request waits for the daemon to act before it reports "not yet".
inline constexpr Millis kActTimeout{3000};

}  // namespace spoold::cli

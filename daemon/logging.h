// The daemon's log: spdlog to stderr. On a terminal or in a file each line has a
// UTC time and a level. Under systemd (stderr is the journal stream named by
// $JOURNAL_STREAM) lines carry no time (journald adds its own) and start with a
// "<N>" syslog priority, so journald keeps each line's level (sd-daemon(3)).
#pragma once

namespace spoold {

// Installs the default logger. Returns true when logging to the journal.
bool SetupLogging();

}  // namespace spoold

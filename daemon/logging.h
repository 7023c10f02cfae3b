// The daemon's log: spdlog to stderr. On a terminal or in a file each line has a
// UTC time and a level. Under systemd (stderr is the journal stream named by
// $JOURNAL_STREAM) lines carry no time (journald adds its own) and start with a
// "<N>" syslog priority, so journald keeps each line's level (sd-daemon(3)).
// Every message passes EscapeForLog on its way to the sink, so a file name or a
// value from a file can never start a line of its own or steer a terminal.
#pragma once

#include <string>
#include <string_view>

namespace spoold {

// Installs the default logger. Returns true when logging to the journal.
bool SetupLogging();

// A log message made safe for a line-based log: control characters (newlines
// included), DEL, C1 controls, U+2028/U+2029 and bytes that are not valid UTF-8
// become \n, \r, \t or \xNN (each byte).
// Valid UTF-8 text is kept as it is, and so are backslashes: a name that spool/
// already made printable ("\x0a") stays readable.
std::string EscapeForLog(std::string_view text);

}  // namespace spoold

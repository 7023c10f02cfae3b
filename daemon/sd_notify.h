// The systemd notification protocol (sd_notify(3)): one datagram of
// "KEY=value\n" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or
// "@name" for the abstract namespace). It is small enough to write here, which
// spares a dependency on libsystemd for four messages: READY=1, STATUS=...,
// STOPPING=1 and WATCHDOG=1. Without $NOTIFY_SOCKET every call is a no-op.
// Owns one socket descriptor.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace spoold {

class SdNotifier {
 public:
  // Reads $NOTIFY_SOCKET and $WATCHDOG_USEC/$WATCHDOG_PID from the environment.
  SdNotifier();
  ~SdNotifier();
  SdNotifier(const SdNotifier&) = delete;
  SdNotifier& operator=(const SdNotifier&) = delete;

  // Sends `message` (e.g. "READY=1\nSTATUS=idle"); false if it could not be sent.
  bool Notify(const std::string& message);

  // How often to send WATCHDOG=1 (half the configured WatchdogSec), if asked to.
  std::optional<std::chrono::milliseconds> WatchdogInterval() const { return watchdog_; }

 private:
  int fd_ = -1;
  std::string address_;  // the socket path; leading '\0' for abstract names
  std::optional<std::chrono::milliseconds> watchdog_;
};

}  // namespace spoold

#include "daemon/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace spoold {

SdNotifier::SdNotifier() {
  const char* socket_name = std::getenv("NOTIFY_SOCKET");
  if (socket_name != nullptr && (socket_name[0] == '/' || socket_name[0] == '@') &&
      std::strlen(socket_name) < sizeof(sockaddr_un::sun_path)) {
    address_ = socket_name;
    if (address_[0] == '@') address_[0] = '\0';
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  }
  // The watchdog applies to us only if WATCHDOG_PID is unset or names us.
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  if (usec != nullptr && (pid == nullptr || std::strtol(pid, nullptr, 10) == ::getpid())) {
    long long value = std::strtoll(usec, nullptr, 10);
    if (value > 0) watchdog_ = std::chrono::milliseconds(std::max(1LL, value / 2000));
  }
  // Our children must not think the notification socket is theirs.
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
}

SdNotifier::~SdNotifier() {
  if (fd_ >= 0) ::close(fd_);
}

bool SdNotifier::Notify(const std::string& message) {
  if (fd_ < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, address_.data(), address_.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
  return ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len) ==
         static_cast<ssize_t>(message.size());
}

}  // namespace spoold

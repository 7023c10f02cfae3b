// What spoolctl serve learns from a request's connection, which cpp-httplib
// 0.11 does not hand to handlers: the socket (to see a streaming client go),
// the user who owns the client's end of a connection from this host (the
// kernel's socket tables, /proc/net/tcp and tcp6), and a Range header parsed
// by the rules of RFC 9110 (the library's own range handling is switched off:
// it does not check a range against a sized answer).
#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "cli/serve.h"

namespace spoold::cli::serve {
namespace {

// getnameinfo's numeric form and the port, as cpp-httplib fills
// Request::remote_addr and local_addr.
bool NumericAddress(const sockaddr_storage& addr, socklen_t len, std::string* ip, int* port) {
  if (addr.ss_family == AF_INET) {
    *port = ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  } else if (addr.ss_family == AF_INET6) {
    *port = ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  } else {
    return false;
  }
  char host[NI_MAXHOST];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, host, sizeof host, nullptr, 0,
                    NI_NUMERICHOST) != 0) {
    return false;
  }
  *ip = host;
  return true;
}

// An address of a request in its binary form: IPv4 (4 bytes) or IPv6 (16).
struct Address {
  bool v6 = false;
  unsigned char bytes[16] = {};
  int port = -1;
};

std::optional<Address> ParseAddress(const std::string& text, int port) {
  Address a;
  a.port = port;
  if (::inet_pton(AF_INET, text.c_str(), a.bytes) == 1) return a;
  const std::string bare = text.substr(0, text.find('%'));  // no scope
  if (::inet_pton(AF_INET6, bare.c_str(), a.bytes) == 1) {
    a.v6 = true;
    return a;
  }
  return std::nullopt;
}

// ::ffff:a.b.c.d as a.b.c.d (a server listening on "::" sees IPv4 clients so).
std::optional<Address> Unmapped(const Address& a) {
  static const unsigned char kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!a.v6 || std::memcmp(a.bytes, kPrefix, 12) != 0) return std::nullopt;
  Address v4;
  v4.port = a.port;
  std::memcpy(v4.bytes, a.bytes + 12, 4);
  return v4;
}

bool IsLoopback(const Address& a) {
  if (!a.v6) return a.bytes[0] == 127;
  if (auto v4 = Unmapped(a)) return IsLoopback(*v4);
  static const unsigned char kOne[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return std::memcmp(a.bytes, kOne, 16) == 0;
}

// As the kernel prints an address in /proc/net/tcp{,6}: each 32-bit word as
// the host reads it (%08X), then the port (%04X).
std::string ProcForm(const Address& a) {
  std::string out;
  char word[16];
  for (int i = 0; i < (a.v6 ? 4 : 1); ++i) {
    uint32_t raw;
    std::memcpy(&raw, a.bytes + 4 * i, 4);
    std::snprintf(word, sizeof word, "%08X", raw);
    out += word;
  }
  std::snprintf(word, sizeof word, ":%04X", static_cast<unsigned>(a.port));
  return out + word;
}

// The owner of the socket of this host whose local end is `client` and remote
// end `server`: the client's socket of a connection to us. Only a socket a
// process still holds counts (inode not 0): the kernel shows uid 0 for one
// closed and waiting (TIME_WAIT).
std::optional<uid_t> SocketOwner(const Address& client, const Address& server) {
  const std::string local = ProcForm(client), remote = ProcForm(server);
  std::ifstream table(client.v6 ? "/proc/net/tcp6" : "/proc/net/tcp");
  std::string line;
  std::getline(table, line);  // the heading
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string sl, loc, rem, st, queues, timer, retransmits, uid, timeout, inode;
    if (!(fields >> sl >> loc >> rem >> st >> queues >> timer >> retransmits >> uid >> timeout >> inode))
      continue;
    if (loc != local || rem != remote || inode == "0") continue;
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(uid.data(), uid.data() + uid.size(), value);
    if (ec != std::errc() || end != uid.data() + uid.size()) return std::nullopt;
    return static_cast<uid_t>(value);
  }
  return std::nullopt;
}

// An unsigned decimal number of a range; nullopt when malformed, INT64_MAX
// when larger.
std::optional<int64_t> RangeNumber(std::string_view text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) return INT64_MAX;
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

thread_local std::string t_last_file;

}  // namespace

const std::string& LastFileRead() { return t_last_file; }
void ForgetLastFileRead() { t_last_file.clear(); }
void NoteFileRead(const std::string& rel) { t_last_file = rel; }

// The socket of a request's connection: among this process's open
// descriptors, the socket whose two ends are the request's addresses.
int ClientSocket(const httplib::Request& req) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  const int skip = ::dirfd(dir);
  int found = -1;
  while (const dirent* entry = ::readdir(dir)) {
    int fd = -1;
    const std::string_view name(entry->d_name);
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), fd);
    if (ec != std::errc() || end != name.data() + name.size() || fd == skip) continue;
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage local, peer;
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
      continue;
    }
    std::string local_ip, peer_ip;
    int local_port = -1, peer_port = -1;
    if (NumericAddress(local, local_len, &local_ip, &local_port) &&
        NumericAddress(peer, peer_len, &peer_ip, &peer_port) && local_port == req.local_port &&
        peer_port == req.remote_port && local_ip == req.local_addr && peer_ip == req.remote_addr) {
      found = fd;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

bool ClientGone(int fd) {
  if (fd < 0) return false;
  struct pollfd p = {fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

Peer PeerOf(const State& state, const httplib::Request& req) {
  const auto client = ParseAddress(req.remote_addr, req.remote_port);
  const auto server = ParseAddress(req.local_addr, req.local_port);
  if (!client || !server) return Peer::kOther;
  // The client's socket is on this host when the kernel lists it: an IPv4
  // client of a server on "::" has an IPv4 socket, or an IPv6 one.
  std::optional<uid_t> owner = SocketOwner(*client, *server);
  if (!owner) {
    auto client4 = Unmapped(*client), server4 = Unmapped(*server);
    if (client4 && server4) owner = SocketOwner(*client4, *server4);
  }
  if (owner) return *owner == state.euid ? Peer::kOwner : Peer::kOther;
  return IsLoopback(*client) ? Peer::kOther : Peer::kRemote;
}

bool MayAct(const State& state, const httplib::Request& req) {
  return !state.read_only && PeerOf(state, req) != Peer::kOther;
}

ByteRange ParseRange(const std::string& header, int64_t size) {
  ByteRange none;
  constexpr std::string_view kUnit = "bytes=";
  if (header.size() < kUnit.size() || strncasecmp(header.c_str(), kUnit.data(), kUnit.size()) != 0) {
    return none;
  }
  std::string_view spec = std::string_view(header).substr(kUnit.size());
  while (!spec.empty() && (spec.front() == ' ' || spec.front() == '\t')) spec.remove_prefix(1);
  while (!spec.empty() && (spec.back() == ' ' || spec.back() == '\t')) spec.remove_suffix(1);
  const size_t dash = spec.find('-');
  if (spec.find(',') != std::string_view::npos || dash == std::string_view::npos) return none;
  const std::string_view a = spec.substr(0, dash), b = spec.substr(dash + 1);
  ByteRange out;
  out.kind = ByteRange::kRange;
  if (a.empty()) {  // -N: the last N bytes
    const auto n = RangeNumber(b);
    if (!n) return none;
    if (*n == 0 || size == 0) return ByteRange{ByteRange::kUnsatisfiable};
    out.first = size - std::min(*n, size);
    out.last = size - 1;
    return out;
  }
  const auto first = RangeNumber(a);
  const auto last = b.empty() ? std::optional<int64_t>(INT64_MAX) : RangeNumber(b);
  if (!first || !last || *last < *first) return none;
  if (*first >= size) return ByteRange{ByteRange::kUnsatisfiable};
  out.first = *first;
  out.last = std::min(*last, size - 1);
  return out;
}

}  // namespace spoold::cli::serve
